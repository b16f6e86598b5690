"""The agency API: own referrals only, answers through the lifecycle, retry for supervisors."""

from __future__ import annotations

from sqlalchemy import select

from referrals.embedded import run_embedded_once
from tests.referrals.casework import screen_and_approve, submit_tip
from tests.referrals.conftest import agency_env
from workflows.models import AuditEvent, Referral
from workflows.outbox import OutboxMessage

FOREIGN_MINOR = {
    "facts": {"victim_age": 16, "commercial_sex": True, "foreign_national": True,
              "trafficking_type": "sex"},
    "indicators": [],
    "consent": {"law_enforcement": None, "services": None, "callback": None},
}


def _delivered(app, client, operator, supervisor, agency, delivery_runtime, screening=None):
    env = {**agency_env(agency.url, "FBI"), **agency_env(agency.url, "ICE"),
           **agency_env(agency.url, "HHS")}
    case_id = submit_tip(client)
    ids = screen_and_approve(app, case_id, operator, supervisor, screening)
    run_embedded_once(delivery_runtime(env=env))
    with app.extensions["runtime"].session() as session:
        return case_id, {r.agency_code: r.id for r in session.scalars(
            select(Referral).where(Referral.id.in_(ids)))}


def test_agency_sees_its_own_referrals_and_who_else_holds_the_case(
    app, client, operator, supervisor, make_actor, agency, delivery_runtime, db_session
) -> None:
    _, ids = _delivered(app, client, operator, supervisor, agency, delivery_runtime, FOREIGN_MINOR)
    assert set(ids) == {"FBI", "HHS", "ICE"}
    fbi = make_actor("agency", "FBI")

    listed = client.get("/api/v1/agency/referrals", headers=fbi.headers).get_json()
    shown = client.get(f"/api/v1/agency/referrals/{ids['FBI']}", headers=fbi.headers)

    assert [r["id"] for r in listed["items"]] == [ids["FBI"]] and listed["next"] is None
    body = shown.get_json()
    assert shown.status_code == 200 and body["packet"]["referral_id"] == ids["FBI"]
    assert sorted(body["other_agencies"], key=lambda o: o["agency"]) == [
        {"agency": "HHS", "state": "sent"}, {"agency": "ICE", "state": "sent"},
    ]
    viewed = db_session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "view_pii", AuditEvent.referral_id == ids["FBI"]
        )
    ).all()
    assert [e.actor for e in viewed] == [fbi.username]


def test_another_agencys_referral_is_not_found_however_asked(
    app, client, operator, supervisor, make_actor, agency, delivery_runtime
) -> None:
    _, ids = _delivered(app, client, operator, supervisor, agency, delivery_runtime)
    ice = make_actor("agency", "ICE")
    url = f"/api/v1/agency/referrals/{ids['FBI']}"

    shown = client.get(url, headers=ice.headers)
    answered = client.post(f"{url}/events", json={"event": "accept"}, headers=ice.headers)
    missing = client.get("/api/v1/agency/referrals/999999", headers=ice.headers)

    assert shown.status_code == answered.status_code == missing.status_code == 404
    assert shown.get_json() == {
        "type": "about:blank", "title": "Not Found", "status": 404,
        "detail": f"no referral {ids['FBI']}", "field": None, "error": f"no referral {ids['FBI']}",
    }
    assert client.get("/api/v1/agency/referrals", headers=ice.headers).get_json()["items"] == []


def test_pending_referrals_are_invisible_to_agencies(
    app, client, operator, make_actor
) -> None:
    from tests.referrals.casework import MINOR_IN_COMMERCIAL_SEX
    from workflows.casework import record_screening
    from workflows.db import transaction
    from workflows.lifecycle import fire_case_event
    from workflows.models import User

    case_id = submit_tip(client)
    runtime = app.extensions["runtime"]
    with runtime.session() as session, transaction(session):
        op = session.scalar(select(User).where(User.username == operator.username))
        record_screening(session, case_id, op, MINOR_IN_COMMERCIAL_SEX, catalogs=runtime.catalogs)
        fire_case_event(session, case_id, "submit_for_approval", op, version=None,
                        catalogs=runtime.catalogs)
    fbi = make_actor("agency", "FBI")
    assert client.get("/api/v1/agency/referrals", headers=fbi.headers).get_json()["items"] == []
    assert client.get("/api/v1/agency/referrals/1", headers=fbi.headers).status_code == 404


def test_decline_needs_a_reason_and_then_tells_the_supervisors(
    app, client, operator, supervisor, make_actor, agency, delivery_runtime, db_session
) -> None:
    _, ids = _delivered(app, client, operator, supervisor, agency, delivery_runtime)
    fbi = make_actor("agency", "FBI")
    url = f"/api/v1/agency/referrals/{ids['FBI']}/events"

    bare = client.post(url, json={"event": "decline"}, headers=fbi.headers)
    assert bare.status_code == 422 and bare.get_json()["field"] == "reason"
    assert db_session.get(Referral, ids["FBI"]).state == "sent"

    declined = client.post(
        url, json={"event": "decline", "reason": "outside our jurisdiction"}, headers=fbi.headers
    )
    assert declined.status_code == 200, declined.get_json()
    assert declined.get_json()["state"] == "declined"
    notes = db_session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "notify")).all()
    assert [n.payload["kind"] for n in notes] == ["referral_declined"]


def test_outcome_is_recorded_once_accepted(
    app, client, operator, supervisor, make_actor, agency, delivery_runtime
) -> None:
    _, ids = _delivered(app, client, operator, supervisor, agency, delivery_runtime)
    fbi = make_actor("agency", "FBI")
    url = f"/api/v1/agency/referrals/{ids['FBI']}/events"
    outcome = {"kind": "restitution", "status": "ordered", "date": "2026-05-04",
               "amount": 250000.0, "notes": "18 U.S.C. 1593"}

    early = client.post(url, json={"event": "record_outcome", "outcome": outcome},
                        headers=fbi.headers)
    assert early.status_code == 409 and "allowed" in early.get_json()
    for event in ("acknowledge", "accept"):
        assert client.post(url, json={"event": event}, headers=fbi.headers).status_code == 200
    done = client.post(url, json={"event": "record_outcome", "outcome": outcome},
                       headers=fbi.headers)
    bad = client.post(url, json={"event": "record_outcome", "outcome": {
        "kind": "investigation", "status": "won", "date": "2026-05-04"}}, headers=fbi.headers)

    assert done.status_code == 200, done.get_json()
    [recorded] = done.get_json()["outcome"]["outcomes"]
    assert recorded["amount"] == 250000.0 and recorded["notes"] == "18 U.S.C. 1593"
    assert done.get_json()["state"] == "accepted"
    assert bad.status_code == 422 and bad.get_json()["field"] == "outcome.status"


def test_supervisor_retries_a_failed_delivery(
    app, client, operator, supervisor, agency, delivery_runtime, db_session
) -> None:
    agency.mode = "error"
    runtime = delivery_runtime(env=agency_env(agency.url), delivery_max_attempts=1)
    case_id = submit_tip(client)
    [referral_id] = screen_and_approve(app, case_id, operator, supervisor)
    run_embedded_once(runtime)
    assert db_session.get(Referral, referral_id).state == "failed"

    url = f"/api/v1/cases/{case_id}/referrals/{referral_id}/events"
    refused = client.post(url, json={"event": "retry"}, headers=operator.headers)
    retried = client.post(url, json={"event": "retry"}, headers=supervisor.headers)
    again = client.post(url, json={"event": "retry"}, headers=supervisor.headers)

    assert refused.status_code == 403
    assert retried.status_code == 200, retried.get_json()
    assert [r["state"] for r in retried.get_json()["referrals"]] == ["queued"]
    assert again.status_code == 409
    agency.mode = "ok"
    run_embedded_once(runtime)
    db_session.expire_all()
    assert db_session.get(Referral, referral_id).state == "sent"
