"""Packet updates and consent withdrawal: keeping what an agency holds in step with the case.

New information after a referral was sent (a tipster's follow-up, another signal, a
victim, subject or location added to the case file) is offered to staff per agency:
the packet is rebuilt under the referral's own basis (``build_packet``, exactly as the
first one) and compared with the last version the agency holds. Only an agency whose
packet would change is asked about, so one whose basis does not cover the new item
(contact details shared under another consent's scope, say) is not. Staff send it (the
next ``packet_version``, frozen and queued through the outbox in the same transaction)
or say "not now" (asked again once something more arrives).

A victim withdrawing consent makes a ``consent_withdrawn`` version for every agency
holding something that consent covered: the whole packet of a referral whose basis was
that consent (only the referral's envelope stays), or the contact details a mandatory
referral carried under it. Referrals not yet delivered on that basis are withdrawn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workflows import routing
from workflows.db import utcnow
from workflows.errors import Conflict, NotFound
from workflows.models import Case, Referral, ReferralPacket, User
from workflows.outbox import add_outbox_message
from workflows.packets import (
    SERVICES_AGENCIES,
    add_snapshot,
    build_packet,
    encode_packet,
    latest_snapshot,
    snapshot_packet,
)
from workflows.pii import lookup_hash
from workflows.referral_events import fire_referral
from workflows.screening import CONSENT_SCOPES, consent_state

# The parts of a packet that come from the case itself; the rest (deadlines, related
# referrals elsewhere) moves on its own and is no news about this case.
CONTENT_FIELDS = (
    "priority", "level", "summary", "follow_ups", "indicators", "facts", "location",
    "people", "jurisdiction", "victims", "subjects", "locations",
)
# Delivered and still held by an agency that is working on it.
UPDATABLE_STATES = ("sent", "acknowledged", "accepted")
# What a referral resting on a withdrawn consent still shows: why it existed, no one's data.
ENVELOPE_FIELDS = (
    "referral_id", "agency", "case_reference", "priority", "level", "mandatory", "deadline",
    "send_by", "answer_by", "reason", "rule", "legal_basis", "created_at",
)
DELIVER_PACKET = "deliver_packet"  # the outbox kind: ref_id is the ReferralPacket's id


@dataclass(frozen=True)
class PendingUpdate:
    """New information one agency would get; ``digest`` names exactly this content."""

    referral_id: int
    agency: str
    digest: str
    changed: tuple[str, ...]
    packet: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """What staff are shown (field names, never the content)."""
        return {"agency": self.agency, "digest": self.digest, "changed": list(self.changed)}


def _content(packet: dict[str, Any]) -> dict[str, Any]:
    # An empty list, an absent key and null are the same news: none.
    return {k: packet.get(k) or None for k in CONTENT_FIELDS}


def _consent(case: Case) -> dict[str, Any] | None:
    return (case.screening or {}).get("consent")


def pending_update(
    session: Session, referral: Referral, now: datetime | None = None
) -> PendingUpdate | None:
    """The update this referral's agency should be offered now, or None.

    None when the referral is not delivered (or no longer held), when its basis no longer
    holds (consent withdrawn or expired), when nothing its basis covers changed, or when
    staff said "not now" to exactly this content.
    """
    case = referral.case
    if referral.state not in UPDATABLE_STATES or referral.sent_at is None:
        return None
    if case.purged_at is not None:
        return None
    if not routing.basis_holds(referral.legal_basis, _consent(case), now or utcnow()):
        return None
    held = latest_snapshot(session, referral)
    if held is None:
        return None
    fresh = json.loads(encode_packet(build_packet(referral)))  # as the agency would read it
    before, after = _content(snapshot_packet(held)), _content(fresh)
    changed = tuple(k for k in CONTENT_FIELDS if before[k] != after[k])
    if not changed:
        return None
    # Keyed: the digest travels in forms and sits in a column; it must not let anyone
    # confirm a guess about the content.
    digest = lookup_hash(encode_packet(after).decode("utf-8"))
    if referral.update_dismissed_digest == digest:
        return None
    return PendingUpdate(referral.id, referral.agency_code, digest, changed, fresh)


def pending_updates(session: Session, case: Case) -> dict[int, PendingUpdate]:
    """Every referral of the case with new information to offer, by referral id."""
    now = utcnow()
    found = {}
    for referral in case.referrals:
        update = pending_update(session, referral, now)
        if update is not None:
            found[referral.id] = update
    return found


def referral_on_case(session: Session, case: Case, referral_id: int) -> Referral:
    referral = session.get(Referral, referral_id)
    if referral is None or referral.case_id != case.id:
        raise NotFound(f"no referral {referral_id} on this case")
    return referral


def current_update(session: Session, referral: Referral, digest: str) -> PendingUpdate:
    update = pending_update(session, referral)
    if update is None:
        raise Conflict(
            f"there is no new information to send to {referral.agency_code}", field="digest"
        )
    if update.digest != digest:
        raise Conflict(
            "more information arrived since the page was shown; reload and look again",
            field="digest",
        )
    return update


def queue_packet(
    session: Session, referral: Referral, packet: dict[str, Any], packet_type: str
) -> ReferralPacket:
    """Freeze the next version and its outbox row, in the caller's transaction."""
    try:
        snapshot = add_snapshot(session, referral, packet, packet_type)
    except IntegrityError:
        raise Conflict(
            f"another version for {referral.agency_code} was made meanwhile; reload it"
        ) from None
    add_outbox_message(session, DELIVER_PACKET, ref_id=snapshot.id,
                       priority_rank=referral.case.priority_rank)
    return snapshot


def _without_contacts(packet: dict[str, Any]) -> dict[str, Any]:
    people = dict(packet.get("people") or {})
    people.update(consent_given_by=None, contact_shared=False, contacts=[])
    return {**packet, "people": people}


def _withdrawn_packet(
    held: dict[str, Any], referral: Referral, scope: str, now: datetime, whole: bool
) -> dict[str, Any]:
    """The held packet without what the withdrawn consent covered."""
    if whole:
        kept = {k: held[k] for k in ENVELOPE_FIELDS if k in held}
        withheld = sorted(k for k in held if k not in kept and k not in _OWN_FIELDS)
    else:
        kept = _without_contacts(held)
        withheld = ["people.contacts"]
    kept["consent_withdrawn"] = {
        "scope": scope,
        "withdrawn_at": now.isoformat(),
        "basis_ended": whole,
        "withheld": withheld,
    }
    return kept


_OWN_FIELDS = {"schema_version", "packet_version", "packet_type", "idempotency_key",
               "consent_withdrawn"}


def _scope_of(referral: Referral) -> str:
    return "services" if referral.agency_code in SERVICES_AGENCIES else "law_enforcement"


def notify_withdrawal(
    session: Session,
    case: Case,
    scope: str,
    actor: User,
    now: datetime,
    catalogs: dict[str, Any],
) -> list[int]:
    """After ``scope``'s consent ended: tell every holder what it no longer has.

    Each referral whose basis no longer holds is withdrawn if not yet delivered, else
    gets a ``consent_withdrawn`` version with only its envelope; a referral whose basis
    holds (a mandatory rule) but which carried contact details under this consent gets
    one without them; any other keeps what it has and hears nothing. Returns the ids of
    the referrals that got a version.
    """
    told = []
    consent = _consent(case)
    for referral in list(case.referrals):
        if referral.state == "withdrawn":
            continue
        ended = not routing.basis_holds(referral.legal_basis, consent, now)
        if ended and referral.sent_at is None and referral.state in ("pending", "queued",
                                                                      "failed"):
            fire_referral(session, referral, "withdraw", actor,
                          f"the victim's {scope} consent was withdrawn", {}, catalogs,
                          cascade=True)
            continue
        if referral.queued_at is None:
            continue  # never disclosed
        held_row = latest_snapshot(session, referral)
        if held_row is None:
            continue
        held = snapshot_packet(held_row)
        people = held.get("people") or {}
        contacts = bool(people.get("contacts")) and _scope_of(referral) == scope
        if not ended and not contacts:
            continue
        queue_packet(
            session, referral, _withdrawn_packet(held, referral, scope, now, ended),
            "consent_withdrawn",
        )
        told.append(referral.id)
    return told


def withdrawn_scopes(
    before: dict[str, Any] | None, after: dict[str, Any] | None, now: datetime
) -> list[str]:
    """Scopes whose consent was given before and is not now (a re-screening's "no")."""
    def state(records: dict[str, Any] | None, scope: str) -> str:
        record = (records or {}).get(scope)
        if isinstance(record, bool):
            return "given" if record else "refused"
        return consent_state(record if isinstance(record, dict) else None, now)

    return [s for s in CONSENT_SCOPES if state(before, s) == "given" and state(after, s) != "given"]
