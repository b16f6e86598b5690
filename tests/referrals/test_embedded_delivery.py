"""Delivery on the embedded default: the same jobs, run in-process by the relay."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from referrals.embedded import run_embedded_once
from referrals.models import DeliveryAttempt
from referrals.relay import claim_due, job_id
from tests.referrals.casework import screen_and_approve, submit_tip
from tests.referrals.conftest import AGENCY_SECRET, agency_env
from workflows.models import Referral
from workflows.outbox import OutboxMessage


def test_approved_referral_reaches_the_agency_signed_once(
    app, client, operator, supervisor, agency, delivery_runtime, db_session
) -> None:
    runtime = delivery_runtime(env=agency_env(agency.url))
    case_id = submit_tip(client)
    [referral_id] = screen_and_approve(app, case_id, operator, supervisor)

    run_embedded_once(runtime)
    run_embedded_once(runtime)  # a second pass finds nothing more to do

    assert [r["valid"] for r in agency.requests] == [True]
    [(key, packet)] = agency.packets.items()
    referral = db_session.get(Referral, referral_id)
    assert referral.state == "sent" and referral.idempotency_key == key
    assert packet["schema_version"] == "1.0" and packet["referral_id"] == referral_id
    assert packet["agency"] == "FBI" and packet["rule"] == "minor_commercial_sex"
    assert packet["case_reference"].startswith("HT-")
    assert db_session.scalar(select(func.count()).select_from(DeliveryAttempt)) == 1


def test_anonymous_tipster_is_never_named_and_immigration_relief_stays_home(
    app, client, operator, supervisor, agency, delivery_runtime
) -> None:
    runtime = delivery_runtime(env=agency_env(agency.url))
    case_id = submit_tip(
        client,
        narrative="She is 16 and works at the motel. Her mother has a pending U-visa. Room 12.",
        anonymous=True,
        contact={"phone": "+12025550143", "email": "tipster@example.org"},
    )
    screening = {
        "facts": {"victim_age": 16, "commercial_sex": True, "trafficking_type": "sex"},
        "indicators": [],
        "consent": {"law_enforcement": True, "services": None, "callback": None},
    }
    screen_and_approve(app, case_id, operator, supervisor, screening)
    run_embedded_once(runtime)

    [packet] = agency.packets.values()
    text = json.dumps(packet)
    assert "+12025550143" not in text and "tipster@example.org" not in text
    assert packet["people"]["anonymous"] is True and packet["people"]["contacts"] == []
    assert "U-visa" not in text and "Room 12" in packet["summary"]


def test_wrong_secret_is_refused_and_retried_with_backoff(
    app, client, operator, supervisor, agency, delivery_runtime, db_session
) -> None:
    agency.secret = "the agency expects another secret"
    runtime = delivery_runtime(env=agency_env(agency.url), delivery_backoff_seconds=60)
    [referral_id] = screen_and_approve(app, submit_tip(client), operator, supervisor)

    run_embedded_once(runtime)
    run_embedded_once(runtime)  # not due again before the backoff

    assert [r["valid"] for r in agency.requests] == [False]
    message = db_session.scalar(
        select(OutboxMessage).where(OutboxMessage.kind == "deliver_referral")
    )
    assert message.done_at is None and "401" in message.last_error
    assert db_session.get(Referral, referral_id).state == "queued"
    assert AGENCY_SECRET != agency.secret


def test_claims_are_exclusive_and_job_ids_are_deterministic(
    app, client, operator, supervisor, delivery_runtime, db_session
) -> None:
    runtime = delivery_runtime(redis_namespace="t1:x-")
    screen_and_approve(app, submit_tip(client), operator, supervisor)

    first = claim_due(db_session, runtime)
    second = claim_due(db_session, runtime)  # leased: nobody else gets it

    assert len(first) == 1 and second == []
    assert job_id(runtime, first[0]) == f"t1_x-outbox-{first[0].outbox_id}-1"
