"""The thread on a referral: an agency's questions and the hotline's answers (issue 13).

An agency's message is its ``request_info`` event (the referral machine guards it: its
own referral, a state it may ask in, some words). It opens the hotline's task unless one
is open already: the referral's ``question_due``, from routing.yaml's
``question_deadlines`` by case priority, counted in the case's deadline like any other.
A staff answer closes it; the agency writing again opens the next one. The task is the
case's assignee's; an unassigned case's question waits, in the supervisor's queue, for
a supervisor to assign the case.

Messages are free text: encrypted at rest, deleted with the case's other personal data
by the retention purge (``workflows.retention`` finds every encrypted column tied to a
case), and each one is on the audit log with who wrote it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    String,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from workflows.audit import record_event
from workflows.db import Base, utcnow
from workflows.deadlines import refresh_case_deadline
from workflows.errors import Conflict, Forbidden, NotFound
from workflows.models import Case, Referral, User
from workflows.outbox import add_notification, add_outbox_message
from workflows.pii import EncryptedText
from workflows.routing import DEFAULT_QUESTION_DEADLINES
from workflows.vocabulary import DESK

MAX_BODY = 5000  # as a tipster's follow-up or an agency's reason


class ReferralMessage(Base):
    """One message in a referral's thread: ``agency`` asks, ``hotline`` answers."""

    __tablename__ = "referral_messages"
    __table_args__ = (
        CheckConstraint("side IN ('agency','hotline')", name="valid_side"),
        # A client's Idempotency-Key names one message per referral and side: a replayed
        # POST finds it instead of writing a second one.
        UniqueConstraint("referral_id", "side", "idempotency_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(
        ForeignKey("referrals.id", ondelete="CASCADE"), index=True
    )
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    side: Mapped[str] = mapped_column(String(8))
    author: Mapped[str] = mapped_column(String(64))  # the user name (audit: who wrote it)
    body: Mapped[str] = mapped_column(EncryptedText)
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # A hotline answer the agency has not opened yet shows as "new answer" in its inbox.
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def question_window(catalogs: dict[str, Any], priority: str) -> timedelta:
    """How long the hotline has to answer (routing.yaml ``question_deadlines``)."""
    limits = getattr(catalogs.get("routing"), "question_deadlines", None)
    limits = limits or DEFAULT_QUESTION_DEADLINES
    return limits.get(priority) or DEFAULT_QUESTION_DEADLINES["routine"]


def replayed(
    session: Session, referral_id: int, side: str, key: str | None
) -> ReferralMessage | None:
    """The message an earlier POST with this Idempotency-Key already wrote, if any."""
    if not key:
        return None
    return session.scalar(
        select(ReferralMessage).where(
            ReferralMessage.referral_id == referral_id,
            ReferralMessage.side == side,
            ReferralMessage.idempotency_key == key,
        )
    )


def record_question(
    session: Session,
    referral: Referral,
    author: str,
    body: str,
    now: datetime,
    catalogs: dict[str, Any],
    idempotency_key: str | None = None,
) -> ReferralMessage:
    """Store the agency's message and open the hotline's task (the ``request_info``
    event's effect; the event itself is the audit entry, its reason the words)."""
    message = ReferralMessage(
        referral_id=referral.id,
        case_id=referral.case_id,
        side="agency",
        author=author,
        body=body,
        idempotency_key=idempotency_key,
        created_at=now,
    )
    session.add(message)
    if referral.question_due is None:
        referral.question_due = now + question_window(catalogs, referral.case.priority)
        # The hotline learns of it: the case's assignee, else the supervisors.
        add_notification(session, "agency_question", case_id=referral.case_id,
                         referral_id=referral.id)
    session.flush()
    return message


def answer_question(
    session: Session,
    referral: Referral,
    actor: User,
    body: str,
    *,
    catalogs: dict[str, Any],
    idempotency_key: str | None = None,
) -> ReferralMessage:
    """A staff answer in the thread: stored, audited, the task closed, the agency told."""
    if actor.role not in DESK:
        raise Forbidden("only an operator or a supervisor may answer an agency")
    if referral.case.purged_at is not None:
        raise NotFound("no such referral")
    asked = session.scalar(
        select(ReferralMessage.id)
        .where(ReferralMessage.referral_id == referral.id, ReferralMessage.side == "agency")
        .limit(1)
    )
    if asked is None:
        raise Conflict(f"{referral.agency_code} has asked nothing on this referral", field="body")
    now = utcnow()
    message = ReferralMessage(
        referral_id=referral.id,
        case_id=referral.case_id,
        side="hotline",
        author=actor.username,
        body=body.strip(),
        idempotency_key=idempotency_key,
        created_at=now,
    )
    session.add(message)
    closed = referral.question_due is not None
    referral.question_due = None
    refresh_case_deadline(referral.case, catalogs["routing"].case_deadlines)
    try:
        session.flush()  # the version check: an agency writing meanwhile wins, we 409
    except StaleDataError:
        raise Conflict("the referral was changed by someone else meanwhile; reload it") from None
    record_event(
        session,
        actor=actor.username,
        action="answer_agency",
        case_id=referral.case_id,
        referral_id=referral.id,
        from_state=referral.state,
        to_state=referral.state,
        reason=message.body,
        detail={"agency": referral.agency_code, "message_id": message.id,
                "closed_task": closed},
    )
    add_outbox_message(session, "notify_agency", ref_id=message.id)
    return message


def thread(session: Session, referral_id: int) -> list[ReferralMessage]:
    """The referral's messages, oldest first."""
    return list(
        session.scalars(
            select(ReferralMessage)
            .where(ReferralMessage.referral_id == referral_id)
            .order_by(ReferralMessage.id)
        )
    )


def threads_of_case(session: Session, case_id: int) -> dict[int, list[ReferralMessage]]:
    """Every referral's thread on one case, by referral id (the case page)."""
    found: dict[int, list[ReferralMessage]] = {}
    for message in session.scalars(
        select(ReferralMessage)
        .where(ReferralMessage.case_id == case_id)
        .order_by(ReferralMessage.id)
    ):
        found.setdefault(message.referral_id, []).append(message)
    return found


def mark_read_by_agency(session: Session, referral_id: int, now: datetime) -> None:
    """The agency opened the thread: its answers are no longer new."""
    session.execute(
        update(ReferralMessage)
        .where(
            ReferralMessage.referral_id == referral_id,
            ReferralMessage.side == "hotline",
            ReferralMessage.read_at.is_(None),
        )
        .values(read_at=now)
    )


def with_new_answers(session: Session, referral_ids: Iterable[int]) -> set[int]:
    """Which of these referrals hold an answer their agency has not read."""
    ids = list(referral_ids)
    if not ids:
        return set()
    return set(
        session.scalars(
            select(ReferralMessage.referral_id).where(
                ReferralMessage.referral_id.in_(ids),
                ReferralMessage.side == "hotline",
                ReferralMessage.read_at.is_(None),
            )
        )
    )


def open_questions(
    session: Session, *, assignee_id: int | None = None, limit: int = 100
) -> list[Referral]:
    """Referrals whose agency waits for the hotline, soonest due first (the task list);
    with ``assignee_id``, only those on that person's cases."""
    stmt = (
        select(Referral)
        .join(Case, Case.id == Referral.case_id)
        .where(Referral.question_due.is_not(None), Case.purged_at.is_(None))
        .order_by(Referral.question_due, Referral.id)
        .limit(limit)
    )
    if assignee_id is not None:
        stmt = stmt.where(Case.assignee_id == assignee_id)
    return list(session.scalars(stmt))


def present_thread(
    referral: Referral, messages: list[ReferralMessage], *, for_agency: bool
) -> dict[str, Any]:
    """A referral's thread; an agency reads "hotline", never a staff member's name."""
    return {
        "referral_id": referral.id,
        "question_due": referral.question_due,
        "messages": [
            {
                "id": m.id,
                "side": m.side,
                "author": None if for_agency and m.side == "hotline" else m.author,
                "body": m.body,
                "created_at": m.created_at,
            }
            for m in messages
        ],
    }
