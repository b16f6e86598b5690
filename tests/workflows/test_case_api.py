"""The staff case API: screening, events, guards, version conflicts, agencies' 404."""

from __future__ import annotations

from sqlalchemy import select

from workflows.outbox import OutboxMessage

MINOR_SEX = {
    "facts": {"victim_age": 16, "commercial_sex": True, "trafficking_type": "sex"},
    "indicators": ["under_18_commercial_sex"],
    "consent": {"law_enforcement": False, "services": True, "callback": False},
}


def test_screening_answers_score_level_priority_and_referrals(cases, operator) -> None:
    case = cases.call(operator)
    result = cases.screen(operator, case["id"], MINOR_SEX)
    assert result["level"] == "high_indicators"
    assert result["priority"] == "urgent"
    assert result["score"] > 0
    fbi = result["recommended_referrals"][0]
    assert fbi == {
        **fbi,
        "agency": "FBI",
        "mandatory": True,
        "deadline_hours": 24,
        "rule": "minor_commercial_sex",
        "reason": "FBI: minor in commercial sex — mandatory, 24 h",
    }
    assert result["state"] == "screening"


def test_submit_and_approve_queue_the_referrals_with_outbox_rows(
    cases, operator, supervisor, db_session
) -> None:
    case = cases.call(operator)
    cases.screen(operator, case["id"], MINOR_SEX)
    submitted = cases.event(operator, case["id"], "submit_for_approval")
    assert submitted["state"] == "pending_approval"
    assert [(r["agency"], r["state"]) for r in submitted["referrals"]] == [("FBI", "pending")]
    approved = cases.event(supervisor, case["id"], "approve", reason="ok")
    assert approved["state"] == "referred"
    referral = approved["referrals"][0]
    assert referral["state"] == "queued" and referral["rule"] == "minor_commercial_sex"
    assert referral["legal_basis"]["type"] == "mandatory"
    rows = db_session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "deliver_referral"))
    assert [r.ref_id for r in rows] == [referral["id"]]


def test_operator_may_not_approve(cases, operator) -> None:
    case = cases.call(operator)
    cases.screen(operator, case["id"], MINOR_SEX)
    cases.event(operator, case["id"], "submit_for_approval")
    answer = cases.event(operator, case["id"], "approve", status=403)
    assert "supervisor" in answer["error"]


def test_event_the_state_does_not_allow_is_409_listing_the_allowed(cases, operator) -> None:
    case = cases.call(operator)
    answer = cases.event(operator, case["id"], "approve", status=409)
    assert answer["field"] == "event"
    assert answer["allowed"] == [
        "start_screening", "escalate", "close", "acknowledge_emergency"
    ]


def test_stale_version_is_409(cases, operator) -> None:
    case = cases.call(operator)
    cases.event(operator, case["id"], "start_screening", version=case["version"])
    answer = cases.event(operator, case["id"], "request_info", status=409,
                         version=case["version"], reason="where?")
    assert answer["field"] == "version"


def test_agency_gets_404_on_staff_case_endpoints(cases, operator, make_actor, client) -> None:
    case = cases.call(operator)
    fbi = make_actor("agency", "FBI")
    assert client.get(f"/api/v1/cases/{case['id']}", headers=fbi.headers).status_code == 404
    assert client.get("/api/v1/cases", headers=fbi.headers).status_code == 404
    put = client.put(f"/api/v1/cases/{case['id']}/screening", json={}, headers=fbi.headers)
    assert put.status_code == 404
    event = client.post(f"/api/v1/cases/{case['id']}/events",
                        json={"event": "close", "version": 1}, headers=fbi.headers)
    assert event.status_code == 404
