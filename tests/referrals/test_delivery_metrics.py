"""/metrics counts deliveries (by agency and outcome) and deadline breaches as they happen.

Delivery runs the embedded way (the relay's jobs in this process, against a real HTTP
agency server), so the scrape sees this process's counters.
"""

from __future__ import annotations

from datetime import timedelta

from referrals.embedded import run_embedded_once
from referrals.notifications import check_deadlines
from tests.referrals.casework import screen_and_approve, submit_tip
from tests.referrals.conftest import agency_env
from tests.scrapes import TOKEN, scrape, value
from workflows.db import transaction, utcnow
from workflows.models import Referral


def test_a_delivery_counts_by_agency_and_outcome(
    app, client, make_app, operator, supervisor, agency, delivery_runtime
) -> None:
    scraper = make_app(metrics_token=TOKEN).test_client()
    before = scrape(scraper)
    assert ("hotline_deliveries_total", (("agency", "FBI"), ("outcome", "delivered"))) in before
    screen_and_approve(app, submit_tip(client), operator, supervisor)
    run_embedded_once(delivery_runtime(env=agency_env(agency.url)))

    after = scrape(scraper)
    for outcome, moved in (("delivered", 1), ("failed", 0), ("gave_up", 0)):
        delta = value(after, "hotline_deliveries_total", agency="FBI", outcome=outcome) - value(
            before, "hotline_deliveries_total", agency="FBI", outcome=outcome
        )
        assert delta == moved, outcome


def test_a_refused_last_try_counts_failed_and_gave_up(
    app, client, make_app, operator, supervisor, agency, delivery_runtime
) -> None:
    agency.secret = "the agency expects another secret"
    scraper = make_app(metrics_token=TOKEN).test_client()
    before = scrape(scraper)
    screen_and_approve(app, submit_tip(client), operator, supervisor)
    run_embedded_once(delivery_runtime(env=agency_env(agency.url), delivery_max_attempts=1))

    after = scrape(scraper)
    for outcome, moved in (("delivered", 0), ("failed", 1), ("gave_up", 1)):
        delta = value(after, "hotline_deliveries_total", agency="FBI", outcome=outcome) - value(
            before, "hotline_deliveries_total", agency="FBI", outcome=outcome
        )
        assert delta == moved, outcome


def test_a_deadline_breach_counts_once(
    app, client, make_app, operator, supervisor, db_session
) -> None:
    scraper = make_app(metrics_token=TOKEN).test_client()
    [referral_id] = screen_and_approve(app, submit_tip(client), operator, supervisor)
    with app.extensions["runtime"].session() as session, transaction(session):
        session.get(Referral, referral_id).deadline = utcnow() - timedelta(minutes=1)
    before = scrape(scraper)

    check_deadlines(db_session)
    check_deadlines(db_session)  # the same breach again: not new, not counted

    after = scrape(scraper)
    moved = value(after, "hotline_deadline_breaches_total", subject="referral") - value(
        before, "hotline_deadline_breaches_total", subject="referral"
    )
    assert moved == 1
