"""Deadlines: what is next due on a case, and what is late.

A case's ``deadline`` column always holds the next thing due on it, so "late" is one
indexed range scan (``deadline < now``) even at a million cases:
- open, not yet submitted: the screening's deadline (the earliest recommended referral's,
  or the priority's review time from routing.yaml), else created + the priority's time;
- pending approval or referred: the earliest deadline of a referral the agency has not
  yet taken up (pending, queued, sent, failed);
- closed: none.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from workflows.machines import AWAITING_AGENCY
from workflows.models import Case, Referral

DEFAULT_CASE_DEADLINES = {
    "emergency": timedelta(minutes=15),
    "urgent": timedelta(hours=24),
    "routine": timedelta(hours=72),
}


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without their zone; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def case_deadline(
    case: Case, case_deadlines: dict[str, timedelta] | None = None
) -> datetime | None:
    """The next thing due on this case, by the rules in this module's docstring."""
    if case.state == "closed":
        return None
    if case.state in ("pending_approval", "referred"):
        due = [aware(r.deadline) for r in case.referrals if r.state in AWAITING_AGENCY]
        return min((d for d in due if d is not None), default=None)
    stored = (case.screening or {}).get("deadline")
    if stored:
        return datetime.fromisoformat(stored)
    limits = case_deadlines or DEFAULT_CASE_DEADLINES
    created = aware(case.created_at)
    assert created is not None
    return created + limits.get(case.priority, DEFAULT_CASE_DEADLINES["routine"])


def refresh_case_deadline(case: Case, case_deadlines: dict[str, timedelta] | None = None) -> None:
    """Store the case's next deadline; only writes (and bumps the version) on a change."""
    due = case_deadline(case, case_deadlines)
    if aware(case.deadline) != due:
        case.deadline = due


def is_overdue(deadline: datetime | None, now: datetime) -> bool:
    """Past due?"""
    due = aware(deadline)
    return due is not None and due < now


def referral_overdue(referral: Referral, now: datetime) -> bool:
    """A referral is late while the agency has not taken it up past its deadline."""
    return referral.state in AWAITING_AGENCY and is_overdue(referral.deadline, now)


def overdue_summary(case: Case, now: datetime) -> dict[str, Any]:
    """For the case JSON: is it late, and which referrals are."""
    return {
        "overdue": is_overdue(case.deadline, now),
        "overdue_referrals": [r.id for r in case.referrals if referral_overdue(r, now)],
    }
