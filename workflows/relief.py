"""A victim's relief: what agencies reported (``workflows.outcomes``) and the hotline's
own 8 U.S.C. 1367 flag, as one dated timeline per case and as totals for a date range.

Relief is counted by the day it happened (the outcome's ``date``), not by when the case
was opened: a letter issued in March counts in March, whenever the tip came in.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows.deadlines import aware
from workflows.models import AuditEvent, Referral
from workflows.outcomes import LETTER_KINDS, outcome_entries

# The audit actions the immigration-relief flag writes (workflows.immigration).
PROTECTION_ACTIONS = {"protect_immigration": "set", "unprotect_immigration": "cleared"}
PROTECTION_KIND = "protection_1367"


@dataclass(frozen=True)
class ReliefItem:
    """One line of a case's relief timeline."""

    day: date | None
    kind: str
    label: str
    status: str
    agency: str  # the agency's code, or "hotline" for the 1367 flag
    amount: float | None = None
    by: str | None = None  # who set the 1367 flag


def case_relief(session: Session, case_ids: Iterable[int]) -> list[ReliefItem]:
    """Every outcome of the case's referrals and every change of its 1367 flag, in date
    order (an undated legacy outcome last; same day: the order they were recorded)."""
    ids = list(case_ids)
    items: list[tuple[int, ReliefItem]] = []
    referrals = session.scalars(
        select(Referral).where(Referral.case_id.in_(ids)).order_by(Referral.id)
    )
    for referral in referrals:
        for entry in outcome_entries(referral.outcome):
            items.append((len(items), ReliefItem(
                entry.day, entry.kind, entry.label, entry.status, referral.agency_code,
                entry.amount)))
    changes = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.case_id.in_(ids), AuditEvent.action.in_(PROTECTION_ACTIONS))
        .order_by(AuditEvent.id)
    )
    for event in changes:
        when = aware(event.created_at)
        items.append((len(items), ReliefItem(
            when.date() if when else None, PROTECTION_KIND,
            "Immigration relief protected (8 U.S.C. 1367)", PROTECTION_ACTIONS[event.action],
            "hotline", by=event.actor)))
    items.sort(key=lambda pair: (pair[1].day is None, pair[1].day or date.min, pair[0]))
    return [item for _, item in items]


@dataclass
class ReliefTotals:
    """Relief that happened in [start, end], from every referral's outcomes."""

    restitution_ordered: float = 0.0
    restitution_paid: float = 0.0
    letters_issued: int = 0  # certification and eligibility letters
    continued_presence_granted: int = 0
    visas_certified: int = 0  # T-visa endorsements signed and U-visa certifications
    days_to_letter: list[int] = field(default_factory=list)

    @property
    def median_days_to_letter(self) -> float | None:
        """Median days from the referral's sending to its first letter issued."""
        return statistics.median(self.days_to_letter) if self.days_to_letter else None

    def rows(self) -> list[list[Any]]:
        """The CSV beside the figures."""
        median = self.median_days_to_letter
        return [
            ["restitution_ordered_usd", round(self.restitution_ordered, 2)],
            ["restitution_paid_usd", round(self.restitution_paid, 2)],
            ["letters_issued", self.letters_issued],
            ["continued_presence_granted", self.continued_presence_granted],
            ["visas_certified", self.visas_certified],
            ["median_days_referral_to_letter", "" if median is None else median],
        ]


def _referral_day(sent: datetime | None, queued: datetime | None, created: datetime) -> date:
    when = aware(sent or queued or created)
    assert when is not None
    return when.date()


def relief_totals(session: Session, start: date, end: date) -> ReliefTotals:
    """Relief dated in [start, end] (end included). A letter, grant or visa counts once per
    referral however often it was re-reported; money adds up (each entry is what was
    ordered or paid that day)."""
    totals = ReliefTotals()
    rows = session.execute(
        select(Referral.outcome, Referral.sent_at, Referral.queued_at, Referral.created_at)
        .where(Referral.outcome.is_not(None))
    )
    for outcome, sent, queued, created in rows:
        seen: set[str] = set()
        first_letter: date | None = None
        for entry in outcome_entries(outcome):
            if entry.day is None or not start <= entry.day <= end:
                continue
            if entry.kind == "restitution":
                if entry.status == "paid":
                    totals.restitution_paid += entry.amount or 0.0
                elif entry.status == "ordered":
                    totals.restitution_ordered += entry.amount or 0.0
                continue
            if not entry.happened or entry.kind in seen:
                continue
            seen.add(entry.kind)
            if entry.kind in LETTER_KINDS:
                totals.letters_issued += 1
                first_letter = min(first_letter or entry.day, entry.day)
            elif entry.kind == "continued_presence":
                totals.continued_presence_granted += 1
            elif entry.kind in ("t_visa_endorsement", "u_visa_certification"):
                totals.visas_certified += 1
        if first_letter is not None:
            days = (first_letter - _referral_day(sent, queued, created)).days
            totals.days_to_letter.append(max(days, 0))
    return totals
