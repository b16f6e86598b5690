"""Public statistics: monthly and yearly snapshots, published once and never recomputed.

A month is published when it has ended, a year when its last month is published. Each
period's figures are computed once (by the worker's daily tick or ``flask --app wsgi
statistics publish``) and stored frozen in ``published_statistics``; the public page
only reads them, so no request scans the case table, and two snapshots never differ in
a period both hold — no difference between them discloses a case.

Suppression (``workflows.disclosure.suppress_line``): a cell below k is hidden, and
complementary cells are hidden until what is hidden in a line adds up to k or more.
A year's cell is the sum of its published months: where its months hid 1 to k-1 cases,
the year hides that cell too (the year minus the published months would give them
back), and the year's own line is protected on what stays unknown, not on the values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workflows.disclosure import suppress_line
from workflows.models import Case, PublishedStatistics
from workflows.outcomes import read_outcome
from workflows.research import Vocabulary, case_records

# Published tables, in the page's order: name -> what a row counts.
TABLES = {
    "signals_by_channel": "contacts (calls, texts, web tips, call logs) by channel",
    "cases_by_heard_from": "cases by how the first contact heard of the hotline",
    "cases_by_us_state": "cases by state of the incident",
    "cases_by_type": "cases by type of trafficking",
    "cases_by_venue": "cases by venue or industry",
    "referrals_by_agency": "referrals made, by agency",
    "investigations_by_agency": "referrals that led to an investigation, by agency",
}
TOTAL = "total"


def month_bounds(period: str) -> tuple[datetime, datetime]:
    year, month = int(period[:4]), int(period[5:7])
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def month_counts(session: Session, period: str, vocab: Vocabulary) -> dict[str, dict[str, int]]:
    """The exact counts of one month (cases opened in it), read once at publication."""
    start, end = month_bounds(period)
    tables: dict[str, Counter[str]] = {name: Counter() for name in TABLES}
    for record in case_records(session, start, end, vocab):
        tables["signals_by_channel"][record.channel] += record.contacts
        tables["cases_by_heard_from"][record.heard_from] += 1
        tables["cases_by_us_state"][record.state] += 1
        tables["cases_by_type"][record.trafficking_type] += 1
        tables["cases_by_venue"][record.venue] += 1
        for referral in record.referrals:
            if referral.state == "pending":
                continue  # not approved: nothing was disclosed
            tables["referrals_by_agency"][referral.agency] += 1
            if read_outcome(referral.outcome).investigation:
                tables["investigations_by_agency"][referral.agency] += 1
    return {name: dict(sorted(counter.items())) for name, counter in tables.items()}


def protect_month(counts: dict[str, dict[str, int]], k: int) -> dict[str, dict[str, int | None]]:
    """A month's figures: None where hidden (primary and complementary)."""
    figures: dict[str, dict[str, int | None]] = {}
    for name, cells in counts.items():
        total = sum(cells.values())
        hidden, total_hidden = suppress_line(cells, k)
        if 0 < total < k:
            hidden, total_hidden = set(cells), True
        shown: dict[str, int | None] = {c: None if c in hidden else n for c, n in cells.items()}
        shown[TOTAL] = None if total_hidden else total
        figures[name] = shown
    return figures


def protect_year(months: list[PublishedStatistics], k: int) -> tuple[
        dict[str, dict[str, int]], dict[str, dict[str, int | None]]]:
    """A year from its published months: exact sums, and what may be shown of them."""
    counts: dict[str, dict[str, int]] = {}
    figures: dict[str, dict[str, int | None]] = {}
    for name in TABLES:
        cells: Counter[str] = Counter()
        unknown: Counter[str] = Counter()  # what the months hid, per cell (incl. total)
        for month in months:
            exact = month.counts.get(name, {})
            shown = month.figures.get(name, {})
            for cell, n in exact.items():
                cells[cell] += n
                if shown.get(cell) is None:
                    unknown[cell] += n
            if shown.get(TOTAL) is None:
                unknown[TOTAL] += sum(exact.values())
        exact_cells = dict(sorted(cells.items()))
        counts[name] = exact_cells
        forced = {c for c in exact_cells if 0 < unknown[c] < k}
        hidden, total_hidden = suppress_line(exact_cells, k, unknown=dict(unknown),
                                             already=forced)
        total = sum(exact_cells.values())
        if 0 < total < k or 0 < unknown[TOTAL] < k:
            total_hidden = True
        shown_year: dict[str, int | None] = {
            c: None if c in hidden else n for c, n in exact_cells.items()}
        shown_year[TOTAL] = None if total_hidden else total
        figures[name] = shown_year
    return counts, figures


def _months(first: date, last: date) -> Iterator[str]:
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        yield f"{year:04d}-{month:02d}"
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def publish_due(session: Session, now: datetime, k: int, vocab: Vocabulary) -> list[str]:
    """Publish every ended month and year not yet published; returns their periods.

    Safe to run twice and from two workers: a period is written once (unique period;
    the loser's insert fails and its transaction rolls back without harm).
    """
    done = set(session.scalars(select(PublishedStatistics.period)))
    last_month = f"{now.year - (now.month == 1):04d}-{(now.month - 2) % 12 + 1:02d}"
    if last_month in done and (now.month > 1 or str(now.year - 1) in done):
        return []  # the usual pass: everything due is out (one look at a small table)
    earliest = session.scalar(select(func.min(Case.created_at)))
    if earliest is None:
        return []
    this_month = date(now.year, now.month, 1)
    published: list[str] = []
    for period in _months(earliest.date(), this_month):
        if period == f"{now.year:04d}-{now.month:02d}" or period in done:
            continue
        counts = month_counts(session, period, vocab)
        session.add(PublishedStatistics(period=period, counts=counts,
                                        figures=protect_month(counts, k), published_at=now))
        session.commit()
        published.append(period)
        done.add(period)
    for year in range(earliest.year, now.year):
        if str(year) in done:
            continue
        months = list(session.scalars(select(PublishedStatistics).where(
            PublishedStatistics.period.like(f"{year:04d}-%")).order_by(
            PublishedStatistics.period)))
        counts, figures = protect_year(months, k)
        session.add(PublishedStatistics(period=str(year), counts=counts, figures=figures,
                                        published_at=now))
        session.commit()
        published.append(str(year))
    return published


def published_periods(session: Session) -> list[str]:
    """Every published period, newest first (years before months of the same year)."""
    periods = list(session.scalars(select(PublishedStatistics.period)))
    return sorted(periods, key=lambda p: (p[:4], len(p) == 4, p), reverse=True)


def snapshot(session: Session, period: str) -> dict[str, Any] | None:
    """A published period's figures (None when it is not published)."""
    row = session.scalar(select(PublishedStatistics).where(PublishedStatistics.period == period))
    if row is None:
        return None
    return {"period": row.period, "published_at": row.published_at, "figures": row.figures}
