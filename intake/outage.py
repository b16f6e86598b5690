"""Intake when the database is down: commit, or spool and answer anyway.

Each intake view runs its unit of work through ``commit_or_spool``. A pooled connection
that went stale (the server restarted) is dropped and the work run once more on a new
one — that replaces a ``SELECT 1`` ping at every checkout. If the database is still
unreachable, the view's spool function writes the item to the local spool
(``intake.spool``) and the caller is answered from it: the IVR keeps talking, a texter
gets a reference, a web tipster a reference and passphrase, an operator's call log is
accepted. ``intake.replay`` puts the items into the database when it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from intake.spool import Spool
from workflows.db import transaction

log = logging.getLogger(__name__)

T = TypeVar("T")

# What "the database is unreachable" looks like through SQLAlchemy: refused or dropped
# connections (psycopg's OperationalError), a closed connection, an exhausted pool.
DATABASE_DOWN: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)


def current_spool() -> Spool | None:
    """This app's spool, or None when spooling is off."""
    return current_app.extensions.get("spool")  # type: ignore[no-any-return]


def commit(session: Session, work: Callable[[Session], T]) -> T:
    """Run ``work`` in one transaction; a stale pooled connection gets one more try."""
    try:
        with transaction(session):
            return work(session)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        # The pool handed out a connection the server had closed (restart, failover):
        # SQLAlchemy has invalidated it and the pool; the next checkout connects anew.
        log.info("database connection was stale; running the unit of work once more")
    with transaction(session):
        return work(session)


def commit_or_spool(
    session: Session, work: Callable[[Session], T], spool_it: Callable[[Spool], T] | None
) -> T:
    """Commit ``work``, or, with the database unreachable, ``spool_it`` and answer from it."""
    try:
        return commit(session, work)
    except DATABASE_DOWN as exc:
        if spool_it is None:
            raise
        spool = current_spool()
        if spool is None:
            raise
        log.warning("database unreachable (%s): spooling %s", type(exc).__name__,
                    getattr(work, "__name__", "work"))
        return spool_it(spool)


def spooled_answer(reference: str | None) -> dict[str, Any]:
    """The JSON an API client gets for an accepted-and-spooled record."""
    return {"status": "accepted", "reference": reference, "spooled": True}
