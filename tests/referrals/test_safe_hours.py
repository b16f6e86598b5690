"""A tipster's safe hours and announce-only choice govern every text to their phone
(issue 11, item 10): a reply outside the window waits in the outbox for its opening, and
an announce-only tipster's phone never receives the hotline's words.

Time is driven through the clock every module reads (``workflows.db.set_clock``); texts
go through the real twilio SDK to the local Twilio stand-in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from intake.models import Signal
from intake.replies import reply_to_tipster
from referrals.embedded import run_embedded_once
from referrals.models import Notification
from referrals.relay import claim_due
from referrals.tasks import execute_outbox_message, run_claims_in_process
from tests.referrals.conftest import wait_until
from workflows.casework import record_screening
from workflows.db import set_clock, transaction
from workflows.models import Case, User
from workflows.outbox import OutboxMessage
from workflows.safe_hours import SafeWindow

PHONE = "+12025550171"
CHICAGO_EVENINGS = {"start": "18:00", "end": "22:00", "timezone": "America/Chicago"}
# 2026-07-01 10:00 in Chicago (CDT, UTC-5): outside 18:00-22:00, which opens at 23:00 UTC.
MORNING = datetime(2026, 7, 1, 15, 0, tzinfo=UTC)
OPENING = datetime(2026, 7, 1, 23, 0, tzinfo=UTC)
REPLY = "Is he still keeping your passport? Call us when you can."


class Clock:
    """A fixed now that a test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    """Freeze ``utcnow`` (every module's clock) at MORNING; the real time again after."""
    fixed = Clock(MORNING)
    set_clock(fixed)
    yield fixed
    set_clock(None)


def _tip(client: Any, app: Any, operator: Any, safe_contact: dict[str, Any] | None,
         language: str = "en") -> dict[str, Any]:
    """A web tip with a call-back number and these safe-contact wishes, screened with
    call-back consent; returns the case id, reference and passphrase."""
    answer = client.post("/api/v1/tips", json={
        "narrative": "My employer keeps my passport and I work every day at the farm.",
        "anonymous": False, "contact": {"phone": PHONE}, "language": language,
        "safe_contact": safe_contact,
    })
    assert answer.status_code == 201, answer.get_json()
    runtime = app.extensions["runtime"]
    with runtime.session() as session, transaction(session):
        case = session.scalar(select(Case).where(Case.reference == answer.get_json()["reference"]))
        op = session.scalar(select(User).where(User.username == operator.username))
        record_screening(session, case.id, op, {
            "facts": {}, "indicators": [],
            "consent": {"law_enforcement": None, "services": None, "callback": True},
        }, catalogs=runtime.catalogs)
    return {"case_id": case.id, **answer.get_json()}


def _reply(app: Any, operator: Any, case_id: int, body: str = REPLY) -> None:
    """The hotline's reply, through the service the case page and API call."""
    with app.extensions["runtime"].session() as session, transaction(session):
        op = session.scalar(select(User).where(User.username == operator.username))
        reply_to_tipster(session, case_id, op, body)


@pytest.fixture
def run_worker(delivery_runtime: Callable[..., Any], twilio_api: Any) -> Callable[[], int]:
    """One pass of the embedded worker, texting through the local Twilio."""
    runtime = delivery_runtime(twilio_api_base_url=twilio_api.url)
    return lambda: run_embedded_once(runtime, check_deadlines=False)


def _notification(db_session: Any) -> Notification:
    db_session.expire_all()
    return db_session.scalars(select(Notification)).one()


def _outbox(db_session: Any) -> OutboxMessage:
    db_session.expire_all()
    return db_session.scalars(select(OutboxMessage)).one()


def test_a_reply_outside_safe_hours_waits_and_goes_at_the_opening(
    app, client, operator, twilio_api, run_worker, clock, db_session, logged_in
) -> None:
    tip = _tip(client, app, operator, {"safe_window": CHICAGO_EVENINGS})
    _reply(app, operator, tip["case_id"])

    assert run_worker() == 1
    assert twilio_api.sent == []
    held = _notification(db_session)
    assert held.state == "held" and held.held_until == OPENING
    outbox = _outbox(db_session)
    assert outbox.done_at is None and outbox.available_at == OPENING  # no worker waits
    page = logged_in("operator").get(f"/cases/{tip['case_id']}").get_data(as_text=True)
    assert "held until 18:00 America/Chicago (safe hours)" in page

    clock.now = OPENING - timedelta(seconds=1)
    assert run_worker() == 0  # not due yet: nothing is even dispatched
    assert twilio_api.sent == []

    clock.now = OPENING
    assert run_worker() == 1
    [text] = twilio_api.sent
    assert text["To"] == PHONE and REPLY in text["Body"]
    assert _notification(db_session).state == "sent"
    assert _outbox(db_session).done_at is not None
    clock.now = OPENING + timedelta(days=1)
    assert run_worker() == 0 and len(twilio_api.sent) == 1


@pytest.mark.parametrize(("local", "inside"), [
    (time(21, 59), False), (time(22, 0), True), (time(23, 30), True), (time(0, 0), True),
    (time(5, 59), True), (time(6, 0), False), (time(12, 0), False),
])
def test_a_window_crossing_midnight_holds_from_its_end_to_its_start(local, inside) -> None:
    window = SafeWindow(time(22, 0), time(6, 0), ZoneInfo("America/New_York"))
    now = datetime.combine(datetime(2026, 1, 15).date(), local, window.zone)
    assert window.contains(now) is inside
    if not inside:
        opening = window.next_opening(now)
        assert opening.astimezone(window.zone) == datetime(2026, 1, 15, 22, 0,
                                                           tzinfo=window.zone)


def test_a_window_opening_follows_daylight_saving_time() -> None:
    window = SafeWindow(time(18, 0), time(22, 0), ZoneInfo("America/Chicago"))
    # 2026-03-08: clocks go forward in Chicago; 18:00 is 23:00 UTC, not 00:00.
    now = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    assert window.next_opening(now) == datetime(2026, 3, 8, 23, 0, tzinfo=UTC)


def test_a_reply_inside_a_window_crossing_midnight_goes_at_once_and_after_it_waits(
    app, client, operator, twilio_api, run_worker, clock, db_session
) -> None:
    night = {"start": "22:00", "end": "06:00", "timezone": "America/New_York"}
    tip = _tip(client, app, operator, {"safe_window": night})
    clock.now = datetime(2026, 7, 2, 6, 30, tzinfo=UTC)  # 02:30 in New York (EDT)
    _reply(app, operator, tip["case_id"], "First reply")
    assert run_worker() == 1
    assert [m["Body"].split("\n")[0] for m in twilio_api.sent] == ["First reply"]

    clock.now = datetime(2026, 7, 2, 10, 0, tzinfo=UTC)  # 06:00 in New York: closed
    _reply(app, operator, tip["case_id"], "Second reply")
    assert run_worker() == 1
    assert len(twilio_api.sent) == 1
    db_session.expire_all()
    held = db_session.scalars(select(Notification).where(Notification.state == "held")).one()
    assert held.held_until == datetime(2026, 7, 3, 2, 0, tzinfo=UTC)  # 22:00 EDT

    clock.now = datetime(2026, 7, 3, 2, 0, tzinfo=UTC)
    assert run_worker() == 1
    assert [m["Body"].split("\n")[0] for m in twilio_api.sent] == ["First reply", "Second reply"]


def test_a_replayed_or_retried_job_texts_the_tipster_once(
    app, client, operator, twilio_api, delivery_runtime, clock, db_session
) -> None:
    runtime = delivery_runtime(twilio_api_base_url=twilio_api.url)
    tip = _tip(client, app, operator, {"safe_window": CHICAGO_EVENINGS})
    _reply(app, operator, tip["case_id"])
    session = runtime.session()
    try:
        [first] = claim_due(session, runtime)
        assert execute_outbox_message(runtime, first.outbox_id, first.dispatch) == "held"
        # The same job again (RQ retried it, or a replay) while still outside the window.
        assert execute_outbox_message(runtime, first.outbox_id, first.dispatch) == "held"
        assert twilio_api.sent == []

        clock.now = OPENING
        # The first job, replayed at the opening before the relay dispatched it again.
        assert execute_outbox_message(runtime, first.outbox_id, first.dispatch) == "done"
        assert execute_outbox_message(runtime, first.outbox_id, first.dispatch) == "skipped"
        assert claim_due(session, runtime) == []  # done: never dispatched again
        run_claims_in_process(runtime, [first])
    finally:
        session.close()
    assert len(twilio_api.sent) == 1
    assert _outbox(db_session).payload["holds"] == 2  # holds spend no retries


def test_a_text_cut_off_mid_send_is_never_repeated_after_a_hold(
    app, client, operator, twilio_api, run_worker, clock, db_session
) -> None:
    tip = _tip(client, app, operator, {"safe_window": CHICAGO_EVENINGS})
    _reply(app, operator, tip["case_id"])
    run_worker()
    with app.extensions["runtime"].session() as session, transaction(session):
        # A worker that died between "sending" and Twilio's answer.
        session.scalars(select(Notification)).one().state = "sending"
    clock.now = OPENING
    run_worker()
    assert twilio_api.sent == []
    assert _notification(db_session).state == "unknown"


@pytest.mark.slow
def test_announce_only_texts_the_announcement_never_the_reply(
    app, client, operator, twilio_api, start_worker, db_session, logged_in
) -> None:
    tip = _tip(client, app, operator, {"announce_only": True, "safe_to_text": True})
    start_worker(TWILIO_API_BASE_URL=twilio_api.url)
    _reply(app, operator, tip["case_id"])
    wait_until(lambda: twilio_api.sent, 30, "the announcement")

    [text] = twilio_api.sent
    assert text["To"] == PHONE
    assert text["Body"] == (
        "You have a message from the hotline. Use your reference to read it.\n"
        "(Reply STOP to stop texts.)"
    )
    for request in twilio_api.sent:  # every field of every request Twilio received
        assert all("passport" not in value for value in request.values())
        assert all(tip["reference"] not in value for value in request.values())
    db_session.expire_all()
    row = db_session.scalars(select(Notification)).one()
    assert row.announced_only and "passport" not in row.body
    # The reply itself is read with reference and passphrase.
    thread = client.get(f"/api/v1/tips/{tip['reference']}",
                        headers={"X-Tip-Passphrase": tip["passphrase"]})
    assert REPLY in [m["body"] for m in thread.get_json()["messages"]]
    page = logged_in("operator").get(f"/cases/{tip['case_id']}").get_data(as_text=True)
    assert "Text: announced only" in page


def test_a_spanish_tipster_gets_the_announcement_in_spanish(
    app, client, operator, twilio_api, run_worker, db_session
) -> None:
    tip = _tip(client, app, operator, {"announce_only": True}, language="es")
    _reply(app, operator, tip["case_id"], "¿Sigue él con su pasaporte?")
    assert run_worker() == 1
    [text] = twilio_api.sent
    assert text["Body"] == (
        "Tiene un mensaje de la línea directa. Use su referencia para leerlo.\n"
        "(Responda STOP para no recibir más mensajes.)"
    )


def test_announce_only_chosen_while_a_reply_is_held_is_honoured(
    app, client, operator, twilio_api, run_worker, clock, db_session
) -> None:
    tip = _tip(client, app, operator, {"safe_window": CHICAGO_EVENINGS})
    _reply(app, operator, tip["case_id"])
    run_worker()
    answer = client.post("/api/v1/calls", headers=operator.headers, json={
        "caller_type": "victim", "narrative": "Called back: texts must not show the words.",
        "case_id": tip["case_id"], "safe_contact": {"announce_only": True},
    })
    assert answer.status_code == 201, answer.get_json()
    clock.now = OPENING
    run_worker()
    [text] = twilio_api.sent
    assert text["Body"].startswith("You have a message from the hotline.")
    assert "passport" not in text["Body"]


BAD_WINDOWS = [
    ({"start": "18:00", "end": "22:00", "timezone": "Mars/Olympus"}, "timezone"),
    ({"start": "18:00", "end": "22:00", "timezone": "localtime"}, "timezone"),
    ({"start": "18:00", "end": "22:00", "timezone": "x" * 5000}, "timezone"),
    ({"start": "18:00", "end": "22:00"}, "timezone"),
    ({"start": "18:00", "end": "22:00", "timezone": None}, "timezone"),
    ({"start": "25:00", "end": "22:00", "timezone": "America/Chicago"}, "start"),
    ({"start": "6pm", "end": "22:00", "timezone": "America/Chicago"}, "start"),
    ({"start": "18:00", "end": "22:00:00", "timezone": "America/Chicago"}, "end"),
    ({"start": "18:00", "end": 2200, "timezone": "America/Chicago"}, "end"),
    ({"start": "18:00", "end": "18:00", "timezone": "America/Chicago"}, "end"),
    ({"start": "18:00", "end": "22:00", "timezone": "America/Chicago", "days": 3}, "days"),
]


@pytest.mark.parametrize(("window", "field"), BAD_WINDOWS)
def test_a_bad_safe_window_is_refused_naming_the_field_and_nothing_is_stored(
    client, operator, db_session, window, field
) -> None:
    tip = client.post("/api/v1/tips", json={
        "narrative": "Workers sleep in the warehouse.", "contact": {"phone": PHONE},
        "safe_contact": {"safe_window": window},
    })
    call = client.post("/api/v1/calls", headers=operator.headers, json={
        "caller_type": "victim", "narrative": "Workers sleep in the warehouse.",
        "safe_contact": {"safe_window": window, "announce_only": True},
    })
    for answer in (tip, call):
        assert answer.status_code == 422, answer.get_json()
        assert answer.get_json()["field"] == f"safe_contact.safe_window.{field}"
    assert db_session.scalar(select(func.count()).select_from(Signal)) == 0
    assert db_session.scalar(select(func.count()).select_from(Case)) == 0


def test_announce_only_must_be_true_or_false(client, operator, db_session) -> None:
    answer = client.post("/api/v1/calls", headers=operator.headers, json={
        "caller_type": "victim", "narrative": "Workers sleep in the warehouse.",
        "safe_contact": {"announce_only": "yes"},
    })
    assert answer.status_code == 422 and answer.get_json()["field"] == "safe_contact.announce_only"
    assert db_session.scalar(select(func.count()).select_from(Case)) == 0


def test_the_call_form_takes_safe_hours_and_refuses_a_window_without_a_zone(
    logged_in, db_session
) -> None:
    operator = logged_in("operator")
    call = {
        "caller_type": "victim", "language": "es", "narrative": "Me quitaron el pasaporte.",
        "caller_phone": PHONE, "safe_to_text": "yes", "announce_only": "yes",
        "safe_hours": "weekday evenings", "safe_window_start": "21:30",
        "safe_window_end": "07:00", "new_case": "on",
    }
    refused = operator.submit("/operator/calls/new", "/operator/calls/new", call)
    assert refused.status_code == 422
    assert 'id="safe_contact-safe_window-timezone-error"' in refused.get_data(as_text=True)
    assert db_session.scalar(select(func.count()).select_from(Case)) == 0

    saved = operator.submit("/operator/calls/new", "/operator/calls/new",
                            {**call, "safe_window_timezone": "America/Los_Angeles"})
    assert saved.status_code == 303, saved.get_data(as_text=True)[:2000]
    page = operator.get(saved.headers["Location"]).get_data(as_text=True)
    assert "21:30 to 07:00 America/Los_Angeles" in page and "weekday evenings" in page

    db_session.expire_all()
    stored = json.loads(db_session.scalars(select(Signal)).one().safe_contact)
    assert stored["safe_window"] == {
        "start": "21:30", "end": "07:00", "timezone": "America/Los_Angeles"}
    assert stored["announce_only"] is True and stored["safe_hours"] == "weekday evenings"


def test_the_spanish_tip_form_takes_safe_hours_and_asks_for_the_zone(pages, db_session) -> None:
    tip = {"lang": "es", "narrative": "Nos quitan el pasaporte en la granja.",
           "phone": "(202) 555-0171", "safe_start": "20:00", "safe_end": "23:30",
           "announce_only": "on"}
    form = pages.get("/tip?lang=es").get_data(as_text=True)
    assert "¿Cuándo es seguro enviarle mensajes de texto?" in form

    refused = pages.submit("/tip?lang=es", "/tip", tip)
    assert refused.status_code == 422
    assert 'id="safe_timezone-error"' in refused.get_data(as_text=True)
    assert db_session.scalar(select(func.count()).select_from(Case)) == 0

    sent = pages.submit("/tip?lang=es", "/tip", {**tip, "safe_timezone": "America/Chicago"})
    assert sent.status_code == 201

    stored = json.loads(db_session.scalars(select(Signal)).one().safe_contact)
    assert stored == {"safe_window": {"start": "20:00", "end": "23:30",
                                      "timezone": "America/Chicago"}, "announce_only": True}
