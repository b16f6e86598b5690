"""Users, passwords (argon2id) and API tokens (stored as SHA-256 only)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows.db import utcnow
from workflows.errors import Conflict, InvalidInput, NotFound
from workflows.models import ApiToken, Role, User
from workflows.vocabulary import EVERYONE

# argon2-cffi's defaults are argon2id with RFC 9106's low-memory profile.
password_hasher = PasswordHasher()

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=1)  # the first lock-out; doubles with each failure after
MAX_LOCKOUT = timedelta(hours=1)
_dummy_hash: dict[int, str] = {}


def _hash_for_unknown_user() -> str:
    # Made on first use (not at import): verifying against it costs what a real check costs.
    key = id(password_hasher)
    if key not in _dummy_hash:
        _dummy_hash[key] = password_hasher.hash("not a real password")
    return _dummy_hash[key]


def hash_secret(secret: str) -> str:
    """argon2id hash, for passwords people choose (a generated tip passphrase is a keyed
    HMAC instead: intake.passphrase)."""
    return password_hasher.hash(secret)


def verify_secret(stored: str | None, secret: str) -> bool:
    """Check a secret in constant-ish time, also when there is no stored hash."""
    try:
        ok = password_hasher.verify(stored or _hash_for_unknown_user(), secret)
        return ok and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored: str) -> bool:
    """True when a stored hash was made with weaker parameters than today's."""
    return password_hasher.check_needs_rehash(stored)


def create_user(
    session: Session,
    username: str,
    role: str,
    agency_code: str | None = None,
    password: str | None = None,
    known_agencies: set[str] | None = None,
) -> User:
    """Create a user; agency users must name a configured agency."""
    username = username.strip()
    if not username or len(username) > 64:
        raise InvalidInput("username must be 1 to 64 characters", field="username")
    if role not in EVERYONE:
        raise InvalidInput(f"unknown role {role!r}", field="role")
    if role == Role.AGENCY:
        if not agency_code:
            raise InvalidInput("agency users need --agency CODE", field="agency")
        agency_code = agency_code.upper()
        if known_agencies is not None and agency_code not in known_agencies:
            raise InvalidInput(f"unknown agency {agency_code!r}", field="agency")
    elif agency_code:
        raise InvalidInput("only agency users belong to an agency", field="agency")
    if session.scalar(select(User).where(User.username == username)):
        raise Conflict(f"user {username!r} already exists", field="username")
    if password is not None and len(password) < 12:
        raise InvalidInput("password must be at least 12 characters", field="password")
    user = User(
        username=username,
        role=role,
        agency_code=agency_code,
        password_hash=hash_secret(password) if password else None,
    )
    session.add(user)
    session.flush()
    return user


def token_digest(token: str) -> str:
    # Tokens are 256 random bits: a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, username: str) -> str:
    """Issue a bearer token; the plaintext is returned once and never stored."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}", field="username")
    token = "hl_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=token_digest(token), prefix=token[:10]))
    session.flush()
    return token


def revoke_token(session: Session, prefix: str) -> int:
    """Revoke every live token starting with ``prefix``; returns how many."""
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.prefix == prefix[:10], ApiToken.revoked_at.is_(None))
    ).all()
    for token in tokens:
        token.revoked_at = utcnow()
    return len(tokens)


def user_for_token(session: Session, token: str) -> User | None:
    """The active user a live token belongs to, or None."""
    row = session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == token_digest(token), ApiToken.revoked_at.is_(None)
        )
    )
    if row is None or not row.user.active:
        return None
    return row.user
