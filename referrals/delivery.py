"""Delivering one referral to its agency, and what happens when a try fails.

Delivery is at least once: a worker can die after the agency answered and before we
wrote it down, so the same packet may arrive again. The agency dedupes on the
``Idempotency-Key`` (stable per packet version: the referral's key for the first, then
``<key>-v<n>``); we never change the key between tries. Later versions (an update, a
consent withdrawal) go the same way (``deliver_packet``), each marked ``sent_at`` once
the agency answered, so a retried job sends nothing again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.metrics import count_delivery
from config.runtime import Runtime
from referrals import messaging
from referrals.agencies import Agency
from referrals.channels import Message, channel_for
from referrals.models import DeliveryAttempt
from workflows.audit import record_event
from workflows.db import is_postgres, transaction, utcnow
from workflows.errors import DomainError
from workflows.lifecycle import fire_referral_event
from workflows.models import Referral, ReferralPacket
from workflows.outbox import add_notification, locked_message
from workflows.packets import packet_key, take_snapshot

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=1)


class DeliveryFailed(Exception):
    """This try did not reach the agency; the message says why, without personal data."""


def backoff(settings_backoff: int, attempt: int) -> timedelta:
    """Exponential backoff: base, twice that, four times … capped at an hour."""
    return min(timedelta(seconds=settings_backoff * 2 ** max(attempt - 1, 0)), MAX_BACKOFF)


def _load_for_delivery(session: Session, referral_id: int) -> Referral | None:
    stmt = select(Referral).where(Referral.id == referral_id)
    if is_postgres(session):
        # Two workers holding the same referral (a lease ran out while the first was
        # still busy) queue up here; the second then sees ``sent`` and stops.
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def _notice(referral: Referral) -> str:
    # No personal data in notices: the agency reads the referral in its inbox or the API.
    return (
        f"New {referral.case.priority} referral {referral.id} (case {referral.case.reference}) "
        f"for {referral.agency_code}. Read it in the agency inbox or through the API."
    )


@dataclass(frozen=True)
class Outgoing:
    """What one try sends, read from the database before any connection is opened."""

    channel: str
    body: bytes = b""  # webhook: the encoded packet
    notice: str = ""  # e-mail or SMS: a notice without personal data
    subject: str = ""
    idempotency_key: str = ""
    version: int = 1  # the packet version carried


def _first_channel(agency: Agency) -> str:
    """The agency's first ready channel: every try of every version goes by it."""
    channels = agency.ready_channels
    if not channels:
        raise DeliveryFailed(f"{agency.code} has no delivery channel configured")
    return channels[0]


def _outgoing(
    channel: str, referral: Referral, snapshot: ReferralPacket, subject: str, notice: str
) -> Outgoing:
    """What one packet version carries: over a signed channel the packet itself, over
    any other a notice without personal data."""
    if channel_for(channel).signed:
        return Outgoing(
            channel, body=snapshot.body.encode("utf-8"),
            idempotency_key=packet_key(referral, snapshot.version), version=snapshot.version,
        )
    return Outgoing(channel, notice=notice, subject=subject, version=snapshot.version)


def _prepare(session: Session, agency: Agency, referral: Referral) -> Outgoing:
    """Choose the agency's first ready channel and build what it will carry."""
    channel = _first_channel(agency)
    # The snapshot taken at queue time (a row queued before snapshots existed gets its
    # first one now): the same bytes on every try, whatever the case became. If a newer
    # version was made before the first reached the agency (a consent withdrawn meanwhile),
    # the newest goes: the agency never receives what it should no longer hold.
    snapshot = take_snapshot(session, referral)
    return _outgoing(channel, referral, snapshot, f"Referral {referral.id}", _notice(referral))


def send_outgoing(runtime: Runtime, agency: Agency, outgoing: Outgoing) -> int | None:
    """Reach the agency over its channel (no database work here); returns the HTTP
    status where the channel has one (a webhook)."""
    address = agency.endpoint(outgoing.channel)
    assert address is not None  # _prepare chose one of the agency's ready channels
    message = Message(
        text=outgoing.notice, subject=outgoing.subject, body=outgoing.body,
        idempotency_key=outgoing.idempotency_key, secret=agency.webhook_secret or "",
    )
    try:
        channel = channel_for(outgoing.channel, address)
        receipt = channel.send(runtime.settings, address, message)
    except (messaging.SendFailed, messaging.ChannelNotConfigured) as exc:
        raise DeliveryFailed(f"{agency.code} {outgoing.channel}: {exc}") from None
    except messaging.RecipientOptedOut:
        raise DeliveryFailed(f"{agency.code} {outgoing.channel} number is unsubscribed") from None
    return receipt.status


def _try(
    runtime: Runtime, agency: Agency | None, outgoing: Outgoing | None, error: str | None
) -> tuple[int | None, str | None]:
    """Send what was prepared, if anything was: (the webhook's status, the error)."""
    if outgoing is None or agency is None:
        return None, error
    try:
        return send_outgoing(runtime, agency, outgoing), error
    except DeliveryFailed as exc:
        return None, str(exc)


def deliver_referral(
    session: Session, referral: Referral, runtime: Runtime,
    on_sent: Callable[[Session], None] | None = None,
) -> bool:
    """Send a queued referral to its agency; True when it is (now or already) delivered.

    Three steps, so no transaction or row lock is held while the agency is talked to
    (a slow agency must not pin a database connection and block the case's writers):
    read and build the packet, send it (bounded by the delivery deadline, which is
    shorter than the outbox lease), then record the try and mark the referral sent.
    Raises DeliveryFailed after recording the try, so the caller schedules a retry.
    ``on_sent`` runs inside the transaction that marks it sent (the worker marks its
    outbox row done there: one commit, not two).
    """
    with transaction(session):
        current = _load_for_delivery(session, referral.id)
        if current is None or current.state != "queued":
            return current is not None and current.state != "withdrawn"
        agency = runtime.catalogs.get("agencies", {}).get(current.agency_code)
        outgoing, error = None, None
        try:
            if agency is None:
                raise DeliveryFailed(f"agency {current.agency_code} is not in agencies.yaml")
            outgoing = _prepare(session, agency, current)
        except DeliveryFailed as exc:
            error = str(exc)
    started = time.monotonic()
    status, error = _try(runtime, agency, outgoing, error)
    channel = outgoing.channel if outgoing is not None else "webhook"
    with transaction(session):
        current = _load_for_delivery(session, referral.id)
        if current is None:
            return False
        current.attempts = (current.attempts or 0) + 1
        current.last_error = error
        session.add(
            DeliveryAttempt(
                referral_id=current.id,
                channel=channel,
                attempt=current.attempts,
                status_code=status,
                error=error,
                duration_ms=int((time.monotonic() - started) * 1000),
            )
        )
        if error is None and current.state == "queued":
            fire_referral_event(
                session, current.id, "mark_sent", None,
                data={"channel": channel}, catalogs=runtime.catalogs,
            )
        if error is None and outgoing is not None:
            _mark_versions_sent(session, current.id, outgoing.version)
        if error is None and on_sent is not None:
            on_sent(session)
    # Counted once the try is recorded (its transaction committed), never before.
    count_delivery(referral.agency_code, "failed" if error is not None else "delivered")
    if error is not None:
        raise DeliveryFailed(error)
    log.info("referral %s delivered to %s by %s", referral.id, referral.agency_code, channel)
    return True


def _mark_versions_sent(session: Session, referral_id: int, version: int) -> None:
    """This version and any older one unsent are now superseded at the agency."""
    now = utcnow()
    for row in session.scalars(
        select(ReferralPacket).where(
            ReferralPacket.referral_id == referral_id,
            ReferralPacket.version <= version,
            ReferralPacket.sent_at.is_(None),
        )
    ):
        row.sent_at = now


def _update_notice(referral: Referral, snapshot: ReferralPacket, packet_type: str) -> str:
    what = ("consent was withdrawn: some of it is no longer yours to keep"
            if packet_type == "consent_withdrawn" else "new information")
    return (
        f"Referral {referral.id} (case {referral.case.reference}) for {referral.agency_code}: "
        f"version {snapshot.version}, {what}. Read it in the agency inbox or through the API."
    )


def _prepare_version(
    session: Session, agency: Agency, referral: Referral, snapshot: ReferralPacket
) -> Outgoing:
    channel = _first_channel(agency)
    packet_type = str(json.loads(snapshot.body).get("packet_type") or "update")
    return _outgoing(
        channel, referral, snapshot, f"Referral {referral.id}, version {snapshot.version}",
        _update_notice(referral, snapshot, packet_type),
    )


def deliver_packet(session: Session, packet_id: int, runtime: Runtime) -> bool:
    """Send one later packet version (an update, a consent withdrawal) to its agency.

    The same three steps as ``deliver_referral``. Nothing is sent when this version (or a
    newer one) already reached the agency or the referral was withdrawn since; while the
    referral's first packet has not reached the agency, DeliveryFailed (retried later:
    the first delivery carries the newest version, which marks this one sent).
    """
    with transaction(session):
        snapshot = session.get(ReferralPacket, packet_id)
        current = _load_for_delivery(session, snapshot.referral_id) if snapshot else None
        if snapshot is None or current is None or current.case.purged_at is not None:
            return False
        newer_sent = session.scalar(
            select(ReferralPacket.id).where(
                ReferralPacket.referral_id == current.id,
                ReferralPacket.version > snapshot.version,
                ReferralPacket.sent_at.is_not(None),
            ).limit(1)
        )
        if snapshot.sent_at is not None or newer_sent is not None:
            return True
        if current.state == "withdrawn":
            return False
        error = None
        outgoing = None
        agency = runtime.catalogs.get("agencies", {}).get(current.agency_code)
        if current.sent_at is None:
            error = f"referral {current.id}: the first packet has not reached the agency yet"
        elif agency is None:
            error = f"agency {current.agency_code} is not in agencies.yaml"
        else:
            try:
                outgoing = _prepare_version(session, agency, current, snapshot)
            except DeliveryFailed as exc:
                error = str(exc)
    status, error = _try(runtime, agency, outgoing, error)
    if outgoing is not None:  # a try was made (not a wait for the first packet)
        count_delivery(current.agency_code, "failed" if error is not None else "delivered")
    if error is not None:
        raise DeliveryFailed(error)
    assert outgoing is not None
    with transaction(session):
        row = session.get(ReferralPacket, packet_id)
        if row is not None and row.sent_at is None:
            row.sent_at = utcnow()
            record_event(
                session, actor="system", action="packet_sent", case_id=row.case_id,
                referral_id=row.referral_id,
                detail={"agency": current.agency_code, "packet_version": row.version,
                        "channel": outgoing.channel, "status": status},
            )
    log.info("referral %s version %s delivered to %s", current.id, snapshot.version,
             current.agency_code)
    return True


def after_failed_attempt(runtime: Runtime, outbox_id: int, dispatch: int, error: str) -> str:
    """Schedule the next try with backoff, or give up after the last one.

    Runs on every failed attempt (RQ's on_failure, or the embedded runner): it only acts
    for the current dispatch of a message that is not done, so a stale or repeated call
    changes nothing. Returns what it did: ``ignored``, ``retry`` or ``gave_up``.
    """
    settings = runtime.settings
    session = runtime.session()
    try:
        with transaction(session):
            message = locked_message(session, outbox_id)
            if message is None or message.done_at is not None or message.attempts != dispatch:
                return "ignored"
            message.last_error = error[:500]
            message.lease_until = None
            # Dispatches spent waiting for a tipster's safe hours were no tries.
            tries = message.attempts - int((message.payload or {}).get("holds") or 0)
            if tries < settings.delivery_max_attempts:
                message.available_at = utcnow() + backoff(
                    settings.delivery_backoff_seconds, tries
                )
                log.warning(
                    "outbox %s attempt %s/%s failed (%s); retrying",
                    outbox_id, tries, settings.delivery_max_attempts, error,
                )
                return "retry"
            message.done_at = utcnow()
            log.error("outbox %s gave up after %s attempts: %s", outbox_id, tries, error)
            failed_agency = None
            if message.kind == "deliver_referral" and message.ref_id is not None:
                failed_agency = _declare_failed(session, runtime, message.ref_id, error)
        if failed_agency is not None:  # committed: the referral is failed
            count_delivery(failed_agency, "gave_up")
        return "gave_up"
    finally:
        session.close()


def _declare_failed(
    session: Session, runtime: Runtime, referral_id: int, error: str
) -> str | None:
    """Mark the referral failed and tell the supervisors; its agency, or None if it was
    no longer queued."""
    referral = session.get(Referral, referral_id)
    if referral is None or referral.state != "queued":
        return None
    try:
        fire_referral_event(
            session, referral_id, "fail", None, reason=error[:500],
            data={"error": error}, catalogs=runtime.catalogs,
        )
    except DomainError as exc:
        log.warning("referral %s could not be marked failed: %s", referral_id, exc.message)
        return None
    add_notification(session, "referral_failed", case_id=referral.case_id,
                     referral_id=referral_id)
    return referral.agency_code
