"""Telling an agency the hotline answered its question (issue 13).

Over the agency's first ready channel, as a referral goes: its signed webhook carries the
answer itself (the agency already holds the case and asked), e-mail or SMS a notice
without personal data. An agency with no channel reads it in its inbox, marked "new
answer". At least once, like a referral: the ``Idempotency-Key`` is the message's own,
so an agency dedupes a repeat.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy.orm import Session

from config.runtime import Runtime
from referrals.channels import channel_for
from referrals.delivery import Outgoing, send_outgoing
from workflows.db import transaction
from workflows.models import Referral
from workflows.threads import ReferralMessage

log = logging.getLogger(__name__)

ANSWER_VERSION = 1


def answer_body(referral: Referral, message: ReferralMessage) -> bytes:
    """The webhook's JSON: which referral, and the answer (never a staff name)."""
    return json.dumps(
        {
            "type": "thread_answer",
            "version": ANSWER_VERSION,
            "referral_id": referral.id,
            "case_reference": referral.case.reference,
            "message": {
                "id": message.id,
                "side": "hotline",
                "body": message.body,
                "created_at": message.created_at.isoformat(),
            },
        },
        sort_keys=True,
    ).encode("utf-8")


def notify_agency_of_answer(session: Session, message_id: int, runtime: Runtime) -> str:
    """Send one answer's news to its agency; returns the channel (or why none was used).

    Reads and builds in one short transaction, then talks to the agency holding no
    connection; raises DeliveryFailed for the outbox to retry with backoff.
    """
    with transaction(session):
        message = session.get(ReferralMessage, message_id)
        if message is None:
            return "gone"  # the case was purged meanwhile: nothing left to tell
        referral = session.get(Referral, message.referral_id)
        assert referral is not None  # the message's foreign key
        agency = (runtime.catalogs.get("agencies") or {}).get(referral.agency_code)
        channels = agency.ready_channels if agency is not None else ()
        if agency is None or not channels:
            return "inbox"
        channel = channels[0]
        if channel_for(channel).signed:  # the answer itself; others a notice
            outgoing = Outgoing(channel, body=answer_body(referral, message),
                                idempotency_key=f"thread-answer-{message.id}")
        else:
            outgoing = Outgoing(
                channel,
                notice=(f"The hotline answered your question on referral {referral.id} "
                        f"(case {referral.case.reference}). Read it in the agency inbox "
                        "or through the API."),
                subject=f"Answer on referral {referral.id}",
            )
    send_outgoing(runtime, agency, outgoing)
    log.info("answer %s sent to %s by %s", message_id, referral.agency_code, channel)
    return channel
