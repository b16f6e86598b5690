"""The database: declarative base, engine and session factory, one transaction wrapper."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, MetaData, create_engine, event, inspect
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.session import make_transient_to_detached

T = TypeVar("T")

# Named constraints, so Alembic migrations are stable across databases (Warehouse).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


@event.listens_for(Base, "load", propagate=True)
@event.listens_for(Base, "refresh", propagate=True)
def _utc_on_load(target: Base, _context: object, attrs: object = None) -> None:
    """SQLite hands back naive datetimes: mark them UTC, as stored, so every answer carries
    its zone (an RFC 3339 ``date-time``, as the OpenAPI document promises)."""
    state = inspect(target)
    for attr in state.mapper.column_attrs:
        column = attr.columns[0]
        if not (isinstance(column.type, DateTime) and column.type.timezone):
            continue
        value = state.dict.get(attr.key)
        if isinstance(value, datetime) and value.tzinfo is None:
            set_committed_value(target, attr.key, value.replace(tzinfo=UTC))


# The one clock every module reads through ``utcnow``; tests that must be at a given
# hour (a tipster's safe hours) set it with ``set_clock`` instead of sleeping.
# The largest id a row can have: ids are PostgreSQL ``integer`` (32 bits). A larger one
# names nothing, and must be refused or treated as such before it reaches the database.
MAX_ID = 2**31 - 1

_clock: list[Callable[[], datetime] | None] = [None]


def utcnow() -> datetime:
    """Timezone-aware now; every timestamp is UTC."""
    clock = _clock[0]
    return clock() if clock is not None else datetime.now(UTC)


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """Make ``utcnow`` answer ``clock()`` (None: the real time again); for tests only."""
    _clock[0] = clock


def make_engine(url: str) -> Engine:
    """An engine with the per-database settings we rely on."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets the embedded worker thread read while a request writes.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # No pool_pre_ping: it costs a round trip on every checkout (BENCHMARKS.md). A
    # connection the server dropped fails its first statement instead; SQLAlchemy then
    # invalidates the whole pool, and intake runs that unit of work once more
    # (intake.outage.commit). pool_recycle retires connections before idle timeouts do.
    return create_engine(url, pool_size=10, max_overflow=20, pool_recycle=1800)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (views serialise them)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """Commit everything done inside, or roll all of it back.

    The one wrapper that owns a unit of work: a state change, its audit event and its
    outbox row commit together or not at all.
    """
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


def is_postgres(session: Session) -> bool:
    """True when the session talks to PostgreSQL (row locks, SKIP LOCKED)."""
    return session.get_bind().dialect.name == "postgresql"


def insert_object(
    session: Session, model: type[T], values: dict[str, Any], *, unique_on: str | None = None
) -> T | None:
    """INSERT one row in one statement and return it as a persistent object of ``model``.

    The unit of work would spend a flush on it and RETURNING every column would decode
    them all again; here every column's value is known before the INSERT (what is given,
    else its Python default, else NULL) and only the id comes back. ``unique_on``: a
    unique column whose conflict inserts nothing (``ON CONFLICT DO NOTHING``) and returns
    None, so the caller may try another value without a savepoint. No ORM flush events
    run for the row: use it for models without flush listeners (not identifier-indexed).
    """
    table = model.__table__  # type: ignore[attr-defined]
    row: dict[str, Any] = {}
    for column in table.columns:
        if column.key in values:
            row[column.key] = values[column.key]
        elif column.primary_key:
            continue
        elif column.default is None:
            if column.server_default is not None:
                raise ValueError(f"{table.name}.{column.key}: give it (server default)")
            row[column.key] = None
        elif column.default.is_scalar:
            row[column.key] = column.default.arg
        elif column.default.is_callable:
            row[column.key] = column.default.arg(None)  # wrapped: takes an (unused) context
        else:
            raise ValueError(f"{table.name}.{column.key}: give it (SQL default)")
    pk = table.primary_key.columns[0]
    stmt = dialect_insert(session)(table)
    if unique_on is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=[unique_on])
    new_id = session.execute(stmt.returning(pk), row).scalar()
    if new_id is None:
        return None
    obj = model(**{key: value for key, value in row.items()}, **{pk.key: new_id})
    make_transient_to_detached(obj)  # every attribute loaded, as if just read
    session.add(obj)
    return obj


def dialect_insert(session: Session) -> Any:
    """The ``insert`` of the session's database, which has ``on_conflict_do_*``."""
    return pg_insert if is_postgres(session) else sqlite_insert
