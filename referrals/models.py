"""Delivery records: each attempt to reach an agency, and each notification sent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from workflows.db import Base, utcnow
from workflows.pii import EncryptedText


class DeliveryAttempt(Base):
    """One try at delivering a referral over one channel."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(
        ForeignKey("referrals.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Notification(Base):
    """An SMS or e-mail the service sends; written before sending so a retry never repeats it."""

    __tablename__ = "notifications"
    # One row per outbox message, channel and recipient: a retried job finds its rows
    # and never sends the same message to the same person twice.
    __table_args__ = (UniqueConstraint("outbox_id", "channel", "recipient_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(8))  # sms | email
    recipient: Mapped[str] = mapped_column(EncryptedText)
    recipient_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    body: Mapped[str] = mapped_column(EncryptedText)
    # pending | held (outside the tipster's safe hours) | sending | sent | failed |
    # opted_out | skipped | unknown (a try that may have sent: never repeated)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    # A reply to a tipster: which message, when safe hours let it go, and whether only
    # the announcement went (the reply itself stays behind reference and passphrase).
    message_id: Mapped[int | None] = mapped_column(Integer)
    held_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    announced_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    provider_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(Integer, index=True)
    referral_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeadlineBreach(Base):
    """A deadline seen passed; the unique key makes the watch notify once per breach."""

    __tablename__ = "deadline_breaches"
    __table_args__ = (UniqueConstraint("subject", "subject_id", "deadline"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(16))  # case | referral | question
    subject_id: Mapped[int] = mapped_column(Integer)
    case_id: Mapped[int] = mapped_column(Integer, index=True)
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
