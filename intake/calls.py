"""Voice calls: one signal per ``CallSid``, whatever order Twilio's callbacks arrive in.

The incoming call, the IVR steps, the status, recording and transcription callbacks
all find (or, if they come first, create) the same signal by ``CallSid``; the unique
SID columns are the guard against Twilio's retries. Each function works inside the
caller's transaction and writes an audit event only when something changed.
"""

from __future__ import annotations

import logging
from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.models import Signal
from intake.passphrase import hash_passphrase, new_passphrase
from workflows.audit import record_event
from workflows.cases import open_case
from workflows.pii import lookup_hash

log = logging.getLogger(__name__)

# Twilio's call statuses in the order a call moves through them; the last row are ends.
STATUS_RANK = {
    "queued": 0,
    "initiated": 1,
    "ringing": 2,
    "in-progress": 3,
    "answered": 3,
    "completed": 4,
    "busy": 4,
    "failed": 4,
    "no-answer": 4,
    "canceled": 4,
}


def e164_or_none(raw: str | None) -> str | None:
    """A caller's number in E.164, or None for withheld, SIP or client identities."""
    if not raw:
        return None
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def call_signal(session: Session, call_sid: str, from_number: str | None = None) -> Signal:
    """The signal of this call; the first request about it opens its case in ``received``."""
    signal = session.scalar(select(Signal).where(Signal.call_sid == call_sid))
    if signal is None:
        case = open_case(session, actor="tipster", channel="voice", anonymous=True)
        signal = Signal(
            case_id=case.id,
            channel="voice",
            call_sid=call_sid,
            anonymous=True,
            language="en",
            ivr_path={"steps": []},
        )
        session.add(signal)
        session.flush()  # a concurrent duplicate fails here, on the unique CallSid
    phone = e164_or_none(from_number)
    if phone and signal.from_phone_hash is None:
        signal.from_phone = phone
        signal.from_phone_hash = lookup_hash(phone)
    return signal


# A real call passes a handful of steps; replayed callbacks must not grow the row for ever.
MAX_STEPS = 50


def note_step(signal: Signal, step: str, **data: Any) -> None:
    """Remember the caller's path through the IVR (menu choices only, never content)."""
    path = dict(signal.ivr_path or {})
    steps = path.get("steps", [])
    if len(steps) >= MAX_STEPS:
        return
    path["steps"] = [*steps, {"step": step, **data}]
    signal.ivr_path = path  # a new object, so SQLAlchemy sees the change


def choose_language(signal: Signal, language: str) -> None:
    """The caller picked a language: everything after is said in it."""
    if signal.language != language:
        signal.language = language
    note_step(signal, "language", language=language)


def apply_call_status(
    signal: Signal, status: str | None, sequence: int | None, duration: int | None = None
) -> bool:
    """Apply a status only if it moves the call forward; late or repeated ones are ignored.

    With ``SequenceNumber`` Twilio orders its own callbacks; without it, the status's
    place in a call's life decides.
    """
    if not status:
        return False
    if sequence is not None:
        if sequence <= signal.status_sequence:
            return False
        signal.status_sequence = sequence
    elif STATUS_RANK.get(status, -1) <= STATUS_RANK.get(signal.call_status or "", -1):
        return False
    signal.call_status = status[:24]
    if duration is not None and status == "completed":
        note_step(signal, "ended", duration=duration)
    return True


def attach_recording(
    session: Session,
    signal: Signal,
    recording_sid: str | None,
    url: str | None,
    duration: int | None,
) -> bool:
    """Attach the voicemail; the first recording of a call stays the one we keep."""
    if not recording_sid:
        return False
    if signal.recording_sid not in (None, recording_sid):
        log.warning("call %s: ignored a second recording %s", signal.call_sid, recording_sid)
        return False
    changed = False
    if signal.recording_sid is None:
        signal.recording_sid = recording_sid
        changed = True
    if url and signal.recording_url is None:
        signal.recording_url = url[:500]
        changed = True
    if duration is not None and signal.recording_duration is None:
        signal.recording_duration = duration
        changed = True
    if changed:
        session.flush()
        record_event(session, actor="twilio", action="recording_attached", case_id=signal.case_id)
    return changed


def attach_transcription(
    session: Session,
    signal: Signal,
    transcription_sid: str | None,
    recording_sid: str | None,
    text: str | None,
    status: str | None,
) -> bool:
    """Attach the transcript (a bonus: the recording is the source of truth), once."""
    if not transcription_sid or signal.transcription_sid not in (None, transcription_sid):
        return False
    if signal.transcription_sid == transcription_sid and signal.transcription_status == status:
        return False  # a retry of a callback we already have
    if signal.recording_sid is None and recording_sid:
        signal.recording_sid = recording_sid  # the transcription arrived first
    signal.transcription_sid = transcription_sid
    signal.transcription_status = (status or "")[:24] or None
    if status == "completed" and text:
        signal.transcript = text
    session.flush()
    record_event(
        session,
        actor="twilio",
        action="transcription_attached",
        case_id=signal.case_id,
        detail={"status": signal.transcription_status},
    )
    return True


def finish_voicemail(
    session: Session, signal: Signal, passphrase_hash: str | None = None
) -> str | None:
    """The caller's passphrase, the first time only; None once the tip has one.

    Twilio's signatures carry no timestamp, so a captured ``/voice/recorded`` request can
    be replayed for ever: issuing a passphrase again would hand the replayer a working
    secret and lock the caller out of their own tip. One passphrase per tip; only its
    hash is kept, so nothing can repeat it either (issue 11, item 7). A step replayed
    from the outage spool brings the hash of the passphrase the caller heard then.
    """
    if signal.case.passphrase_hash is not None:
        return None
    passphrase = "" if passphrase_hash else new_passphrase(language=signal.language)
    signal.case.passphrase_hash = passphrase_hash or hash_passphrase(passphrase)
    note_step(signal, "voicemail_done")
    session.flush()
    return passphrase


def whole_number(raw: str | None) -> int | None:
    """A number parameter from Twilio, or None if absent or garbled."""
    if raw is None or not raw.strip().lstrip("-").isdigit():
        return None
    return int(raw.strip())
