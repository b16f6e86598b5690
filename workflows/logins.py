"""Password logins for the pages: argon2id checks and a lock-out per (user, address).

A locked pair, an unknown name and a wrong password all answer alike, so a guesser
learns nothing about which accounts exist. Failures count per user name *and* client
address (``LoginFailure``): after ``MAX_FAILED_LOGINS`` the pair is locked for a minute,
doubling with each further failure up to an hour, while the same user at another address
(the desk) still logs in. Per-address throttling of all names is the rate limiter's job.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from workflows.accounts import (
    LOCKOUT,
    MAX_FAILED_LOGINS,
    MAX_LOCKOUT,
    hash_secret,
    password_needs_rehash,
    verify_secret,
)
from workflows.audit import record_event
from workflows.db import is_postgres, utcnow
from workflows.models import LoginFailure, User


class LoginFailed(Exception):
    """Wrong name or password, or the account is locked; deliberately vague."""

    message = "Wrong user name or password, or the account is locked for a while."


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every timestamp we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def is_locked(session: Session, user: User, now: datetime | None = None) -> bool:
    """True while some address is locked out of this account (the admin page shows it)."""
    moment = now or utcnow()
    rows = session.scalars(select(LoginFailure).where(LoginFailure.username == user.username))
    return any(r.locked_until is not None and _aware(r.locked_until) > moment for r in rows)


def _failures(session: Session, username: str, address: str) -> LoginFailure:
    stmt = select(LoginFailure).where(
        LoginFailure.username == username, LoginFailure.address == address
    )
    if is_postgres(session):
        stmt = stmt.with_for_update()  # two guesses at once are both counted
    row = session.scalars(stmt).one_or_none()
    if row is None:
        row = LoginFailure(username=username, address=address, failures=0)
        session.add(row)
    return row


def lockout_for(failures: int) -> datetime | None:
    """When a pair with this many failures may try again (None: it is not locked)."""
    if failures < MAX_FAILED_LOGINS:
        return None
    return utcnow() + min(LOCKOUT * 2 ** (failures - MAX_FAILED_LOGINS), MAX_LOCKOUT)


def authenticate(session: Session, username: str, password: str, address: str = "-") -> User:
    """The active user with this password, or LoginFailed (counting the failure).

    ``address`` is the client's (after ProxyFix). The caller commits either way, so
    failures are counted even though login fails.
    """
    username = username.strip()[:64]
    address = (address or "-")[:64]
    user = session.scalar(select(User).where(User.username == username))
    # Always pay for one argon2 verification, so timing does not reveal the account.
    ok = verify_secret(user.password_hash if user else None, password)
    record = _failures(session, username, address)
    if record.locked_until is not None and _aware(record.locked_until) > utcnow():
        raise LoginFailed
    if user is None or not user.active or user.password_hash is None or not ok:
        record.failures = (record.failures or 0) + 1
        record.locked_until = lockout_for(record.failures)
        record.updated_at = utcnow()
        if record.locked_until is not None and user is not None:
            record_event(session, actor=user.username, action="login_locked",
                         detail={"failures": record.failures})
        raise LoginFailed
    if record in session.new:
        session.expunge(record)  # a first try that succeeded: nothing to keep
    else:
        session.execute(delete(LoginFailure).where(
            LoginFailure.username == username, LoginFailure.address == address
        ))
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_secret(password)
    record_event(session, actor=user.username, action="login")
    return user


def end_sessions(user: User) -> None:
    """Revoke every login session of the user (logout): their cookies stop working."""
    user.session_epoch = (user.session_epoch or 0) + 1
