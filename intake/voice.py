"""The voice IVR: TwiML for each step of a call, every step a signed follow-up URL.

greeting + language (1 English, 2 Spanish) → menu (emergency, advocate, message) →
``<Dial>``/``<Enqueue>`` → voicemail (``<Record>``) → reference and passphrase → one
optional question, how the caller heard of the hotline (digits of
``workflows.campaigns``; 0, another key or silence skips it) → goodbye.
A ``<Gather>`` without input falls through to a ``<Redirect>`` to its own action, so a
caller who presses nothing hears the menu once more and is then offered voicemail.
Each step commits its change before the TwiML is answered; nothing here touches Redis.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, abort, request
from sqlalchemy.orm import Session
from twilio.twiml.voice_response import VoiceResponse

from config.database import runtime
from intake import calls
from intake.catalog import IntakeCatalog
from intake.passphrase import hash_passphrase
from intake.spool import Spool
from intake.twilio import (
    callback_url,
    in_transaction,
    param,
    settings,
    twilio_signed,
    twiml,
)
from workflows.campaigns import BY_DIGIT
from workflows.db import utcnow
from workflows.emergency import start_emergency
from workflows.vocabulary import LANGUAGES

bp = Blueprint("twilio_voice", __name__, url_prefix="/twilio")

# How Twilio reports a caller who did reach a person (<Dial> and <Enqueue> actions);
# any other outcome (busy, no-answer, failed, canceled, queue-full, leave, error…)
# goes to voicemail.
CONNECTED = frozenset({"completed", "answered", "bridged"})



def spool_voice_step(spool: Spool, step: str, p: dict[str, Any]) -> Any:
    """One IVR step; the voicemail step also gets the reference and passphrase to say."""
    call_sid = p["CallSid"]
    if step != "recorded":
        # A Twilio retry of the same step with the same parameters is spooled once.
        key = "&".join(f"{k}={p[k]}" for k in sorted(p))
        spool.put("voice", {"step": step, "p": p}, dedupe=f"voice:{step}:{call_sid}:{key}")
        return None
    from intake.passphrase import new_passphrase
    from workflows.cases import new_reference

    # One reference and one passphrase per call: a repeat of the voicemail step (Twilio's
    # retry or a replayed capture) hears the reference again but no secret, as when the
    # database is up (intake.calls.finish_voicemail).
    known = spool.reference_for("voice", f"voice:recorded:{call_sid}:")
    if known is not None:
        spool.put("voice", {"step": step, "p": p},
                  dedupe=f"voice:recorded-again:{call_sid}:{time.time_ns()}")
        return known, None
    reference = new_reference()
    passphrase = new_passphrase()
    spool.put(
        "voice",
        {"step": step, "p": {**p, "reference": reference,
                             "passphrase_hash": hash_passphrase(passphrase)}},
        dedupe=f"voice:recorded:{call_sid}:{time.time_ns()}",
        reference=reference,
    )
    return reference, passphrase

def catalog() -> IntakeCatalog:
    """The prompts of config/intake.yaml."""
    return runtime().catalogs["intake"]  # type: ignore[no-any-return]


def _language() -> str:
    lang = request.args.get("lang", "en")
    return lang if lang in LANGUAGES else "en"


def _attempt() -> int:
    return 1 if request.args.get("attempt") == "1" else 0


def _call_sid() -> str:
    call_sid = param("CallSid")
    if call_sid is None:
        abort(400, "CallSid is missing")
    return call_sid


def _say(response: Any, key: str, lang: str, **values: str) -> None:
    response.say(catalog().prompt(key, lang, **values), language=catalog().say_language[lang])


def _gather(action: str) -> tuple[VoiceResponse, Any]:
    """A one-digit <Gather> whose silence falls through to a redirect to the same action."""
    response = VoiceResponse()
    gather = response.gather(
        num_digits=1, action=action, method="POST", timeout=catalog().gather_timeout_seconds
    )
    return response, gather


def _fallthrough(response: VoiceResponse, action: str) -> VoiceResponse:
    response.redirect(action, method="POST")
    return response


def language_menu(attempt: int) -> VoiceResponse:
    """Greeting (danger and minors may be reported) and the language choice, in both."""
    action = callback_url("twilio_voice.voice_language", attempt=attempt)
    response, gather = _gather(action)
    for lang in LANGUAGES:
        _say(gather, "greeting" if attempt == 0 else "no_input", lang)
    for lang in LANGUAGES:
        _say(gather, "language_menu", lang)
    return _fallthrough(response, action)


def main_menu(lang: str, attempt: int) -> VoiceResponse:
    """Emergency, an advocate, or a message, in the caller's language."""
    action = callback_url("twilio_voice.voice_menu", lang=lang, attempt=attempt)
    response, gather = _gather(action)
    if attempt:
        _say(gather, "no_input", lang)
    _say(gather, "main_menu", lang)
    return _fallthrough(response, action)


def voicemail(lang: str | None, response: VoiceResponse | None = None) -> VoiceResponse:
    """<Record> a message (≤120 s so Twilio transcribes it); both languages if none chosen."""
    response = response or VoiceResponse()
    for spoken in (lang,) if lang else LANGUAGES:
        _say(response, "voicemail", spoken)
    done = callback_url("twilio_voice.voice_recorded", lang=lang or "en")
    response.record(
        action=done,
        method="POST",
        max_length=catalog().voicemail_max_seconds,
        timeout=10,
        finish_on_key="#",
        play_beep=True,
        transcribe=True,
        transcribe_callback=callback_url("twilio_voice.voice_transcription"),
        recording_status_callback=callback_url("twilio_voice.voice_recording"),
        recording_status_callback_event="completed",
    )
    # Silence makes no recording, and Twilio then skips the action: go there anyway.
    response.redirect(done, method="POST")
    return response


def connect_operator(lang: str, response: VoiceResponse) -> VoiceResponse:
    """<Enqueue> or <Dial> an advocate; their action sends unanswered calls to voicemail."""
    config = settings()
    action = callback_url("twilio_voice.voice_connected", lang=lang)
    if config.operator_queue:
        _say(response, "connecting", lang)
        response.enqueue(config.operator_queue, action=action, method="POST")
    elif config.operator_numbers:
        _say(response, "connecting", lang)
        dial = response.dial(action=action, method="POST", timeout=catalog().dial_timeout_seconds)
        for number in config.operator_numbers:
            dial.number(number)
    else:
        voicemail(lang, response)
    return response


# Each step's database work, as a function of the request's parameters, so the same
# code runs live and when a step spooled during an outage is replayed (intake.replay).
Params = dict[str, Any]


def step_incoming(session: Session, p: Params) -> None:
    signal = calls.call_signal(session, p["CallSid"], p.get("From"))
    calls.apply_call_status(signal, p.get("CallStatus"), None)


def step_language(session: Session, p: Params) -> None:
    signal = calls.call_signal(session, p["CallSid"])
    if p.get("chosen"):
        calls.choose_language(signal, p["chosen"])
    else:
        calls.note_step(signal, "language", no_input=p["attempt"])


def step_menu(session: Session, p: Params) -> None:
    signal = calls.call_signal(session, p["CallSid"])
    calls.note_step(signal, "menu", choice=p.get("choice") or "none")
    if p.get("choice") == "emergency":
        start_emergency(session, signal.case, actor="tipster", channel="voice", now=utcnow())


def step_connected(session: Session, p: Params) -> None:
    calls.note_step(calls.call_signal(session, p["CallSid"]), "operator", outcome=p["outcome"])


def step_recorded(session: Session, p: Params) -> tuple[str, str | None]:
    """Attach the voicemail and choose the passphrase the caller hears (with the reference).

    Replayed from the spool, ``p`` carries the reference and passphrase hash the caller
    heard during the outage; the case takes both.
    """
    signal = calls.call_signal(session, p["CallSid"])
    calls.attach_recording(
        session, signal, p.get("RecordingSid"), p.get("RecordingUrl"), p.get("RecordingDuration")
    )
    passphrase = calls.finish_voicemail(session, signal, p.get("passphrase_hash"))
    if p.get("reference") and signal.case.reference != p["reference"]:
        signal.case.reference = p["reference"]
    return signal.case.reference or "", passphrase


def step_heard(session: Session, p: Params) -> None:
    """The caller's answer to "how did you hear of us": a code, or skipped (None)."""
    signal = calls.call_signal(session, p["CallSid"])
    if p.get("heard_from"):
        signal.heard_from = p["heard_from"]  # a code of workflows.campaigns, as the forms store
    calls.note_step(signal, "heard_from", choice=p.get("heard_from") or "skipped")


def step_recording(session: Session, p: Params) -> None:
    signal = calls.call_signal(session, p["CallSid"])
    calls.attach_recording(
        session, signal, p.get("RecordingSid"), p.get("RecordingUrl"), p.get("RecordingDuration")
    )


def step_transcription(session: Session, p: Params) -> None:
    signal = calls.call_signal(session, p["CallSid"])
    calls.attach_transcription(
        session, signal, p.get("TranscriptionSid"), p.get("RecordingSid"), p.get("text"),
        p.get("TranscriptionStatus"),
    )


def step_status(session: Session, p: Params) -> None:
    signal = calls.call_signal(session, p["CallSid"], p.get("From"))
    calls.apply_call_status(
        signal, p.get("CallStatus"), p.get("SequenceNumber"), p.get("CallDuration")
    )


STEPS = {
    "incoming": step_incoming,
    "language": step_language,
    "menu": step_menu,
    "connected": step_connected,
    "recorded": step_recorded,
    "heard": step_heard,
    "recording": step_recording,
    "transcription": step_transcription,
    "status": step_status,
}


def _run(step: str, p: Params) -> Any:
    """Run a step now, or spool it (the caller still hears the IVR) if the database is down."""
    return in_transaction(
        lambda session: STEPS[step](session, p),
        lambda spool: spool_voice_step(spool, step, p),
    )


@bp.post("/voice")
@twilio_signed
def voice_incoming() -> Any:
    p = {"CallSid": _call_sid(), "From": param("From"), "CallStatus": param("CallStatus", 24)}
    _run("incoming", p)  # the case exists, committed (or spooled), before the caller hears a word
    return twiml(language_menu(0))


@bp.post("/voice/language")
@twilio_signed
def voice_language() -> Any:
    call_sid, digits, attempt = _call_sid(), param("Digits", 8), _attempt()
    chosen = {"1": "en", "2": "es"}.get(digits or "")
    _run("language", {"CallSid": call_sid, "chosen": chosen, "attempt": attempt})
    if chosen:
        return twiml(main_menu(chosen, 0))
    if attempt == 0:
        return twiml(language_menu(1))
    return twiml(voicemail(None))


@bp.post("/voice/menu")
@twilio_signed
def voice_menu() -> Any:
    call_sid, digits, lang, attempt = _call_sid(), param("Digits", 8), _language(), _attempt()
    digit_choice = {digit: choice for choice, digit in catalog().menu_digits.items()}
    choice = digit_choice.get(digits or "")
    _run("menu", {"CallSid": call_sid, "choice": choice, "attempt": attempt})
    if choice == "emergency":
        response = VoiceResponse()
        _say(response, "emergency", lang)
        return twiml(connect_operator(lang, response))
    if choice == "operator":
        return twiml(connect_operator(lang, VoiceResponse()))
    if choice == "voicemail" or attempt == 1:
        return twiml(voicemail(lang))
    return twiml(main_menu(lang, 1))


@bp.post("/voice/connected")
@twilio_signed
def voice_connected() -> Any:
    call_sid, lang = _call_sid(), _language()
    outcome = param("DialCallStatus", 24) or param("QueueResult", 24) or "unknown"
    _run("connected", {"CallSid": call_sid, "outcome": outcome})
    if outcome in CONNECTED:
        response = VoiceResponse()
        _say(response, "goodbye", lang)
        response.hangup()
        return twiml(response)
    return twiml(voicemail(lang))


def spoken_reference(reference: str) -> str:
    """``HT-2026-000123`` read out character by character: ``H T, 2 0 2 6, 0 0 0 1 2 3``."""
    return ", ".join(" ".join(part) for part in reference.split("-"))


def spoken_passphrase(passphrase: str) -> str:
    """Words with pauses, digits one by one: ``orbit, maple, …, 4 8 2``."""
    *words, digits = passphrase.split("-")
    return ", ".join([*words, " ".join(digits)])


@bp.post("/voice/recorded")
@twilio_signed
def voice_recorded() -> Any:
    lang = _language()
    p = {
        "CallSid": _call_sid(),
        "RecordingSid": param("RecordingSid"),
        "RecordingUrl": param("RecordingUrl", 500),
        "RecordingDuration": calls.whole_number(param("RecordingDuration")),
    }
    reference, passphrase = _run("recorded", p)
    response = VoiceResponse()
    if p["RecordingSid"] is None:
        _say(response, "no_recording", lang)
    for repeat in range(2):
        if repeat:
            _say(response, "repeat", lang)
        _say(response, "reference", lang, reference=spoken_reference(reference))
        if passphrase is None:
            # A repeat of this step (Twilio's retry or a replay): the same answer, minus
            # the secret, which was said once and is kept nowhere to be said again.
            _say(response, "passphrase_given", lang)
        else:
            _say(response, "passphrase", lang, passphrase=spoken_passphrase(passphrase))
    # Last and optional: silence falls through to the goodbye below, so nobody waits.
    gather = response.gather(
        num_digits=1, action=callback_url("twilio_voice.voice_heard", lang=lang),
        method="POST", timeout=catalog().gather_timeout_seconds)
    _say(gather, "heard_from", lang)
    _say(response, "goodbye", lang)
    response.hangup()
    return twiml(response)


@bp.post("/voice/heard")
@twilio_signed
def voice_heard() -> Any:
    """The digit pressed for how the caller heard of the hotline; anything else skips."""
    lang = _language()
    digits = param("Digits", 8) or ""
    _run("heard", {"CallSid": _call_sid(), "heard_from": BY_DIGIT.get(digits)})
    response = VoiceResponse()
    if digits in BY_DIGIT:
        _say(response, "heard_from_thanks", lang)
    _say(response, "goodbye", lang)
    response.hangup()
    return twiml(response)


@bp.post("/voice/recording")
@twilio_signed
def voice_recording() -> Any:
    _run("recording", {
        "CallSid": _call_sid(),
        "RecordingSid": param("RecordingSid"),
        "RecordingUrl": param("RecordingUrl", 500),
        "RecordingDuration": calls.whole_number(param("RecordingDuration")),
    })
    return twiml(VoiceResponse())


@bp.post("/voice/transcription")
@twilio_signed
def voice_transcription() -> Any:
    _run("transcription", {
        "CallSid": _call_sid(),
        "TranscriptionSid": param("TranscriptionSid"),
        "RecordingSid": param("RecordingSid"),
        "TranscriptionStatus": param("TranscriptionStatus", 24),
        "text": (request.form.get("TranscriptionText") or "").strip()[:20000] or None,
    })
    return twiml(VoiceResponse())


@bp.post("/voice/status")
@twilio_signed
def voice_status() -> Any:
    _run("status", {
        "CallSid": _call_sid(),
        "CallStatus": param("CallStatus", 24),
        "From": param("From"),
        "SequenceNumber": calls.whole_number(param("SequenceNumber", 12)),
        "CallDuration": calls.whole_number(param("CallDuration", 12)),
    })
    return twiml(VoiceResponse())
