"""The supervisors' dashboard: live figures as server-drawn SVG, readable without script."""

from __future__ import annotations

import re
from datetime import timedelta

from intake import statistics
from tests.factories import UserFactory
from tests.flows import screened_case, sent_referral
from workflows.db import transaction, utcnow
from workflows.lifecycle import fire_referral_event
from workflows.models import Case
from workflows.outcomes import OUTCOME_KINDS


def test_dashboard_draws_the_live_figures(app, logged_in, db_session, catalogs) -> None:
    accepted = sent_referral(app)
    declined = sent_referral(app)
    screened_case(app)
    with transaction(db_session):
        fbi = UserFactory(role="agency", agency_code="FBI")
        fire_referral_event(db_session, accepted.id, "accept", fbi, catalogs=catalogs)
        fire_referral_event(
            db_session, accepted.id, "record_outcome", fbi,
            data={"outcome": {"kind": "investigation", "status": "opened",
                              "date": utcnow().date().isoformat()}}, catalogs=catalogs,
        )
        fire_referral_event(
            db_session, declined.id, "decline", fbi, reason="not ours", catalogs=catalogs
        )
    late = screened_case(app)
    db_session.get(Case, late).deadline = utcnow() - timedelta(hours=1)
    db_session.commit()

    page = logged_in("supervisor").get("/supervisor/dashboard").get_data(as_text=True)
    charts = ("chart-signals", "chart-heard-from", "chart-states", "chart-types",
              "chart-venues", "chart-agencies", "chart-deadlines", "chart-outcomes")
    for chart in charts:
        assert f'id="{chart}"' in page
    assert page.count("<svg") == len(charts) and 'role="img"' in page
    assert page.count('class="csv"') == len(charts) + 1  # and the relief figures
    # strict CSP: classes only, and no inline script (script files only)
    assert "style=" not in page and not re.search(r"<script(?![^>]*\ssrc=)", page)
    assert re.search(r'id="dash-late-cases">1<', page)
    assert re.search(r'id="dash-investigated">100 %<', page)  # 1 of 1 known outcome
    table = re.sub(r"\s+", "", page[page.index('id="acceptance"'):])
    assert "<td>FBI</td><td>2</td><td>1</td><td>1</td><td>50%</td><td>1</td>" in table
    # Four operator calls today: the day's column says so.
    assert "operator: 4</title>" in page


def test_median_time_from_intake_to_referral(app, db_session) -> None:
    referral = sent_referral(app)
    case = db_session.get(Case, referral.case_id)
    case.created_at = case.referred_at - timedelta(hours=5)
    db_session.commit()
    median, count = statistics.median_hours_to_referral(db_session, utcnow() - timedelta(days=1))
    assert count == 1 and round(median, 2) == 5.0


def test_counted_outcomes_are_statuses_agencies_can_record() -> None:
    for kind in OUTCOME_KINDS.values():
        assert kind.happened <= set(kind.statuses)
    assert "requested" not in OUTCOME_KINDS["continued_presence"].happened


def test_any_range_and_a_csv_of_each_chart(app, logged_in, db_session) -> None:
    referral = sent_referral(app)
    old = db_session.get(Case, referral.case_id)
    old.created_at = utcnow() - timedelta(days=400)  # opened more than a year ago
    for signal in old.signals:
        signal.created_at = old.created_at
    db_session.commit()
    supervisor = logged_in("supervisor")
    recent = supervisor.get("/supervisor/dashboard").get_data(as_text=True)
    assert "<td>FBI</td>" not in recent  # the default is the last 14 days
    start = (utcnow() - timedelta(days=500)).date().isoformat()
    end = utcnow().date().isoformat()
    page = supervisor.get(f"/supervisor/dashboard?from={start}&to={end}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "<td>FBI</td>" in text and "Signals per month" in text  # monthly past a year
    answer = supervisor.get(f"/supervisor/dashboard/agencies.csv?from={start}&to={end}")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    lines = answer.get_data(as_text=True).splitlines()
    assert lines[0].startswith("agency,referrals,accepted") and lines[1].startswith("FBI,1,")
    signals = supervisor.get(f"/supervisor/dashboard/signals.csv?from={start}&to={end}")
    assert sum(int(row.split(",")[-1]) for row in signals.get_data(as_text=True).splitlines()[1:]
               ) == 1
    for bad in ("from=2026-02-01&to=2026-01-01", "from=yesterday", "to=2026-99-01"):
        assert supervisor.get(f"/supervisor/dashboard?{bad}").status_code == 400
        assert supervisor.get(f"/supervisor/dashboard/signals.csv?{bad}").status_code == 400
    assert supervisor.get("/supervisor/dashboard/nothing.csv").status_code == 404


def test_how_callers_heard_of_us_is_counted_from_every_channel(client, logged_in) -> None:
    """The web form, a text conversation and the IVR store the answer alike; the
    dashboard's heard-from chart and CSV count all three."""
    from tests.intake.test_sms import Texter
    from tests.intake.twilio_caller import Call, new_sid

    tip = client.post("/api/v1/tips", json={"narrative": "x", "heard_from": "social_media"})
    assert tip.status_code == 201
    texter = Texter(client)
    for body in ("Men live in the warehouse", "Elm St", "no", "yes", "no", "2"):
        texter.send(body)
    call = Call(client)
    call.dial_in()
    call.press("1")
    call.press("3")
    call.record(new_sid("RE"))
    call.press("2")  # social media
    skipped = Call(client)
    skipped.dial_in()
    skipped.press("1")
    skipped.press("3")
    skipped.record(new_sid("RE"))
    skipped.press("0")

    answer = logged_in("supervisor").get("/supervisor/dashboard/heard-from.csv")
    assert answer.status_code == 200
    rows = dict(line.split(",") for line in answer.get_data(as_text=True).splitlines()[1:])
    assert rows == {"social_media": "3", "not_asked": "1"}
