"""Public statistics: frozen monthly and yearly snapshots, with complementary suppression.

The disclosure checks are written from what a reader sees (the published figures),
as an attacker would subtract them: a line's total minus its shown cells, a year's cell
minus its shown months. Neither may give back a count between 1 and k-1.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bench.seed import seed_command
from tests.factories import CaseFactory
from workflows.disclosure import suppress_line
from workflows.models import PublishedStatistics
from workflows.publication import TOTAL, protect_month, publish_due
from workflows.research import Vocabulary

K = 5


@pytest.mark.parametrize(("cells", "hidden", "total_hidden"), [
    ({"a": 9, "b": 7, "c": 12}, set(), False),  # nothing small
    ({"a": 1, "b": 7, "c": 9}, {"a", "b"}, False),  # 1 alone would be total - 16
    ({"a": 1, "b": 3, "c": 9}, {"a", "b", "c"}, False),  # 1 + 3 = 4 is still small
    ({"a": 2, "b": 0, "c": 10}, {"a", "c"}, False),  # a zero hides nothing
    ({"a": 2, "b": 2}, {"a", "b"}, True),  # nothing left to hide: the total goes
    ({"a": 0, "b": 0}, set(), False),
])
def test_a_line_hides_small_cells_and_enough_others(cells, hidden, total_hidden) -> None:
    assert suppress_line(cells, K) == (hidden, total_hidden)


def _residuals_ok(shown: dict[str, int | None], exact: dict[str, int]) -> None:
    for cell, n in shown.items():
        assert n is None or n == 0 or n >= K, (cell, n)
    if shown[TOTAL] is not None:
        residual = shown[TOTAL] - sum(n for c, n in shown.items() if c != TOTAL and n)
        assert residual == 0 or residual >= K, (shown, exact)


def test_a_month_hides_small_counts_and_what_the_total_would_give_back() -> None:
    counts = {"cases_by_us_state": {"TX": 1, "CA": 7, "NY": 9}, "cases_by_type": {"sex": 3}}
    figures = protect_month(counts, K)
    assert figures["cases_by_us_state"] == {"TX": None, "CA": None, "NY": 9, TOTAL: 17}
    assert figures["cases_by_type"] == {"sex": None, TOTAL: None}


@pytest.fixture
def seeded(app, runner):  # type: ignore[no-untyped-def]
    """Two years of made-up cases, published as of now."""
    result = runner.invoke(seed_command, ["--cases", "2500", "--batch", "1000"])
    assert result.exit_code == 0, result.output
    rt = app.extensions["runtime"]
    with rt.session() as session:
        done = publish_due(session, datetime.now(UTC), K, Vocabulary.from_catalogs(rt.catalogs))
    return done


def test_published_snapshots_give_back_no_small_count_by_any_subtraction(app, seeded) -> None:
    years = [p for p in seeded if len(p) == 4]
    assert years and len(seeded) > 12
    with app.extensions["runtime"].session() as session:
        rows = {r.period: r for r in session.scalars(select(PublishedStatistics))}
    hidden_somewhere = 0
    for row in rows.values():
        for table, shown in row.figures.items():
            _residuals_ok(shown, row.counts[table])
            hidden_somewhere += sum(n is None for n in shown.values())
    assert hidden_somewhere > 0  # the test data is small enough to need suppression
    for year in years:
        months = [rows[p] for p in rows if p.startswith(f"{year}-")]
        for table, shown in rows[year].figures.items():
            for cell, value in shown.items():
                if value is None:
                    continue
                # The year minus the months that show this cell: what the months hid.
                seen = sum(m.figures[table].get(cell) or 0 for m in months)
                assert value - seen == 0 or value - seen >= K, (year, table, cell)


def test_a_published_period_never_changes(app, seeded) -> None:
    rt = app.extensions["runtime"]
    month = min(p for p in seeded if len(p) == 7)
    with rt.session() as session:
        before = session.scalar(select(PublishedStatistics).where(
            PublishedStatistics.period == month)).figures
        # A case back-dated into that month (an import, a late entry).
        start = datetime.fromisoformat(f"{month}-15T12:00:00+00:00")
        CaseFactory.in_session(session, created_at=start)
        session.commit()
        assert publish_due(session, datetime.now(UTC), K,
                           Vocabulary.from_catalogs(rt.catalogs)) == []
        after = session.scalar(select(PublishedStatistics).where(
            PublishedStatistics.period == month)).figures
    assert after == before


def test_the_page_shows_only_published_periods_and_the_csv_matches(client, app, seeded) -> None:
    page = client.get("/statistics")
    assert page.status_code == 200 and "public" in page.headers["Cache-Control"]
    newest = seeded[-1] if len(seeded[-1]) == 4 else max(seeded)
    text = page.get_data(as_text=True)
    assert "Download these figures (CSV)" in text
    chosen = max(p for p in seeded if len(p) == 4)
    answer = client.get(f"/statistics/{chosen}.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert {r["table"] for r in rows} >= {"cases_by_us_state", "referrals_by_agency"}
    for r in rows:
        assert (r["count"] == "") == (r["hidden"] == "true")
        assert r["count"] == "" or int(r["count"]) == 0 or int(r["count"]) >= K
    # This month is not published: asking for it is a 404, not a live count.
    this_month = datetime.now(UTC).strftime("%Y-%m")
    assert client.get(f"/statistics?period={this_month}").status_code == 404
    assert client.get(f"/statistics/{this_month}.csv").status_code == 404
    for bad in ("2026-1", "x" * 300, "../etc", "2026-13"):
        assert client.get(f"/statistics/{bad}.csv").status_code == 404
    assert newest


def test_before_anything_is_published_the_page_says_so(client, app) -> None:
    with app.extensions["runtime"].session() as session:
        CaseFactory.in_session(session, created_at=datetime.now(UTC) - timedelta(minutes=1))
        session.commit()
    page = client.get("/statistics").get_data(as_text=True)
    assert "Nothing is published yet" in page
