"""The outbox relay: moves due outbox rows to RQ, or runs them in-process when embedded.

A row is *claimed* by raising its dispatch count and giving it a lease; the RQ job id
is derived from (namespace, row, dispatch), so it is deterministic and a repeat enqueue
of one dispatch is the same job. On PostgreSQL the claim reads with ``FOR UPDATE SKIP
LOCKED`` and every claim is a compare-and-set on the dispatch count, so any number of
relays on any number of machines never dispatch a row twice. A row dispatched but not
done when its lease runs out (a worker was SIGKILLed, Redis lost the job) is claimed
again: the job is redone within ``delivery_lease_seconds`` rather than after RQ's
ten-minute maintenance pass.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from config.runtime import Runtime
from workflows.db import is_postgres, transaction, utcnow
from workflows.outbox import OutboxMessage

log = logging.getLogger(__name__)

QUEUE_FOR_KIND = {
    "deliver_referral": "referrals", "deliver_packet": "referrals", "notify_agency": "referrals",
    "notify": "notifications",
}
PURPOSES = ("referrals", "notifications", "default")
BATCH = 100
RESULT_TTL = 3600  # ids only in payloads, but no reason to keep results for long
FAILURE_TTL = 7 * 24 * 3600  # RQ keeps failed jobs for a year by default


@dataclass(frozen=True)
class Claim:
    outbox_id: int
    dispatch: int
    kind: str


def queue_name(runtime: Runtime, purpose: str) -> str:
    """A queue named by purpose, prefixed with this deployment's Redis namespace."""
    return f"{runtime.settings.redis_namespace}{purpose}"


def job_id(runtime: Runtime, claim: Claim) -> str:
    """Deterministic RQ job id (letters, digits, ``_`` and ``-`` only)."""
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", runtime.settings.redis_namespace)
    return f"{prefix}outbox-{claim.outbox_id}-{claim.dispatch}"


def claim_due(
    session: Session,
    runtime: Runtime,
    limit: int = BATCH,
    still_waiting: Callable[[Claim], bool] | None = None,
) -> list[Claim]:
    """Claim due rows (not done, available, lease free or run out) for this relay.

    A row whose lease ran out while its job still waits in the queue (a backlog longer
    than the lease) only gets a longer lease: re-dispatching it would put a second job
    behind the first and, under load, supersede every job before it runs.
    """
    now = utcnow()
    lease = now + timedelta(seconds=runtime.settings.delivery_lease_seconds)
    claims: list[Claim] = []
    with transaction(session):
        stmt = (
            select(
                OutboxMessage.id,
                OutboxMessage.attempts,
                OutboxMessage.kind,
                OutboxMessage.lease_until,
            )
            .where(
                OutboxMessage.done_at.is_(None),
                OutboxMessage.available_at <= now,
                or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until <= now),
            )
            .order_by(OutboxMessage.available_at, OutboxMessage.id)
            .limit(limit)
        )
        if is_postgres(session):
            stmt = stmt.with_for_update(skip_locked=True)
        for outbox_id, attempts, kind, leased in session.execute(stmt).all():
            if leased is not None and still_waiting and still_waiting(
                Claim(outbox_id, attempts, kind)
            ):
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == outbox_id, OutboxMessage.attempts == attempts)
                    .values(lease_until=lease)
                )
                continue
            done = session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == outbox_id, OutboxMessage.attempts == attempts)
                .values(attempts=attempts + 1, lease_until=lease, dispatched_at=now)
            )
            if done.rowcount == 1:  # type: ignore[attr-defined]
                claims.append(Claim(outbox_id, attempts + 1, kind))
    return claims


def release(session: Session, claims: list[Claim]) -> None:
    """Give claims back at once (the enqueue failed), so the next pass retries them."""
    with transaction(session):
        for claim in claims:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == claim.outbox_id)
                .where(OutboxMessage.attempts == claim.dispatch)
                .values(lease_until=None)
            )


def _queues(runtime: Runtime, connection: Any) -> dict[str, Any]:
    from rq import Queue
    from rq.serializers import JSONSerializer

    return {
        p: Queue(queue_name(runtime, p), connection=connection, serializer=JSONSerializer)
        for p in PURPOSES
    }


def enqueue_claim(runtime: Runtime, queues: dict[str, Any], claim: Claim) -> None:
    """Put one claimed row on its queue; only ids travel, never personal data."""
    from rq import Callback

    settings = runtime.settings
    queues[QUEUE_FOR_KIND.get(claim.kind, "default")].enqueue(
        "referrals.tasks.run_outbox_message",
        claim.outbox_id,
        claim.dispatch,
        job_id=job_id(runtime, claim),
        job_timeout=settings.delivery_timeout_seconds * 6 + 30,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        on_failure=Callback("referrals.tasks.on_job_failure", timeout=60),
        description=f"outbox {claim.kind} {claim.outbox_id}",
    )


def job_waits_in_queue(runtime: Runtime, connection: Any, claim: Claim) -> bool:
    """Whether this dispatch's RQ job still waits to start (not lost, not dead)."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus
    from rq.serializers import JSONSerializer

    try:
        job = Job.fetch(job_id(runtime, claim), connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return False  # Redis lost it (restarted without persistence): dispatch again
    # A started job renewed the lease when it began; still started after the lease ran out
    # means its worker died (SIGKILL, lost machine): dispatch again.
    # RQ 3 added two more waiting states: READY_TO_ENQUEUE (a dependent job whose
    # dependencies are done) and RATE_LIMITED (held back by a queue's concurrency limit).
    return job.get_status(refresh=False) in {
        JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED,
        JobStatus.READY_TO_ENQUEUE, JobStatus.RATE_LIMITED,
    }


def relay_once(runtime: Runtime, connection: Any, queues: dict[str, Any] | None = None) -> int:
    """One pass: claim due rows and enqueue them; returns how many went to RQ."""
    from redis.exceptions import RedisError

    queues = queues or _queues(runtime, connection)
    session = runtime.session()
    try:
        claims = claim_due(
            session, runtime,
            still_waiting=lambda claim: job_waits_in_queue(runtime, connection, claim),
        )
        for index, claim in enumerate(claims):
            try:
                enqueue_claim(runtime, queues, claim)
            except RedisError as exc:
                log.warning("queue unreachable (%s); %d row(s) wait", type(exc).__name__,
                            len(claims) - index)
                release(session, claims[index:])
                return index
        return len(claims)
    finally:
        session.close()


def _enqueue_once_per_period(
    runtime: Runtime,
    connection: Any,
    queues: dict[str, Any],
    *,
    name: str,
    task: str,
    period: int,
    key_ttl: int,
    description: str,
) -> bool:
    """Enqueue ``task`` once per period across every relay: the first to SET NX wins."""
    slot = int(time.time() // period)
    ns = runtime.settings.redis_namespace
    if not connection.set(f"{ns}hotline:{name}:{slot}", "1", nx=True, ex=key_ttl):
        return False
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", ns)
    queues["default"].enqueue(
        task,
        job_id=f"{prefix}{name}-{slot}",
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        description=description,
    )
    return True


def tick_deadline_check(runtime: Runtime, connection: Any, queues: dict[str, Any]) -> bool:
    """Enqueue the deadline watch once per period across every relay (a Redis SET NX)."""
    period = runtime.settings.deadline_check_seconds
    return _enqueue_once_per_period(
        runtime, connection, queues, name="deadline-check",
        task="referrals.tasks.run_deadline_check", period=period, key_ttl=period * 3,
        description="deadline watch",
    )


RETENTION_PERIOD = 3600  # the retention purge (workflows.retention) runs hourly


def tick_retention_purge(runtime: Runtime, connection: Any, queues: dict[str, Any]) -> bool:
    """Enqueue the retention purge once per hour across every relay (a Redis SET NX)."""
    return _enqueue_once_per_period(
        runtime, connection, queues, name="retention-purge",
        task="referrals.tasks.run_retention_purge", period=RETENTION_PERIOD,
        key_ttl=RETENTION_PERIOD * 2, description="retention purge",
    )


def tick_statistics_publication(runtime: Runtime, connection: Any,
                                queues: dict[str, Any]) -> bool:
    """Enqueue the statistics publication once per hour across every relay."""
    return _enqueue_once_per_period(
        runtime, connection, queues, name="statistics-publication",
        task="referrals.tasks.run_statistics_publication", period=RETENTION_PERIOD,
        key_ttl=RETENTION_PERIOD * 2, description="statistics publication",
    )


def tick_audit_anchor(runtime: Runtime, connection: Any, queues: dict[str, Any]) -> bool:
    """Enqueue the audit anchor once per period across every relay (a Redis SET NX)."""
    period = runtime.settings.audit_anchor_seconds
    return _enqueue_once_per_period(
        runtime, connection, queues, name="audit-anchor",
        task="referrals.tasks.run_audit_anchor", period=period, key_ttl=period * 3,
        description="audit anchor",
    )


def run_relay_loop(runtime: Runtime, stop: threading.Event | None = None) -> None:
    """Relay until stopped: the worker command runs this beside the RQ worker."""
    from redis import Redis
    from redis.exceptions import RedisError

    stop = stop or threading.Event()
    assert runtime.settings.redis_url
    connection = Redis.from_url(runtime.settings.redis_url, socket_timeout=5)
    queues = _queues(runtime, connection)
    pause = runtime.settings.relay_poll_ms / 1000
    while not stop.is_set():
        try:
            # The ticks go first: with Redis down they fail at once, and the relay does
            # not claim and release rows every pass meanwhile.
            tick_deadline_check(runtime, connection, queues)
            tick_retention_purge(runtime, connection, queues)
            tick_audit_anchor(runtime, connection, queues)
            tick_statistics_publication(runtime, connection, queues)
            moved = relay_once(runtime, connection, queues)
        except RedisError as exc:
            log.warning("queue unreachable (%s); retrying", type(exc).__name__)
            moved = 0
        except Exception:
            log.exception("relay pass failed; retrying")
            moved = 0
        if moved < BATCH:
            stop.wait(pause)


def run_claims_in_process(runtime: Runtime, claims: list[Claim]) -> None:
    """Run claimed rows here and now, with the same failure handling as RQ's on_failure."""
    from referrals.delivery import DeliveryFailed, after_failed_attempt
    from referrals.notifications import NotifyFailed
    from referrals.tasks import current_job_id, execute_outbox_message

    for claim in claims:
        token = current_job_id.set(job_id(runtime, claim))
        try:
            execute_outbox_message(runtime, claim.outbox_id, claim.dispatch)
        except (DeliveryFailed, NotifyFailed) as exc:
            after_failed_attempt(runtime, claim.outbox_id, claim.dispatch, str(exc))
        except Exception as exc:
            log.exception("outbox %s failed", claim.outbox_id)
            after_failed_attempt(
                runtime, claim.outbox_id, claim.dispatch, f"job error: {type(exc).__name__}"
            )
        finally:
            current_job_id.reset(token)


def run_embedded_once(runtime: Runtime, check_deadlines: bool = True) -> int:
    """The embedded default (no REDIS_URL): claim due rows and run them in-process."""
    from referrals.notifications import check_deadlines as watch
    from workflows.audit import write_anchor
    from workflows.publication import publish_due
    from workflows.research import Vocabulary
    from workflows.retention import purge_expired

    session = runtime.session()
    try:
        if check_deadlines:
            watch(session)
            purge_expired(session, utcnow(), runtime.catalogs["retention"])
            with transaction(session):
                write_anchor(session)
            publish_due(session, utcnow(), runtime.settings.statistics_k,
                        Vocabulary.from_catalogs(runtime.catalogs))
        claims = claim_due(session, runtime)
    finally:
        session.close()
    run_claims_in_process(runtime, claims)
    return len(claims)


class EmbeddedWorker(threading.Thread):
    """A daemon thread running the embedded relay, for the server with no Redis."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(name="embedded-worker", daemon=True)
        self.runtime = runtime
        self.stop = threading.Event()

    def run(self) -> None:
        pause = self.runtime.settings.relay_poll_ms / 1000
        period = self.runtime.settings.deadline_check_seconds
        last_check = 0.0
        while not self.stop.is_set():
            due = time.monotonic() - last_check >= period
            try:
                moved = run_embedded_once(self.runtime, check_deadlines=due)
                if due:
                    last_check = time.monotonic()
            except Exception:
                log.exception("embedded worker pass failed")
                moved = 0
            if moved < BATCH:
                self.stop.wait(pause)


_embedded_lock = threading.Lock()


def init_app(app: Any, runtime: Runtime) -> None:
    """On the embedded default, start the in-process worker with the first request.

    Not at import or in the factory itself: CLI commands build the app too, and a
    ``db upgrade`` must not race a worker thread on a half-made schema.
    """
    if runtime.settings.uses_redis or not runtime.settings.embedded_worker:
        return

    @app.before_request
    def _start_embedded_worker() -> None:
        if "embedded_worker" not in app.extensions:
            start_embedded_worker(runtime, app.extensions)


def start_embedded_worker(runtime: Runtime, registry: dict[str, Any]) -> EmbeddedWorker | None:
    """Start the embedded worker once per app (the app factory's first request calls it)."""
    if runtime.settings.uses_redis or not runtime.settings.embedded_worker:
        return None
    with _embedded_lock:
        worker = registry.get("embedded_worker")
        if worker is None:
            worker = EmbeddedWorker(runtime)
            registry["embedded_worker"] = worker
            worker.start()
    return worker  # type: ignore[no-any-return]
