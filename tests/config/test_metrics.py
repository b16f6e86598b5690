"""/metrics: only for the scraper, counters that move with tips, state read when scraped."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
from sqlalchemy import select

from config.settings import Settings, SettingsError
from tests.conftest import backend
from tests.factories import OutboxMessageFactory
from tests.scrapes import BEARER, TOKEN, scrape, value
from workflows.db import transaction, utcnow
from workflows.models import Case


@pytest.fixture
def scraper(make_app):  # type: ignore[no-untyped-def]
    """A client of an app that answers /metrics to TOKEN."""
    return make_app(metrics_token=TOKEN).test_client()


def test_metrics_is_a_404_without_the_token(scraper) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                    {"Authorization": TOKEN}):
        answer = scraper.get("/metrics", headers={**headers, "Accept": "application/json"})
        assert answer.status_code == 404
        assert answer.get_json()["status"] == 404  # the same problem+json as any 404
        assert "hotline_" not in answer.get_data(as_text=True)
    assert scraper.get("/metrics", headers=BEARER).status_code == 200


def test_with_nothing_configured_nobody_may_scrape(client) -> None:
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 404


def test_an_allowed_network_scrapes_without_a_token(make_app) -> None:
    allowed = make_app(metrics_allow=(ipaddress.ip_network("10.1.0.0/16"),)).test_client()
    inside = {"REMOTE_ADDR": "10.1.2.3"}
    assert allowed.get("/metrics", environ_base=inside).status_code == 200
    assert allowed.get("/metrics", environ_base={"REMOTE_ADDR": "10.2.0.1"}).status_code == 404
    # Through a proxy nobody declared (PROXY_COUNT=0) the address is the proxy's: refused.
    proxied = allowed.get("/metrics", environ_base=inside,
                          headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 404


def test_the_endpoint_is_not_in_the_api_document(client) -> None:
    assert "/metrics" not in client.get("/api/v1/openapi.json").get_json()["paths"]


def test_a_stored_tip_counts_once_by_channel_and_a_refused_one_not(scraper) -> None:
    before = scrape(scraper)
    assert scraper.post("/api/v1/tips", json={"narrative": "n"}).status_code == 201
    assert scraper.post("/api/v1/tips", json={"location": "no narrative"}).status_code == 422
    after = scrape(scraper)
    web = value(after, "hotline_tips_total", channel="web")
    assert web - value(before, "hotline_tips_total", channel="web") == 1
    assert value(after, "hotline_tips_total", channel="voice") == value(
        before, "hotline_tips_total", channel="voice"
    )
    assert ("hotline_tips_total", (("channel", "sms"),)) in after  # at 0 from the start


def test_outbox_lag_is_the_age_of_the_oldest_unsent_message(scraper, db_session) -> None:
    empty = scrape(scraper)
    assert value(empty, "hotline_outbox_lag_seconds") == 0
    with transaction(db_session):
        OutboxMessageFactory(created_at=utcnow() - timedelta(minutes=10))
        OutboxMessageFactory(done_at=utcnow(), created_at=utcnow() - timedelta(hours=5))
    samples = scrape(scraper)
    assert 600 <= value(samples, "hotline_outbox_lag_seconds") < 3600
    assert value(samples, "hotline_outbox_unsent") == 1
    assert value(samples, "hotline_metrics_source_up", source="database") == 1
    assert value(samples, "hotline_metrics_source_up", source="spool") == 1
    assert ("hotline_spool_items", ()) in samples


def test_an_open_case_past_its_deadline_is_overdue(scraper, db_session) -> None:
    before = value(scrape(scraper), "hotline_cases_overdue")
    reference = scraper.post("/api/v1/tips", json={"narrative": "n"}).get_json()["reference"]
    assert value(scrape(scraper), "hotline_cases_overdue") == before  # due in days
    with transaction(db_session):
        case = db_session.scalar(select(Case).where(Case.reference == reference))
        case.deadline = utcnow() - timedelta(minutes=1)
    assert value(scrape(scraper), "hotline_cases_overdue") == before + 1


@pytest.mark.services
@pytest.mark.skipif(backend() != "services", reason="needs Redis (services backend)")
def test_queue_depth_is_read_from_redis(scraper, settings: Settings) -> None:
    from redis import Redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    with Redis.from_url(settings.redis_url) as connection:
        queue = Queue(f"{settings.redis_namespace}notifications", connection=connection,
                      serializer=JSONSerializer)
        before = scrape(scraper)
        job = queue.enqueue("builtins.print", "never run: no worker listens here")
        try:
            after = scrape(scraper)
        finally:
            job.delete()
    assert value(after, "hotline_metrics_source_up", source="queue") == 1
    moved = value(after, "hotline_queue_jobs", queue="notifications") - value(
        before, "hotline_queue_jobs", queue="notifications"
    )
    assert moved == 1


@pytest.mark.parametrize(
    ("name", "raw", "says"),
    [
        ("METRICS_TOKEN", "short", "at least 16"),
        ("METRICS_ALLOW", "10.0.0.0/8, not-a-network", "METRICS_ALLOW"),
        ("PROMETHEUS_MULTIPROC_DIR", "/nonexistent/metrics", "not a directory"),
        ("LOG_FORMAT", "xml", "text or json"),
    ],
)
def test_metrics_and_log_settings_refuse_nonsense(name: str, raw: str, says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        Settings.from_env({name: raw})
