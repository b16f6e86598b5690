"""The supervisors' and funders' dashboard for any date range: SVG charts and their CSVs.

Figures come from ``workflows.dashboard`` (cases opened and signals received in the
range) plus the live late counts; every chart's numbers download as CSV with the same
range, so a funder's report and the page never disagree.
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any

from flask import Blueprint, abort, render_template, request

from config.auth import login_required
from config.database import db_session, runtime
from intake import statistics as stats
from workflows.dashboard import RangeFigures, range_figures
from workflows.db import utcnow
from workflows.errors import InvalidInput
from workflows.research import ExportError, Vocabulary
from workflows.vocabulary import OVERSIGHT

bp = Blueprint("dashboard_pages", __name__, template_folder="templates")
VIEWERS = OVERSIGHT
DEFAULT_DAYS = 14


def _range() -> tuple[date, date]:
    """``from``/``to`` from the query (UTC days), by default the last 14 days."""
    today = utcnow().date()
    try:
        end = date.fromisoformat(request.args["to"]) if request.args.get("to") else today
        start = (date.fromisoformat(request.args["from"]) if request.args.get("from")
                 else end - timedelta(days=DEFAULT_DAYS - 1))
    except ValueError:
        raise InvalidInput("dates are YYYY-MM-DD", field="from") from None
    if end < start:
        raise InvalidInput("'to' is before 'from'", field="to")
    return start, end


def _figures(start: date, end: date) -> RangeFigures:
    try:
        return range_figures(db_session(), start, end,
                             Vocabulary.from_catalogs(runtime().catalogs), utcnow())
    except ExportError as exc:
        raise InvalidInput(str(exc), field="to") from None


def _rows(counts: dict[str, int], part: str) -> list[tuple[str, dict[str, int]]]:
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])
    return [(k.replace("_", " "), {part: n}) for k, n in ordered]


@bp.get("/supervisor/dashboard")
@login_required(VIEWERS)
def dashboard() -> Any:
    try:
        start, end = _range()
        figures = _figures(start, end)
    except InvalidInput as exc:
        today = utcnow().date()
        return render_template("dashboard/dashboard.html", error=exc.message, d=None,
                               start=today - timedelta(days=DEFAULT_DAYS - 1), end=today), 400
    session = db_session()
    late_cases, late_referrals = stats.late_counts(session, utcnow())
    median, referred = stats.median_hours_to_referral(session, utcnow() - timedelta(days=90))
    return render_template(
        "dashboard/dashboard.html",
        d=figures, start=start, end=end, error=None,
        late_cases=late_cases, late_referrals=late_referrals,
        median_hours=median, referred_cases=referred,
        heard_rows=_rows(figures.signals_by_heard_from, "signals"),
        state_rows=_rows(figures.cases_by_state, "cases"),
        type_rows=_rows(figures.cases_by_type, "cases"),
        venue_rows=_rows(figures.cases_by_venue, "cases"),
        agency_rows=[
            (a.agency, {"accepted": a.accepted, "declined": a.declined, "waiting": a.waiting,
                        "other": a.total - a.accepted - a.declined - a.waiting})
            for a in figures.agencies
        ],
        deadline_rows=[("referrals", figures.deadlines)],
        outcome_rows=[(k.replace("_", " "), {"referrals": n}) for k, n in figures.outcomes.items()],
    )


@bp.get("/supervisor/dashboard/<chart>.csv")
@login_required(VIEWERS)
def chart_csv(chart: str) -> Any:
    """One chart's numbers for the same range, as CSV."""
    try:
        start, end = _range()
        tables = _figures(start, end).tables()
    except InvalidInput as exc:
        return exc.message + "\n", 400, {"Content-Type": "text/plain; charset=utf-8"}
    if chart not in tables:
        abort(404)
    header, rows = tables[chart]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    name = f"{chart}-{start.isoformat()}-{end.isoformat()}.csv"
    return out.getvalue(), 200, {"Content-Type": "text/csv; charset=utf-8",
                                 "Content-Disposition": f'attachment; filename="{name}"',
                                 "Cache-Control": "no-store"}
