"""The referral machine through fire_referral_event: agencies, the worker, supervisors."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from workflows.db import transaction
from workflows.errors import Conflict, Forbidden, InvalidInput, NotFound
from workflows.lifecycle import fire_referral_event
from workflows.models import AuditEvent, Referral, User
from workflows.outbox import OutboxMessage

LABOR = {
    "facts": {"victim_age": 45, "trafficking_type": "labor", "force_fraud_coercion": True,
              "foreign_national": False},
    "consent": {"law_enforcement": True, "services": True, "callback": True},
}


@pytest.fixture
def referred(cases, operator, supervisor):  # type: ignore[no-untyped-def]
    """A case referred to ICE, its referral queued; returns the referral id."""
    case_id = cases.call(operator)["id"]
    cases.screen(operator, case_id, LABOR)
    cases.event(operator, case_id, "submit_for_approval")
    approved = cases.event(supervisor, case_id, "approve", reason="ok")
    [referral] = approved["referrals"]
    assert referral["agency"] == "ICE"
    return referral["id"]


def _user(session, actor) -> User:  # type: ignore[no-untyped-def]
    return session.scalar(select(User).where(User.username == actor.username))


CATALOGS: dict = {}


@pytest.fixture(autouse=True)
def _app_catalogs(catalogs):  # type: ignore[no-untyped-def]
    """``_fire`` passes the app's catalogs, as the views do."""
    CATALOGS.update(catalogs)


def _fire(session, referral_id, event, actor=None, **kw):  # type: ignore[no-untyped-def]
    with transaction(session):
        return fire_referral_event(session, referral_id, event, actor, catalogs=CATALOGS, **kw)


def test_agency_walks_its_referral_to_accepted_with_an_outcome(
    referred, db_session, make_actor
) -> None:
    ice = _user(db_session, make_actor("agency", "ICE"))
    assert _fire(db_session, referred, "mark_sent").state == "sent"
    assert _fire(db_session, referred, "acknowledge", ice).state == "acknowledged"
    assert _fire(db_session, referred, "request_info", ice, reason="address?").state == (
        "acknowledged"
    )
    assert _fire(db_session, referred, "accept", ice).state == "accepted"
    outcome = {"kind": "restitution", "status": "ordered", "date": "2026-01-05", "amount": 12000}
    referral = _fire(db_session, referred, "record_outcome", ice, data={"outcome": outcome})
    [recorded] = referral.outcome["outcomes"]
    assert (recorded["kind"], recorded["amount"], recorded["date"]) == (
        "restitution", 12000.0, "2026-01-05")
    actions = db_session.scalars(
        select(AuditEvent.action).where(AuditEvent.referral_id == referred).order_by(AuditEvent.id)
    ).all()
    assert actions == ["create_referral", "queue", "mark_sent", "acknowledge",
                       "agency_request_info", "accept", "record_outcome"]


def test_another_agency_gets_not_found(referred, db_session, make_actor) -> None:
    fbi = _user(db_session, make_actor("agency", "FBI"))
    _fire(db_session, referred, "mark_sent")
    with pytest.raises(NotFound):
        _fire(db_session, referred, "acknowledge", fbi)
    assert db_session.get(Referral, referred).state == "sent"


def test_staff_cannot_answer_for_the_agency(referred, db_session, supervisor) -> None:
    _fire(db_session, referred, "mark_sent")
    with pytest.raises(NotFound):
        _fire(db_session, referred, "accept", _user(db_session, supervisor))


def test_only_the_worker_marks_sent(referred, db_session, supervisor) -> None:
    with pytest.raises(Forbidden):
        _fire(db_session, referred, "mark_sent", _user(db_session, supervisor))


def test_decline_needs_a_reason_then_notifies_and_reroutes(
    referred, db_session, make_actor, supervisor
) -> None:
    ice = _user(db_session, make_actor("agency", "ICE"))
    _fire(db_session, referred, "mark_sent")
    with pytest.raises(InvalidInput) as missing:
        _fire(db_session, referred, "decline", ice)
    assert missing.value.field == "reason"
    assert db_session.get(Referral, referred).state == "sent"
    _fire(db_session, referred, "decline", ice, reason="outside our area")
    notes = [m.payload for m in db_session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "notify"))]
    assert {"kind": "referral_declined", "case_id": notes[0]["case_id"],
            "referral_id": referred, "message_id": None} in notes
    boss = _user(db_session, supervisor)
    with pytest.raises(InvalidInput):
        _fire(db_session, referred, "reroute", boss, data={"agency": "ICE"})
    # Adult labor trafficking: no rule refers it to FBI, so a re-route there has no basis.
    with pytest.raises(Conflict) as refused:
        _fire(db_session, referred, "reroute", boss, reason="task force", data={"agency": "FBI"})
    assert "no routing rule refers this case to FBI" in refused.value.message
    case = db_session.get(Referral, referred).case
    assert [r.agency_code for r in case.referrals] == ["ICE"]


def test_failed_delivery_is_retried_into_queued(referred, db_session, supervisor) -> None:
    _fire(db_session, referred, "fail", data={"error": "HTTP 500"})
    assert db_session.get(Referral, referred).last_error == "HTTP 500"
    _fire(db_session, referred, "retry", _user(db_session, supervisor))
    deliveries = db_session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "deliver_referral",
                                    OutboxMessage.ref_id == referred)).all()
    assert len(deliveries) == 2


def test_referral_event_the_state_does_not_allow_lists_the_allowed(referred, db_session) -> None:
    with pytest.raises(Conflict) as refused:
        _fire(db_session, referred, "retry")
    assert refused.value.extra["allowed"] == ["mark_sent", "fail", "withdraw"]


def test_supervisor_retries_withdraws_and_reroutes_through_the_api(
    referred, client, supervisor, operator, db_session
) -> None:
    case_id = db_session.get(Referral, referred).case_id
    _fire(db_session, referred, "fail")
    url = f"/api/v1/cases/{case_id}/referrals/{referred}/events"
    forbidden = client.post(url, json={"event": "withdraw", "reason": "x"},
                            headers=operator.headers)
    assert forbidden.status_code == 403
    answer = client.post(url, json={"event": "retry"}, headers=supervisor.headers)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["referrals"][0]["state"] == "queued"
    other = client.post(f"/api/v1/cases/{case_id + 99}/referrals/{referred}/events",
                        json={"event": "retry"}, headers=supervisor.headers)
    assert other.status_code == 404
