"""The supervisor's queues: open emergencies first, then by deadline, then by age.

Keyset (not OFFSET) pagination, so page 1,000 costs what page 1 costs at a million
cases: each page continues after the last row's (queue_rank, deadline, created_at, id),
a row-value comparison that walks ``ix_cases_queue_order`` / ``ix_cases_state_queue_order``
(``queue_rank`` is 0 for an open emergency, see ``workflows.deadlines``).
Cases with no deadline (closed ones) come last, in a second index-friendly pass.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, exists, select, tuple_
from sqlalchemy.orm import Session, selectinload

from workflows.cases import find_surviving_by_reference
from workflows.deadlines import aware, case_late, case_not_late
from workflows.errors import InvalidInput
from workflows.machines import CASE_STATES
from workflows.models import Case, Priority, Referral, User


@dataclass(frozen=True)
class QueueFilter:
    states: tuple[str, ...] = ()
    priority: str | None = None
    assignee: str | None = None  # a username, "none" for unassigned
    agency: str | None = None
    overdue: bool | None = None
    reference: str | None = None


def _encode(rank: int, deadline: datetime | None, created_at: datetime, case_id: int) -> str:
    raw = json.dumps(
        [rank, deadline.isoformat() if deadline else None, created_at.isoformat(), case_id]
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[int, datetime | None, datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        rank, deadline, created, case_id = json.loads(base64.urlsafe_b64decode(padded))
        if rank not in (0, 1):
            raise ValueError(rank)
        return (
            int(rank),
            aware(datetime.fromisoformat(deadline)) if deadline else None,
            aware(datetime.fromisoformat(created)),  # type: ignore[return-value]
            int(case_id),
        )
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise InvalidInput("cursor is not one this API gave out", field="cursor") from None


def _filtered(session: Session, filters: QueueFilter, now: datetime) -> Select[Case]:
    stmt = select(Case).where(Case.purged_at.is_(None))
    if filters.states:
        unknown = [s for s in filters.states if s not in CASE_STATES]
        if unknown:
            raise InvalidInput(f"unknown state {unknown[0]!r}", field="state")
        stmt = stmt.where(Case.state.in_(filters.states))
    if filters.priority:
        if filters.priority not in {p.value for p in Priority}:
            raise InvalidInput(f"unknown priority {filters.priority!r}", field="priority")
        stmt = stmt.where(Case.priority == filters.priority)
    if filters.assignee:
        if filters.assignee == "none":
            stmt = stmt.where(Case.assignee_id.is_(None))
        else:
            user_id = session.scalar(select(User.id).where(User.username == filters.assignee))
            if user_id is None:
                raise InvalidInput(f"no user {filters.assignee!r}", field="assignee")
            stmt = stmt.where(Case.assignee_id == user_id)
    if filters.agency:
        stmt = stmt.where(
            exists().where(
                Referral.case_id == Case.id, Referral.agency_code == filters.agency.upper()
            )
        )
    if filters.reference:
        # A merged case's reference finds the case it was merged into.
        found = find_surviving_by_reference(session, filters.reference)
        stmt = stmt.where(Case.id == (found.id if found is not None else -1))
    if filters.overdue is True:
        stmt = stmt.where(case_late(now))
    elif filters.overdue is False:
        stmt = stmt.where(case_not_late(now))
    return stmt


def case_queue(
    session: Session,
    filters: QueueFilter,
    *,
    limit: int = 50,
    cursor: str | None = None,
    now: datetime,
) -> tuple[list[Case], str | None]:
    """One page of cases and the cursor of the next page (None at the end)."""
    base = _filtered(session, filters, now).options(
        selectinload(Case.referrals), selectinload(Case.assignee)
    )
    after = _decode(cursor) if cursor else None
    rows: list[Case] = []
    if after is None or after[1] is not None:
        dated = base.where(Case.deadline.is_not(None))
        if after is not None:
            dated = dated.where(
                tuple_(Case.queue_rank, Case.deadline, Case.created_at, Case.id)
                > tuple_(*after)
            )
        dated = dated.order_by(
            Case.queue_rank, Case.deadline, Case.created_at, Case.id
        ).limit(limit + 1)
        rows = list(session.scalars(dated))
    if len(rows) <= limit and filters.overdue is not True:
        # Only closed cases have no deadline (never an open emergency): by age, last.
        undated = base.where(Case.deadline.is_(None))
        if after is not None and after[1] is None:
            undated = undated.where(tuple_(Case.created_at, Case.id) > tuple_(after[2], after[3]))
        undated = undated.order_by(Case.created_at, Case.id).limit(limit + 1 - len(rows))
        rows += list(session.scalars(undated))
    page = rows[:limit]
    if len(rows) <= limit or not page:
        return page, None
    last = page[-1]
    return page, _encode(
        last.queue_rank, aware(last.deadline), aware(last.created_at), last.id  # type: ignore[arg-type]
    )
