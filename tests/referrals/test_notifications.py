"""Notifications through a real worker: tipster texts only with consent and no opt-out."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from intake.services import add_tip_message
from intake.sms import phone_key, set_opt_out
from referrals.embedded import run_embedded_once
from referrals.models import DeadlineBreach, Notification
from referrals.notifications import check_deadlines
from tests.referrals.casework import screen_and_approve, submit_tip
from tests.referrals.conftest import ONCALL_PHONE, wait_until
from workflows.casework import record_screening
from workflows.db import transaction, utcnow
from workflows.models import Referral, User
from workflows.outbox import OutboxMessage, add_outbox_message
from workflows.pii import lookup_hash

CONSENTING, OPTED_OUT, UNSUBSCRIBED, SILENT = (
    "+12025550161", "+12025550162", "+12025550163", "+12025550164",
)


def _tip_with_reply(app, client, operator, phone: str, callback: bool | None) -> int:
    """A tip with a call-back number, screened with this call-back consent, and a reply."""
    case_id = submit_tip(client, narrative="Workers sleep in the warehouse.", anonymous=False,
                         contact={"phone": phone})
    runtime = app.extensions["runtime"]
    with runtime.session() as session, transaction(session):
        op = session.scalar(select(User).where(User.username == operator.username))
        record_screening(session, case_id, op, {
            "facts": {}, "indicators": [],
            "consent": {"law_enforcement": None, "services": None, "callback": callback},
        }, catalogs=runtime.catalogs)
        from workflows.models import Case

        reply = add_tip_message(session, session.get(Case, case_id), "Are you safe to talk?",
                                direction="out", author=operator.username)
        add_outbox_message(session, "notify", payload={
            "kind": "tipster_reply", "case_id": case_id, "referral_id": None,
            "message_id": reply.id,
        })
    return case_id


@pytest.mark.slow
def test_opted_out_numbers_are_never_texted(
    app, client, operator, twilio_api, start_worker, db_session
) -> None:
    with app.extensions["runtime"].session() as session, transaction(session):
        set_opt_out(session, lookup_hash(phone_key(OPTED_OUT)), True)
    twilio_api.unsubscribed.add(UNSUBSCRIBED)  # the carrier knows; we learn on first try
    start_worker(TWILIO_API_BASE_URL=twilio_api.url)

    for phone in (CONSENTING, OPTED_OUT, UNSUBSCRIBED):
        _tip_with_reply(app, client, operator, phone, callback=True)
    wait_until(
        lambda: db_session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.done_at.is_(None)).limit(1)
            .execution_options(populate_existing=True)
        ) is None and twilio_api.sent,
        30, "every notification handled",
    )
    db_session.expire_all()
    states = {n.recipient: n.state for n in db_session.scalars(select(Notification))}

    assert [m["To"] for m in twilio_api.sent] == [CONSENTING]
    assert "Are you safe to talk?" in twilio_api.sent[0]["Body"]
    assert states == {CONSENTING: "sent", UNSUBSCRIBED: "opted_out"}
    with app.extensions["runtime"].session() as session:
        from intake.sms import is_opted_out

        assert is_opted_out(session, UNSUBSCRIBED)  # 21610 is final


@pytest.mark.slow
def test_tipster_without_callback_consent_is_never_contacted(
    app, client, operator, twilio_api, start_worker, db_session
) -> None:
    start_worker(TWILIO_API_BASE_URL=twilio_api.url)
    for callback in (None, False):
        _tip_with_reply(app, client, operator, SILENT, callback=callback)
    control = _tip_with_reply(app, client, operator, CONSENTING, callback=True)

    wait_until(lambda: twilio_api.sent, 30, "the consenting tipster's text")
    time.sleep(1)  # the two without consent were handled first (outbox order)
    assert [m["To"] for m in twilio_api.sent] == [CONSENTING]
    notified = db_session.scalars(select(Notification.case_id)).all()
    assert notified == [control]


def test_each_deadline_breach_is_notified_once(
    app, client, operator, supervisor, twilio_api, delivery_runtime, db_session
) -> None:
    [referral_id] = screen_and_approve(app, submit_tip(client), operator, supervisor)
    with app.extensions["runtime"].session() as session, transaction(session):
        session.get(Referral, referral_id).deadline = utcnow() - timedelta(minutes=1)

    first = check_deadlines(db_session)
    second = check_deadlines(db_session)
    runtime = delivery_runtime(
        twilio_api_base_url=twilio_api.url, oncall_supervisor_phone=ONCALL_PHONE
    )
    run_embedded_once(runtime, check_deadlines=False)

    assert first >= 1 and second == 0
    breaches = db_session.scalars(select(DeadlineBreach)).all()
    assert ("referral", referral_id) in {(b.subject, b.subject_id) for b in breaches}
    texts = [m["Body"] for m in twilio_api.sent if m["To"] == ONCALL_PHONE]
    assert any("Deadline passed" in t and "FBI" in t for t in texts)
    assert all("motel" not in t for t in texts)  # references only, never the tip


def test_emergency_escalation_pages_the_oncall_supervisor_and_delivers_at_once(
    app, client, operator, agency, twilio_api, mailbox, delivery_runtime, db_session
) -> None:
    from tests.referrals.conftest import agency_env
    from workflows.lifecycle import fire_case_event

    case_id = submit_tip(client, narrative="He says he will hurt her tonight at the motel.")
    runtime = app.extensions["runtime"]
    with runtime.session() as session:
        op = session.scalar(select(User).where(User.username == operator.username))
        with transaction(session):
            record_screening(session, case_id, op, {
                "facts": {"imminent_danger": True}, "indicators": [],
                "consent": {"law_enforcement": None, "services": None, "callback": None},
            }, catalogs=runtime.catalogs)
        with transaction(session):
            fire_case_event(session, case_id, "escalate", op, version=None,
                            reason="caller in danger now", catalogs=runtime.catalogs)

    run_embedded_once(delivery_runtime(
        env=agency_env(agency.url), twilio_api_base_url=twilio_api.url,
        oncall_supervisor_phone=ONCALL_PHONE, smtp_host=mailbox.host, smtp_port=mailbox.port,
        supervisor_emails=("desk@hotline.example.org",),
    ))

    [page] = twilio_api.sent
    assert page["To"] == ONCALL_PHONE and page["Body"].startswith("EMERGENCY")
    assert "motel" not in page["Body"]
    assert [m["to"] for m in mailbox.messages] == [["desk@hotline.example.org"]]
    assert [p["rule"] for p in agency.packets.values()] == ["imminent_danger"]
