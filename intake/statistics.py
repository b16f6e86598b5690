"""Figures for the supervisors' dashboard, from live data (staff only, not suppressed).

The public figures are published snapshots with suppression: workflows/publication.py.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.models import CHANNELS, Signal
from workflows.deadlines import aware
from workflows.machines import AWAITING_AGENCY, CASE_STATES
from workflows.models import Case, Referral

# Outcomes (referrals.schemas.INVESTIGATION_STATUSES) that mean an investigation was opened.
INVESTIGATED = frozenset(
    {"open", "referred_for_prosecution", "charged", "convicted", "acquitted", "closed"}
)


@dataclass(frozen=True)
class AgencyFigures:
    agency: str
    total: int
    accepted: int
    declined: int
    waiting: int
    investigated: int

    @property
    def acceptance(self) -> float | None:
        """Accepted share of the referrals the agency has answered."""
        answered = self.accepted + self.declined
        return self.accepted / answered if answered else None


@dataclass(frozen=True)
class Dashboard:
    days: list[date]
    signals_by_day: dict[str, list[int]]  # channel -> count per day
    cases_by_state: dict[str, int]
    agencies: list[AgencyFigures]
    investigated_share: float | None
    investigated: int
    accepted: int
    median_hours_to_referral: float | None
    referred_cases: int
    late_cases: int
    late_referrals: int
    extra: dict[str, Any] = field(default_factory=dict)


def signals_per_day(
    session: Session, today: date, days: int
) -> tuple[list[date], dict[str, list[int]]]:
    """Signals per UTC day and channel over the last ``days`` days (today included)."""
    first = today - timedelta(days=days - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    span = [first + timedelta(days=i) for i in range(days)]
    counts = {channel: [0] * days for channel in CHANNELS}
    # Bucketed here rather than with date functions, which differ between SQLite and
    # PostgreSQL (and PostgreSQL's follow the session's time zone).
    rows = session.execute(
        select(Signal.created_at, Signal.channel).where(Signal.created_at >= start)
    ).all()
    for created, channel in rows:
        index = (aware(created).date() - first).days  # type: ignore[union-attr]
        if 0 <= index < days and channel in counts:
            counts[channel][index] += 1
    return span, counts


def cases_by_state(session: Session) -> dict[str, int]:
    """How many cases are in each state (purged ones left out)."""
    found = dict(
        session.execute(
            select(Case.state, func.count()).where(Case.purged_at.is_(None)).group_by(Case.state)
        ).all()
    )
    return {state: int(found.get(state, 0)) for state in CASE_STATES}


def agency_figures(session: Session) -> list[AgencyFigures]:
    """Referrals per agency: how many, accepted, declined, waiting, investigated."""
    rows = session.execute(select(Referral.agency_code, Referral.state, Referral.outcome)).all()
    table: dict[str, dict[str, int]] = {}
    for agency, state, outcome in rows:
        entry = table.setdefault(
            agency, {"total": 0, "accepted": 0, "declined": 0, "waiting": 0, "investigated": 0}
        )
        entry["total"] += 1
        if state == "accepted":
            entry["accepted"] += 1
            if (outcome or {}).get("investigation_status") in INVESTIGATED:
                entry["investigated"] += 1
        elif state == "declined":
            entry["declined"] += 1
        elif state in AWAITING_AGENCY or state == "acknowledged":
            entry["waiting"] += 1
    return [AgencyFigures(agency, **entry) for agency, entry in sorted(table.items())]


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
        select(func.count()).where(
            Case.deadline.is_not(None), Case.deadline < now, Case.state != "closed",
            Case.purged_at.is_(None),
        )
    )
    late_referrals = session.scalar(
        select(func.count()).select_from(Referral).where(
            Referral.deadline.is_not(None), Referral.deadline < now,
            Referral.state.in_(AWAITING_AGENCY),
        )
    )
    return int(late_cases or 0), int(late_referrals or 0)


def dashboard(session: Session, now: datetime, days: int = 14) -> Dashboard:
    """Everything the dashboard draws, in one read."""
    span, by_day = signals_per_day(session, now.date(), days)
    agencies = agency_figures(session)
    accepted = sum(a.accepted for a in agencies)
    investigated = sum(a.investigated for a in agencies)
    median, referred = median_hours_to_referral(session, now - timedelta(days=90))
    late_cases, late_referrals = late_counts(session, now)
    return Dashboard(
        days=span,
        signals_by_day=by_day,
        cases_by_state=cases_by_state(session),
        agencies=agencies,
        investigated_share=investigated / accepted if accepted else None,
        investigated=investigated,
        accepted=accepted,
        median_hours_to_referral=median,
        referred_cases=referred,
        late_cases=late_cases,
        late_referrals=late_referrals,
    )
