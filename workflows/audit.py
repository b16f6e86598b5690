"""The append-only, hash-chained audit log.

Each event stores the hash of the one before, so a changed, removed or inserted row
breaks the chain from that point on; ``verify_chain`` names the first broken link.
Events are chained when their transaction commits, under a lock on the single
``audit_head`` row, so two transactions never fork the chain.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows.db import is_postgres, utcnow
from workflows.models import AuditEvent, AuditHead

GENESIS = "0" * 64


def _canonical_time(value: datetime) -> str:
    # SQLite drops the zone on read; hash the same UTC text either way.
    return value.replace(tzinfo=None).isoformat(timespec="microseconds")


def event_hash(prev_hash: str, event: AuditEvent) -> str:
    """SHA-256 over the previous hash and the event's fields, in a fixed order."""
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


def _lock_head(session: Session) -> AuditHead:
    stmt = select(AuditHead).where(AuditHead.id == 1)
    if is_postgres(session):
        stmt = stmt.with_for_update()
    head = session.scalars(stmt).one_or_none()
    if head is None:
        head = AuditHead(id=1, last_event_id=0, last_hash=GENESIS)
        session.add(head)
        session.flush()
    return head


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

    The chain's head row is locked only inside ``before_commit`` (below), for the last
    few statements of the transaction: locking it at the first event serialised every
    write in the service for the whole of its transaction (BENCHMARKS.md).
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


@sa_event.listens_for(Session, "before_commit")
def _chain_pending_events(session: Session) -> None:
    pending: list[AuditEvent] = session.info.pop(_PENDING, [])
    if not pending:
        return
    session.flush()  # the business rows first, so the head's lock is held the least
    head = _lock_head(session)
    prev = head.last_hash
    for event in pending:
        event.prev_hash = prev
        event.hash = event_hash(prev, event)
        session.add(event)
        prev = event.hash
    session.flush()
    head.last_hash = prev
    head.last_event_id = pending[-1].id
    session.flush()


@sa_event.listens_for(Session, "after_rollback")
def _drop_pending_events(session: Session) -> None:
    # Rolled back work leaves no trace in the log (its events were never chained).
    session.info.pop(_PENDING, None)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_at: int | None = None
    problem: str | None = None


def verify_chain(session: Session, batch: int = 5000) -> ChainReport:
    """Walk the chain in id order and report the first event that does not fit."""
    prev = GENESIS
    checked = 0
    last_id = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch)
        ).all()
        if not rows:
            break
        for event in rows:
            if event.prev_hash != prev:
                return ChainReport(False, checked, event.id, "previous hash does not match")
            if event_hash(prev, event) != event.hash:
                return ChainReport(False, checked, event.id, "contents do not match the hash")
            prev = event.hash
            checked += 1
            last_id = event.id
        session.expunge_all()
    head = session.get(AuditHead, 1)
    if head is not None and head.last_hash != prev:
        return ChainReport(False, checked, head.last_event_id, "events after this one are missing")
    return ChainReport(True, checked)
