"""The referral packet: what an agency receives, versioned, least data first.

Domain code (no Flask): the lifecycle freezes it when a referral is queued
(``take_snapshot``), the delivery worker sends the frozen bytes and the agency API and
inbox read them back.

Who the tipster or victim is goes out only with the matching consent and never for an
anonymous signal; immigration-relief details (T-visa, U-visa, VAWA) never leave the
system (8 U.S.C. 1367), neither as screening facts nor inside a narrative.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session

from workflows.db import utcnow
from workflows.immigration import withhold_relief_sentences
from workflows.links import earlier_referrals_sharing
from workflows.models import Case, Referral, ReferralPacket
from workflows.screening import consent_state

SCHEMA_VERSION = "1.0"  # the shape; each referral's versions count in ``packet_version``
SERVICES_AGENCIES = frozenset({"HHS"})  # receive under services consent, not law enforcement
MAX_SUMMARY = 8000

# Facts about immigration relief applications are protected by 8 U.S.C. 1367.
_PROTECTED_KEY = re.compile(r"visa|vawa|immigration|continued_presence|i_?914|i_?918|i_?360", re.I)
# The words alone, matched without any run of "anything but a full stop" around them: the
# sentence is then widened with str.rfind/find. The old single pattern
# ``[^.!?\n]*\b(?:…)\b[^.!?\n]*`` backtracked over every start position (quadratic): a
# 19,500-character narrative without punctuation took 25 s (issue 11, item 4).
_PROTECTED_WORDS = re.compile(
    r"\b(?:[TU][- ]?visas?|VAWA|I-?914|I-?918|I-?360|continued presence|"
    r"self[- ]petition\w*)\b",
    re.I,
)
SENTENCE_ENDS = ".!?\n"
_SENTENCE_END = re.compile(r"[.!?\n]")  # one character: no backtracking
REDACTED = "[withheld: protected immigration information]"


def consent_given(screening: dict[str, Any] | None, scope: str) -> bool:
    """Whether consent of this scope (law_enforcement, services, callback) holds now."""
    record = ((screening or {}).get("consent") or {}).get(scope)
    if isinstance(record, bool):
        return record
    return consent_state(record if isinstance(record, dict) else None, utcnow()) == "given"


# Who may consent to disclosing a victim's identity and contact details (SPEC 4).
VICTIM_SIDE = frozenset({"victim", "guardian"})


def consent_given_by(screening: dict[str, Any] | None, scope: str) -> str | None:
    """Who gave the consent of this scope: victim, guardian or third_party (or None)."""
    record = ((screening or {}).get("consent") or {}).get(scope)
    return record.get("given_by") if isinstance(record, dict) else None


def redact_protected(text: str) -> str:
    """Remove every sentence that mentions an immigration-relief application.

    Linear in the text: each stretch of it is scanned a bounded number of times (the
    word search, one ``rfind`` back and one ``find`` forward per redacted sentence).
    """
    out: list[str] = []
    done = 0  # everything before this index is settled
    for hit in _PROTECTED_WORDS.finditer(text):
        if hit.start() < done:
            continue  # inside a sentence already withheld
        start = max(text.rfind(end, done, hit.start()) for end in SENTENCE_ENDS) + 1
        start = max(start, done)
        stop = _sentence_end(text, hit.end())
        out.append(text[done:start])
        out.append(REDACTED)
        done = stop
    out.append(text[done:])
    return "".join(out)


def _sentence_end(text: str, at: int) -> int:
    """Index just past the sentence's closing mark (a line break stays in the text)."""
    end = _SENTENCE_END.search(text, at)  # stops at the first one (str.find per mark would not)
    if end is None:
        return len(text)
    return end.start() if end.group() == "\n" else end.end()


def _facts(screening: dict[str, Any]) -> dict[str, Any]:
    facts = screening.get("facts") or {}
    return {k: v for k, v in facts.items() if not _PROTECTED_KEY.search(k)}


def _people(case: Case, referral: Referral, screening: dict[str, Any]) -> dict[str, Any]:
    """Contact details of the people behind the signals, as far as consent allows."""
    scope = "services" if referral.agency_code in SERVICES_AGENCIES else "law_enforcement"
    allowed = consent_given(screening, scope) and not case.anonymous
    given_by = consent_given_by(screening, scope) if allowed else None
    contacts: list[dict[str, Any]] = []
    for signal in case.signals:
        if signal.anonymous or not allowed:
            continue
        if signal.caller_type == "victim" and given_by not in VICTIM_SIDE:
            continue  # a third party may report what they know, never the victim's details
        person = {
            "caller_type": signal.caller_type,
            "name": signal.caller_name,
            "phone": signal.contact_phone or signal.from_phone,
            "email": signal.contact_email,
            "language": signal.language,
        }
        if any(person[k] for k in ("name", "phone", "email")):
            contacts.append(person)
    return {
        "anonymous": case.anonymous or all(s.anonymous for s in case.signals),
        "consent_scope": scope,
        "consent_given_by": given_by,
        "contact_shared": bool(contacts),
        "contacts": contacts,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _case_file(case: Case) -> dict[str, Any]:
    """Who and where the tip is about. Victims go out as ages and language only:
    citizenship, gender and needs stay with the hotline (least data; 8 U.S.C. 1367)."""
    return {
        "jurisdiction": {"state": case.incident_state},
        "victims": [
            {"age": v.age, "age_min": v.age_min, "age_max": v.age_max, "minor": v.minor,
             "language": v.language}
            for v in case.victims
        ],
        "subjects": [
            {"kind": s.kind, "value": redact_protected(s.value), "platform": s.platform,
             "plate_state": s.plate_state}
            for s in case.subjects
        ],
        "locations": [
            {"address": redact_protected(loc.address) if loc.address else None,
             "city": loc.city, "county": loc.county, "state": loc.state,
             "tribal_land": loc.tribal_land}
            for loc in case.locations
        ],
    }


MAX_FOLLOW_UPS = 50  # the newest ones; a follow-up is at most 5,000 characters


def _follow_ups(case: Case) -> list[dict[str, Any]]:
    """What the tipster added through the follow-up thread (reference and passphrase).

    Never the hotline's replies (they name no one, but they are the hotline's words, not
    the tip), and not the SMS question-and-answer texts of a signal (``signal_id`` set).
    Redacted like the narrative.
    """
    found = [
        m for m in case.messages
        if m.direction == "in" and m.author == "tipster" and m.signal_id is None
    ][-MAX_FOLLOW_UPS:]
    out = []
    for message in found:
        text = redact_protected(message.body)
        if case.protected_immigration:
            text = withhold_relief_sentences(text)
        out.append({"received_at": _iso(message.created_at), "text": text})
    return out


def related_referrals(referral: Referral) -> dict[str, Any]:
    """Earlier referrals to this same agency about a case sharing an identifier."""
    session = object_session(referral)
    if session is None:
        return {"count": 0, "references": []}
    return earlier_referrals_sharing(session, referral)


def build_packet(referral: Referral) -> dict[str, Any]:
    """The versioned packet for this referral (the same for webhook and agency API)."""
    case = referral.case
    screening = case.screening or {}
    narratives = [redact_protected(s.narrative) for s in case.signals if s.narrative]
    transcripts = [redact_protected(s.transcript) for s in case.signals if s.transcript]
    if case.protected_immigration:  # staff confirmed 1367 applies: withhold every mention
        narratives = [withhold_relief_sentences(t) for t in narratives]
        transcripts = [withhold_relief_sentences(t) for t in transcripts]
    summary = "\n\n".join(narratives + transcripts)[:MAX_SUMMARY]
    return {
        "schema_version": SCHEMA_VERSION,
        "referral_id": referral.id,
        "idempotency_key": referral.idempotency_key,
        "agency": referral.agency_code,
        "case_reference": case.reference,
        "priority": case.priority,
        "level": case.level,
        "mandatory": referral.mandatory,
        "deadline": _iso(referral.deadline),
        "send_by": _iso(referral.send_by),
        "answer_by": _iso(referral.answer_by),
        "reason": referral.reason,
        "rule": referral.rule,
        "legal_basis": referral.legal_basis,
        "summary": summary,
        "follow_ups": _follow_ups(case),
        "indicators": list(screening.get("indicators") or []),
        "facts": _facts(screening),
        "location": [s.location for s in case.signals if s.location],
        "people": _people(case, referral, screening),
        "consent_given_by": consent_given_by(
            screening,
            "services" if referral.agency_code in SERVICES_AGENCIES else "law_enforcement",
        ) if not referral.mandatory else None,
        **_case_file(case),
        # How many referrals this agency already had about the same number, handle, plate,
        # business or address, and their references: its own referrals only.
        "related_referrals": related_referrals(referral),
        "created_at": _iso(referral.created_at),
    }


def latest_snapshot(session: Session, referral: Referral) -> ReferralPacket | None:
    """The newest packet version disclosed for this referral, or None (never queued)."""
    return session.scalar(
        select(ReferralPacket)
        .where(ReferralPacket.referral_id == referral.id)
        .order_by(ReferralPacket.version.desc())
        .limit(1)
    )


def latest_versions(session: Session, referral_ids: list[int]) -> dict[int, int]:
    """The newest packet version of each referral (for lists that show no packet)."""
    if not referral_ids:
        return {}
    rows = session.execute(
        select(ReferralPacket.referral_id, func.max(ReferralPacket.version))
        .where(ReferralPacket.referral_id.in_(referral_ids))
        .group_by(ReferralPacket.referral_id)
    ).all()
    return {referral_id: version for referral_id, version in rows}


def packet_key(referral: Referral, version: int) -> str:
    """The Idempotency-Key of one packet version: the referral's own for the first (as
    before updates existed), ``<key>-v<n>`` after, so every retry of a version carries
    the same key and a new version is never mistaken for a duplicate."""
    return referral.idempotency_key if version == 1 else f"{referral.idempotency_key}-v{version}"


def add_snapshot(
    session: Session, referral: Referral, packet: dict[str, Any], packet_type: str
) -> ReferralPacket:
    """Freeze ``packet`` as the referral's next version (``packet_version`` n+1).

    ``schema_version`` stays; the body names its version, type and own key. Two staff
    confirming at once collide on (referral_id, version): the loser's flush fails.
    """
    latest = latest_snapshot(session, referral)
    version = (latest.version if latest is not None else 0) + 1
    body = {
        **packet,
        "schema_version": SCHEMA_VERSION,
        "packet_version": version,
        "packet_type": packet_type,
        "idempotency_key": packet_key(referral, version),
    }
    snapshot = ReferralPacket(
        referral_id=referral.id,
        case_id=referral.case_id,
        version=version,
        body=encode_packet(body).decode("utf-8"),
    )
    session.add(snapshot)
    session.flush()
    return snapshot


def take_snapshot(session: Session, referral: Referral) -> ReferralPacket:
    """Freeze the packet as it is disclosed now (at queue time), built once per version.

    A retry after a failed delivery sends the same version again: the agency dedupes on
    the Idempotency-Key, so the bytes behind one key must never change.
    """
    existing = latest_snapshot(session, referral)
    if existing is not None:
        return existing
    return add_snapshot(session, referral, build_packet(referral), "referral")


def snapshot_packet(snapshot: ReferralPacket) -> dict[str, Any]:
    """A snapshot's packet; one frozen before versions were named gets its number."""
    packet = json.loads(snapshot.body)
    packet.setdefault("packet_version", snapshot.version)
    packet.setdefault("packet_type", "referral")
    return dict(packet)


def disclosed_packet(session: Session, referral: Referral) -> dict[str, Any] | None:
    """What the agency was given, as a dict (None when nothing was kept for it)."""
    snapshot = latest_snapshot(session, referral)
    return snapshot_packet(snapshot) if snapshot is not None else None


def encode_packet(packet: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent."""
    return json.dumps(packet, separators=(",", ":"), sort_keys=True, default=str).encode("utf-8")
