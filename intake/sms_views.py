"""The SMS webhook: ``POST /twilio/sms`` answers with TwiML ``<Message>`` (or nothing)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, request
from sqlalchemy.orm import Session
from twilio.twiml.messaging_response import MessagingResponse

from config.database import runtime
from intake.sms import SmsIn, answer_while_spooling, receive_sms
from intake.twilio import in_transaction, param, twilio_signed, twiml

bp = Blueprint("twilio_sms", __name__, url_prefix="/twilio")

MAX_BODY = 1600  # Twilio's limit for one message, concatenated segments included


@bp.post("/sms")
@twilio_signed
def sms_incoming() -> Any:
    message_sid, sender = param("MessageSid"), param("From")
    if message_sid is None or sender is None:
        abort(400, "MessageSid and From are required")
    sms = SmsIn(message_sid, sender, (request.form.get("Body") or "")[:MAX_BODY])
    catalog = runtime().catalogs["intake"]

    def work(session: Session) -> str | None:
        return receive_sms(session, catalog, sms)

    # Stored and committed (or, with the database down, spooled and fsynced) before
    # Twilio gets the answer.
    reply = in_transaction(work, lambda spool: answer_while_spooling(spool, catalog, sms))
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return twiml(response)
