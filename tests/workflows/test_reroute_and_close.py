"""Re-routing keeps the legal basis (issue 11 item 2) and closing over an unsent
mandatory referral is a supervisor's decision with a reason (issue 10)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from workflows.db import transaction
from workflows.lifecycle import fire_referral_event
from workflows.models import AuditEvent, Case, Referral

NO_CONSENT = {"law_enforcement": None, "services": None, "callback": None}
# An adult foreign victim of sex trafficking: no to law enforcement, yes to services.
ADULT_SAYS_NO_TO_POLICE = {
    "facts": {"victim_age": 30, "foreign_national": True, "trafficking_type": "sex",
              "force_fraud_coercion": True, "caller_type": "victim"},
    "consent": {"law_enforcement": False, "services": True, "callback": None},
}


def _mark_sent(app: Any, db_session: Any, referral_id: int) -> None:
    with transaction(db_session):
        fire_referral_event(db_session, referral_id, "mark_sent", None,
                            catalogs=app.extensions["runtime"].catalogs)


def _referral_event(client: Any, actor: Any, case_id: int, referral_id: int,
                    **body: Any) -> Any:
    return client.post(f"/api/v1/cases/{case_id}/referrals/{referral_id}/events", json=body,
                       headers=actor.headers)


def _declined(app, client, cases, operator, supervisor, make_actor, db_session,
              screening):  # type: ignore[no-untyped-def]
    """Screened, approved, sent and declined by its first agency: (case id, referral)."""
    case_id = cases.call(operator)["id"]
    cases.screen(operator, case_id, screening)
    cases.event(operator, case_id, "submit_for_approval")
    referrals = cases.event(supervisor, case_id, "approve")["referrals"]
    first = referrals[0]
    _mark_sent(app, db_session, first["id"])
    agency = make_actor("agency", first["agency"])
    declined = client.post(f"/api/v1/agency/referrals/{first['id']}/events",
                           json={"event": "decline", "reason": "not ours"},
                           headers=agency.headers)
    assert declined.status_code == 200, declined.get_json()
    return case_id, first


def test_a_services_consent_never_reaches_ice_or_fbi_through_a_re_route(
    app, client, cases, operator, supervisor, make_actor, db_session
) -> None:
    case_id, hhs = _declined(app, client, cases, operator, supervisor, make_actor,
                             db_session, ADULT_SAYS_NO_TO_POLICE)
    assert hhs["agency"] == "HHS" and hhs["legal_basis"]["scope"] == "services"
    for agency in ("ICE", "FBI"):
        answer = _referral_event(client, supervisor, case_id, hhs["id"], event="reroute",
                                 agency=agency, reason="try law enforcement")
        assert answer.status_code == 409, answer.get_json()
        body = answer.get_json()
        assert body["field"] == "agency" and agency in body["error"]
        assert "no routing rule" in body["error"] or "refused" in body["error"]
    db_session.expire_all()
    assert [r.agency_code for r in db_session.get(Case, case_id).referrals] == ["HHS"]
    rerouted = db_session.scalars(select(AuditEvent).where(
        AuditEvent.case_id == case_id, AuditEvent.action == "reroute")).all()
    assert rerouted == []  # a refused re-route leaves no trace but the 409


def test_a_mandatory_basis_is_never_copied_to_an_agency_its_rule_did_not_name(
    app, client, cases, operator, supervisor, make_actor, db_session
) -> None:
    minor = {"facts": {"victim_age": 16, "commercial_sex": True}, "consent": NO_CONSENT}
    case_id, fbi = _declined(app, client, cases, operator, supervisor, make_actor,
                             db_session, minor)
    assert fbi["agency"] == "FBI" and fbi["mandatory"] is True
    answer = _referral_event(client, supervisor, case_id, fbi["id"], event="reroute",
                             agency="ICE")
    assert answer.status_code == 409
    assert "no routing rule refers this case to ICE" in answer.get_json()["error"]


def test_a_re_route_with_its_own_basis_waits_for_approval(
    app, client, cases, operator, supervisor, make_actor, db_session
) -> None:
    both = {**ADULT_SAYS_NO_TO_POLICE,
            "consent": {"law_enforcement": True, "services": True, "callback": None}}
    case_id = cases.call(operator)["id"]
    cases.screen(operator, case_id, both)
    cases.event(operator, case_id, "submit_for_approval")
    referrals = {r["agency"]: r for r in cases.event(supervisor, case_id, "approve")[
        "referrals"]}
    assert set(referrals) == {"HHS", "FBI"}
    # The FBI referral is withdrawn before it goes; later HHS declines.
    withdrawn = _referral_event(client, supervisor, case_id, referrals["FBI"]["id"],
                                event="withdraw", reason="victim asked to wait")
    assert withdrawn.status_code == 200, withdrawn.get_json()
    _mark_sent(app, db_session, referrals["HHS"]["id"])
    hhs_user = make_actor("agency", "HHS")
    client.post(f"/api/v1/agency/referrals/{referrals['HHS']['id']}/events",
                json={"event": "decline", "reason": "no capacity"}, headers=hhs_user.headers)

    answer = _referral_event(client, supervisor, case_id, referrals["HHS"]["id"],
                             event="reroute", agency="FBI", reason="victim ready now")
    assert answer.status_code == 200, answer.get_json()
    new = [r for r in answer.get_json()["referrals"]
           if r["agency"] == "FBI" and r["state"] != "withdrawn"]
    assert [r["state"] for r in new] == ["pending"]  # not queued: it needs approval
    [fbi] = new
    assert fbi["rule"] == "adult_sex_trafficking" and fbi["mandatory"] is False
    assert fbi["legal_basis"]["type"] == "consent"
    assert fbi["legal_basis"]["scope"] == "law_enforcement"
    assert fbi["legal_basis"]["rerouted_from"] == referrals["HHS"]["id"]
    assert "approved_by" not in fbi["legal_basis"]

    refused = _referral_event(client, operator, case_id, fbi["id"], event="approve")
    assert refused.status_code == 403
    approved = _referral_event(client, supervisor, case_id, fbi["id"], event="approve")
    assert approved.status_code == 200, approved.get_json()
    db_session.expire_all()
    row = db_session.get(Referral, fbi["id"])
    assert row.state == "queued" and row.legal_basis["approved_by"] == supervisor.username


def test_an_operator_cannot_close_over_an_unsent_mandatory_referral(
    cases, operator, supervisor, db_session
) -> None:
    case_id = cases.call(operator)["id"]
    cases.screen(operator, case_id, {
        "facts": {"victim_age": 15, "foreign_national": True, "trafficking_type": "labor"},
        "consent": NO_CONSENT})
    refused = cases.event(operator, case_id, "close", status=409,
                          resolution_code="information_only")
    assert "HHS" in refused["error"] and "ICE" in refused["error"]
    assert refused["field"] == "referrals"
    assert {u["agency"] for u in refused["unsent_mandatory"]} == {"HHS", "ICE"}
    assert cases.show(operator, case_id)["state"] == "screening"

    no_reason = cases.event(supervisor, case_id, "close", status=422,
                            resolution_code="information_only")
    assert no_reason["field"] == "reason"
    closed = cases.event(supervisor, case_id, "close", resolution_code="caller_declined",
                         reason="duplicate of a case already referred by phone")
    assert closed["state"] == "closed"
    [event] = [e for e in closed["events"] if e["action"] == "close"]
    assert event["actor"] == supervisor.username and "duplicate" in event["reason"]
    detail = db_session.scalar(select(AuditEvent.detail).where(
        AuditEvent.case_id == case_id, AuditEvent.action == "close"))
    assert {u["agency"] for u in detail["unsent_mandatory"]} == {"HHS", "ICE"}


def test_closing_over_a_queued_mandatory_referral_needs_a_reason_until_it_is_sent(
    app, cases, operator, supervisor, db_session
) -> None:
    case_id = cases.call(operator)["id"]
    cases.screen(operator, case_id, {"facts": {"victim_age": 16, "commercial_sex": True},
                                     "consent": NO_CONSENT})
    cases.event(operator, case_id, "submit_for_approval")
    [fbi] = cases.event(supervisor, case_id, "approve")["referrals"]
    refused = cases.event(supervisor, case_id, "close", status=422, resolution_code="referred")
    assert "FBI" in refused["error"] and f"referral {fbi['id']} queued" in refused["error"]
    _mark_sent(app, db_session, fbi["id"])
    closed = cases.event(supervisor, case_id, "close", resolution_code="referred")
    assert closed["state"] == "closed"


def test_a_case_with_only_consent_referrals_closes_as_before(cases, operator) -> None:
    case_id = cases.call(operator)["id"]
    cases.screen(operator, case_id, ADULT_SAYS_NO_TO_POLICE)
    closed = cases.event(operator, case_id, "close", resolution_code="caller_declined")
    assert closed["state"] == "closed"
