"""Jurisdiction: the incident's state, as routing rules and statistics name it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workflows.models import Case

# USPS codes of the states, DC and the territories (tribal land is a flag of a location).
US_STATES = (
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN",
    "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH",
    "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT",
    "VT", "VA", "WA", "WV", "WI", "WY", "AS", "GU", "MP", "PR", "VI",
)


def incident_state(
    screening: dict[str, Any] | None, location_states: list[str | None]
) -> str | None:
    """The state a screener named, else that of the first location that has one."""
    named = ((screening or {}).get("facts") or {}).get("state")
    if named:
        return str(named)
    return next((s for s in location_states if s), None)


UNKNOWN_STATE = "unknown"


def cases_by_incident_state(
    session: Session, since: datetime | None = None, until: datetime | None = None
) -> dict[str, int]:
    """Cases per incident state (USPS code, or ``unknown``), opened in [since, until).

    Purged cases count (their state survives the purge as a statistic); a case merged
    into another is one situation, counted once, through the survivor.
    """
    stmt = select(Case.incident_state, func.count()).where(Case.merged_into_id.is_(None))
    if since is not None:
        stmt = stmt.where(Case.created_at >= since)
    if until is not None:
        stmt = stmt.where(Case.created_at < until)
    rows = session.execute(stmt.group_by(Case.incident_state)).all()
    return dict(sorted((state or UNKNOWN_STATE, int(n)) for state, n in rows))
