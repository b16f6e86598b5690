"""Passphrase guesses: counted per (reference, client), with a backoff, atomically.

Each try is counted *before* the passphrase is checked, in one conditional UPDATE that
only succeeds once the pair's wait is over: parallel guesses (several gunicorn workers,
several machines) cannot slip past the count, because the database serialises the row.
A right passphrase clears the count; a wrong one leaves it. The wait after ``FREE_TRIES``
wrong ones doubles from ``FIRST_WAIT`` up to ``MAX_WAIT``, and the right passphrase is
never refused for longer than the wait in force (issue 11, item 6).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from intake.models import PassphraseGuesses
from workflows.cases import canonical_reference
from workflows.db import utcnow
from workflows.errors import TooManyRequests
from workflows.pii import lookup_hash

FREE_TRIES = 5
FIRST_WAIT = timedelta(seconds=30)
MAX_WAIT = timedelta(hours=1)
_EPOCH = datetime(2000, 1, 1, tzinfo=utcnow().tzinfo)


class TooManyAttempts(TooManyRequests):
    """Too many wrong passphrases from this client for this reference; try later."""


def wait_after(failures: int) -> timedelta:
    """How long a client waits after this many wrong tries in a row."""
    if failures < FREE_TRIES:
        return timedelta(0)
    return min(FIRST_WAIT * 2 ** (failures - FREE_TRIES), MAX_WAIT)


def guess_key(reference: str, client: str) -> str:
    """The row's key: a keyed hash of the reference as stored and the client address."""
    canonical = canonical_reference(reference) or reference.strip().upper()[:40]
    return lookup_hash(f"passphrase-guess:{canonical}|{client}")


def _engine(session: Session) -> Engine:
    """The session's engine, for a connection of our own even when the session is bound
    to a connection (as the tests' per-test transaction binds it)."""
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def _ensure_row(conn: Connection, key: str) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(PassphraseGuesses)
        .values(key=key, failures=0, blocked_until=_EPOCH, updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=["key"])
    )


def claim_try(session: Session, reference: str, client: str) -> str:
    """Count one try now, or refuse with 429 while the pair must wait; returns the key.

    Runs in its own short transaction (committed whatever the request does next), on
    its own connection: a rolled-back request must not give a guess back.
    """
    key = guess_key(reference, client)
    now = utcnow()
    with _engine(session).connect() as conn, conn.begin():
        _ensure_row(conn, key)
        row = conn.execute(
            update(PassphraseGuesses)
            .where(PassphraseGuesses.key == key, PassphraseGuesses.blocked_until <= now)
            .values(failures=PassphraseGuesses.failures + 1, updated_at=now)
            .returning(PassphraseGuesses.failures)
        ).first()
        if row is not None:
            # The wait this try earns if it turns out wrong (cleared if it is right).
            conn.execute(
                update(PassphraseGuesses)
                .where(PassphraseGuesses.key == key)
                .values(blocked_until=now + wait_after(row.failures))
            )
            return key
        blocked_until = conn.execute(
            PassphraseGuesses.__table__.select().where(PassphraseGuesses.key == key)
        ).first()
    wait = _seconds_until(blocked_until.blocked_until if blocked_until else now, now)
    raise TooManyAttempts("too many wrong passphrases for this reference", retry_after=wait)


def _seconds_until(when: datetime, now: datetime) -> int:
    if when.tzinfo is None:  # SQLite hands back naive UTC
        when = when.replace(tzinfo=now.tzinfo)
    return max(1, int((when - now).total_seconds()) + 1)


def clear_tries(session: Session, key: str) -> None:
    """The right passphrase: the pair starts afresh."""
    with _engine(session).connect() as conn, conn.begin():
        conn.execute(delete(PassphraseGuesses).where(PassphraseGuesses.key == key))
