"""Password logins for the pages: argon2id checks and a lock-out after repeated failures.

A locked account, an unknown name and a wrong password all answer alike, so a guesser
learns nothing about which accounts exist. Per-address throttling is the rate limiter's
job (E); this is the per-account part.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows.accounts import (
    LOCKOUT,
    MAX_FAILED_LOGINS,
    hash_secret,
    password_needs_rehash,
    verify_secret,
)
from workflows.audit import record_event
from workflows.db import utcnow
from workflows.models import User


class LoginFailed(Exception):
    """Wrong name or password, or the account is locked; deliberately vague."""

    message = "Wrong user name or password, or the account is locked for a while."


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every timestamp we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def is_locked(user: User, now: datetime | None = None) -> bool:
    """True while a lock-out from repeated failures lasts."""
    if user.locked_until is None:
        return False
    return _aware(user.locked_until) > (now or utcnow())


def authenticate(session: Session, username: str, password: str) -> User:
    """The active user with this password, or LoginFailed (counting the failure).

    The caller commits either way, so failures are counted even though login fails.
    """
    user = session.scalar(select(User).where(User.username == username.strip()))
    # Always pay for one argon2 verification, so timing does not reveal the account.
    ok = verify_secret(user.password_hash if user else None, password)
    if user is None or not user.active or user.password_hash is None:
        raise LoginFailed
    if is_locked(user):
        raise LoginFailed
    if not ok:
        user.failed_logins = (user.failed_logins or 0) + 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = utcnow() + LOCKOUT
            user.failed_logins = 0
            record_event(session, actor=user.username, action="login_locked")
        raise LoginFailed
    user.failed_logins = 0
    user.locked_until = None
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_secret(password)
    record_event(session, actor=user.username, action="login")
    return user
