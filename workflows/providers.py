"""Service providers and service referrals (issue 13): the commonest thing a hotline does
for a victim is not a police report but a shelter, legal aid, a youth or DV program.

Providers come from an Open Referral HSDS data package (``workflows.hsds``) and are
searched by service type, language and place. A service referral rests on the victim's
*services* consent — never law enforcement's — carries only what that consent covers
(the need, the place, the language: no narrative, no name) and reaches a provider who
has no account through a signed, expiring link. Its states follow the referral
lifecycle's names: ``queued → sent → acknowledged → accepted | declined``, and a provider
may report the service given once accepted.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from workflows.audit import record_event
from workflows.db import Base, utcnow
from workflows.errors import Conflict, InvalidInput, NotFound
from workflows.models import Case, User
from workflows.packets import consent_given
from workflows.pii import EncryptedText

SERVICE_TYPES = (
    "shelter",
    "legal",
    "medical",
    "mental_health",
    "youth",
    "dv",
    "labor",
    "interpretation",
)
# What a provider may answer in each state (the referral lifecycle's names).
PROVIDER_ANSWERS: dict[str, tuple[str, ...]] = {
    "acknowledge": ("queued", "sent"),
    "accept": ("queued", "sent", "acknowledged"),
    "decline": ("queued", "sent", "acknowledged"),
    "report_service": ("accepted",),
}
AFTER = {
    "acknowledge": "acknowledged",
    "accept": "accepted",
    "decline": "declined",
    "report_service": "accepted",
}


class ServiceProvider(Base):
    """One service of a provider, as HSDS describes it (one row per HSDS service)."""

    __tablename__ = "service_providers"

    id: Mapped[int] = mapped_column(primary_key=True)
    hsds_id: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    organization: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(String(254))
    service_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    city: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(2), index=True)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    # Set by an admin (workflows.provider_admin); an HSDS import leaves them as they are.
    address: Mapped[str | None] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def as_json(self) -> dict[str, Any]:
        """The directory entry as staff see it."""
        return {
            "id": self.id,
            "hsds_id": self.hsds_id,
            "name": self.name,
            "organization": self.organization,
            "description": self.description,
            "email": self.email,
            "service_types": self.service_types,
            "languages": self.languages,
            "city": self.city,
            "state": self.state,
            "latitude": self.latitude,
            "longitude": self.longitude,
        }


class ServiceReferral(Base):
    """A case referred to a service provider on the victim's services consent."""

    __tablename__ = "service_referrals"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("service_providers.id"))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str] = mapped_column(EncryptedText)
    legal_basis: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    answer_note: Mapped[str | None] = mapped_column(EncryptedText)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    service_given_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    provider: Mapped[ServiceProvider] = relationship(lazy="joined")

    def as_json(self) -> dict[str, Any]:
        """The referral as staff see it on the case."""
        return {
            "id": self.id,
            "case_id": self.case_id,
            "state": self.state,
            "provider": {"id": self.provider.id, "name": self.provider.name},
            "reason": self.reason,
            "legal_basis": self.legal_basis,
            "answer_note": self.answer_note,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "service_given_at": self.service_given_at.isoformat()
            if self.service_given_at
            else None,
        }


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine): good enough to sort nearby shelters."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))


def search_providers(
    session: Session,
    *,
    service_type: str | None = None,
    language: str | None = None,
    state: str | None = None,
    near: tuple[float, float] | None = None,
    limit: int = 50,
) -> list[tuple[ServiceProvider, float | None]]:
    """Providers matching the filters; nearest first when ``near`` is given."""
    query = select(ServiceProvider)
    if state:
        query = query.where(ServiceProvider.state == state.upper())
    found = []
    for provider in session.scalars(query.order_by(ServiceProvider.name)):
        if service_type and service_type not in (provider.service_types or []):
            continue
        if language and language not in (provider.languages or []):
            continue
        distance = None
        if near and provider.latitude is not None and provider.longitude is not None:
            distance = round(
                distance_km(near[0], near[1], provider.latitude, provider.longitude), 1
            )
        found.append((provider, distance))
    if near:
        found.sort(key=lambda item: (item[1] is None, item[1] or 0.0))
    return found[:limit]


def refer_to_provider(
    session: Session, case: Case, provider_id: int, reason: str, actor: User
) -> ServiceReferral:
    """A service referral, only on the victim's services consent (409 otherwise)."""
    provider = session.get(ServiceProvider, provider_id)
    if provider is None:
        raise NotFound(f"no service {provider_id}", field="service_id")
    if not provider.email:
        raise Conflict("this provider has no e-mail address to reach it", field="service_id")
    if not consent_given(case.screening, "services"):
        raise Conflict(
            "no services consent on this case: ask the victim before referring to a provider",
            field="consent.services",
        )
    record = ((case.screening or {}).get("consent") or {}).get("services") or {}
    referral = ServiceReferral(
        case_id=case.id,
        provider_id=provider.id,
        state="queued",
        reason=reason,
        legal_basis={
            "basis": "consent",
            "scope": "services",
            "given_by": record.get("given_by"),
            "recorded_by": record.get("recorded_by"),
            "recorded_at": record.get("recorded_at"),
        },
        created_by=actor.username,
    )
    session.add(referral)
    session.flush()
    record_event(
        session,
        actor=actor.username,
        action="service_referral",
        case_id=case.id,
        from_state=None,
        to_state="queued",
        detail={"service_referral_id": referral.id, "provider_id": provider.id},
    )
    return referral


def provider_packet(session: Session, referral: ServiceReferral) -> dict[str, Any]:
    """What the provider sees: the need, place and language only (the services consent
    covers a referral for help, not the victim's story or name)."""
    case = session.get(Case, referral.case_id)
    assert case is not None
    signals = list(case.signals)
    language = signals[0].language if signals else "en"
    place = next((s.location for s in signals if s.location), None)
    return {
        "reference": case.reference,
        "reason": referral.reason,
        "language": language,
        "place": place,
        "state": referral.state,
        "provider": referral.provider.name,
    }


def answer_as_provider(
    session: Session, referral_id: int, answer: str, note: str | None
) -> ServiceReferral:
    """The provider's answer; the same answer twice changes nothing (a double click)."""
    referral = session.get(ServiceReferral, referral_id)
    if referral is None:
        raise NotFound("no such referral")
    if answer not in PROVIDER_ANSWERS:
        raise InvalidInput(f"unknown answer {answer!r}", field="answer")
    if answer == "decline" and not (note or "").strip():
        raise InvalidInput("say why you decline", field="note")
    done = referral.state == AFTER[answer] and (
        answer != "report_service" or referral.service_given_at is not None
    )
    if done:
        return referral
    if referral.state not in PROVIDER_ANSWERS[answer]:
        raise Conflict(
            f"a referral in {referral.state} cannot be answered {answer}", field="answer"
        )
    before = referral.state
    referral.state = AFTER[answer]
    if note:
        referral.answer_note = note[:2000]
    if answer == "report_service":
        referral.service_given_at = utcnow()
    referral.updated_at = utcnow()
    record_event(
        session,
        actor=f"provider:{referral.provider_id}",
        action=f"provider_{answer}",
        case_id=referral.case_id,
        from_state=before,
        to_state=referral.state,
        detail={"service_referral_id": referral.id},
    )
    session.flush()
    return referral
