"""The outbox relay: moves due outbox rows to RQ (``referrals.embedded`` runs them
in-process when there is no Redis).

A row is *claimed* by raising its dispatch count and giving it a lease. On PostgreSQL
the claim reads with ``FOR UPDATE SKIP LOCKED`` and every claim is a compare-and-set on
the dispatch count, so any number of relays on any number of machines never dispatch a
row twice. A row dispatched but not done when its lease runs out (a worker was
SIGKILLed, Redis lost the job) is claimed again: the job is redone within
``delivery_lease_seconds`` rather than after RQ's ten-minute maintenance pass.

Batches: the rows one pass claims for one queue go to RQ up to ``JOB_ROWS`` per job
(``referrals.tasks.run_outbox_batch``), so RQ's cost per job (registries, heartbeat,
result, a dozen Redis round trips) is paid once per batch. Each row of a batch keeps
its own semantics: it runs only while it is not done and its dispatch is current, a
row that fails gets its own retry, the rest of the batch still runs, and a batch
killed half-way has its unfinished rows redone by their leases (finished ones are done).

Batch job ids: every row of a batch is claimed with the same ``dispatched_at``, one no
other batch of this pass has (the pass's time plus the batch's index in microseconds),
and the job id is derived from it (``outbox-at-<microseconds>``). So the relay finds a
leased row's job from the row alone (``job_waits_in_queue``), with nothing stored
beside it, and a repeat enqueue of the same batch is the same job. Two relays would
have to claim in the same microsecond to name two batches alike; then the later enqueue
replaces the earlier job and its rows wait for their lease: late, never twice.
Jobs queued by an older release (``run_outbox_message``, one row, id
``outbox-<row>-<dispatch>``) still run; if their lease runs out first, the row is
dispatched again and the old job then skips it as superseded.

Waking: on PostgreSQL the relay LISTENs on ``workflows.outbox.OUTBOX_CHANNEL``
(``OutboxListener``) and runs a pass as soon as a transaction that wrote outbox rows
commits; it still looks every ``RELAY_POLL_MS`` for rows that became due by time
(retries, safe-hours holds, leases run out) or a notice lost with its connection. The
embedded default (SQLite) only polls.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy import or_, select, tuple_, update
from sqlalchemy.orm import Session

from config.runtime import Runtime
from workflows.db import is_postgres, transaction, utcnow
from workflows.outbox import EMERGENCY_RANK, OUTBOX_CHANNEL, ROUTINE_RANK, OutboxMessage

log = logging.getLogger(__name__)

QUEUE_FOR_KIND = {
    "deliver_referral": "referrals", "deliver_packet": "referrals", "notify_agency": "referrals",
    "notify": "notifications",
}
# In the order every worker takes them: an emergency's delivery or page goes first, so a
# backlog of routine deliveries never holds it (SPEC: emergencies lead every queue).
PURPOSES = ("emergency", "referrals", "notifications", "default")
BATCH = 100  # rows claimed per pass
JOB_ROWS = 20  # rows per RQ job: RQ's per-job cost is paid once for these
RESULT_TTL = 3600  # ids only in payloads, but no reason to keep results for long
FAILURE_TTL = 7 * 24 * 3600  # RQ keeps failed jobs for a year by default


@dataclass(frozen=True)
class Claim:
    outbox_id: int
    dispatch: int
    kind: str
    # The dispatch's time, shared by the rows of one batch and by no other batch: it
    # names the batch's job (batch_job_id). None for a claim rebuilt inside a job.
    dispatched_at: datetime | None = None
    priority_rank: int = ROUTINE_RANK

    @property
    def purpose(self) -> str:
        """The queue this row goes to (``purpose_of``)."""
        return purpose_of(self.kind, self.priority_rank)


def purpose_of(kind: str, priority_rank: int = ROUTINE_RANK) -> str:
    """The queue (by purpose) an outbox row goes to: an emergency's to ``emergency``."""
    if priority_rank <= EMERGENCY_RANK:
        return "emergency"
    return QUEUE_FOR_KIND.get(kind, "default")


def queue_name(runtime: Runtime, purpose: str) -> str:
    """A queue named by purpose, prefixed with this deployment's Redis namespace."""
    return f"{runtime.settings.redis_namespace}{purpose}"


def _prefix(runtime: Runtime) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", runtime.settings.redis_namespace)


def job_id(runtime: Runtime, claim: Claim) -> str:
    """One row's dispatch, named (letters, digits, ``_`` and ``-`` only): the id of an
    older release's one-row job, and what the log stamps while a batch runs the row."""
    return f"{_prefix(runtime)}outbox-{claim.outbox_id}-{claim.dispatch}"


def _micros(moment: datetime) -> int:
    # Naive (SQLite) and aware (PostgreSQL) read-backs of one instant give one number.
    if moment.tzinfo is not None:
        moment = moment.replace(tzinfo=None) - (moment.utcoffset() or timedelta(0))
    return (moment - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def batch_job_id(runtime: Runtime, claim: Claim) -> str:
    """The RQ job id of the batch a claim went out in: derived from its dispatched_at."""
    assert claim.dispatched_at is not None
    return f"{_prefix(runtime)}outbox-at-{_micros(claim.dispatched_at)}"


def batches(claims: list[Claim]) -> list[list[Claim]]:
    """The claims of one pass as batches: one queue each, at most JOB_ROWS rows, all
    with the dispatched_at claim_due gave them."""
    def key(claim: Claim) -> tuple[datetime | None, str]:
        return claim.dispatched_at, claim.purpose

    return [list(group) for _, group in groupby(claims, key=key)]


def claim_due(
    session: Session,
    runtime: Runtime,
    limit: int = BATCH,
    still_waiting: Callable[[Claim], bool] | None = None,
    job_rows: int = JOB_ROWS,
) -> list[Claim]:
    """Claim due rows (not done, available, lease free or run out) for this relay.

    A row whose lease ran out while its job still waits in the queue (a backlog longer
    than the lease) only gets a longer lease: re-dispatching it would put a second job
    behind the first and, under load, supersede every job before it runs.

    The claims come back in batches (``batches``): rows of one queue, at most
    ``job_rows`` each, sharing a ``dispatched_at`` no other batch of the pass has.
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
                OutboxMessage.dispatched_at,
                OutboxMessage.priority_rank,
            )
            .where(
                OutboxMessage.done_at.is_(None),
                OutboxMessage.available_at <= now,
                or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until <= now),
            )
            .order_by(OutboxMessage.priority_rank, OutboxMessage.available_at, OutboxMessage.id)
            .limit(limit)
        )
        if is_postgres(session):
            stmt = stmt.with_for_update(skip_locked=True)
        due: dict[str, list[tuple[int, int, str, int]]] = {}
        for outbox_id, attempts, kind, leased, dispatched, rank in session.execute(stmt).all():
            if leased is not None and still_waiting and still_waiting(
                Claim(outbox_id, attempts, kind, dispatched, rank)
            ):
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == outbox_id, OutboxMessage.attempts == attempts)
                    .values(lease_until=lease)
                )
                continue
            due.setdefault(purpose_of(kind, rank), []).append((outbox_id, attempts, kind, rank))
        index = 0
        for rows in due.values():
            for start in range(0, len(rows), job_rows):
                # One microsecond apart: each batch's own dispatched_at, hence job id.
                at = now + timedelta(microseconds=index)
                index += 1
                chunk = rows[start:start + job_rows]
                # One statement per batch, still a compare-and-set on each row's dispatch.
                claimed = session.execute(
                    update(OutboxMessage)
                    .where(tuple_(OutboxMessage.id, OutboxMessage.attempts).in_(
                        [(outbox_id, attempts) for outbox_id, attempts, _, _ in chunk]
                    ))
                    .values(attempts=OutboxMessage.attempts + 1, lease_until=lease,
                            dispatched_at=at)
                    .returning(OutboxMessage.id)
                    .execution_options(synchronize_session=False)
                ).scalars().all()
                won = set(claimed)
                claims += [Claim(outbox_id, attempts + 1, kind, at, rank)
                           for outbox_id, attempts, kind, rank in chunk if outbox_id in won]
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


def enqueue_batch(runtime: Runtime, queues: dict[str, Any], batch: list[Claim]) -> None:
    """Put one batch of claimed rows (one queue) on its queue as one job; only ids
    travel, never personal data."""
    from rq import Callback

    settings = runtime.settings
    first = batch[0]
    # The job's timeout covers every row at its worst; a row that outlives its share is
    # not cut short (the webhook's own deadline bounds each try).
    per_row = settings.delivery_timeout_seconds * 6 + 30
    queues[first.purpose].enqueue(
        "referrals.tasks.run_outbox_batch",
        [[claim.outbox_id, claim.dispatch] for claim in batch],
        job_id=batch_job_id(runtime, first),
        job_timeout=per_row * len(batch),
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        on_failure=Callback("referrals.tasks.on_batch_failure", timeout=60 + 5 * len(batch)),
        description=f"outbox {len(batch)} row(s) from {first.kind} {first.outbox_id}",
    )


def job_waits_in_queue(
    runtime: Runtime, connection: Any, claim: Claim, seen: dict[str, str | None] | None = None
) -> bool:
    """Whether the RQ job of this row's dispatch still waits to start (not lost, not
    dead): the batch job named by its dispatched_at, else an older release's one-row
    job. ``seen`` keeps the answers of one pass (a batch's rows share their job)."""
    from rq.job import Job, JobStatus

    # A started job renewed the lease when it began; still started after the lease ran out
    # means its worker died (SIGKILL, lost machine): dispatch again.
    # RQ 3 added two more waiting states: READY_TO_ENQUEUE (a dependent job whose
    # dependencies are done) and RATE_LIMITED (held back by a queue's concurrency limit).
    waiting = {status.value for status in (
        JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED,
        JobStatus.READY_TO_ENQUEUE, JobStatus.RATE_LIMITED,
    )}
    names = [job_id(runtime, claim)]
    if claim.dispatched_at is not None:
        names.insert(0, batch_job_id(runtime, claim))
    seen = {} if seen is None else seen
    for name in names:
        if name not in seen:
            # Only the status field: the job's data is not needed to know it waits.
            status = connection.hget(Job.key_for(name), "status")
            seen[name] = None if status is None else status.decode()
        if seen[name] is not None:
            return seen[name] in waiting
    return False  # no such job (Redis lost it): dispatch again


def relay_once(runtime: Runtime, connection: Any, queues: dict[str, Any] | None = None) -> int:
    """One pass: claim due rows and enqueue them; returns how many went to RQ."""
    from redis.exceptions import RedisError

    queues = queues or _queues(runtime, connection)
    session = runtime.session()
    try:
        seen: dict[str, str | None] = {}
        claims = claim_due(
            session, runtime,
            still_waiting=lambda claim: job_waits_in_queue(runtime, connection, claim, seen),
        )
        moved = 0
        for batch in batches(claims):
            try:
                enqueue_batch(runtime, queues, batch)
            except RedisError as exc:
                log.warning("queue unreachable (%s); %d row(s) wait", type(exc).__name__,
                            len(claims) - moved)
                release(session, claims[moved:])
                return moved
            moved += len(batch)
        return moved
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
    """Enqueue ``task`` once per period across every relay: the first to SET NX wins.

    A relay asks Redis once per slot (it runs a pass at every NOTIFY, and a slot it has
    tried, won or lost, has nothing more for it).
    """
    slot = int(time.time() // period)
    ns = runtime.settings.redis_namespace
    tried = (ns, name)
    if _tried_slots.get(tried) == slot:
        return False
    if not connection.set(f"{ns}hotline:{name}:{slot}", "1", nx=True, ex=key_ttl):
        _tried_slots[tried] = slot
        return False
    queues["default"].enqueue(
        task,
        job_id=f"{_prefix(runtime)}{name}-{slot}",
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        description=description,
    )
    _tried_slots[tried] = slot  # only once enqueued: a failed enqueue is tried again
    return True


_tried_slots: dict[tuple[str, str], int] = {}  # (namespace, tick) -> the last slot tried


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


class OutboxListener:
    """``LISTEN`` on the outbox channel over a connection of its own (autocommit).

    ``wait`` returns as soon as a transaction that wrote outbox rows commits, or after
    the timeout. A lost connection never stops the relay: it is opened again with
    backoff (1 s doubling to 30 s), the relay polling meanwhile, and the first wait
    after it is back answers True (a notice may have been missed while it was down).
    """

    SLICE = 1.0  # seconds: how long one blocking wait lasts before ``stop`` is looked at

    def __init__(self, conninfo: str, channel: str = OUTBOX_CHANNEL) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self.connection: Any = None
        self.retry_at = 0.0
        self.backoff = 1.0
        self.missed = True  # nothing heard yet: the first pass must look

    @classmethod
    def for_runtime(cls, runtime: Runtime) -> OutboxListener | None:
        """A listener on the runtime's PostgreSQL database; None on any other."""
        url = runtime.engine.url
        if url.get_backend_name() != "postgresql":
            return None
        return cls(url.set(drivername="postgresql").render_as_string(hide_password=False))

    def _connect(self) -> bool:
        import psycopg
        from psycopg import sql

        if time.monotonic() < self.retry_at:
            return False
        try:
            connection = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
            connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except psycopg.Error as exc:
            self._lost(exc)
            return False
        self.connection = connection
        self.backoff = 1.0
        return True

    def _lost(self, exc: Exception) -> None:
        log.warning("outbox LISTEN connection lost (%s); polling, again in %.0f s",
                    type(exc).__name__, self.backoff)
        if self.connection is not None:
            try:
                self.connection.close()
            except Exception:  # noqa: BLE001, S110 - it is gone either way
                pass
        self.connection = None
        self.missed = True
        self.retry_at = time.monotonic() + self.backoff
        self.backoff = min(self.backoff * 2, 30.0)

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Block up to ``timeout`` s (or until ``stop``); True when woken by a notice."""
        import psycopg

        deadline = time.monotonic() + timeout
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self.connection is None and not self._connect():
                stop.wait(min(remaining, self.SLICE))
                continue
            if self.missed:
                self.missed = False
                return True
            try:
                woken = False
                for _ in self.connection.notifies(
                    timeout=min(remaining, self.SLICE), stop_after=1
                ):
                    woken = True
                if woken:
                    # One pass serves every notice so far: take them all off the wire.
                    for _ in self.connection.notifies(timeout=0):
                        pass
                    return True
            except psycopg.Error as exc:
                self._lost(exc)
        return False

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def run_relay_loop(runtime: Runtime, stop: threading.Event | None = None) -> None:
    """Relay until stopped: the worker command runs this beside the RQ worker."""
    from redis import Redis

    stop = stop or threading.Event()
    assert runtime.settings.redis_url
    connection = Redis.from_url(runtime.settings.redis_url, socket_timeout=5)
    queues = _queues(runtime, connection)
    pause = runtime.settings.relay_poll_ms / 1000
    listener = OutboxListener.for_runtime(runtime)
    try:
        _relay_passes(runtime, connection, queues, stop, pause, listener)
    finally:
        if listener is not None:
            listener.close()


def _relay_passes(
    runtime: Runtime, connection: Any, queues: dict[str, Any], stop: threading.Event,
    pause: float, listener: OutboxListener | None,
) -> None:
    from redis.exceptions import RedisError

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
        if moved >= BATCH:
            continue  # more may be due at once
        if listener is None:
            stop.wait(pause)
        else:
            listener.wait(pause, stop)
