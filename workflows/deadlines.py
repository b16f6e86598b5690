"""Deadlines: what is next due on a case, and what is late.

A case's ``deadline`` column always holds the next thing due on it, so "late" is one
indexed range scan (``deadline < now``) even at a million cases:
- open, not yet submitted: the screening's deadline (the earliest recommended referral's,
  or the priority's review time from routing.yaml), else created + the priority's time;
  an emergency (IVR option, SMS "not safe", imminent danger in screening) is due 15
  minutes after its first signal, whatever the screening says;
- pending approval or referred: the earliest deadline of a referral the agency has not
  yet taken up (pending, queued, sent, failed);
- any state but closed: an agency's question the hotline has not answered yet
  (``Referral.question_due``, workflows.threads), when it is sooner;
- closed: none.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import overload

from sqlalchemy import ColumnElement, and_, or_

from workflows.machines import AWAITING_AGENCY, OPEN_CASE_STATES
from workflows.models import Case, Priority, Referral

DEFAULT_CASE_DEADLINES = {
    "emergency": timedelta(minutes=15),
    "urgent": timedelta(hours=24),
    "routine": timedelta(hours=72),
}


@overload
def aware(value: datetime) -> datetime: ...


@overload
def aware(value: datetime | None) -> datetime | None: ...


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without their zone; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def emergency_deadline(
    case: Case, case_deadlines: dict[str, timedelta] | None = None
) -> datetime | None:
    """15 minutes (routing.yaml's ``case_deadlines.emergency``) after the first signal."""
    started = aware(case.emergency_at)
    if started is None or case.priority != Priority.EMERGENCY.value:
        return None  # staff who screened it found no imminent danger: the clock is off
    limits = case_deadlines or DEFAULT_CASE_DEADLINES
    return started + limits.get("emergency", DEFAULT_CASE_DEADLINES["emergency"])


def case_deadline(
    case: Case, case_deadlines: dict[str, timedelta] | None = None
) -> datetime | None:
    """The next thing due on this case, by the rules in this module's docstring."""
    if case.state == "closed":
        return None
    own = _own_deadline(case, case_deadlines)
    # An agency's unanswered question is due whatever the case's state (issue 13).
    questions = [aware(r.question_due) for r in case.referrals if r.question_due is not None]
    return min((d for d in (own, *questions) if d is not None), default=None)


def _own_deadline(case: Case, case_deadlines: dict[str, timedelta] | None) -> datetime | None:
    if case.state in ("pending_approval", "referred"):
        due = [aware(r.deadline) for r in case.referrals if r.state in AWAITING_AGENCY]
        if case.state == "pending_approval":
            due.append(emergency_deadline(case, case_deadlines))
        return min((d for d in due if d is not None), default=None)
    stored = (case.screening or {}).get("deadline")
    emergency = emergency_deadline(case, case_deadlines)
    if not stored and emergency is not None:
        return emergency  # from the signal, not from when the case was opened
    limits = case_deadlines or DEFAULT_CASE_DEADLINES
    created = aware(case.created_at)
    assert created is not None
    due_at = (
        datetime.fromisoformat(stored)
        if stored
        else created + limits.get(case.priority, DEFAULT_CASE_DEADLINES["routine"])
    )
    return min(due_at, emergency) if emergency is not None else due_at


def is_open_emergency(case: Case) -> bool:
    """An emergency nobody has yet got to an agency: it leads every queue."""
    if case.priority != Priority.EMERGENCY.value:
        return False
    if case.state in OPEN_CASE_STATES:
        return True
    # Escalated, but the notice has not left yet (queued, or its delivery failed).
    return case.state == "referred" and any(
        r.state in ("pending", "queued", "failed") for r in case.referrals
    )


def refresh_case_deadline(case: Case, case_deadlines: dict[str, timedelta] | None = None) -> None:
    """Store the case's next deadline and queue rank; writes (bumps the version) on a change."""
    due = case_deadline(case, case_deadlines)
    if aware(case.deadline) != due:
        case.deadline = due
    rank = 0 if is_open_emergency(case) else 1
    if case.queue_rank != rank:
        case.queue_rank = rank


def start_clocks(case: Case, rules: Iterable[str], now: datetime) -> None:
    """Note when each rule first applied; a clock is kept once and never moved later."""
    clocks = dict(case.clocks or {})
    changed = False
    for rule in rules:
        if rule not in clocks:
            clocks[rule] = now.isoformat()
            changed = True
    if changed:
        case.clocks = clocks


def clock_start(case: Case, rule: str, now: datetime) -> datetime:
    """When the rule's clock started (its first triggering signal), or now if it has not."""
    started = (case.clocks or {}).get(rule)
    return min(aware(datetime.fromisoformat(started)), now) if started else now


def is_overdue(deadline: datetime | None, now: datetime) -> bool:
    """Past due?"""
    due = aware(deadline)
    return due is not None and due < now


def referral_overdue(referral: Referral, now: datetime) -> bool:
    """A referral is late while the agency has not taken it up past its deadline."""
    return referral.state in AWAITING_AGENCY and is_overdue(referral.deadline, now)


def case_late(now: datetime) -> ColumnElement[bool]:
    """SQL for "this case is late": its next deadline has passed and it is not closed.

    The one definition the queue filter, the supervisor's counts and the dashboard use
    (a closed case has no deadline, so ``is_overdue`` agrees on a loaded case).
    """
    return and_(Case.deadline.is_not(None), Case.deadline < now, Case.state != "closed")


def case_not_late(now: datetime) -> ColumnElement[bool]:
    """SQL for the complement of ``case_late`` (spelled out: NULL deadlines are on time)."""
    return or_(Case.deadline.is_(None), Case.deadline >= now, Case.state == "closed")


def open_case_late(now: datetime) -> ColumnElement[bool]:
    """SQL for "a case not yet referred is past its own deadline": what the deadline
    watcher records as a case breach and ``hotline_cases_overdue`` counts (a referred
    case is late through its referrals and questions, each recorded as its own breach)."""
    return and_(Case.deadline < now, Case.state.in_(OPEN_CASE_STATES))


def referral_late(now: datetime) -> ColumnElement[bool]:
    """SQL for ``referral_overdue``: the agency has not taken it up past its deadline."""
    return and_(
        Referral.deadline.is_not(None),
        Referral.deadline < now,
        Referral.state.in_(AWAITING_AGENCY),
    )


def question_late(now: datetime) -> ColumnElement[bool]:
    """SQL for "an agency's question is past its answer deadline" (the hotline's task)."""
    return and_(Referral.question_due.is_not(None), Referral.question_due < now)
