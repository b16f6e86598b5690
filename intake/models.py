"""Intake models: signals (calls, texts, web tips, call logs), tip messages, SMS state.

Personal data (numbers, narratives, transcripts, messages) is stored with
``EncryptedText``; phone numbers are found through their keyed hash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from workflows.db import Base, utcnow
from workflows.errors import InvalidInput
from workflows.identifiers import normalise, phones_in_text
from workflows.models import Case
from workflows.pii import EncryptedJSON, EncryptedText

CHANNELS = ("voice", "sms", "whatsapp", "chat", "web", "operator")


def blank_is_none(value: str | None) -> str | None:
    """An optional unique id: blank is absent. Stored, "" would hold the unique slot and
    make every later blank one a conflict (whatever the channel the value came from)."""
    if value is None:
        return None
    return value.strip() or None


class Signal(Base):
    """One call, text conversation, web tip or operator log."""

    __tablename__ = "signals"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    recording_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    transcription_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    call_status: Mapped[str | None] = mapped_column(String(24))
    status_sequence: Mapped[int] = mapped_column(Integer, default=-1)
    recording_url: Mapped[str | None] = mapped_column(EncryptedText)
    recording_duration: Mapped[int | None] = mapped_column(Integer)
    transcript: Mapped[str | None] = mapped_column(EncryptedText)
    transcription_status: Mapped[str | None] = mapped_column(String(24))
    language: Mapped[str] = mapped_column(String(8), default="en")
    caller_type: Mapped[str | None] = mapped_column(String(24))
    from_phone: Mapped[str | None] = mapped_column(EncryptedText)
    from_phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    contact_phone: Mapped[str | None] = mapped_column(EncryptedText)
    contact_email: Mapped[str | None] = mapped_column(EncryptedText)
    caller_name: Mapped[str | None] = mapped_column(EncryptedText)
    location: Mapped[str | None] = mapped_column(EncryptedText)
    narrative: Mapped[str | None] = mapped_column(EncryptedText)
    safe_contact: Mapped[str | None] = mapped_column(EncryptedText)  # JSON text, encrypted
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    # Menu choices and, for SMS, the texter's answers (their location among them).
    ivr_path: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON)
    # How the caller heard of the hotline: a code of workflows.campaigns.HEARD_FROM.
    heard_from: Mapped[str | None] = mapped_column(String(24))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    case: Mapped[Case] = relationship(back_populates="signals")

    @validates("call_sid", "recording_sid", "transcription_sid")
    def _blank_sid_is_none(self, _key: str, value: str | None) -> str | None:
        return blank_is_none(value)
    identifier_source = "signal"
    identifier_fields = (
        "case_id", "from_phone", "contact_phone", "contact_email", "narrative", "transcript"
    )

    def identifiers(self) -> list[tuple[str, str]]:
        """Numbers and e-mail it came from or gives, and numbers named in its text."""
        found = []
        for kind, raw in (("phone", self.from_phone), ("phone", self.contact_phone),
                          ("email", self.contact_email)):
            if raw:
                try:
                    found.append((kind, normalise(kind, raw)))
                except InvalidInput:
                    pass  # a withheld or SIP caller id names no one
        for text in (self.narrative, self.transcript):
            found.extend(("phone", number) for number in phones_in_text(text))
        return found


class TipMessage(Base):
    """A message in the anonymous two-way follow-up, or one inbound/outbound SMS."""

    __tablename__ = "tip_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    signal_id: Mapped[int | None] = mapped_column(ForeignKey("signals.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(8))  # "in" from the tipster, "out" to them
    author: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(EncryptedText)
    message_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    case: Mapped[Case] = relationship(back_populates="messages")

    @validates("message_sid")
    def _blank_sid_is_none(self, _key: str, value: str | None) -> str | None:
        return blank_is_none(value)
    identifier_source = "message"
    identifier_fields = ("case_id", "body")

    def identifiers(self) -> list[tuple[str, str]]:
        """Numbers a tipster names in a text or follow-up (never in the hotline's replies)."""
        if self.direction != "in":
            return []
        return [("phone", number) for number in phones_in_text(self.body)]


class SmsConversation(Base):
    """Where a texter is in the short question sequence; one open per sender."""

    __tablename__ = "sms_conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    signal_id: Mapped[int] = mapped_column(ForeignKey("signals.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer, default=0)
    language: Mapped[str] = mapped_column(String(8), default="en")
    open: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class OptOut(Base):
    """Our own suppression list: a number that texted STOP is never texted again."""

    __tablename__ = "opt_outs"

    phone_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class PassphraseGuesses(Base):
    """Wrong passphrase tries for one (reference, client) pair, and when the next may come.

    Keyed by a keyed hash of the pair: neither the reference nor the address is stored.
    Counted per client so that a stranger walking references cannot lock the tipster out
    of their own tip (issue 11, item 6).
    """

    __tablename__ = "passphrase_guesses"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    blocked_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SpoolReplay(Base):
    """An intake item replayed from the outage spool (``intake.spool``), by its client id.

    Written in the same transaction as the replayed work: a second replay of the same
    item (another process's drainer, or a crash before the spool forgot it) fails on
    this primary key and changes nothing.
    """

    __tablename__ = "spool_replays"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    case_id: Mapped[int | None] = mapped_column(Integer)
    spooled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    replayed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
