"""Delivery by real ``flask --app wsgi worker`` processes (RQ, Redis, the relay)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select, text

from referrals.models import DeliveryAttempt, Notification
from tests.referrals.casework import referral_state, screen_and_approve, submit_tip
from tests.referrals.conftest import ONCALL_PHONE, SUPERVISOR_EMAIL, agency_env, wait_until
from workflows.models import Referral

pytestmark = pytest.mark.slow


def test_end_to_end_tip_to_agency_acceptance(
    app, client, operator, supervisor, make_actor, agency, start_worker
) -> None:
    worker = start_worker(**agency_env(agency.url))
    case_id = submit_tip(client)
    [referral_id] = screen_and_approve(app, case_id, operator, supervisor)

    wait_until(lambda: referral_state(app, referral_id) == "sent", 30, "delivery")
    assert [r["valid"] for r in agency.requests] == [True], worker.log()

    fbi = make_actor("agency", "FBI")
    accepted = client.post(
        f"/api/v1/agency/referrals/{referral_id}/events",
        json={"event": "accept"},
        headers=fbi.headers,
    )
    assert accepted.status_code == 200, accepted.get_json()
    case = client.get(f"/api/v1/cases/{case_id}", headers=supervisor.headers).get_json()
    [shown] = case["referrals"]
    assert shown["agency"] == "FBI" and shown["state"] == "accepted"
    assert "job=" in worker.log()


def test_a_committed_approval_wakes_the_relay_without_waiting_for_its_poll(
    app, client, operator, supervisor, agency, start_worker, db_session
) -> None:
    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    # The relay would look by itself only every 30 s: only a NOTIFY can bring it sooner.
    worker = start_worker(RELAY_POLL_MS="30000", **agency_env(agency.url))
    listening = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND query LIKE 'LISTEN %'"
    )

    def relay_listens() -> bool:
        with app.extensions["runtime"].engine.connect() as connection:  # a fresh snapshot
            return bool(connection.scalar(listening))

    wait_until(relay_listens, 30, "the relay to LISTEN")
    # The first approval may still meet the relay's first passes (start-up, LISTEN
    # begun); the second comes after a delivery, so the relay has just looked.
    for n in range(2):
        case_id = submit_tip(client, narrative=f"Tip {n}: a 15-year-old is sold online.")
        [referral_id] = screen_and_approve(app, case_id, operator, supervisor)
        approved = time.monotonic()
        wait_until(lambda r=referral_id: referral_state(app, r) == "sent", 30, "delivery")
        # Well before the 30 s poll could have fired (a generous bound: a loaded machine).
        assert time.monotonic() - approved < 15, worker.log()
    assert len(agency.packets) == 2
    assert "LISTEN connection lost" not in worker.log()


def test_a_delivery_never_waits_behind_a_long_maintenance_job(
    app, client, operator, supervisor, agency, start_worker, worker_redis_url, tmp_path
) -> None:
    from redis import Redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    worker = start_worker(**agency_env(agency.url))
    redis = Redis.from_url(worker_redis_url)
    maintenance = Queue(f"{worker.env['REDIS_NAMESPACE']}default", connection=redis,
                        serializer=JSONSerializer)
    # A maintenance job (the statistics publication, say) that runs until released.
    maintenance.enqueue("tests.referrals.jobs.hold", str(tmp_path), 120, job_timeout=180)
    wait_until(lambda: (tmp_path / "started").exists(), 60, "the maintenance job to start")

    case_id = submit_tip(client, narrative="A 15-year-old is sold online.")
    [referral_id] = screen_and_approve(app, case_id, operator, supervisor)
    wait_until(lambda: referral_state(app, referral_id) == "sent", 60, "the delivery")
    assert not (tmp_path / "done").exists(), "the delivery waited for the maintenance job"
    assert len(agency.packets) == 1

    (tmp_path / "release").touch()
    wait_until(lambda: (tmp_path / "done").exists(), 30, "the maintenance job to end")
    redis.close()


def test_redis_down_while_tips_arrive_then_everything_is_delivered(
    app, client, operator, supervisor, agency, private_redis, start_worker
) -> None:
    start_worker(redis_url=private_redis.url, **agency_env(agency.url))
    private_redis.stop()

    referral_ids = []
    for n in range(3):
        case_id = submit_tip(client, narrative=f"Tip {n}: a 15-year-old is sold online.")
        referral_ids += screen_and_approve(app, case_id, operator, supervisor)
    time.sleep(2)  # the relay keeps trying; nothing is lost meanwhile
    assert agency.packets == {}
    assert all(referral_state(app, r) == "queued" for r in referral_ids)

    private_redis.start()
    wait_until(
        lambda: all(referral_state(app, r) == "sent" for r in referral_ids), 90, "redelivery"
    )
    assert len(agency.packets) == 3


def test_worker_killed_mid_delivery_is_redone_within_a_minute_once(
    app, client, operator, supervisor, agency, start_worker
) -> None:
    agency.mode = "hold_first"
    env = agency_env(agency.url)
    # A deadline inside the 5 s lease (settings refuse longer); the kill comes first.
    first = start_worker(DELIVERY_TIMEOUT_SECONDS="4", **env)
    [referral_id] = screen_and_approve(app, submit_tip(client), operator, supervisor)
    wait_until(lambda: agency.requests, 30, "the first request to arrive")

    first.kill()  # SIGKILL to the whole worker: horse, relay and scheduler too
    agency.release.set()
    killed_at = time.monotonic()
    start_worker(**env)

    wait_until(lambda: referral_state(app, referral_id) == "sent", 60, "redelivery")
    assert time.monotonic() - killed_at < 60
    assert len(agency.packets) == 1  # the agency sees one referral
    assert len({r["key"] for r in agency.requests}) == 1 and len(agency.requests) >= 2


@pytest.mark.parametrize("failure", ["error", "slow"])
def test_agency_down_retries_then_failed_and_supervisor_told(
    app, client, operator, supervisor, agency, twilio_api, mailbox, start_worker, db_session,
    failure,
) -> None:
    agency.mode = failure
    start_worker(
        TWILIO_API_BASE_URL=twilio_api.url,
        SMTP_HOST=mailbox.host,
        SMTP_PORT=str(mailbox.port),
        DELIVERY_TIMEOUT_SECONDS="1",
        **agency_env(agency.url),
    )
    [referral_id] = screen_and_approve(app, submit_tip(client), operator, supervisor)

    wait_until(lambda: referral_state(app, referral_id) == "failed", 60, "failed")
    wait_until(lambda: twilio_api.sent and mailbox.messages, 30, "supervisor notified")

    attempts = db_session.scalar(
        select(func.count()).select_from(DeliveryAttempt).where(
            DeliveryAttempt.referral_id == referral_id
        )
    )
    assert attempts == 3 and db_session.get(Referral, referral_id).attempts == 3
    assert agency.packets == {} or failure == "slow"
    [sms] = twilio_api.sent
    assert sms["To"] == ONCALL_PHONE and "failed" in sms["Body"]
    assert mailbox.messages[0]["to"] == [SUPERVISOR_EMAIL]
    kinds = db_session.scalars(select(Notification.kind)).all()
    assert set(kinds) == {"referral_failed"}


def test_several_workers_deliver_each_referral_exactly_once(
    app, client, operator, supervisor, agency, start_worker
) -> None:
    env = {**agency_env(agency.url), "DELIVERY_LEASE_SECONDS": "30"}
    for _ in range(3):  # as if on three machines: three relays, three RQ workers
        start_worker(**env)
    referral_ids = []
    for n in range(12):
        case_id = submit_tip(client, narrative=f"Tip {n}: a 14-year-old is advertised online.")
        referral_ids += screen_and_approve(app, case_id, operator, supervisor)

    wait_until(
        lambda: all(referral_state(app, r) == "sent" for r in referral_ids), 90, "delivery"
    )
    assert len(agency.packets) == len(referral_ids) == 12
    assert len(agency.requests) == 12  # no referral was sent twice, not even deduped
