"""Emergencies: 15 minutes from the signal, first in every queue, re-paged until a
supervisor acknowledges (issue 10). Through the API, the IVR and the SMS webhook."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from referrals.notifications import check_deadlines
from tests.intake.test_sms import Texter
from tests.intake.twilio_caller import Call
from workflows.db import transaction, utcnow
from workflows.deadlines import aware, refresh_case_deadline
from workflows.models import AuditEvent, Case
from workflows.outbox import OutboxMessage

NO_CONSENT = {"law_enforcement": None, "services": None, "callback": None}


def _pages(db_session: Any, case_id: int) -> list[dict[str, Any]]:
    db_session.expire_all()
    rows = db_session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "notify").order_by(OutboxMessage.id)
    ).all()
    return [
        r.payload for r in rows
        if r.payload["case_id"] == case_id and r.payload["kind"].startswith("emergency")
    ]


def _ivr_emergency(client: Any, db_session: Any) -> Case:
    call = Call(client)
    call.dial_in()
    call.press("1")
    call.press("1")  # "if you are in immediate danger, press 1"
    db_session.expire_all()
    return db_session.scalars(select(Case).order_by(Case.id.desc())).first()


def _back(db_session: Any, case_id: int, minutes: float) -> None:
    """As if ``minutes`` had passed since the emergency signal."""
    db_session.expire_all()
    delta = timedelta(minutes=minutes)
    with transaction(db_session):
        case = db_session.get(Case, case_id)
        case.emergency_at = aware(case.emergency_at) - delta
        refresh_case_deadline(case)


def test_an_ivr_emergency_is_due_15_minutes_after_the_signal_and_leads_the_queue(
    client, cases, operator, supervisor, db_session
) -> None:
    late_routine = cases.call(operator)["id"]
    urgent = cases.call(operator)["id"]
    cases.screen(operator, urgent, {"facts": {"victim_age": 16, "commercial_sex": True},
                                    "consent": NO_CONSENT})
    with transaction(db_session):
        db_session.get(Case, late_routine).deadline = utcnow() - timedelta(hours=3)

    before = utcnow()
    case = _ivr_emergency(client, db_session)
    assert before <= aware(case.emergency_at) <= utcnow()
    assert aware(case.deadline) == aware(case.emergency_at) + timedelta(minutes=15)
    assert case.priority == "emergency" and case.queue_rank == 0

    listed = client.get("/api/v1/cases", headers=supervisor.headers).get_json()["items"]
    assert [c["id"] for c in listed][:3] == [case.id, late_routine, urgent]
    assert listed[0]["emergency_at"] is not None and listed[0]["deadline"] is not None
    page = client.get("/api/v1/cases?limit=1", headers=supervisor.headers).get_json()
    second = client.get(f"/api/v1/cases?limit=1&cursor={page['next']}",
                        headers=supervisor.headers).get_json()
    assert [c["id"] for c in page["items"] + second["items"]] == [case.id, late_routine]
    assert _pages(db_session, case.id) == [
        {"kind": "emergency_page", "case_id": case.id, "referral_id": None, "message_id": None}
    ]


def test_screened_imminent_danger_starts_the_clock_once_and_pages_once(
    cases, operator, db_session
) -> None:
    case_id = cases.call(operator)["id"]
    answer = cases.screen(operator, case_id, {"facts": {"imminent_danger": True},
                                              "consent": NO_CONSENT})
    assert answer["priority"] == "emergency" and answer["recommended_action"] == "escalate"
    started = aware(db_session.get(Case, case_id).emergency_at)
    assert started is not None
    cases.screen(operator, case_id, {"facts": {"imminent_danger": True, "victim_age": 30},
                                     "consent": NO_CONSENT})
    escalated = cases.event(operator, case_id, "escalate", reason="caller in danger")
    db_session.expire_all()
    assert aware(db_session.get(Case, case_id).emergency_at) == started  # never restarts
    assert len(_pages(db_session, case_id)) == 1
    [fbi] = escalated["referrals"]
    assert fbi["agency"] == "FBI" and fbi["state"] == "queued"
    assert fbi["send_by"] is not None
    # Its page and its delivery go in the emergency lane, ahead of any backlog.
    work = db_session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    page = [m for m in work if m.kind == "notify" and m.payload["case_id"] == case_id]
    delivery = [m for m in work if m.kind == "deliver_referral" and m.ref_id == fbi["id"]]
    assert [m.priority_rank for m in page + delivery] == [0, 0]


def test_only_a_supervisor_acknowledges_once_and_it_is_audited(
    client, cases, operator, supervisor, db_session
) -> None:
    case = _ivr_emergency(client, db_session)
    quiet = cases.call(operator)["id"]
    assert cases.event(operator, case.id, "acknowledge_emergency", status=403)["error"]
    assert cases.event(supervisor, quiet, "acknowledge_emergency", status=409)["field"] == (
        "event")
    done = cases.event(supervisor, case.id, "acknowledge_emergency")
    assert done["emergency_acknowledged_by"] == supervisor.username
    assert done["emergency_acknowledged_at"] is not None
    again = cases.event(supervisor, case.id, "acknowledge_emergency", status=409)
    assert "no unacknowledged emergency" in again["error"]
    actors = db_session.scalars(select(AuditEvent.actor).where(
        AuditEvent.case_id == case.id, AuditEvent.action == "acknowledge_emergency")).all()
    assert actors == [supervisor.username]


def test_re_pages_at_5_and_10_minutes_until_acknowledged_then_late(
    client, cases, supervisor, db_session
) -> None:
    case = _ivr_emergency(client, db_session)
    check_deadlines(db_session)
    assert [p["kind"] for p in _pages(db_session, case.id)] == ["emergency_page"]

    _back(db_session, case.id, 5.5)
    check_deadlines(db_session)
    check_deadlines(db_session)  # a second watcher run pages nobody twice
    assert [p.get("level") for p in _pages(db_session, case.id)] == [None, 1]

    _back(db_session, case.id, 5)
    check_deadlines(db_session)
    assert [p.get("level") for p in _pages(db_session, case.id)] == [None, 1, 2]

    cases.event(supervisor, case.id, "acknowledge_emergency")
    _back(db_session, case.id, 10)  # 20.5 minutes: late, and acknowledged
    check_deadlines(db_session)
    assert len(_pages(db_session, case.id)) == 3  # no re-page after the acknowledgement
    late = client.get("/api/v1/cases?overdue=true", headers=supervisor.headers).get_json()
    assert late["items"][0]["id"] == case.id and late["items"][0]["overdue"] is True
    page = client.get("/supervisor/", headers=supervisor.headers)
    assert page.status_code in (200, 302)  # the page itself is checked in tests/intake/staff


def test_an_emergency_nobody_acknowledges_is_never_re_paged_after_closing(
    client, cases, supervisor, db_session
) -> None:
    case = _ivr_emergency(client, db_session)
    cases.event(supervisor, case.id, "close", resolution_code="duplicate", reason="same call")
    _back(db_session, case.id, 11)
    check_deadlines(db_session)
    assert len(_pages(db_session, case.id)) == 1


def test_sms_answers_become_screening_facts_and_not_safe_is_an_emergency(
    client, cases, operator, db_session
) -> None:
    texter = Texter(client)
    texter.send("hola, necesito ayuda")
    texter.send("Houston")
    texter.send("SI")  # someone under 18
    before = utcnow()
    reply = texter.send("NO")  # not safe now
    assert reply is not None and "911" in reply
    db_session.expire_all()
    case = db_session.scalars(select(Case)).one()
    assert case.signal_facts == {"victim_minor": True, "imminent_danger": True}
    assert aware(case.emergency_at) >= before and case.queue_rank == 0
    assert aware(case.deadline) == aware(case.emergency_at) + timedelta(minutes=15)

    screened = cases.screen(operator, case.id, {"facts": {}, "consent": NO_CONSENT})
    assert "imminent_danger" in screened["triggers"]
    shown = cases.show(operator, case.id)
    assert shown["screening"]["facts"]["victim_minor"] is True
    # Staff who spoke with the texter may correct what the text said.
    corrected = cases.screen(operator, case.id, {
        "facts": {"imminent_danger": False, "victim_minor": False}, "consent": NO_CONSENT})
    assert corrected["priority"] != "emergency" and corrected["triggers"] == []


def test_an_sms_no_to_under_18_records_victim_minor_false(client, db_session) -> None:
    texter = Texter(client, number="+12025550178")
    texter.send("I want to report something")
    texter.send("Dallas")
    texter.send("NO")
    texter.send("YES")  # safe now: no emergency
    db_session.expire_all()
    case = db_session.scalars(select(Case)).one()
    assert case.signal_facts == {"victim_minor": False}
    assert case.emergency_at is None and case.queue_rank == 1
