"""The case machine through the API: info loop, reject, close, reopen, consent, replies."""

from __future__ import annotations

from sqlalchemy import select

from workflows.models import Case
from workflows.outbox import OutboxMessage

ADULT_SEX = {
    "facts": {"victim_age": 24, "trafficking_type": "sex", "force_fraud_coercion": True},
    "consent": {"law_enforcement": True, "services": True, "callback": True},
}


def test_awaiting_info_loop_then_submit_reject_and_resubmit(cases, operator, supervisor) -> None:
    case_id = cases.call(operator)["id"]
    cases.screen(operator, case_id, ADULT_SEX)
    asked = cases.event(operator, case_id, "request_info", reason="need the address")
    assert asked["state"] == "awaiting_info"
    assert cases.event(operator, case_id, "info_received")["state"] == "screening"
    cases.event(operator, case_id, "submit_for_approval")
    missing = cases.event(supervisor, case_id, "reject", status=422)
    assert missing["field"] == "reason"
    rejected = cases.event(supervisor, case_id, "reject", reason="ask about the employer")
    assert rejected["state"] == "screening"
    assert [r["state"] for r in rejected["referrals"]] == ["withdrawn"]
    again = cases.event(operator, case_id, "submit_for_approval")
    assert sorted(r["state"] for r in again["referrals"]) == ["pending", "withdrawn"]
    assert "approve" in again["allowed_events"]


def test_close_needs_a_resolution_code_and_reopen_a_reason(cases, operator, supervisor) -> None:
    case_id = cases.call(operator)["id"]
    missing = cases.event(operator, case_id, "close", status=422)
    assert missing["field"] == "resolution_code"
    closed = cases.event(operator, case_id, "close", resolution_code="duplicate")
    assert closed["resolution_code"] == "duplicate" and closed["allowed_events"] == ["reopen"]
    assert cases.event(operator, case_id, "reopen", status=403, reason="x")["error"]
    reopened = cases.event(supervisor, case_id, "reopen", reason="new call about it")
    assert reopened["state"] == "screening" and reopened["resolution_code"] is None
    assert reopened["deadline"] is not None


def test_unknown_event_is_422_naming_event(cases, operator) -> None:
    case_id = cases.call(operator)["id"]
    assert cases.event(operator, case_id, "teleport", status=422)["field"] == "event"


def test_expired_consent_stops_approval(cases, operator, supervisor, db_session) -> None:
    case_id = cases.call(operator)["id"]
    cases.screen(operator, case_id, ADULT_SEX)
    cases.event(operator, case_id, "submit_for_approval")
    case = db_session.get(Case, case_id)
    screening = dict(case.screening)
    consent = dict(screening["consent"])
    consent["law_enforcement"] = {**consent["law_enforcement"],
                                  "expires_at": "2020-01-01T00:00:00+00:00"}
    screening["consent"] = consent
    case.screening = screening
    db_session.commit()
    refused = cases.event(supervisor, case_id, "approve", status=409, reason="ok")
    assert refused["field"] == "consent"
    shown = cases.show(supervisor, case_id)
    assert shown["state"] == "pending_approval"
    assert [r["state"] for r in shown["referrals"]] == ["pending"]


def test_reply_to_tipster_is_read_back_and_texted_only_with_callback_consent(
    cases, client, operator, db_session
) -> None:
    tip = client.post("/api/v1/tips", json={"narrative": "n"}).get_json()
    case_id = cases.case_id_of(tip["reference"])
    reply = client.post(f"/api/v1/cases/{case_id}/messages", json={"body": "Thank you."},
                        headers=operator.headers)
    assert reply.status_code == 201, reply.get_json()
    assert _tipster_notes(db_session) == []
    thread = client.get(f"/api/v1/tips/{tip['reference']}",
                        headers={"X-Tip-Passphrase": tip["passphrase"]}).get_json()
    assert [(m["direction"], m["body"]) for m in thread["messages"]] == [("out", "Thank you.")]
    cases.screen(operator, case_id, {"consent": {"callback": True}})
    second = client.post(f"/api/v1/cases/{case_id}/messages", json={"body": "Are you safe?"},
                         headers=operator.headers).get_json()
    assert _tipster_notes(db_session) == [
        {"kind": "tipster_reply", "case_id": case_id, "referral_id": None,
         "message_id": second["id"]}]


def _tipster_notes(session) -> list[dict]:  # type: ignore[no-untyped-def]
    rows = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "notify")).all()
    return [r.payload for r in rows if r.payload.get("kind") == "tipster_reply"]


def test_emergency_from_pending_approval_by_an_operator(cases, operator) -> None:
    case_id = cases.call(operator)["id"]
    cases.screen(operator, case_id, ADULT_SEX)
    cases.event(operator, case_id, "submit_for_approval")
    escalated = cases.event(operator, case_id, "escalate", reason="he is back with a gun")
    states = sorted((r["agency"], r["state"]) for r in escalated["referrals"])
    assert states == [("FBI", "queued"), ("FBI", "withdrawn")]
    assert escalated["priority"] == "emergency"
