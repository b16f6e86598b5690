"""The dashboard's figures for any date range: supervisors' and funders' view (not public).

Signals are counted by when they arrived; cases (by state, type, venue) and their
referrals (acceptance, turnaround, deadlines, outcomes) by when the case was opened, so
a range's referrals are those its cases led to; relief (restitution, letters, continued
presence, visas: ``workflows.relief``) by the day it happened. Counts are exact: staff only. Each
figure is also a table (``tables``), which the page offers as CSV.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows.campaigns import HEARD_FROM
from workflows.deadlines import aware
from workflows.machines import AWAITING_AGENCY
from workflows.outcomes import read_outcome
from workflows.relief import ReliefTotals, relief_totals
from workflows.research import (
    CHANNELS,
    SIGNALS,
    Vocabulary,
    case_records,
    date_range,
    deadline_met,
)

OUTCOME_NAMES = ("investigations", "continued_presence", "letters", "visas_certified")


@dataclass
class AgencyRow:
    agency: str
    total: int = 0
    accepted: int = 0
    declined: int = 0
    waiting: int = 0
    investigated: int = 0
    turnaround_hours: list[float] = field(default_factory=list)

    @property
    def acceptance(self) -> float | None:
        answered = self.accepted + self.declined
        return self.accepted / answered if answered else None

    @property
    def median_turnaround(self) -> float | None:
        """Median hours from delivery to the agency's answer."""
        return statistics.median(self.turnaround_hours) if self.turnaround_hours else None


@dataclass
class RangeFigures:
    """Everything the dashboard draws for [start, end]."""

    start: date
    end: date
    bucket: str  # day | week | month
    labels: list[str]
    signals_by_channel: dict[str, list[int]]
    signals_by_heard_from: dict[str, int]
    cases: int
    cases_by_state: dict[str, int]
    cases_by_type: dict[str, int]
    cases_by_venue: dict[str, int]
    agencies: list[AgencyRow]
    deadlines: dict[str, int]  # met | missed
    outcomes: dict[str, int]
    restitution: dict[str, float]  # ordered | paid, USD
    known_outcomes: int
    investigated: int
    relief: ReliefTotals = field(default_factory=ReliefTotals)  # dated in the range

    @property
    def investigated_share(self) -> float | None:
        """Of the referrals whose outcome is known, the share that led to an investigation."""
        return self.investigated / self.known_outcomes if self.known_outcomes else None

    @property
    def deadline_compliance(self) -> float | None:
        decided = self.deadlines["met"] + self.deadlines["missed"]
        return self.deadlines["met"] / decided if decided else None

    def tables(self) -> dict[str, tuple[list[str], list[list[Any]]]]:
        """Each chart's numbers as (header, rows): the CSV beside each chart."""
        counts = [(n, sorted(d.items(), key=lambda kv: -kv[1])) for n, d in (
            ("state", self.cases_by_state), ("type", self.cases_by_type),
            ("venue", self.cases_by_venue), ("heard_from", self.signals_by_heard_from))]
        out: dict[str, tuple[list[str], list[list[Any]]]] = {
            "signals": (["period", *CHANNELS, "all"], [
                [label, *(self.signals_by_channel[c][i] for c in CHANNELS),
                 sum(self.signals_by_channel[c][i] for c in CHANNELS)]
                for i, label in enumerate(self.labels)]),
        }
        for name, rows in counts:
            key = "heard-from" if name == "heard_from" else f"cases-by-{name}"
            out[key] = ([name, "count"], [[k, v] for k, v in rows])
        out["agencies"] = (
            ["agency", "referrals", "accepted", "declined", "waiting", "investigated",
             "acceptance", "median_hours_to_answer"],
            [[a.agency, a.total, a.accepted, a.declined, a.waiting, a.investigated,
              "" if a.acceptance is None else round(a.acceptance, 3),
              "" if a.median_turnaround is None else round(a.median_turnaround, 1)]
             for a in self.agencies])
        out["deadlines"] = (["deadline", "referrals"], [[k, v] for k, v in self.deadlines.items()])
        out["outcomes"] = (["outcome", "count"], [
            *([k, v] for k, v in self.outcomes.items()),
            ["restitution_ordered_usd", round(self.restitution["ordered"], 2)],
            ["restitution_paid_usd", round(self.restitution["paid"], 2)],
            ["referrals_with_known_outcome", self.known_outcomes],
            ["known_outcomes_investigated", self.investigated]])
        out["relief"] = (["relief_dated_in_range", "value"], self.relief.rows())
        return out


def buckets(start: date, end: date) -> tuple[str, list[date]]:
    """Days up to two months, weeks (from Monday) up to a year, months beyond."""
    days = (end - start).days + 1
    if days <= 62:
        return "day", [start + timedelta(days=i) for i in range(days)]
    if days <= 366:
        first = start - timedelta(days=start.weekday())
        return "week", [first + timedelta(weeks=i) for i in range((end - first).days // 7 + 1)]
    firsts, cursor = [], date(start.year, start.month, 1)
    while cursor <= end:
        firsts.append(cursor)
        cursor = date(cursor.year + (cursor.month == 12), cursor.month % 12 + 1, 1)
    return "month", firsts


def _label(bucket: str, day: date) -> str:
    return {"day": day.strftime("%m-%d"), "week": day.strftime("%Y-%m-%d"),
            "month": day.strftime("%Y-%m")}[bucket]


def _index(bucket: str, firsts: list[date], day: date) -> int:
    if bucket == "day":
        return (day - firsts[0]).days
    if bucket == "week":
        return (day - firsts[0]).days // 7
    return (day.year - firsts[0].year) * 12 + day.month - firsts[0].month


def range_figures(session: Session, start: date, end: date, vocab: Vocabulary,
                  now: datetime) -> RangeFigures:
    """The dashboard for cases and signals of [start, end] (UTC days, end included)."""
    first, after = date_range(start, end)
    bucket, firsts = buckets(start, end)
    by_channel = {c: [0] * len(firsts) for c in CHANNELS}
    heard: Counter[str] = Counter()
    # Bucketed here rather than with date functions, which differ between SQLite and
    # PostgreSQL (and PostgreSQL's follow the session's time zone).
    for created, channel, source in session.execute(
        select(SIGNALS.c.created_at, SIGNALS.c.channel, SIGNALS.c.heard_from).where(
            SIGNALS.c.created_at >= first, SIGNALS.c.created_at < after)):
        when = aware(created)
        assert when is not None
        i = _index(bucket, firsts, when.date())
        if channel in by_channel and 0 <= i < len(firsts):
            by_channel[channel][i] += 1
        heard[source if source in HEARD_FROM else "not_asked"] += 1
    states: Counter[str] = Counter()
    types: Counter[str] = Counter()
    venues: Counter[str] = Counter()
    agencies: dict[str, AgencyRow] = {}
    deadlines = {"met": 0, "missed": 0}
    outcomes = dict.fromkeys(OUTCOME_NAMES, 0)
    restitution = {"ordered": 0.0, "paid": 0.0}
    known = investigated = cases = 0
    for record in case_records(session, first, after, vocab):
        cases += 1
        states[record.state] += 1
        types[record.trafficking_type] += 1
        venues[record.venue] += 1
        for referral in record.referrals:
            row = agencies.setdefault(referral.agency, AgencyRow(referral.agency))
            row.total += 1
            if referral.state == "accepted":
                row.accepted += 1
            elif referral.state == "declined":
                row.declined += 1
            elif referral.state in AWAITING_AGENCY or referral.state == "acknowledged":
                row.waiting += 1
            if referral.sent_at and referral.answered_at:
                row.turnaround_hours.append(
                    (aware(referral.answered_at) - aware(referral.sent_at)).total_seconds()  # type: ignore[operator]
                    / 3600)
            met = deadline_met(referral.state, referral.deadline, referral.taken_up, now)
            if met is not None:
                deadlines["met" if met else "missed"] += 1
            figures = read_outcome(referral.outcome)
            row.investigated += figures.investigation
            if figures.known:
                known += 1
                investigated += figures.investigation
            outcomes["investigations"] += figures.investigation
            outcomes["continued_presence"] += figures.continued_presence
            outcomes["letters"] += figures.letter
            outcomes["visas_certified"] += figures.visa_certified
            restitution["ordered"] += figures.restitution_ordered
            restitution["paid"] += figures.restitution_paid
    return RangeFigures(
        start=start, end=end, bucket=bucket, labels=[_label(bucket, d) for d in firsts],
        signals_by_channel=by_channel, signals_by_heard_from=dict(heard), cases=cases,
        cases_by_state=dict(states), cases_by_type=dict(types), cases_by_venue=dict(venues),
        agencies=[agencies[a] for a in sorted(agencies)], deadlines=deadlines,
        outcomes=outcomes, restitution=restitution, known_outcomes=known,
        investigated=investigated, relief=relief_totals(session, start, end),
    )
