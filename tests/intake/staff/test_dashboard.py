"""The supervisors' dashboard: live figures as server-drawn SVG, readable without script."""

from __future__ import annotations

import re
from datetime import timedelta

from intake import statistics
from referrals.schemas import INVESTIGATION_STATUSES
from tests.flows import screened_case, sent_referral
from workflows.db import transaction, utcnow
from workflows.lifecycle import fire_referral_event
from workflows.models import Case, User


def _agency(session, code: str) -> User:
    user = User(username=f"dash-{code.lower()}", role="agency", agency_code=code)
    session.add(user)
    session.flush()
    return user


def test_dashboard_draws_the_live_figures(app, logged_in, db_session, catalogs) -> None:
    accepted = sent_referral(app)
    declined = sent_referral(app)
    screened_case(app)
    with transaction(db_session):
        fbi = _agency(db_session, "FBI")
        fire_referral_event(db_session, accepted.id, "accept", fbi, catalogs=catalogs)
        fire_referral_event(
            db_session, accepted.id, "record_outcome", fbi,
            data={"outcome": {"investigation_status": "open"}}, catalogs=catalogs,
        )
        fire_referral_event(
            db_session, declined.id, "decline", fbi, reason="not ours", catalogs=catalogs
        )
    late = screened_case(app)
    db_session.get(Case, late).deadline = utcnow() - timedelta(hours=1)
    db_session.commit()

    page = logged_in("supervisor").get("/supervisor/dashboard").get_data(as_text=True)
    for chart in ("chart-signals", "chart-states", "chart-agencies", "chart-late"):
        assert f'id="{chart}"' in page
    assert page.count("<svg") == 4 and 'role="img"' in page
    # strict CSP: classes only, and no inline script (script files only)
    assert "style=" not in page and not re.search(r"<script(?![^>]*\ssrc=)", page)
    assert re.search(r'id="dash-late-cases">1<', page)
    assert re.search(r'id="dash-investigated">100 %<', page)  # 1 of 1 accepted
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


def test_investigated_outcomes_are_statuses_agencies_can_record() -> None:
    assert statistics.INVESTIGATED < set(INVESTIGATION_STATUSES)
    assert "not_started" not in statistics.INVESTIGATED


def test_suppression_hides_only_small_nonzero_counts() -> None:
    assert [statistics.suppress(n) for n in (0, 1, 2, 3, 40)] == [0, None, None, 3, 40]
