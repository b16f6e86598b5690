"""The outbox: work for queued workers, written in the business transaction.

Enqueueing to Redis inside a transaction can run a job before its row exists or after a
rollback; enqueueing after commit loses the job if the process dies in between. So a
state change writes an ``OutboxMessage`` in the same transaction, and a relay
(``referrals.relay``) moves due rows to RQ with a deterministic job id.
Payloads hold ids only, never tip text or phone numbers.

On PostgreSQL the transaction that writes a row also sends ``NOTIFY hotline_outbox``
(once per transaction, whatever number of rows): PostgreSQL delivers it only when the
transaction commits, so a relay listening on the channel claims the row at once
instead of at its next poll, and never before the row is visible. NOTIFY is scoped to
the database, so deployments on separate databases never wake each other.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, event, func, select
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column

from workflows.db import Base, is_postgres, utcnow
from workflows.models import PRIORITY_RANK, Priority

EMERGENCY_RANK = PRIORITY_RANK[Priority.EMERGENCY]
ROUTINE_RANK = PRIORITY_RANK[Priority.ROUTINE]


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "done_at", "available_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    ref_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    available_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The case's priority rank when the row was written (0 emergency, 1 urgent,
    # 2 routine): the relay claims by it first, and emergencies go to their own queue,
    # which every worker takes before the others ("emergencies lead every queue").
    priority_rank: Mapped[int] = mapped_column(Integer, default=ROUTINE_RANK,
                                               server_default=str(ROUTINE_RANK))
    last_error: Mapped[str | None] = mapped_column(Text)

    @property
    def job_id(self) -> str:
        """Deterministic RQ job id: letters, digits, ``_`` and ``-`` only."""
        return f"outbox-{self.id}-{self.attempts}"


def add_outbox_message(
    session: Session,
    kind: str,
    ref_id: int | None = None,
    payload: dict[str, Any] | None = None,
    delay: timedelta | None = None,
    priority_rank: int = ROUTINE_RANK,
) -> OutboxMessage:
    """Queue work for a worker, inside the caller's transaction; ``priority_rank`` is the
    case's (``Case.priority_rank``), so an emergency's work goes before a backlog."""
    message = OutboxMessage(
        kind=kind,
        ref_id=ref_id,
        payload=payload or {},
        available_at=utcnow() + (delay or timedelta(0)),
        priority_rank=priority_rank,
    )
    session.add(message)
    wake_relays(session)
    return message


OUTBOX_CHANNEL = "hotline_outbox"  # LISTEN/NOTIFY channel of the relays (per database)
_WAKE = "hotline_outbox_wake"  # session.info flag: this transaction wrote an outbox row


def wake_relays(session: Session) -> None:
    """Have this transaction's commit wake the relays (NOTIFY on PostgreSQL).

    ``add_outbox_message`` calls it; so should any other writer of outbox rows (an
    ``insert(OutboxMessage)`` run through the session is caught by itself, see below).
    Without it the row still goes, at the relay's next poll.
    """
    session.info[_WAKE] = True


@event.listens_for(Session, "do_orm_execute")
def _insert_wakes_relays(state: ORMExecuteState) -> None:
    """A bulk or Core-style ``insert(OutboxMessage)`` through the session wakes them too."""
    if state.is_insert and state.bind_mapper is not None:
        if state.bind_mapper.class_ is OutboxMessage:
            state.session.info[_WAKE] = True


@event.listens_for(Session, "before_commit")
def _notify_relays(session: Session) -> None:
    """One NOTIFY per committing transaction that wrote outbox rows (PostgreSQL folds
    repeats anyway, but each would be a round trip)."""
    if session.info.pop(_WAKE, False) and is_postgres(session):
        session.execute(select(func.pg_notify(OUTBOX_CHANNEL, "")))


@event.listens_for(Session, "after_soft_rollback")
def _forget_wake(session: Session, _previous: object) -> None:
    """A rolled-back row wakes nobody (a stale flag would only cost one empty pass)."""
    if not session.in_transaction():
        session.info.pop(_WAKE, None)


def add_notification(
    session: Session,
    kind: str,
    *,
    case_id: int | None = None,
    referral_id: int | None = None,
    message_id: int | None = None,
    priority_rank: int = ROUTINE_RANK,
    **extra: Any,
) -> OutboxMessage:
    """Queue one ``notify`` message (referrals.notifications sends it), in the caller's
    transaction. The one place its payload is spelled: every notice carries the same
    three ids (None where they do not apply); ``extra`` adds a kind's own ids or counts,
    never text or a phone number."""
    payload = {"kind": kind, "case_id": case_id, "referral_id": referral_id,
               "message_id": message_id, **extra}
    return add_outbox_message(session, "notify", payload=payload, priority_rank=priority_rank)


def locked_message(session: Session, outbox_id: int) -> OutboxMessage | None:
    """The outbox row, locked for this transaction on PostgreSQL, so a job and its
    failure handler (or two relays) never act on one dispatch at once."""
    stmt = select(OutboxMessage).where(OutboxMessage.id == outbox_id)
    if is_postgres(session):
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()
