"""Intake use cases: web tips, operator call logs and the anonymous follow-up.

Each function takes the session and works inside the caller's transaction; the view
commits before it answers, so a tip is stored before the tipster sees a reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.models import Signal, TipMessage
from intake.passphrase import hash_passphrase, new_passphrase, verify_passphrase
from workflows.audit import record_event
from workflows.casefile import add_item, check_item
from workflows.cases import find_by_reference, open_case
from workflows.errors import Conflict, NotFound
from workflows.merging import attachable_case, note_attached
from workflows.models import Case, User
from workflows.pii import lookup_hash


@dataclass(frozen=True)
class NewTip:
    case: Case
    passphrase: str


def submit_tip(
    session: Session,
    data: dict[str, Any],
    *,
    reference: str | None = None,
    passphrase: str | None = None,
    passphrase_hash: str | None = None,
    detail: dict[str, Any] | None = None,
) -> NewTip:
    """Store a web tip as a new case with one signal; no IP or user agent is kept.

    A view that may have to spool the tip chooses its reference and passphrase first
    (the same ones then reach the tipster either way); a replay brings the spooled
    reference and passphrase hash.
    """
    if passphrase_hash is None:
        passphrase = passphrase or new_passphrase(language=data.get("language") or "en")
        passphrase_hash = hash_passphrase(passphrase)
    anonymous = bool(data.get("anonymous", True))
    case = open_case(
        session,
        actor="tipster",
        channel="web",
        anonymous=anonymous,
        passphrase_hash=passphrase_hash,
        reference=reference,
        detail=detail,
    )
    contact = data.get("contact") or {}
    phone = contact.get("phone")
    safe_contact = data.get("safe_contact")
    session.add(
        Signal(
            case_id=case.id,
            channel="web",
            language=data.get("language") or "en",
            narrative=data["narrative"],
            location=data.get("location"),
            anonymous=anonymous,
            contact_phone=phone,
            contact_email=contact.get("email"),
            from_phone_hash=lookup_hash(phone) if phone else None,
            safe_contact=json.dumps(safe_contact) if safe_contact else None,
            heard_from=data.get("heard_from"),
        )
    )
    # No flush here: the commit's one flush writes the signal (with the audit event).
    return NewTip(case, passphrase or "")


def log_call(
    session: Session,
    operator: User,
    data: dict[str, Any],
    *,
    reference: str | None = None,
    detail: dict[str, Any] | None = None,
) -> Case:
    """An operator's structured record of a call: a new case with one signal, or one more
    signal on the case the call belongs to (``case_id``, or the ``call_sid`` the IVR
    already recorded), so a call the IVR opened and an operator answered is one case."""
    for item in ("victims", "subjects", "locations"):  # refused before anything is written
        for values in data.get(item) or []:
            check_item(item, values)
    call_sid = data.get("call_sid")
    existing = None
    if call_sid:
        existing = session.scalar(select(Signal).where(Signal.call_sid == call_sid))
    case: Case | None = None
    if data.get("case_id") is not None:
        case = attachable_case(session, data["case_id"], operator)
        if existing is not None and existing.case_id != case.id:
            raise Conflict(
                "this call is recorded on another case", field="call_sid",
                case_id=existing.case_id,
            )
    elif existing is not None and existing.channel == "operator":
        # An operator's log already holds this CallSid: a second log is a double submit.
        raise Conflict(
            "this call is already logged", field="call_sid", case_id=existing.case_id,
        )
    elif existing is not None:
        case = attachable_case(session, existing.case_id, operator)
        # The same caller, now speaking to an operator: their choice replaces the IVR's
        # default anonymity.
        case.anonymous = bool(data.get("anonymous", False))
    if case is None:
        case = open_case(
            session, actor=operator.username, channel="operator",
            anonymous=data.get("anonymous", False), reference=reference, detail=detail,
        )
    else:
        note_attached(session, case, operator, {
            "channel": "operator", "by": "call_sid" if data.get("case_id") is None else "case_id",
        })
    phone = data.get("caller_phone")
    safe_contact = data.get("safe_contact")
    session.add(
        Signal(
            case_id=case.id,
            channel="operator",
            # The IVR's signal holds the CallSid; the operator's log of it is a second signal.
            call_sid=call_sid if existing is None else None,
            caller_type=data["caller_type"],
            language=data.get("language") or "en",
            location=data.get("location"),
            narrative=data["narrative"],
            caller_name=data.get("caller_name"),
            from_phone=phone,
            from_phone_hash=lookup_hash(phone) if phone else None,
            anonymous=bool(data.get("anonymous")),
            safe_contact=json.dumps(safe_contact) if safe_contact else None,
            operator_id=operator.id,
            heard_from=data.get("heard_from"),
        )
    )
    session.flush()
    for item in ("victims", "subjects", "locations"):
        for values in data.get(item) or []:
            add_item(session, case.id, operator, item, values)
    return case


def open_tip(session: Session, reference: str, passphrase: str) -> Case:
    """The case behind a reference, if the passphrase matches; else NotFound.

    An unknown reference still costs one HMAC, so the two failures answer alike and
    in the same time.
    """
    case = find_by_reference(session, reference)
    ok = verify_passphrase(case.passphrase_hash if case else None, passphrase)
    if case is None or not ok:
        raise NotFound("no tip with that reference and passphrase")
    return case


def tip_messages(session: Session, case: Case) -> list[TipMessage]:
    """The follow-up thread, oldest first."""
    return list(
        session.scalars(
            select(TipMessage).where(TipMessage.case_id == case.id).order_by(TipMessage.id)
        )
    )


def add_tip_message(
    session: Session, case: Case, body: str, *, direction: str, author: str
) -> TipMessage:
    """Append to the follow-up thread: ``in`` from the tipster, ``out`` from the hotline."""
    message = TipMessage(case_id=case.id, direction=direction, author=author, body=body)
    session.add(message)
    session.flush()
    record_event(
        session,
        actor=author,
        action="tip_message_in" if direction == "in" else "tip_message_out",
        case_id=case.id,
    )
    return message


def public_status(case: Case) -> str:
    """What a tipster may know of their case's progress: a coarse word, nothing more."""
    if case.state in {"closed", "purged"}:
        return "closed"
    if case.state == "received":
        return "received"
    return "in review"
