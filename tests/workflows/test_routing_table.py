"""Every default row of SPEC.md's routing table, driven through the API from intake
(an operator's call log or an anonymous web tip) to the referrals it must produce."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from workflows.outbox import OutboxMessage

NO = {"law_enforcement": False, "services": False, "callback": False}
YES = {"law_enforcement": True, "services": True, "callback": False}

# (name, intake, screening body, expected referrals: (agency, mandatory, hours, rule, basis))
ROWS = [
    (
        "minor in commercial sex: FBI, mandatory, 24 h, no means needed",
        "call",
        {"facts": {"victim_age": 15, "commercial_sex": True}, "consent": NO},
        [("FBI", True, 24, "minor_commercial_sex", "mandatory")],
    ),
    (
        "foreign national minor: HHS and ICE, mandatory, 24 h",
        "call",
        {"facts": {"victim_minor": True, "foreign_national": True, "trafficking_type": "labor"},
         "indicators": ["forced_to_work"], "consent": NO},
        [("HHS", True, 24, "foreign_national_minor", "mandatory"),
         ("ICE", True, 24, "foreign_national_minor", "mandatory")],
    ),
    (
        "foreign national adult victim: HHS with consent, 72 h (law enforcement refused)",
        "call",
        {"facts": {"victim_age": 34, "foreign_national": True, "force_fraud_coercion": True,
                   "trafficking_type": "labor"},
         "consent": {"law_enforcement": False, "services": True, "callback": None}},
        [("HHS", False, 72, "foreign_national_adult_victim", "consent")],
    ),
    (
        "confiscated passport, adult victim: ICE with consent, 72 h",
        "call",
        {"facts": {"victim_age": 40, "documents_confiscated": True}, "consent": YES},
        [("ICE", False, 72, "cross_border_or_documents", "consent")],
    ),
    (
        "cross-border movement from a third-party web tip: ICE, 72 h",
        "tip",
        {"facts": {"cross_border": True, "caller_type": "community_member"}},
        [("ICE", False, 72, "cross_border_or_documents", "third_party_tip")],
    ),
    (
        "adult sex trafficking with force, fraud or coercion: FBI with consent, 72 h",
        "call",
        {"facts": {"victim_age": 22, "trafficking_type": "sex", "force_fraud_coercion": True},
         "indicators": ["quota_for_sex_acts"], "consent": YES},
        [("FBI", False, 72, "adult_sex_trafficking", "consent")],
    ),
    (
        "adult labor trafficking with force, fraud or coercion: ICE with consent, 72 h",
        "call",
        {"facts": {"victim_age": 45, "trafficking_type": "labor", "venue": "agriculture"},
         "indicators": ["debt_to_employer", "forced_to_work", "lives_at_workplace"],
         "consent": YES},
        [("ICE", False, 72, "adult_labor_trafficking", "consent")],
    ),
    (
        "labor exploitation short of trafficking: DOL Wage and Hour with consent, 7 days",
        "call",
        {"facts": {"victim_age": 30, "wage_violations": True, "venue": "restaurants_food_service"},
         "consent": YES},
        [("DOL_WHD", False, 168, "labor_exploitation", "consent")],
    ),
]


@pytest.mark.parametrize(("name", "intake", "body", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_routing_row_from_intake_to_referrals(
    name, intake, body, expected, cases, operator, supervisor, with_dol, db_session
) -> None:
    case_id = cases.call(operator)["id"] if intake == "call" else cases.tip()
    screened = cases.screen(operator, case_id, body)
    recommended = [
        (r["agency"], r["mandatory"], r["deadline_hours"], r["rule"], r["legal_basis"]["type"])
        for r in screened["recommended_referrals"]
    ]
    assert sorted(recommended) == sorted(expected)
    for r in screened["recommended_referrals"]:
        assert r["reason"].startswith(f"{r['agency']}: ")
    cases.event(operator, case_id, "submit_for_approval")
    before = datetime.now(UTC)
    approved = cases.event(supervisor, case_id, "approve", reason="reviewed")
    assert approved["state"] == "referred"
    got = sorted((r["agency"], r["mandatory"], r["rule"], r["state"])
                 for r in approved["referrals"])
    assert got == sorted((a, m, rule, "queued") for a, m, _h, rule, _b in expected)
    hours = {a: h for a, _m, h, _r, _b in expected}
    for referral in approved["referrals"]:
        deadline = datetime.fromisoformat(referral["deadline"]).replace(tzinfo=UTC)
        due = timedelta(hours=hours[referral["agency"]])
        assert before - timedelta(minutes=5) < deadline - due <= before
        basis = referral["legal_basis"]
        assert basis["approved_by"] == supervisor.username
        if basis["type"] == "consent":
            assert basis["recorded_by"] == operator.username and basis["recorded_at"]
    queued = db_session.scalars(
        select(OutboxMessage.ref_id).where(OutboxMessage.kind == "deliver_referral")
    ).all()
    assert sorted(queued) == sorted(r["id"] for r in approved["referrals"])


def test_imminent_danger_goes_to_fbi_in_15_minutes_without_approval(
    cases, operator, db_session
) -> None:
    case_id = cases.call(operator)["id"]
    screened = cases.screen(operator, case_id, {"facts": {"imminent_danger": True}})
    assert screened["priority"] == "emergency"
    assert screened["recommended_action"] == "escalate"
    assert [(r["agency"], r["mandatory"], r["deadline_hours"]) for r in
            screened["recommended_referrals"]] == [("FBI", True, 0.25)]
    escalated = cases.event(operator, case_id, "escalate", reason="caller locked in a van")
    assert escalated["state"] == "referred" and escalated["priority"] == "emergency"
    [fbi] = escalated["referrals"]
    assert (fbi["agency"], fbi["state"], fbi["rule"]) == ("FBI", "queued", "imminent_danger")
    assert fbi["reason"] == "FBI: imminent danger, supervisor paged — mandatory, 15 min"
    deadline = datetime.fromisoformat(escalated["deadline"]).replace(tzinfo=UTC)
    assert deadline <= datetime.now(UTC) + timedelta(minutes=15)
    kinds = [(m.kind, (m.payload or {}).get("kind")) for m in db_session.scalars(
        select(OutboxMessage).order_by(OutboxMessage.id))]
    assert ("notify", "emergency_page") in kinds and ("deliver_referral", None) in kinds
    assert not any(e["action"] == "approve" for e in escalated["events"])


def test_escalate_straight_from_received_pages_and_refers_fbi(cases, operator) -> None:
    case_id = cases.tip()
    escalated = cases.event(operator, case_id, "escalate", reason="tipster says: now")
    assert [(r["agency"], r["state"]) for r in escalated["referrals"]] == [("FBI", "queued")]


def test_no_indicators_closes_as_information_only(cases, operator) -> None:
    case_id = cases.call(operator, caller_type="other")["id"]
    screened = cases.screen(operator, case_id, {"facts": {"request_type": "information"}})
    assert screened["level"] == "none" and screened["recommended_referrals"] == []
    assert screened["recommended_action"] == "close"
    assert screened["close_as"] == "information_only"
    refused = cases.event(operator, case_id, "submit_for_approval", status=409)
    assert "close" in refused["error"]
    closed = cases.event(operator, case_id, "close", resolution_code="information_only")
    assert closed["state"] == "closed" and closed["referrals"] == []
    assert closed["deadline"] is None


def test_dol_is_skipped_when_not_configured(cases, operator) -> None:
    case_id = cases.call(operator)["id"]
    screened = cases.screen(operator, case_id, {"facts": {"wage_violations": True},
                                                "consent": YES})
    assert screened["recommended_referrals"] == []
    assert screened["level"] == "high_risk"


def test_adult_victims_no_keeps_law_enforcement_out(cases, operator) -> None:
    case_id = cases.call(operator)["id"]
    body = {"facts": {"victim_age": 25, "trafficking_type": "sex", "force_fraud_coercion": True,
                      "documents_confiscated": True}, "consent": NO}
    screened = cases.screen(operator, case_id, body)
    assert screened["recommended_referrals"] == []
    assert {w["agency"] for w in screened["withheld_referrals"]} == {"FBI", "ICE"}
    assert {w["consent"] for w in screened["withheld_referrals"]} == {"refused"}
