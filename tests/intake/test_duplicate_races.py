"""The database is the guard against Twilio's retries, also when two deliveries race.

The race is made deterministic: just before the request's first write, a second
session (the "other delivery") commits the same CallSid or MessageSid.
"""

from __future__ import annotations

import logging

from sqlalchemy import event, func, select

from intake import calls
from intake.catalog import IntakeCatalog
from intake.models import Signal, TipMessage
from intake.sms import SmsIn, receive_sms
from intake.twilio import in_transaction
from workflows.db import transaction
from workflows.models import Case


def _count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def _other_delivery_wins_first(app, work, caplog) -> None:
    """Before this request's first write, another session commits ``work`` in full.

    The first write is an INSERT statement (``open_case``) or a flush, whichever comes
    first."""
    runtime = app.extensions["runtime"]
    with (
        caplog.at_level(logging.INFO, logger="intake.twilio"),
        app.test_request_context("/twilio/race", method="POST"),
    ):
        from config.database import db_session

        session = db_session()

        raced: list[bool] = []

        def race(*_args) -> None:
            if raced:
                return
            raced.append(True)
            with runtime.session() as other, transaction(other):
                work(other)

        def before_insert(state) -> None:  # type: ignore[no-untyped-def]
            if state.is_insert:
                race()

        event.listen(session, "before_flush", race)
        event.listen(session, "do_orm_execute", before_insert)
        in_transaction(work)
    assert "retried a unit of work" in caplog.text  # the race did happen, and was survived


def test_two_deliveries_of_one_call_racing_make_one_signal(app, db_session, caplog) -> None:
    def work(session) -> None:
        calls.call_signal(session, "CA-race-1", "+12025550143")

    _other_delivery_wins_first(app, work, caplog)
    assert _count(db_session, Signal) == 1 and _count(db_session, Case) == 1


def test_two_deliveries_of_one_text_racing_make_one_message(app, db_session, caplog) -> None:
    catalog: IntakeCatalog = app.extensions["runtime"].catalogs["intake"]
    sms = SmsIn("SM-race-1", "+12025550143", "workers locked in")
    replies: list[str | None] = []

    def work(session) -> None:
        replies.append(receive_sms(session, catalog, sms))

    _other_delivery_wins_first(app, work, caplog)
    assert _count(db_session, TipMessage) == 1 and _count(db_session, Signal) == 1
    assert _count(db_session, Case) == 1
    assert replies[-1] is None  # the loser, run again, sees the winner's row: no reply


def test_an_operator_logging_a_call_the_ivr_already_holds_gets_409(client, operator) -> None:
    body = {"caller_type": "victim", "narrative": "n", "call_sid": "CA-logged-twice"}
    first = client.post("/api/v1/calls", json=body, headers=operator.headers)
    assert first.status_code == 201
    again = client.post("/api/v1/calls", json=body, headers=operator.headers)
    assert again.status_code == 409
    assert again.get_json()["field"] == "call_sid"
    assert again.get_json()["case_id"] == first.get_json()["id"]
