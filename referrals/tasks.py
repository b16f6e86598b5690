"""Queued jobs: thin wrappers that take ids, open their own session and call a core.

The same functions run under an RQ worker (``flask --app wsgi worker``) and in-process
on the embedded default (``referrals.embedded.run_embedded_once``).
"""

from __future__ import annotations

import contextvars
import logging
import os
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import tuple_, update
from sqlalchemy.orm import Session

from config.runtime import Runtime, current_runtime
from referrals.delivery import (
    DeliveryFailed,
    after_failed_attempt,
    deliver_packet,
    deliver_referral,
)
from referrals.notifications import (
    NotifyFailed,
    NotifyHeld,
    check_deadlines,
    send_notifications,
)
from referrals.relay import Claim, job_id
from referrals.thread_delivery import notify_agency_of_answer
from workflows.db import transaction, utcnow
from workflows.models import Referral
from workflows.outbox import OutboxMessage

log = logging.getLogger(__name__)

current_job_id: contextvars.ContextVar[str] = contextvars.ContextVar("job_id", default="-")


# The process whose connections the engine's pool holds: the one that imported us.
_pool_pid = [os.getpid()]


def job_runtime() -> Runtime:
    """This process's runtime, with a pool of its own.

    RQ runs each job in a forked work-horse: connections inherited from the parent must
    be dropped (not closed, the parent may still use them) before the job opens any.
    """
    runtime = current_runtime()
    if _pool_pid[0] != os.getpid():
        runtime.engine.dispose(close=False)
        _pool_pid[0] = os.getpid()
    return runtime


class JobIdFilter(logging.Filter):
    """Stamps ``job_id`` on every log record (Redash's CurrentJobFilter); never tip text."""

    def filter(self, record: logging.LogRecord) -> bool:
        job_id = current_job_id.get()
        if job_id == "-":
            try:
                from rq import get_current_job

                job = get_current_job()
            except Exception:  # noqa: BLE001 - outside a job, or no connection
                job = None
            job_id = job.id if job is not None else "-"
        record.job_id = job_id
        return True


def _begin(runtime: Runtime, outbox_id: int, dispatch: int) -> OutboxMessage | None:
    """Renew the lease if this job is the message's current dispatch; else None.

    One statement (a compare-and-set on the dispatch, returning what the job needs):
    the row is locked for it, so a job and its failure handler, or two relays, never
    act on one dispatch at once. The message comes back detached, never flushed.
    """
    session = runtime.session()
    try:
        with transaction(session):
            row = session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == outbox_id, OutboxMessage.attempts == dispatch,
                       OutboxMessage.done_at.is_(None))
                .values(lease_until=utcnow() + timedelta(
                    seconds=runtime.settings.delivery_lease_seconds
                ))
                .returning(OutboxMessage.kind, OutboxMessage.ref_id, OutboxMessage.payload,
                           OutboxMessage.created_at)
                .execution_options(synchronize_session=False)
            ).one_or_none()
    finally:
        session.close()
    if row is None:
        log.info("outbox %s dispatch %s is done or superseded: skipped", outbox_id, dispatch)
        return None
    return OutboxMessage(id=outbox_id, kind=row.kind, ref_id=row.ref_id,
                         payload=row.payload, created_at=row.created_at,
                         attempts=dispatch)


def _mark_done(session: Session, outbox_id: int) -> None:
    """The message is done: in the caller's transaction."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id, OutboxMessage.done_at.is_(None))
        .values(done_at=utcnow(), lease_until=None, last_error=None)
        .execution_options(synchronize_session=False)
    )


def _finish(runtime: Runtime, outbox_id: int) -> None:
    session = runtime.session()
    try:
        with transaction(session):
            _mark_done(session, outbox_id)
    finally:
        session.close()


def _hold(runtime: Runtime, outbox_id: int, dispatch: int, until: datetime) -> None:
    """Hand the message back to the outbox, due at ``until``: the relay dispatches it
    again then, so no worker sits waiting for a tipster's safe hours."""
    session = runtime.session()
    try:
        with transaction(session):
            message = session.get(OutboxMessage, outbox_id)
            if message is None or message.done_at is not None or message.attempts != dispatch:
                return
            message.available_at = until
            message.lease_until = None
            message.last_error = None
            # A hold is a dispatch but no failed try: it must not use up the retries.
            payload = dict(message.payload or {})
            payload["holds"] = int(payload.get("holds") or 0) + 1
            message.payload = payload
    finally:
        session.close()
    log.info("outbox %s held until %s (safe hours)", outbox_id, until.isoformat())


def execute_outbox_message(runtime: Runtime, outbox_id: int, dispatch: int) -> str:
    """Do the work of one outbox message; raises when the try failed (to be retried)."""
    message = _begin(runtime, outbox_id, dispatch)
    if message is None:
        return "skipped"
    session = runtime.session()
    finished: list[bool] = []

    def done_with_delivery(delivering: Session) -> None:
        # In the transaction that records the referral sent: one commit for both.
        _mark_done(delivering, outbox_id)
        finished.append(True)

    try:
        if message.kind == "deliver_referral":
            referral = session.get(Referral, message.ref_id)
            if referral is not None:
                deliver_referral(session, referral, runtime, on_sent=done_with_delivery)
        elif message.kind == "deliver_packet" and message.ref_id is not None:
            deliver_packet(session, message.ref_id, runtime)
        elif message.kind == "notify":
            send_notifications(session, message, runtime)
        elif message.kind == "notify_agency" and message.ref_id is not None:
            notify_agency_of_answer(session, message.ref_id, runtime)
        else:
            log.warning("outbox %s: unknown kind %r, dropped", outbox_id, message.kind)
    except NotifyHeld as held:
        _hold(runtime, outbox_id, dispatch, held.until)
        return "held"
    finally:
        session.close()
    if not finished:
        _finish(runtime, outbox_id)
    return "done"


def run_outbox_message(outbox_id: int, dispatch: int) -> str:
    """RQ job: deliver or notify for one outbox row (what an older release queued; the
    relay now queues ``run_outbox_batch``).

    Safe to run twice: it acts only while the row is not done and ``dispatch`` is the
    row's current one; a delivery already ``sent`` (a packet version with ``sent_at``) is
    not sent again, notifications are
    sent only for rows still unsent, and the agency dedupes on the Idempotency-Key.
    """
    return execute_outbox_message(job_runtime(), outbox_id, dispatch)


def run_claims_in_process(runtime: Runtime, claims: list[Claim]) -> dict[str, int]:
    """Run claimed rows here and now, one after the other, with the same failure
    handling as RQ's on_failure for each: a row that fails is retried on its own and
    the rest still run. Returns how many rows ended how (done, skipped, held, failed)."""
    outcomes: dict[str, int] = {}
    for claim in claims:
        token = current_job_id.set(job_id(runtime, claim))
        try:
            outcome = execute_outbox_message(runtime, claim.outbox_id, claim.dispatch)
        except (DeliveryFailed, NotifyFailed) as exc:
            outcome = "failed"
            after_failed_attempt(runtime, claim.outbox_id, claim.dispatch, str(exc))
        except Exception as exc:
            # Also RQ's JobTimeoutException, raised in whichever row was running when the
            # batch's time ran out: that row's try failed; the others still run.
            outcome = "failed"
            log.exception("outbox %s failed", claim.outbox_id)
            after_failed_attempt(
                runtime, claim.outbox_id, claim.dispatch, f"job error: {type(exc).__name__}"
            )
        finally:
            current_job_id.reset(token)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def run_outbox_batch(rows: list[list[int]]) -> dict[str, int]:
    """RQ job: a batch of outbox rows (``[outbox_id, dispatch]`` pairs) of one queue,
    one after the other (``referrals.relay``: RQ's per-job cost paid once per batch).

    Each row as ``run_outbox_message`` would run it: safe to run twice, a row that is
    done or superseded is skipped, a row that fails gets its own retry and the rest
    still run. Leases are renewed for the whole batch first, so rows waiting their
    turn behind a slow one are not dispatched again meanwhile.
    """
    runtime = job_runtime()
    claims = [Claim(int(outbox_id), int(dispatch), "") for outbox_id, dispatch in rows]
    _renew_leases(runtime, claims)
    return run_claims_in_process(runtime, claims)


def _renew_leases(runtime: Runtime, claims: list[Claim]) -> None:
    """One statement: a full lease for every row of the batch still on this dispatch."""
    session = runtime.session()
    try:
        with transaction(session):
            session.execute(
                update(OutboxMessage)
                .where(
                    tuple_(OutboxMessage.id, OutboxMessage.attempts).in_(
                        [(claim.outbox_id, claim.dispatch) for claim in claims]
                    ),
                    OutboxMessage.done_at.is_(None),
                )
                .values(lease_until=utcnow() + timedelta(
                    seconds=runtime.settings.delivery_lease_seconds
                ))
            )
    finally:
        session.close()


def on_batch_failure(job: Any, connection: Any, exc_type: Any, exc_value: Any,
                     tb: Any) -> None:
    """RQ on_failure of a batch: the job failed as a whole (its rows' own failures are
    handled inside it), so each row not done on that dispatch counts a failed try.

    Safe to run twice: ``after_failed_attempt`` ignores a row that is done or whose
    dispatch is not current.
    """
    error = f"job error: {getattr(exc_type, '__name__', exc_type)}"
    runtime = job_runtime()
    for outbox_id, dispatch in job.args[0]:
        after_failed_attempt(runtime, int(outbox_id), int(dispatch), error)


def on_job_failure(job: Any, connection: Any, exc_type: Any, exc_value: Any, tb: Any) -> None:
    """RQ on_failure: runs on every failed attempt; retries until the attempts run out.

    Safe to run twice: ``after_failed_attempt`` ignores a dispatch that is not current.
    """
    outbox_id, dispatch = job.args[0], job.args[1]
    error = str(exc_value) if isinstance(exc_value, DeliveryFailed | NotifyFailed) else (
        f"job error: {getattr(exc_type, '__name__', exc_type)}"
    )
    after_failed_attempt(job_runtime(), outbox_id, dispatch, error)


def run_deadline_check() -> int:
    """RQ job: record passed deadlines and queue their notifications.

    Safe to run twice: each breach is a unique row, so a breach is notified once.
    """
    runtime = job_runtime()
    session = runtime.session()
    try:
        return check_deadlines(session)
    finally:
        session.close()


def run_retention_purge() -> int:
    """RQ job: de-identify closed cases past their retention period (workflows.retention).

    Safe to run twice: each case is purged in its own transaction under a row lock, and
    a purged case has ``purged_at`` and is never looked at again.
    """
    from workflows.retention import purge_expired

    runtime = job_runtime()
    session = runtime.session()
    try:
        return purge_expired(session, utcnow(), runtime.catalogs["retention"])
    finally:
        session.close()


def run_audit_anchor() -> int:
    """RQ job: sign the audit chain heads that moved since the last anchor.

    Safe to run twice: anchors are written one at a time (an advisory lock), and a run
    that finds nothing moved writes nothing. Returns how many heads it signed.
    """
    from workflows.audit import write_anchor

    runtime = job_runtime()
    session = runtime.session()
    try:
        with transaction(session):
            anchor = write_anchor(session)
            return len(anchor.entries) if anchor else 0
    finally:
        session.close()


def run_statistics_publication() -> list[str]:
    """RQ job: publish the public figures of every ended month and year not yet out.

    Safe to run twice: a published period is never recomputed (workflows.publication),
    and the period is unique, so a second writer's insert fails without harm.
    """
    from workflows.publication import publish_due
    from workflows.research import Vocabulary

    runtime = job_runtime()
    session = runtime.session()
    try:
        return publish_due(session, utcnow(), runtime.settings.statistics_k,
                           Vocabulary.from_catalogs(runtime.catalogs))
    finally:
        session.close()
