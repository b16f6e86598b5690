"""The emergency path walked end to end: an IVR call and an SMS conversation, a real
``flask --app wsgi worker`` (relay, RQ, deadline watch) paging through the twilio SDK
to the local fake Twilio, re-pages at 5 and 10 minutes, then the acknowledgement.

Time is simulated the only way a real worker can see it: the case's clock (its signal
time and deadline) is moved back in the database, as if the minutes had passed.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from referrals.models import DeadlineBreach
from tests.conftest import Actor
from tests.intake.test_sms import Texter
from tests.intake.twilio_caller import Call
from tests.referrals.conftest import ONCALL_PHONE, TwilioServer, wait_until
from workflows.db import transaction
from workflows.deadlines import aware, refresh_case_deadline
from workflows.models import AuditEvent, Case, User

pytestmark = pytest.mark.slow

SUPERVISOR_PHONE = "+12025550122"


def _shift_clock(app: Any, case_id: int, minutes: float) -> None:
    """Move the case's emergency clock back, as if ``minutes`` had passed."""
    delta = timedelta(minutes=minutes)
    with app.extensions["runtime"].session() as session, transaction(session):
        case = session.get(Case, case_id)
        case.emergency_at = aware(case.emergency_at) - delta
        case.clocks = {
            rule: (datetime.fromisoformat(at) - delta).isoformat()
            for rule, at in (case.clocks or {}).items()
        }
        refresh_case_deadline(case)


def _case(app: Any, case_id: int) -> Case:
    with app.extensions["runtime"].session() as session:
        case = session.get(Case, case_id)
        session.expunge(case)
        return case


def _pages(twilio: TwilioServer, ref: str, start: int = 0) -> list[tuple[str, str]]:
    """(to, body) of the texts about this case, from the ``start``-th on."""
    return [(m["To"], m["Body"]) for m in twilio.sent if ref in m["Body"]][start:]


def _supervisor_with_phone(app: Any, supervisor: Actor) -> None:
    with app.extensions["runtime"].session() as session, transaction(session):
        user = session.scalar(select(User).where(User.username == supervisor.username))
        user.phone = SUPERVISOR_PHONE


def _walk_repages(
    app: Any, client: Any, supervisor: Actor, twilio: TwilioServer, case_id: int,
    log: list[str], signal_time: float,
) -> None:
    """From the first page to the acknowledgement: 5 min on-call, 10 min everyone."""
    case = _case(app, case_id)
    ref = case.reference
    wait_until(lambda: len(_pages(twilio, ref)) >= 1, 30, "the first emergency page")
    first = _pages(twilio, ref)
    assert first == [(ONCALL_PHONE, first[0][1])] and first[0][1].startswith("EMERGENCY")

    assert aware(case.deadline) == aware(case.emergency_at) + timedelta(minutes=15)
    queue = client.get("/api/v1/cases", headers=supervisor.headers).get_json()["items"]
    assert queue[0]["id"] == case_id, [(c["id"], c["priority"], c["deadline"]) for c in queue]
    log.append(f"case {case.reference}: emergency at {case.emergency_at.isoformat()}, "
               f"deadline {case.deadline.isoformat()}, queue position 1 of {len(queue)}")

    shifts = [(signal_time, 0.0)]  # (wall time, minutes simulated so far)
    _shift_clock(app, case_id, 5.5)
    shifts.append((time.time(), 5.5))
    wait_until(lambda: len(_pages(twilio, ref)) >= 2, 30, "the 5-minute re-page")
    time.sleep(2)  # a few more deadline-watch runs: still one re-page
    [(to, body)] = _pages(twilio, ref, 1)
    assert to == ONCALL_PHONE and "no one has acknowledged for 5 min" in body

    _shift_clock(app, case_id, 5)  # now 10.5 minutes since the signal
    shifts.append((time.time(), 10.5))
    wait_until(lambda: len(_pages(twilio, ref)) >= 4, 30,
               f"the 10-minute re-page to everyone: {_pages(twilio, ref)}")
    time.sleep(2)
    tenth = _pages(twilio, ref, 2)
    assert sorted(to for to, _ in tenth) == sorted([ONCALL_PHONE, SUPERVISOR_PHONE])
    assert all("no one has acknowledged for 10 min" in body for _, body in tenth)

    for at, message in zip(twilio.sent_times, twilio.sent, strict=True):
        if ref in message["Body"]:
            simulated = max(m for t, m in shifts if t <= at) * 60 + at - signal_time
            log.append(f"T+{simulated / 60:5.2f} min (case clock; {at - signal_time:4.1f} s "
                       f"wall) to {message['To']}: {message['Body']}")

    version = client.get(f"/api/v1/cases/{case_id}", headers=supervisor.headers).get_json()[
        "version"]
    acked = client.post(f"/api/v1/cases/{case_id}/events", headers=supervisor.headers,
                        json={"event": "acknowledge_emergency", "version": version})
    assert acked.status_code == 200, acked.get_json()
    body = acked.get_json()
    assert body["emergency_acknowledged_by"] == supervisor.username
    [ack] = [e for e in body["events"] if e["action"] == "acknowledge_emergency"]
    assert ack["actor"] == supervisor.username
    log.append(f"acknowledged by {supervisor.username} at {body['emergency_acknowledged_at']}")

    _shift_clock(app, case_id, 6)  # 16.5 minutes: past the deadline, acknowledged
    wait_until(lambda: _breached(app, case_id), 30, "the 15-minute deadline breach")
    wait_until(lambda: _pages(twilio, ref, 4), 30, "the deadline-passed page")
    time.sleep(2)
    late = [b for _, b in _pages(twilio, ref, 4)]
    assert all("no one has acknowledged" not in b for b in late), late  # re-pages stopped
    assert any(b.startswith("Deadline passed") for b in late), late
    listed = client.get("/api/v1/cases?overdue=true", headers=supervisor.headers).get_json()
    assert next(c["id"] for c in listed["items"]) == case_id  # counted late, still first
    log.append("after 15 min: " + "; ".join(late))


def _breached(app: Any, case_id: int) -> bool:
    with app.extensions["runtime"].session() as session:
        return session.scalar(select(DeadlineBreach.id).where(
            DeadlineBreach.subject == "case", DeadlineBreach.subject_id == case_id)) is not None


def _worker(start_worker: Any, twilio: TwilioServer) -> Any:
    return start_worker(TWILIO_API_BASE_URL=twilio.url, DEADLINE_CHECK_SECONDS="1")


def test_an_ivr_emergency_call_is_paged_re_paged_and_acknowledged(
    app, client, operator, supervisor, twilio_api, start_worker, capsys
) -> None:
    _supervisor_with_phone(app, supervisor)
    routine = client.post("/api/v1/calls", headers=operator.headers, json={
        "caller_type": "community_member", "narrative": "n", "location": "Austin"}).get_json()
    with app.extensions["runtime"].session() as session, transaction(session):
        # A routine case already late: an open emergency still leads the queue.
        session.get(Case, routine["id"]).deadline = datetime.now().astimezone() - timedelta(
            hours=1)
    worker = _worker(start_worker, twilio_api)

    signal_time = time.time()
    call = Call(client)
    call.dial_in()
    call.press("1")  # English
    said = " ".join(text for _, text in __import__(
        "tests.intake.twilio_caller", fromlist=["spoken"]).spoken(call.press("1")))
    assert "9 1 1" in said
    with app.extensions["runtime"].session() as session:
        case_id = session.scalar(select(Case.id).where(Case.id != routine["id"]))
        events = session.scalars(select(AuditEvent.action).where(
            AuditEvent.case_id == case_id)).all()
    assert "emergency" in events

    log: list[str] = ["IVR emergency call:"]
    try:
        _walk_repages(app, client, supervisor, twilio_api, case_id, log, signal_time)
    finally:
        print("\n".join(log))
    assert "Traceback" not in worker.log()


def test_an_sms_not_safe_answer_is_an_emergency_paged_by_the_worker(
    app, client, supervisor, twilio_api, start_worker
) -> None:
    _supervisor_with_phone(app, supervisor)
    worker = _worker(start_worker, twilio_api)
    texter = Texter(client)
    signal_time = time.time()
    texter.send("HELP ME please")
    texter.send("Motel 6 on Route 9, Houston")
    texter.send("YES")  # someone under 18
    reply = texter.send("NO")  # not safe now
    assert reply is not None and "911" in reply
    with app.extensions["runtime"].session() as session:
        case = session.scalars(select(Case)).one()
        assert case.signal_facts == {"victim_minor": True, "imminent_danger": True}
        case_id = case.id
    log: list[str] = ["SMS 'not safe' conversation:"]
    try:
        _walk_repages(app, client, supervisor, twilio_api, case_id, log, signal_time)
    finally:
        print("\n".join(log))
    # The texter was never paged: pages go to supervisors only.
    assert texter.number not in {m["To"] for m in twilio_api.sent}
    assert "Traceback" not in worker.log()
