"""SMS intake: a short conversation per sender, STOP/START/HELP, our own opt-out list.

A sender is known only by the keyed hash of their E.164 number. The first text opens
a case (state ``received``) and is answered with the reference and the passphrase;
then the questions of config/intake.yaml, one per reply. Every inbound text is a
``TipMessage`` (encrypted), unique by ``MessageSid``, so a Twilio retry stores nothing
twice. After STOP nothing more is sent to the number until START (ENGINEERING.md).
Language: English unless the first text holds a Spanish word from the catalog
("HOLA", "AYUDA", …); "ESPAÑOL"/"ENGLISH" switch at any point.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.calls import e164_or_none
from intake.catalog import IntakeCatalog, SmsQuestion
from intake.models import OptOut, Signal, SmsConversation, TipMessage
from intake.passphrase import hash_passphrase, new_passphrase
from intake.spool import Spool
from workflows.audit import record_event
from workflows.campaigns import heard_from_code
from workflows.cases import find_by_reference, new_reference, open_case
from workflows.db import utcnow
from workflows.emergency import start_emergency
from workflows.models import Case
from workflows.pii import lookup_hash

# The carrier and Twilio's opt-out handling answer these keywords themselves.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})
CALLBACK_CONSENT_VALID = timedelta(days=365)
_WORD = re.compile(r"[^\w]+", re.UNICODE)


@dataclass(frozen=True)
class SmsIn:
    message_sid: str
    sender: str
    body: str


WHATSAPP = "whatsapp:"
# WhatsApp lets a business answer freely for 24 hours after the person's last message;
# after that only an approved template may be sent (Twilio error 63016 otherwise).
WHATSAPP_WINDOW = timedelta(hours=24)


def is_whatsapp(address: str) -> bool:
    """A Twilio WhatsApp address (``whatsapp:+1…``) rather than a phone number."""
    return address.strip().lower().startswith(WHATSAPP)


def phone_key(number: str) -> str:
    """The number as we hash it: E.164 when it parses, else as Twilio wrote it. A
    WhatsApp sender is the same person as that number's texts: same key, same case."""
    bare = number.strip()
    if is_whatsapp(bare):
        bare = bare[len(WHATSAPP):]
    return e164_or_none(bare) or bare


def whatsapp_window_open(session: Session, address: str) -> bool:
    """True while WhatsApp allows a free-form reply: the person wrote within 24 hours."""
    last = session.scalar(
        select(SmsConversation.updated_at)
        .where(SmsConversation.phone_hash == lookup_hash(phone_key(address)))
        .order_by(SmsConversation.updated_at.desc())
        .limit(1)
    )
    if last is None:
        return False
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return utcnow() - last < WHATSAPP_WINDOW


def is_opted_out(session: Session, e164: str) -> bool:
    """True if this number texted STOP and not START since: send it nothing."""
    row = session.get(OptOut, lookup_hash(phone_key(e164)))
    return bool(row and row.opted_out)


def set_opt_out(session: Session, phone_hash: str, opted_out: bool) -> None:
    """Record STOP (True) or START (False) for a number's hash."""
    row = session.get(OptOut, phone_hash)
    if row is None:
        session.add(OptOut(phone_hash=phone_hash, opted_out=opted_out))
    else:
        row.opted_out = opted_out
    session.flush()  # two STOPs at once: the loser fails here and is run again


def _keyword(body: str) -> str:
    """The whole text as a keyword: trimmed, upper case, without punctuation."""
    return _WORD.sub("", body).upper()


def _tokens(body: str) -> list[str]:
    return [t for t in _WORD.split(body.upper()) if t]


def _yes_no(catalog: IntakeCatalog, body: str, language: str) -> bool | None:
    """YES → True, NO → False, anything else → None (by the first word)."""
    tokens = _tokens(body)
    if not tokens:
        return None
    first = tokens[0]
    if first in catalog.yes_words[language] or first in catalog.yes_words["en"]:
        return True
    if first in catalog.no_words[language] or first in catalog.no_words["en"]:
        return False
    return None


def _open_conversation(
    session: Session, catalog: IntakeCatalog, phone_hash: str
) -> SmsConversation | None:
    since = utcnow() - timedelta(hours=catalog.conversation_hours)
    return session.scalar(
        select(SmsConversation)
        .where(
            SmsConversation.phone_hash == phone_hash,
            SmsConversation.open.is_(True),
            SmsConversation.updated_at >= since,
        )
        .order_by(SmsConversation.id.desc())
        .limit(1)
    )


def _store(session: Session, conversation: SmsConversation, sms: SmsIn) -> TipMessage:
    message = TipMessage(
        case_id=conversation.case_id,
        signal_id=conversation.signal_id,
        direction="in",
        author="tipster",
        body=sms.body,
        message_sid=sms.message_sid,
    )
    session.add(message)
    session.flush()  # a concurrent duplicate MessageSid fails here
    record_event(session, actor="tipster", action="sms_in", case_id=conversation.case_id)
    return message


def _answer(catalog: IntakeCatalog, question: SmsQuestion, body: str, language: str) -> Any:
    """The text as its question's kind reads it: the text, yes/no, or a heard-from code
    (None: skipped, whatever was written; the words stay in the message, never here)."""
    if question.kind == "text":
        return body
    if question.kind == "heard_from":
        tokens = _tokens(body)  # "2", "2.", "2 social media" all answer 2
        return heard_from_code(tokens[0]) if tokens else None
    return _yes_no(catalog, body, language)


def _record_answer(
    session: Session, conversation: SmsConversation, question: SmsQuestion, answer: Any
) -> None:
    signal = session.get(Signal, conversation.signal_id)
    assert signal is not None
    path = dict(signal.ivr_path or {})
    path["answers"] = {**path.get("answers", {}), question.key: answer}
    signal.ivr_path = path
    if question.key == "location" and isinstance(answer, str):
        signal.location = answer[:500]
    if question.kind == "heard_from" and answer is not None:
        signal.heard_from = answer  # a code of workflows.campaigns, as the web form stores
    if question.fact and isinstance(answer, bool):
        case = session.get(Case, conversation.case_id)
        assert case is not None
        # A default for screening: staff confirm or correct it with the texter.
        case.signal_facts = {**(case.signal_facts or {}), question.fact: answer}
    if question.consent and isinstance(answer, bool):
        case = session.get(Case, conversation.case_id)
        assert case is not None
        now = utcnow()
        screening = dict(case.screening or {})
        # The shape of workflows.screening.consent_records, so referrals can check it.
        screening["consent"] = {
            **screening.get("consent", {}),
            question.consent: {
                "scope": question.consent,
                "given": answer,
                "given_by": "tipster",
                "recorded_by": "sms",
                "recorded_at": now.isoformat(),
                "expires_at": (now + CALLBACK_CONSENT_VALID).isoformat(),
            },
        }
        case.screening = screening


def _language_of(catalog: IntakeCatalog, body: str) -> str:
    return "es" if set(_tokens(body)) & catalog.spanish_words else "en"


def _start(
    session: Session,
    catalog: IntakeCatalog,
    sms: SmsIn,
    phone_hash: str,
    spooled: dict[str, Any] | None = None,
) -> tuple[SmsConversation, str]:
    """A new case, signal and conversation; the welcome carries reference and passphrase.

    ``spooled``: the reference, passphrase hash and language the texter was given while
    the database was down (``answer_while_spooling``).
    """
    language = spooled["language"] if spooled else _language_of(catalog, sms.body)
    passphrase = new_passphrase(language=language)
    case = open_case(
        session,
        actor="tipster",
        channel="sms",
        anonymous=True,
        passphrase_hash=spooled["passphrase_hash"] if spooled else hash_passphrase(passphrase),
        reference=spooled["reference"] if spooled else None,
        detail={"spooled_at": spooled["spooled_at"]} if spooled else None,
    )
    whatsapp = is_whatsapp(sms.sender)
    phone = e164_or_none(phone_key(sms.sender))
    if phone and whatsapp:
        phone = WHATSAPP + phone  # replies go back where the person wrote from
    signal = Signal(
        case_id=case.id,
        channel="whatsapp" if whatsapp else "sms",
        language=language,
        anonymous=True,
        from_phone=phone or sms.sender[:32],
        from_phone_hash=phone_hash,
        ivr_path={"answers": {}},
    )
    session.add(signal)
    session.flush()  # the signal's id, for the conversation and the message
    conversation = SmsConversation(
        phone_hash=phone_hash, case_id=case.id, signal_id=signal.id, step=0, language=language,
        updated_at=utcnow(),
    )
    session.add(conversation)  # flushed with the first message (_store)
    welcome = catalog.message(
        "welcome", language, reference=case.reference or "", passphrase=passphrase
    )
    return conversation, f"{welcome} {catalog.questions[0].text[language]}"


def _continue(
    session: Session, catalog: IntakeCatalog, conversation: SmsConversation, sms: SmsIn
) -> str:
    """Record the answer to the pending question and ask the next one."""
    case = session.get(Case, conversation.case_id)
    assert case is not None
    reference = case.reference or ""
    words = set(_tokens(sms.body))
    switch = None
    if len(words) == 1:  # a text that is only "ESPAÑOL" or "ENGLISH" switches language
        switch = "es" if words & catalog.spanish_words else None
        switch = "en" if words & catalog.english_words else switch
    if switch:
        conversation.language = switch
        session.get(Signal, conversation.signal_id).language = switch  # type: ignore[union-attr]
        if conversation.step < len(catalog.questions):
            return catalog.questions[conversation.step].text[switch]
        return catalog.message("received", switch, reference=reference)
    language = conversation.language
    if conversation.step >= len(catalog.questions):
        return catalog.message("received", language, reference=reference)
    question = catalog.questions[conversation.step]
    if not sms.body.strip():  # a photo without words answers nothing: ask again
        return question.text[language]
    answer: Any = _answer(catalog, question, sms.body, language)
    _record_answer(session, conversation, question, answer)
    conversation.step += 1
    reply = []
    if question.emergency_on and answer is (question.emergency_on == "yes"):
        start_emergency(session, case, actor="tipster", channel="sms", now=utcnow())
        reply.append(catalog.message("emergency", language))
    if conversation.step < len(catalog.questions):
        reply.append(catalog.questions[conversation.step].text[language])
    else:
        reply.append(catalog.message("done", language, reference=reference))
    return " ".join(reply)


def receive_sms(session: Session, catalog: IntakeCatalog, sms: SmsIn) -> str | None:
    """Handle one inbound text; the reply to send, or None to send nothing at all."""
    phone_hash = lookup_hash(phone_key(sms.sender))
    # One round trip asks both: do we hold this text already, has its sender opted out?
    held, opted_out = session.execute(
        select(
            select(TipMessage.id)
            .where(TipMessage.message_sid == sms.message_sid)
            .scalar_subquery(),
            select(OptOut.opted_out).where(OptOut.phone_hash == phone_hash).scalar_subquery(),
        )
    ).one()
    if held:
        return None  # Twilio retried a text we already hold
    keyword = _keyword(sms.body)
    suppressed = bool(opted_out)
    if keyword in STOP_WORDS:
        set_opt_out(session, phone_hash, True)
        return None  # the carrier has already confirmed the opt-out
    if keyword in START_WORDS and (suppressed or keyword != "YES"):
        if suppressed:
            set_opt_out(session, phone_hash, False)
        return None  # the carrier confirms START itself
    conversation = _open_conversation(session, catalog, phone_hash)
    if keyword in HELP_WORDS:
        language = conversation.language if conversation else "en"
        return None if suppressed else catalog.message("help", language)
    if conversation is None:
        # A new conversation is written with updated_at = now: no UPDATE of it follows.
        conversation, reply = _start(session, catalog, sms, phone_hash)
        _store(session, conversation, sms)
    else:
        _store(session, conversation, sms)
        reply = _continue(session, catalog, conversation, sms)
        conversation.updated_at = utcnow()
    # An opted-out texter's words are kept (they may matter), but nothing is sent back.
    return None if suppressed else reply


def _reply_in_outage(
    catalog: IntakeCatalog, body: str, language: str, step: int, reference: str
) -> str:
    """What ``_continue`` would answer to the ``step``-th reply, from the catalog alone."""
    if step >= len(catalog.questions):
        return catalog.message("received", language, reference=reference)
    question = catalog.questions[step]
    reply = []
    if question.emergency_on and body.strip() and question.kind != "text":
        if _yes_no(catalog, body, language) is (question.emergency_on == "yes"):
            reply.append(catalog.message("emergency", language))
    if step + 1 < len(catalog.questions):
        reply.append(catalog.questions[step + 1].text[language])
    else:
        reply.append(catalog.message("done", language, reference=reference))
    return " ".join(reply)


def answer_while_spooling(spool: Spool, catalog: IntakeCatalog, sms: SmsIn) -> str | None:
    """The database is down: spool the text (fsynced) and answer as the conversation would.

    A texter's first text of the outage gets a new reference and passphrase (we cannot
    see an earlier conversation now); their later texts count as answers to the
    questions, in order, under that reference. STOP and START are spooled and honoured
    on replay; a texter who sent STOP during the outage gets no more replies from it.
    """
    phone_hash = lookup_hash(phone_key(sms.sender))
    keyword = _keyword(sms.body)
    payload: dict[str, Any] = {
        "message_sid": sms.message_sid, "sender": sms.sender, "body": sms.body
    }
    dedupe = f"sms:{sms.message_sid}"
    if keyword in HELP_WORDS:
        return catalog.message("help", "en")  # nothing to store, as when the database is up
    if keyword in STOP_WORDS or (keyword in START_WORDS and keyword != "YES"):
        spool.put("sms", payload, dedupe=dedupe, sender_hash=phone_hash, note=keyword)
        return None  # the carrier confirms STOP and START itself
    if spool.sender_last_keyword(phone_hash) in STOP_WORDS:
        spool.put("sms", payload, dedupe=dedupe, sender_hash=phone_hash)
        return None
    known = spool.sender_reference(phone_hash)
    if known is None:
        language = _language_of(catalog, sms.body)
        reference, passphrase = new_reference(), new_passphrase(language=language)
        payload.update(
            first=True,
            reference=reference,
            language=language,
            passphrase_hash=hash_passphrase(passphrase),
        )
        item = spool.put("sms", payload, dedupe=dedupe, sender_hash=phone_hash,
                         reference=reference, note=language)
        if item.reference != reference:  # Twilio retried a text we spooled already
            return catalog.message("received", language, reference=item.reference or "")
        welcome = catalog.message(
            "welcome", language, reference=reference, passphrase=passphrase
        )
        return f"{welcome} {catalog.questions[0].text[language]}"
    reference, language, held = known
    payload.update(first=False, reference=reference)
    item = spool.put("sms", payload, dedupe=dedupe, sender_hash=phone_hash,
                     reference=reference, note=language)
    if item.reference != reference or item.kind != "sms":  # pragma: no cover - defensive
        return catalog.message("received", language, reference=reference)
    # ``held`` texts came before this one under the reference: it answers question held-1.
    return _reply_in_outage(catalog, sms.body, language, held - 1, reference)


def replay_sms(session: Session, catalog: IntakeCatalog, payload: dict[str, Any],
               spooled_at: str) -> int | None:
    """Put a spooled text into the database as if it had come in live; the case id.

    No reply is sent: the texter had theirs from the spool.
    """
    sms = SmsIn(payload["message_sid"], payload["sender"], payload["body"])
    if session.scalar(select(TipMessage.id).where(TipMessage.message_sid == sms.message_sid)):
        return None  # already stored (a commit whose answer was lost)
    reference = payload.get("reference")
    if reference is None:  # STOP, START, or a text after STOP: the live path handles them
        receive_sms(session, catalog, sms)
        return None
    phone_hash = lookup_hash(phone_key(sms.sender))
    conversation: SmsConversation | None
    if payload.get("first"):
        conversation, _ = _start(session, catalog, sms, phone_hash, spooled={
            "reference": reference,
            "passphrase_hash": payload["passphrase_hash"],
            "language": payload["language"],
            "spooled_at": spooled_at,
        })
        _store(session, conversation, sms)
    else:
        case = find_by_reference(session, reference)
        if case is None:
            raise LookupError(f"the text that opened {reference} is not replayed yet")
        conversation = session.scalar(
            select(SmsConversation)
            .where(SmsConversation.case_id == case.id)
            .order_by(SmsConversation.id.desc())
            .limit(1)
        )
        assert conversation is not None
        _store(session, conversation, sms)
        _continue(session, catalog, conversation, sms)
        conversation.updated_at = utcnow()
    return conversation.case_id
