"""A durable local spool for intake while PostgreSQL is unreachable.

When the database cannot be reached, a tip, a text, an IVR step or an operator's call
log is written here instead — SQLite in WAL mode with ``synchronous=FULL``, so it is on
disk (fsynced) before the caller, texter or tipster is answered — and replayed into
PostgreSQL when it returns (``intake.replay``). Every item carries a client-generated
id (a UUID) that the replay records in PostgreSQL in the same transaction as its work,
so a replay run twice, by two processes at once or after a crash between the
PostgreSQL commit and the spool delete, is a no-op. The tipster's reference and
passphrase hash are chosen before the item is written and travel with it: the
reference given during the outage is the one the case gets.

Payloads hold what people typed and their numbers: they are encrypted with the PII
keyring (``workflows.pii``), as in the database. One spool file serves every process
on a host (gunicorn workers share it; SQLite's locks serialise the writers).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflows.pii import keyring

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    dedupe TEXT UNIQUE,
    sender_hash TEXT,
    reference TEXT,
    note TEXT,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS ix_items_sender ON items (sender_hash);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS staff_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    username TEXT NOT NULL,
    role TEXT NOT NULL,
    verified_at REAL NOT NULL
);
"""

# The spool's own record of an outage, so the supervisors' notice names its span.
SPOOLING_SINCE = "spooling_since"
SPOOLED_COUNT = "spooled_count"


@dataclass(frozen=True)
class Item:
    seq: int
    id: str
    kind: str
    reference: str | None
    payload: dict[str, Any]
    created_at: float
    attempts: int


class Spool:
    """The spool file of this host; safe to share between threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn().executescript(SCHEMA)  # idempotent; commits on its own

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a claim and its
            # lease are one atomic step across processes.
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsynced at every commit, so an answered tip survives a
            # power cut, not only a crash of the process (ENGINEERING.md).
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def put(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        dedupe: str | None = None,
        reference: str | None = None,
        sender_hash: str | None = None,
        item_id: str | None = None,
        note: str | None = None,
    ) -> Item:
        """Write one item durably (fsynced) and return it; a repeated ``dedupe`` key
        (a Twilio retry during the outage) returns the item already held."""
        now = time.time()
        item_id = item_id or new_item_id()
        sealed = keyring.encrypt(json.dumps(payload, separators=(",", ":")))
        with self._connection() as conn:
            if dedupe is not None:
                row = conn.execute(
                    "SELECT seq, id, kind, reference, payload, created_at, attempts"
                    " FROM items WHERE dedupe = ?",
                    (dedupe,),
                ).fetchone()
                if row is not None:
                    return _item(row)
            empty = conn.execute("SELECT 1 FROM items LIMIT 1").fetchone() is None
            cursor = conn.execute(
                "INSERT INTO items (id, kind, dedupe, sender_hash, reference, note, payload,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (item_id, kind, dedupe, sender_hash, reference, note, sealed, now),
            )
            conn.execute(
                "INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (SPOOLING_SINCE, repr(now)),
            )
            conn.execute(
                "INSERT INTO state (key, value) VALUES (?, '1') ON CONFLICT (key)"
                " DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                (SPOOLED_COUNT,),
            )
        if empty:
            # The moment the spool becomes non-empty: operations' alerting watches for
            # this line and /readyz; the supervisors' notice waits for the database.
            log.critical("spool: the database is unreachable; intake is being spooled to %s",
                         self.path)
        assert cursor.lastrowid is not None
        return Item(cursor.lastrowid, item_id, kind, reference, payload, now, 0)

    def sender_reference(self, sender_hash: str) -> tuple[str, str, int] | None:
        """The reference this sender was given during the outage, the language of their
        first text, and how many of their texts the spool holds under it."""
        conn = self._conn()
        row = conn.execute(
            "SELECT reference, MIN(seq), COUNT(*) FROM items WHERE kind = 'sms'"
            " AND sender_hash = ? AND reference IS NOT NULL GROUP BY reference"
            " ORDER BY MIN(seq) DESC LIMIT 1",
            (sender_hash,),
        ).fetchone()
        if row is None:
            return None
        note = conn.execute("SELECT note FROM items WHERE seq = ?", (row[1],)).fetchone()
        return row[0], (note[0] if note and note[0] else "en"), int(row[2])

    def sender_last_keyword(self, sender_hash: str) -> str | None:
        """The last STOP/START-family keyword this sender texted during the outage."""
        row = self._conn().execute(
            "SELECT note FROM items WHERE kind = 'sms' AND sender_hash = ?"
            " AND reference IS NULL AND note IS NOT NULL ORDER BY seq DESC LIMIT 1",
            (sender_hash,),
        ).fetchone()
        return str(row[0]) if row else None

    def reference_for(self, kind: str, dedupe_prefix: str) -> str | None:
        """A reference already given for this call (a retried voicemail step)."""
        row = self._conn().execute(
            "SELECT reference FROM items WHERE kind = ? AND dedupe LIKE ? || '%'"
            " AND reference IS NOT NULL ORDER BY seq LIMIT 1",
            (kind, dedupe_prefix),
        ).fetchone()
        return row[0] if row else None

    def claim(self, limit: int, lease_seconds: float) -> list[Item]:
        """Lease the oldest items for this drainer; others skip them until the lease ends."""
        now = time.time()
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT seq, id, kind, reference, payload, created_at, attempts FROM items"
                " WHERE lease_until <= ? ORDER BY seq LIMIT ?",
                (now, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE items SET lease_until = ?, attempts = attempts + 1 WHERE seq = ?",
                [(now + lease_seconds, row[0]) for row in rows],
            )
        return [_item(row) for row in rows]

    def done(self, item: Item) -> None:
        """Forget a replayed item (its id is recorded in PostgreSQL)."""
        with self._connection() as conn:
            conn.execute("DELETE FROM items WHERE seq = ?", (item.seq,))

    def release(self, item: Item, error: str) -> None:
        """Give an item back after a failed replay; it is retried after a pause."""
        with self._connection() as conn:
            conn.execute(
                "UPDATE items SET lease_until = ?, last_error = ? WHERE seq = ?",
                (time.time() + 5, error[:500], item.seq),
            )

    def count(self) -> int:
        """How many items wait."""
        return int(self._conn().execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def outage(self) -> tuple[float, int] | None:
        """(since, items spooled) of the outage on record, or None."""
        rows = dict(self._conn().execute(
            "SELECT key, value FROM state WHERE key IN (?, ?)", (SPOOLING_SINCE, SPOOLED_COUNT)
        ).fetchall())
        if SPOOLING_SINCE not in rows:
            return None
        return float(rows[SPOOLING_SINCE]), int(rows.get(SPOOLED_COUNT, "0"))

    def close_outage(self, since: float) -> bool:
        """Clear the outage record once empty; True for the one process that cleared it."""
        with self._connection() as conn:
            if conn.execute("SELECT 1 FROM items LIMIT 1").fetchone() is not None:
                return False
            cleared = conn.execute(
                "DELETE FROM state WHERE key = ? AND value = ?", (SPOOLING_SINCE, repr(since))
            ).rowcount
            if cleared:
                conn.execute("DELETE FROM state WHERE key = ?", (SPOOLED_COUNT,))
        return bool(cleared)

    def take_drain_lease(self, owner: str, seconds: float) -> bool:
        """Take (or renew) the right to drain; False while another process holds it."""
        now = time.time()
        with self._connection() as conn:
            row = conn.execute("SELECT value FROM state WHERE key = 'drain_lease'").fetchone()
            if row is not None:
                holder, _, until = row[0].rpartition("|")
                if holder != owner and float(until) > now:
                    return False
            conn.execute(
                "INSERT INTO state (key, value) VALUES ('drain_lease', ?) ON CONFLICT (key)"
                " DO UPDATE SET value = excluded.value",
                (f"{owner}|{now + seconds!r}",),
            )
        return True

    def drop_drain_lease(self, owner: str) -> None:
        """Give up the right to drain, if this owner holds it."""
        with self._connection() as conn:
            conn.execute(
                "DELETE FROM state WHERE key = 'drain_lease' AND value LIKE ? || '|%'", (owner,)
            )

    def remember_token(self, token_hash: str, user_id: int, username: str, role: str) -> None:
        """Keep a staff token verified against the database, for use in an outage."""
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO staff_tokens VALUES (?, ?, ?, ?, ?) ON CONFLICT (token_hash)"
                " DO UPDATE SET verified_at = excluded.verified_at, role = excluded.role",
                (token_hash, user_id, username, role, time.time()),
            )

    def known_token(self, token_hash: str, max_age: float) -> tuple[int, str, str] | None:
        """(user id, username, role) of a token verified within ``max_age`` seconds."""
        row = self._conn().execute(
            "SELECT user_id, username, role FROM staff_tokens"
            " WHERE token_hash = ? AND verified_at >= ?",
            (token_hash, time.time() - max_age),
        ).fetchone()
        return (int(row[0]), str(row[1]), str(row[2])) if row else None

    def token_is_fresh(self, token_hash: str, max_age: float) -> bool:
        """Whether the token was remembered recently (so it need not be written again)."""
        return self.known_token(token_hash, max_age) is not None


def _item(row: tuple[Any, ...]) -> Item:
    payload = json.loads(keyring.decrypt(row[4]))
    return Item(row[0], row[1], row[2], row[3], payload, row[5], row[6])


def new_item_id() -> str:
    """A client-generated id: the replay's no-op key in PostgreSQL."""
    return str(uuid.uuid4())
