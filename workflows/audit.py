"""The append-only audit log: per-case chains keyed with HMAC, tied together by anchors.

Why this shape:
- **Keyed.** Each event's ``hash`` is an HMAC-SHA256 under a key from ``AUDIT_KEYS``,
  which lives outside the database: someone who can write to the database can change
  rows but cannot forge the chain (a plain SHA-256 chain they could simply recompute).
  Keys rotate: the first signs, every listed key verifies, each event names its key.
- **A chain per case** (issue 15): appending locks only the head row of that case's
  chain, so commits on different cases never wait for each other. Events of no case
  (logins) form chain 0.
- **Anchors** catch what per-case chains alone cannot, the removal of a whole case's
  events together with its head row: the worker periodically signs the list of chain
  heads that moved (``write_anchor``); anchors chain among themselves, and ``verify``
  checks that every anchored head still exists.
- **Erasable content.** The chain covers an HMAC of ``reason`` and ``detail``
  (``content_mac``) rather than the text, so the retention purge can erase the text of a
  purged case (``erase_case_content``) and the chain still verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert, literal, select, text, union_all, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from workflows.db import dialect_insert, is_postgres, utcnow
from workflows.models import AuditAnchor, AuditAnchored, AuditChainHead, AuditEvent

GENESIS = "0" * 64
SYSTEM_CHAIN = 0  # events that belong to no case
LEGACY_KEY_ID = "legacy-sha256"  # events chained before AUDIT_KEYS (migration 0002)
ANCHOR_LOCK = 7_811_132  # pg_advisory_xact_lock id: one anchor writer at a time


class AuditKeyError(RuntimeError):
    """No audit key is configured, or an event names a key that is not."""


def key_id_of(key: str) -> str:
    """A short public name for a key (stored on each event; reveals nothing of the key)."""
    return hashlib.sha256(b"hotline-audit-key-id:" + key.encode()).hexdigest()[:12]


class _AuditKeys:
    """The process's audit keys; set once by ``configure`` in the app factory or worker."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._order: list[str] = []

    def configure(self, keys: tuple[str, ...] | list[str]) -> None:
        """The first key signs; every key verifies."""
        if not keys:
            raise AuditKeyError("no AUDIT_KEYS configured")
        self._order = [key_id_of(k) for k in keys]
        self._keys = {key_id_of(k): k.encode() for k in keys}

    @property
    def signing_id(self) -> str:
        if not self._order:
            raise AuditKeyError("audit keys are not configured")
        return self._order[0]

    def position(self, key_id: str) -> int | None:
        """Where a key stands in AUDIT_KEYS (0: the newest, which signs)."""
        return self._order.index(key_id) if key_id in self._order else None

    def mac(self, key_id: str, body: bytes) -> str:
        key = self._keys.get(key_id)
        if key is None:
            raise AuditKeyError(f"audit key {key_id} is not in AUDIT_KEYS")
        return hmac.new(key, body, hashlib.sha256).hexdigest()


audit_keys = _AuditKeys()


def _canonical_time(value: datetime) -> str:
    # SQLite drops the zone on read; MAC the same UTC text either way.
    return value.replace(tzinfo=None).isoformat(timespec="microseconds")


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def content_mac(key_id: str, reason: str | None, detail: Any) -> str:
    """The HMAC of an event's free text, which the chain covers instead of the text."""
    return audit_keys.mac(key_id, _canonical(["content", reason, detail]))


def event_mac(event: AuditEvent) -> str:
    """The HMAC of an event: its place in its chain, its facts and its content's HMAC."""
    return audit_keys.mac(
        event.key_id,
        _canonical(
            [
                "event",
                event.chain,
                event.seq,
                event.prev_hash,
                event.case_id,
                event.referral_id,
                event.actor,
                event.action,
                event.from_state,
                event.to_state,
                _canonical_time(event.created_at),
                event.key_id,
                event.content_mac,
            ]
        ),
    )


def legacy_event_hash(prev_hash: str, event: AuditEvent) -> str:
    """The unkeyed SHA-256 of events written before migration 0002 (checked, not trusted)."""
    body = json.dumps(
        [
            prev_hash,
            event.case_id,
            event.referral_id,
            event.actor,
            event.action,
            event.from_state,
            event.to_state,
            event.reason,
            event.detail,
            _canonical_time(event.created_at),
        ],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    case_id: int | None = None,
    referral_id: int | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the caller's transaction; it is chained when that commits.

    Chaining happens in ``before_commit`` (below), so a chain's head row is locked for
    the last few statements of the transaction only, and only the heads of the cases
    this transaction wrote about.
    """
    event = AuditEvent(
        case_id=case_id,
        referral_id=referral_id,
        actor=actor,
        action=action,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        detail=detail,
        created_at=utcnow(),
    )
    session.info.setdefault(_PENDING, []).append(event)
    return event


_PENDING = "audit_pending"
_NEW_CHAINS = "audit_new_chains"


def new_chain(session: Session, case_id: int) -> None:
    """Say that ``case_id`` was created in this transaction, so its chain has no head yet.

    Its events are then chained from the genesis and its head inserted with them: no
    head to make and lock first, two round trips fewer for every new case (issue 15).
    Only for a case whose row this transaction inserted: nobody else knows its id yet.
    """
    session.info.setdefault(_NEW_CHAINS, set()).add(case_id)


def _table(model: Any) -> Table:
    table = model.__table__
    assert isinstance(table, Table)  # a mapped class with a plain table
    return table


def _lock_head(session: Session, chain: int) -> tuple[int, str]:
    """Lock one chain's head (making it if new); returns (last seq, last hash).

    One statement: the upsert's no-op update takes the row lock (as ``FOR UPDATE``
    would, waiting for a concurrent appender) and returns the head as committed.
    """
    heads = _table(AuditChainHead)
    row = session.execute(
        dialect_insert(session)(heads)
        .values(chain=chain, last_seq=0, last_hash=GENESIS, last_event_id=0)
        .on_conflict_do_update(index_elements=["chain"], set_={"last_seq": heads.c.last_seq})
        .returning(heads.c.last_seq, heads.c.last_hash)
    ).one()
    return row.last_seq, row.last_hash


@sa_event.listens_for(Session, "before_commit")
def _chain_pending_events(session: Session) -> None:
    pending: list[AuditEvent] = session.info.pop(_PENDING, [])
    fresh: set[int] = session.info.pop(_NEW_CHAINS, set())
    if not pending:
        return
    session.flush()  # the business rows first, so the heads' locks are held the least
    by_chain: dict[int, list[AuditEvent]] = defaultdict(list)
    for event in pending:
        by_chain[event.case_id if event.case_id is not None else SYSTEM_CHAIN].append(event)
    key_id = audit_keys.signing_id
    heads: dict[int, tuple[int, str]] = {}
    for chain in sorted(by_chain):  # one lock order everywhere: no deadlocks
        heads[chain] = (0, GENESIS) if chain in fresh else _lock_head(session, chain)
    new_rows: list[dict[str, Any]] = []  # events of chains born in this transaction
    rows: list[dict[str, Any]] = []
    ordered: list[AuditEvent] = []
    for chain, events in by_chain.items():
        seq, prev = heads[chain]
        for event in events:
            seq += 1
            event.chain, event.seq, event.prev_hash, event.key_id = chain, seq, prev, key_id
            event.content_mac = content_mac(key_id, event.reason, event.detail)
            event.hash = event_mac(event)
            row = {c: getattr(event, c) for c in _EVENT_COLUMNS}
            if chain in fresh:
                new_rows.append(row)
            else:
                rows.append(row)
                ordered.append(event)
            prev = event.hash
    # Core INSERTs: the events are written once and never read back through this session,
    # so the unit of work (a flush, identity map, attribute history) would add nothing.
    events_table = _table(AuditEvent)
    table = _table(AuditChainHead)
    if new_rows:
        last_hashes = [by_chain[chain][-1].hash for chain in sorted(by_chain) if chain in fresh]
        _insert_new_chains(session, events_table, table, new_rows, last_hashes)
    if rows:
        stmt = insert(events_table).returning(events_table.c.id, sort_by_parameter_order=True)
        ids = session.execute(stmt, rows if len(rows) > 1 else rows[0]).scalars().all()
        for event, event_id in zip(ordered, ids, strict=True):
            event.id = event_id
    for chain, events in by_chain.items():
        if chain in fresh:
            continue
        last = events[-1]
        session.execute(
            update(table)
            .where(table.c.chain == chain)
            .values(last_seq=last.seq, last_hash=last.hash, last_event_id=last.id)
        )


def _insert_new_chains(
    session: Session, events: Table, heads: Table, rows: list[dict[str, Any]],
    last_hashes: list[str],
) -> None:
    """Write the events of new chains and their heads (each head: its chain's last event).

    On PostgreSQL one statement: the events' INSERT is a CTE the heads' INSERT reads its
    ids from. SQLite (no INSERT in a CTE) takes two.
    """
    if is_postgres(session):
        # One single-row INSERT CTE per event: a multi-row VALUES is not cacheable and
        # would be compiled again for every tip.
        written = [
            insert(events).values(row).returning(events.c.id).cte(f"event_{n}")
            for n, row in enumerate(rows)
        ]
        last = set(last_hashes)
        heads_rows = [
            select(literal(row["chain"]), literal(row["seq"]), literal(row["hash"]), cte.c.id)
            for row, cte in zip(rows, written, strict=True)
            if row["hash"] in last
        ]
        source = heads_rows[0] if len(heads_rows) == 1 else union_all(*heads_rows)
        session.execute(
            insert(heads)
            .from_select(["chain", "last_seq", "last_hash", "last_event_id"], source)
            .add_cte(*written)
        )
        return
    ids = session.execute(
        insert(events).returning(events.c.id, events.c.hash, sort_by_parameter_order=True),
        rows,
    ).all()
    last = set(last_hashes)
    by_hash = {row["hash"]: row for row in rows}
    session.execute(insert(heads), [
        {"chain": by_hash[digest]["chain"], "last_seq": by_hash[digest]["seq"],
         "last_hash": digest, "last_event_id": event_id}
        for event_id, digest in ids if digest in last
    ])


_EVENT_COLUMNS = (
    "case_id", "referral_id", "actor", "action", "from_state", "to_state", "reason",
    "detail", "created_at", "chain", "seq", "key_id", "content_mac", "prev_hash", "hash",
)


@sa_event.listens_for(Session, "after_rollback")
def _drop_pending_events(session: Session) -> None:
    # Rolled back work leaves no trace in the log (its events were never chained).
    session.info.pop(_PENDING, None)
    session.info.pop(_NEW_CHAINS, None)


def erase_case_content(session: Session, case_id: int) -> int:
    """Erase the free text (reason, detail) of a case's events, for the retention purge.

    The chain covers each event's ``content_mac``, not the text, so it still verifies;
    ``verify_chain`` accepts erased events only before a ``purge`` event of their case.
    The caller records that purge event in the same transaction.
    """
    result = session.execute(
        update(AuditEvent)
        .where(AuditEvent.case_id == case_id, AuditEvent.erased_at.is_(None))
        .values(reason=None, detail=None, erased_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0  # type: ignore[attr-defined]


def _anchor_mac(anchor: AuditAnchor) -> str:
    return audit_keys.mac(
        anchor.key_id,
        _canonical(
            [
                "anchor",
                anchor.seq,
                anchor.prev_mac,
                _canonical_time(anchor.created_at),
                anchor.entries,
                anchor.key_id,
            ]
        ),
    )


def write_anchor(session: Session) -> AuditAnchor | None:
    """Sign the heads of every chain that moved since the last anchor (the caller commits).

    None when nothing moved. The worker runs it every ``AUDIT_ANCHOR_SECONDS``; events
    newer than the last anchor are covered by their chain only until the next one.
    """
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ANCHOR_LOCK})
    heads = AuditChainHead.__table__
    anchored = AuditAnchored.__table__
    moved = session.execute(
        select(heads.c.chain, heads.c.last_seq, heads.c.last_hash)
        .select_from(heads.outerjoin(anchored, anchored.c.chain == heads.c.chain))
        .where(heads.c.last_seq > 0)
        .where((anchored.c.seq.is_(None)) | (anchored.c.seq < heads.c.last_seq))
        .order_by(heads.c.chain)
    ).all()
    if not moved:
        return None
    last = session.scalars(select(AuditAnchor).order_by(AuditAnchor.seq.desc()).limit(1)).first()
    anchor = AuditAnchor(
        seq=(last.seq + 1) if last else 1,
        created_at=utcnow(),
        entries=[[row.chain, row.last_seq, row.last_hash] for row in moved],
        key_id=audit_keys.signing_id,
        prev_mac=last.mac if last else GENESIS,
    )
    anchor.mac = _anchor_mac(anchor)
    session.add(anchor)
    for row in moved:
        session.execute(
            dialect_insert(session)(anchored)
            .values(chain=row.chain, seq=row.last_seq)
            .on_conflict_do_update(index_elements=["chain"], set_={"seq": row.last_seq})
        )
    session.flush()
    return anchor


# --- verification ---------------------------------------------------------------------


@dataclass
class KeyRange:
    """What one key verified: how many events, their ids and times."""

    key_id: str
    position: int | None  # index in AUDIT_KEYS (0 signs); None: the legacy unkeyed chain
    events: int = 0
    first_id: int | None = None
    last_id: int | None = None
    first_at: datetime | None = None
    last_at: datetime | None = None
    anchors: int = 0

    def add(self, event: AuditEvent) -> None:
        self.events += 1
        self.first_id = event.id if self.first_id is None else min(self.first_id, event.id)
        self.last_id = event.id if self.last_id is None else max(self.last_id, event.id)
        at = event.created_at.replace(tzinfo=None)
        self.first_at = at if self.first_at is None else min(self.first_at, at)
        self.last_at = at if self.last_at is None else max(self.last_at, at)

    def describe(self) -> str:
        if self.position is None:
            name = "legacy unkeyed SHA-256 (before AUDIT_KEYS; rewritable, not trusted)"
        else:
            name = f"key {self.key_id} (AUDIT_KEYS #{self.position + 1}"
            name += ", signing)" if self.position == 0 else ")"
        if not self.events:
            return f"{name} verified {self.anchors} anchor(s)"
        return (
            f"{name} verified {self.events} event(s), ids {self.first_id} to {self.last_id}, "
            f"{self.first_at:%Y-%m-%d %H:%M:%S} to {self.last_at:%Y-%m-%d %H:%M:%S} UTC"
            + (f", and {self.anchors} anchor(s)" if self.anchors else "")
        )


@dataclass
class ChainReport:
    ok: bool
    checked: int
    broken_at: int | None = None
    problem: str | None = None
    chains: int = 0
    anchors: int = 0
    keys: list[KeyRange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Broken(Exception):
    def __init__(self, event_id: int | None, problem: str) -> None:
        self.event_id, self.problem = event_id, problem


def _check_anchors(
    session: Session, ranges: dict[str, KeyRange]
) -> tuple[list[AuditAnchor], dict[tuple[int, int], str]]:
    anchors = list(session.scalars(
        select(AuditAnchor).order_by(AuditAnchor.seq).execution_options(populate_existing=True)
    ))
    expected: dict[tuple[int, int], str] = {}
    prev = GENESIS
    for number, anchor in enumerate(anchors, start=1):
        if anchor.seq != number:
            raise _Broken(None, f"anchor {number} is missing (found anchor {anchor.seq})")
        if anchor.prev_mac != prev:
            raise _Broken(None, f"anchor {anchor.seq} does not follow anchor {number - 1}")
        if audit_keys.position(anchor.key_id) is None:
            raise _Broken(None, f"anchor {anchor.seq} is signed by key {anchor.key_id}, "
                                "which is not in AUDIT_KEYS")
        if not hmac.compare_digest(_anchor_mac(anchor), anchor.mac):
            raise _Broken(None, f"anchor {anchor.seq}: contents do not match its signature")
        _range(ranges, anchor.key_id).anchors += 1
        for chain, seq, digest in anchor.entries:
            expected[(int(chain), int(seq))] = str(digest)
        prev = anchor.mac
    return anchors, expected


def _range(ranges: dict[str, KeyRange], key_id: str) -> KeyRange:
    if key_id not in ranges:
        position = None if key_id == LEGACY_KEY_ID else audit_keys.position(key_id)
        ranges[key_id] = KeyRange(key_id, position)
    return ranges[key_id]


def _events_in_chain_order(session: Session, batch: int) -> Any:
    last: tuple[int, int] = (-1, 0)
    while True:
        rows = session.scalars(
            select(AuditEvent)
            .where(
                (AuditEvent.chain > last[0])
                | ((AuditEvent.chain == last[0]) & (AuditEvent.seq > last[1]))
            )
            .order_by(AuditEvent.chain, AuditEvent.seq)
            .limit(batch)
            .execution_options(populate_existing=True)
        ).all()
        if not rows:
            return
        yield from rows
        last = (rows[-1].chain, rows[-1].seq)
        session.expunge_all()


def _check_event(event: AuditEvent, prev_hash: str) -> None:
    if event.key_id == LEGACY_KEY_ID:
        return  # chained globally, by id: _check_legacy checks it in that order
    if event.prev_hash != prev_hash:
        raise _Broken(event.id, "previous hash does not match (an event before it was "
                                "removed, inserted or moved)")
    if audit_keys.position(event.key_id) is None:
        raise _Broken(event.id, f"signed by key {event.key_id}, which is not in AUDIT_KEYS")
    if not hmac.compare_digest(event_mac(event), event.hash):
        raise _Broken(event.id, "contents do not match the hash")
    if event.erased_at is None and not hmac.compare_digest(
        content_mac(event.key_id, event.reason, event.detail), event.content_mac
    ):
        raise _Broken(event.id, "contents do not match the hash (reason or detail changed)")


def _check_legacy(session: Session, ranges: dict[str, KeyRange], batch: int) -> None:
    prev = GENESIS
    last_id = 0
    while True:
        rows = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.key_id == LEGACY_KEY_ID, AuditEvent.id > last_id)
            .order_by(AuditEvent.id)
            .limit(batch)
            .execution_options(populate_existing=True)
        ).all()
        if not rows:
            return
        for event in rows:
            if legacy_event_hash(prev, event) != event.hash:
                raise _Broken(event.id, "contents do not match the (legacy) hash")
            _range(ranges, LEGACY_KEY_ID).add(event)
            prev = event.hash
            last_id = event.id
        session.expunge_all()


def verify_chain(
    session: Session, batch: int = 5000, now: datetime | None = None,
    anchor_period: timedelta = timedelta(minutes=1),
) -> ChainReport:
    """Check every chain, head and anchor; report the first problem and what each key verified.

    Detects changed events (HMAC), removed, inserted or reordered events (``seq`` and
    ``prev_hash`` within a chain), a chain's missing tail (its head), and a case whose
    events and head are both gone (an anchor names a head no event matches).
    """
    ranges: dict[str, KeyRange] = {}
    # Read what is stored now, not what this session may hold from before (a verifier
    # shares its session with nobody, but tests and the CLI may pass a used one).
    heads = {
        h.chain: h
        for h in session.scalars(
            select(AuditChainHead).execution_options(populate_existing=True)
        )
    }
    checked = chains = 0
    report = ChainReport(ok=True, checked=0)
    try:
        anchors, expected = _check_anchors(session, ranges)
        report.anchors = len(anchors)
        _check_legacy(session, ranges, batch)
        chain, seq, prev = None, 0, GENESIS
        erased_pending: int | None = None
        seen_heads: set[int] = set()
        newest_anchor = anchors[-1].created_at.replace(tzinfo=None) if anchors else None
        unanchored_old = 0
        now_naive = (now or utcnow()).replace(tzinfo=None)

        def close_chain() -> None:
            if chain is None:
                return
            if erased_pending is not None:
                raise _Broken(erased_pending, "content erased without a purge of its case")
            head = heads.get(chain)
            if head is None:
                raise _Broken(None, f"chain {chain} has events but no head")
            if head.last_seq != seq or head.last_hash != prev:
                raise _Broken(head.last_event_id or None,
                              f"chain {chain}: events after seq {seq} are missing "
                              f"(its head says {head.last_seq})")
            seen_heads.add(chain)

        anchored_upto: dict[int, int] = defaultdict(int)
        for chain_id, anchored_seq in expected:
            anchored_upto[chain_id] = max(anchored_upto[chain_id], anchored_seq)
        for event in _events_in_chain_order(session, batch):
            if event.chain != chain:
                close_chain()
                chain, seq, prev, erased_pending = event.chain, 0, GENESIS, None
                chains += 1
            if event.seq != seq + 1:
                raise _Broken(event.id, f"chain {chain}: event {seq + 1} is missing "
                                        f"(found {event.seq})")
            _check_event(event, prev)
            if event.chain != (event.case_id if event.case_id is not None else SYSTEM_CHAIN):
                raise _Broken(event.id, "event moved to another case's chain")
            digest = expected.pop((event.chain, event.seq), None)
            if digest is not None and digest != event.hash:
                raise _Broken(event.id, "does not match the anchored head of its chain")
            if event.erased_at is not None and erased_pending is None:
                erased_pending = event.id
            if event.action == "purge":
                erased_pending = None
            if event.key_id != LEGACY_KEY_ID:
                _range(ranges, event.key_id).add(event)
            if (
                event.seq > anchored_upto.get(event.chain, 0)
                and now_naive - event.created_at.replace(tzinfo=None) > 5 * anchor_period
            ):
                unanchored_old += 1
            seq, prev = event.seq, event.hash
            checked += 1
        close_chain()
        for (chain_id, anchored_seq), _digest in sorted(expected.items()):
            raise _Broken(None, f"case chain {chain_id}: anchored event {anchored_seq} "
                                "is missing (the case's events were removed)")
        for chain_id, head in heads.items():
            if chain_id not in seen_heads and head.last_seq > 0:
                raise _Broken(head.last_event_id or None,
                              f"chain {chain_id}: its head names {head.last_seq} event(s), "
                              "none is left")
        if unanchored_old:
            report.warnings.append(
                f"{unanchored_old} event(s) older than {5 * anchor_period} are not anchored yet "
                "(is the worker's anchor job running?"
                + (f" last anchor {newest_anchor:%Y-%m-%d %H:%M:%S} UTC)" if newest_anchor
                   else " no anchor yet)")
            )
    except _Broken as broken:
        report.ok = False
        report.broken_at = broken.event_id
        report.problem = broken.problem
    report.checked = checked
    report.chains = chains
    report.keys = sorted(ranges.values(), key=lambda r: (r.position is None, r.position or 0))
    return report
