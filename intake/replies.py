"""The hotline's replies to a tipster in the anonymous follow-up thread."""

from __future__ import annotations

from sqlalchemy.orm import Session

from intake.models import TipMessage
from intake.services import add_tip_message
from workflows.casework import staff_case
from workflows.models import User
from workflows.outbox import add_notification
from workflows.vocabulary import DESK


def reply_to_tipster(session: Session, case_id: int, actor: User, body: str) -> TipMessage:
    """Store a reply the tipster reads with reference and passphrase; text it only with
    recorded call-back consent (the notification worker also checks the opt-out list)."""
    case = staff_case(session, case_id, actor, DESK)
    message = add_tip_message(session, case, body, direction="out", author=actor.username)
    callback = ((case.screening or {}).get("consent") or {}).get("callback") or {}
    if callback.get("given") is True:
        add_notification(session, "tipster_reply", case_id=case.id, message_id=message.id)
    return message
