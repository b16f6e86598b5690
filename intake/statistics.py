"""Live counts for the supervisors' queue and dashboard: states, lateness, time to refer.

Range figures are workflows/dashboard.py; the public ones, published snapshots with
suppression, workflows/publication.py.
"""

from __future__ import annotations

import statistics
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workflows.deadlines import aware, case_late, referral_late
from workflows.machines import CASE_STATES
from workflows.models import Case, Referral


def cases_by_state(session: Session) -> dict[str, int]:
    """How many cases are in each state (purged ones left out)."""
    found = dict(
        session.execute(
            select(Case.state, func.count()).where(Case.purged_at.is_(None)).group_by(Case.state)
        ).all()
    )
    return {state: int(found.get(state, 0)) for state in CASE_STATES}


def median_hours_to_referral(session: Session, since: datetime) -> tuple[float | None, int]:
    """Median hours from intake to the first referral leaving, for cases opened since."""
    rows = session.execute(
        select(Case.created_at, Case.referred_at).where(
            Case.referred_at.is_not(None), Case.created_at >= since
        )
    ).all()
    hours = [
        (aware(referred) - aware(created)).total_seconds() / 3600  # type: ignore[operator]
        for created, referred in rows
    ]
    return (statistics.median(hours) if hours else None), len(hours)


def late_counts(session: Session, now: datetime) -> tuple[int, int]:
    """Cases and referrals past their deadline (a case's deadline is its next one due)."""
    late_cases = session.scalar(
        select(func.count()).where(case_late(now), Case.purged_at.is_(None))
    )
    late_referrals = session.scalar(
        select(func.count()).select_from(Referral).where(referral_late(now))
    )
    return int(late_cases or 0), int(late_referrals or 0)
