"""Domain models: people, cases, referrals and the audit log.

Cases and referrals keep their lifecycle state in a plain ``state`` column; the
``transitions`` machines in ``workflows.machines`` read and write that column and
nothing else (the column is the truth).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from workflows.db import Base, utcnow
from workflows.errors import InvalidInput
from workflows.identifiers import LINKED_KINDS, normalise
from workflows.pii import EncryptedJSON, EncryptedText


class Role(enum.StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    AGENCY = "agency"
    ADMIN = "admin"
    RESEARCHER = "researcher"  # statistics and de-identified exports, never a case


class Priority(enum.StrEnum):
    EMERGENCY = "emergency"
    URGENT = "urgent"
    ROUTINE = "routine"


PRIORITY_RANK = {Priority.EMERGENCY: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ('operator','supervisor','agency','admin','researcher')", name="valid_role"
        ),
        CheckConstraint("role <> 'agency' OR agency_code IS NOT NULL", name="agency_has_code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    agency_code: Mapped[str | None] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # Staff contact details are personal data too: encrypted like a tipster's.
    phone: Mapped[str | None] = mapped_column(EncryptedText)
    email: Mapped[str | None] = mapped_column(EncryptedText)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped by logout: every login session carries the value it was issued under, so a
    # cookie kept (or replayed) after logout no longer opens anything.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class LoginFailure(Base):
    """Wrong passwords per (user name, client address), with the lock-out they earned.

    Per pair, not per account: someone who knows a user name can lock out only their
    own address, never the desk's.
    """

    __tablename__ = "login_failures"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored, so a database leak leaks no tokens."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(back_populates="tokens")


class Case(Base):
    """One situation reported to the hotline; it gathers one or more signals."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_queue", "state", "priority_rank", "deadline", "created_at"),
        Index("ix_cases_open_deadline", "deadline"),
        # The supervisor's queue: keyset pages in (deadline, created_at, id) order,
        # with and without a state filter (workflows/queues.py).
        # Open emergencies lead (queue_rank 0), then deadline, then age.
        Index("ix_cases_queue_order", "queue_rank", "deadline", "created_at", "id"),
        Index("ix_cases_state_queue_order", "state", "queue_rank", "deadline", "created_at",
              "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str | None] = mapped_column(String(32), unique=True)
    state: Mapped[str] = mapped_column(String(24), default="received")
    priority: Mapped[str] = mapped_column(String(16), default=Priority.ROUTINE.value)
    priority_rank: Mapped[int] = mapped_column(Integer, default=2)
    level: Mapped[str | None] = mapped_column(String(32))
    score: Mapped[int] = mapped_column(Integer, default=0)
    case_type: Mapped[str] = mapped_column(String(16), default="unknown")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # 0 while the case is an open emergency (it leads every queue), else 1.
    queue_rank: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # The first emergency signal (IVR option, SMS "not safe", imminent danger in screening):
    # the 15-minute clock runs from it; re-pages stop once a supervisor acknowledges.
    emergency_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    emergency_acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    emergency_acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    # Statutory clocks: rule name -> ISO time the hotline first learned the triggering
    # facts. Kept once per rule and never moved later, so re-screening never restarts one.
    clocks: Mapped[dict[str, str] | None] = mapped_column(JSON)
    # Facts a tipster's channel answered (SMS "under 18?" / "safe now?", the IVR's
    # emergency option): booleans only, the defaults screening starts from.
    signal_facts: Mapped[dict[str, bool] | None] = mapped_column(JSON)
    # 8 U.S.C. 1367: the case involves an immigration-relief application (T/U visa, VAWA,
    # continued presence). Set by staff only; never sent to nor shown to an agency.
    protected_immigration: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    protected_set_by: Mapped[str | None] = mapped_column(String(64))
    protected_set_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    screening: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    resolution_code: Mapped[str | None] = mapped_column(String(32))
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    passphrase_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    referred_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Where it happened, for routing and statistics (two-letter USPS code, no one's address).
    incident_state: Mapped[str | None] = mapped_column(String(2), index=True)
    # A case merged into another keeps its row (its reference still finds the survivor).
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}

    assignee: Mapped[User | None] = relationship()
    victims: Mapped[list[Victim]] = relationship(order_by="Victim.id")
    subjects: Mapped[list[Subject]] = relationship(order_by="Subject.id")
    locations: Mapped[list[Location]] = relationship(order_by="Location.id")
    notes: Mapped[list[Note]] = relationship(order_by="Note.id")
    signals: Mapped[list[Any]] = relationship("Signal", back_populates="case", order_by="Signal.id")
    referrals: Mapped[list[Referral]] = relationship(back_populates="case", order_by="Referral.id")
    messages: Mapped[list[Any]] = relationship(
        "TipMessage", back_populates="case", order_by="TipMessage.id"
    )


class Victim(Base):
    """A person the tip is about who may be trafficked; gender only as they state it."""

    __tablename__ = "case_victims"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    age: Mapped[int | None] = mapped_column(Integer)
    age_min: Mapped[int | None] = mapped_column(Integer)
    age_max: Mapped[int | None] = mapped_column(Integer)
    minor: Mapped[bool | None] = mapped_column(Boolean)
    # Citizenship and gender are sensitive (immigration status, 8 U.S.C. 1367): encrypted.
    citizenship: Mapped[str | None] = mapped_column(EncryptedText)
    language: Mapped[str | None] = mapped_column(String(16))
    gender: Mapped[str | None] = mapped_column(EncryptedText)
    needs: Mapped[str | None] = mapped_column(EncryptedText)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Subject(Base):
    """Who or what a tip is about: a person, business, number, handle, vehicle, place, site."""

    __tablename__ = "case_subjects"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('person','business','phone','email','handle','vehicle','address',"
            "'website')",
            name="valid_kind",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(EncryptedText)
    platform: Mapped[str | None] = mapped_column(String(64))  # of a handle
    plate_state: Mapped[str | None] = mapped_column(String(2))  # of a vehicle
    description: Mapped[str | None] = mapped_column(EncryptedText)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    identifier_source = "subject"
    identifier_fields = ("case_id", "kind", "value")

    def identifiers(self) -> list[tuple[str, str]]:
        """(kind, normal form) for the look-up index (workflows.links)."""
        if self.kind not in LINKED_KINDS or not self.value:
            return []
        try:
            return [(self.kind, normalise(self.kind, self.value))]
        except InvalidInput:
            return []


class Location(Base):
    """Where it happened; state, county and city are plain (jurisdiction and statistics)."""

    __tablename__ = "case_locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    address: Mapped[str | None] = mapped_column(EncryptedText)
    city: Mapped[str | None] = mapped_column(String(100))
    county: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(2))
    zip: Mapped[str | None] = mapped_column(EncryptedText)
    tribal_land: Mapped[bool | None] = mapped_column(Boolean)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    identifier_source = "location"
    identifier_fields = ("case_id", "address", "city", "state")

    def identifiers(self) -> list[tuple[str, str]]:
        """The street address with its city and state, as one address identifier."""
        if not self.address:
            return []
        full = ", ".join(p for p in (self.address, self.city, self.state) if p)
        try:
            return [("address", normalise("address", full))]
        except InvalidInput:
            return []


class Note(Base):
    """A staff note on a case; internal ones never leave the hotline."""

    __tablename__ = "case_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(EncryptedText)
    internal: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class CaseIdentifier(Base):
    """A keyed hash of one normalised identifier a case names: how tips find each other.

    Only the HMAC is here (the value itself is encrypted where it was entered); the
    (value_hash, case_id) index answers "which cases share this" without a plaintext index.
    """

    __tablename__ = "case_identifiers"
    __table_args__ = (
        Index("ix_case_identifiers_value_hash_case_id", "value_hash", "case_id"),
        Index("ix_case_identifiers_source", "source", "source_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # subject | location | signal | message
    source_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Referral(Base):
    """A case referred to one agency; the legal basis says why the disclosure was made."""

    __tablename__ = "referrals"
    __table_args__ = (Index("ix_referrals_agency_state", "agency_code", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    agency_code: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(24), default="pending")
    mandatory: Mapped[bool] = mapped_column(Boolean, default=False)
    # The next thing due: ``send_by`` until the notice is sent, then ``answer_by``.
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    # Ours: when the rule says the notice must be sent (a statutory clock stops at sending).
    send_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The agency's: when it should answer, from config/agencies.yaml's deadlines.
    answer_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rule: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    # An agency's words (reasons, outcome notes, charges) are personal data too.
    decline_reason: Mapped[str | None] = mapped_column(EncryptedText(legacy_plaintext=True))
    outcome: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The hotline's task: the agency asked (workflows.threads) and is owed an answer by
    # then; None when every question is answered. Counted in the case's deadline.
    question_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    # Staff said "not now" to the new information this digest names (workflows.
    # packet_updates): the case page asks again only once something more arrives.
    update_dismissed_digest: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}

    case: Mapped[Case] = relationship(back_populates="referrals")


class ReferralPacket(Base):
    """The packet exactly as disclosed to the agency, one row per version (issue 11, item 1).

    Taken when the referral is queued, in the same transaction; the webhook sends these
    bytes and the agency API and inbox read them, never the live case. Personal data:
    encrypted, and deleted with the case's other personal data by the retention purge.
    """

    __tablename__ = "referral_packets"
    __table_args__ = (UniqueConstraint("referral_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(
        ForeignKey("referrals.id", ondelete="CASCADE"), index=True
    )
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(EncryptedText)  # the JSON text that is signed and sent
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # When the agency answered 2xx to this version (or to a later one, which supersedes it):
    # a retried job finds it set and sends nothing.
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEvent(Base):
    """Append-only record of every transition and every view of PII, in per-case chains.

    Each case's events form one chain (``chain`` = the case id; 0 holds events of no
    case, such as logins), numbered by ``seq`` without gaps; ``hash`` is an HMAC (key
    ``key_id`` of ``AUDIT_KEYS``) over the event, its place and the previous ``hash``.
    """

    __tablename__ = "audit_events"
    __table_args__ = (UniqueConstraint("chain", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(Integer, index=True)
    referral_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(48))
    from_state: Mapped[str | None] = mapped_column(String(24))
    to_state: Mapped[str | None] = mapped_column(String(24))
    # Reasons are typed by people (a decline, a rejection): encrypted like any free text.
    reason: Mapped[str | None] = mapped_column(EncryptedText(legacy_plaintext=True))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    chain: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    key_id: Mapped[str] = mapped_column(String(16))
    # An HMAC of reason and detail: the purge may erase them (erased_at), the chain holds.
    content_mac: Mapped[str] = mapped_column(String(64))
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditChainHead(Base):
    """The newest event of one chain; locking it serialises appends to that case only."""

    __tablename__ = "audit_chain_heads"

    chain: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
    last_event_id: Mapped[int] = mapped_column(Integer)


class AuditAnchor(Base):
    """A signed list of chain heads that moved since the previous anchor.

    Written periodically by the worker; anchors chain among themselves, so deleting a
    whole case's events (and its head row) leaves an anchored head that no event
    matches, which ``audit verify`` reports.
    """

    __tablename__ = "audit_anchors"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    entries: Mapped[list[Any]] = mapped_column(JSON)  # [[chain, seq, hash], ...]
    key_id: Mapped[str] = mapped_column(String(16))
    prev_mac: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))


class AuditAnchored(Base):
    """How far each chain is anchored (bookkeeping for the next anchor, not evidence)."""

    __tablename__ = "audit_anchored"

    chain: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)


class PublishedStatistics(Base):
    """One period's public figures, frozen when first published.

    Published numbers never change afterwards, so comparing two snapshots tells nothing
    the first did not; ``counts`` keeps the exact figures (aggregates, no one's data) so a
    coarser period can be checked against what its parts already revealed.
    """

    __tablename__ = "published_statistics"

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(7), unique=True)  # YYYY or YYYY-MM
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
