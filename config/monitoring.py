"""``/metrics`` for Prometheus: who may scrape, what state is read at scrape time.

Counters (``config.metrics``) are counted where their events happen; everything that
is state (the outbox's oldest unsent message, RQ's queues, the outage spool, overdue
cases) is read from the database, Redis and the spool file when scraped, so every
gunicorn worker answers the same. With ``PROMETHEUS_MULTIPROC_DIR`` set the counters of
every process writing to that directory (gunicorn's workers, a delivery worker on the
same host) are added up.

The endpoint answers a bearer ``METRICS_TOKEN`` or a client in ``METRICS_ALLOW``, and is
a 404 (as if it did not exist) for anyone else.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from apiflask import APIFlask
from flask import abort, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import event as sa_event
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from config.metrics import TIPS, start_series
from config.runtime import Runtime
from config.settings import Settings
from intake.models import Signal
from referrals.relay import PURPOSES, queue_name
from workflows.db import utcnow
from workflows.deadlines import aware, open_case_late
from workflows.models import Case
from workflows.outbox import OutboxMessage

log = logging.getLogger(__name__)

_FLUSHED_TIPS = "metrics_flushed_tips"


def init_app(app: APIFlask, runtime: Runtime) -> None:
    """Count tips as they commit, and answer ``/metrics`` to the allowed scrapers."""
    start_series(sorted(runtime.catalogs.get("agencies", {})))
    watch_tips(runtime.session_factory)

    @app.get("/metrics")
    @app.doc(hide=True)
    def metrics() -> Any:
        settings: Settings = runtime.settings
        if not scrape_allowed(settings):
            abort(404)
        body = generate_latest(scrape_registry(runtime, app.extensions.get("spool")))
        return body, 200, {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"}


def scrape_allowed(settings: Settings) -> bool:
    """The scraper's bearer token, or a client address in ``METRICS_ALLOW``."""
    header = request.headers.get("Authorization", "")
    if settings.metrics_token and header[:7].lower() == "bearer ":
        given = header[7:].strip().encode("utf-8")
        if hmac.compare_digest(given, settings.metrics_token.encode("utf-8")):
            return True
    if not settings.metrics_allow or not request.remote_addr:
        return False
    if settings.proxy_count == 0 and "X-Forwarded-For" in request.headers:
        # A proxy we were not told about (PROXY_COUNT): the address we see is the proxy's,
        # loopback for one on this host, whoever the visitor is.
        return False
    try:
        address = ipaddress.ip_address(request.remote_addr)
    except ValueError:  # a unix socket
        return False
    return any(address in network for network in settings.metrics_allow)


def scrape_registry(runtime: Runtime, spool: Any) -> CollectorRegistry:
    """The counters (this process's, or every process's in multiprocess mode) and the
    state read now."""
    registry = CollectorRegistry()
    folder = runtime.settings.prometheus_multiproc_dir
    if folder is not None:
        MultiProcessCollector(registry, path=str(folder))
    else:
        registry.register(_Forward(REGISTRY))
    registry.register(StateCollector(runtime, spool))
    return registry


class _Forward(Collector):
    """Another registry's metrics (the process's own, in single-process mode)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()


class StateCollector(Collector):
    """Gauges of database, Redis and spool state, read at each scrape.

    A source that cannot be read is left out and ``hotline_metrics_source_up`` says so:
    a scrape during a database outage still answers (and shows the spool filling up).
    """

    def __init__(self, runtime: Runtime, spool: Any) -> None:
        self.runtime = runtime
        self.spool = spool

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "hotline_metrics_source_up", "1 if the source could be read for this scrape",
            labels=["source"],
        )
        for source, read in (
            ("database", self._database),
            ("queue", self._queues),
            ("spool", self._spool),
        ):
            try:
                metrics = list(read())
            except Exception as exc:  # noqa: BLE001 - an unreadable source is a 0, not a 500
                log.warning("metrics: %s unreadable (%s)", source, type(exc).__name__)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from metrics
        yield up

    def _database(self) -> Iterator[Metric]:
        now = utcnow()
        with self.runtime.session() as session:
            oldest, unsent = session.execute(
                select(func.min(OutboxMessage.created_at), func.count()).where(
                    OutboxMessage.done_at.is_(None)
                )
            ).one()
            overdue = session.scalar(
                select(func.count()).select_from(Case).where(open_case_late(now))
            )
        yield GaugeMetricFamily(
            "hotline_outbox_lag_seconds",
            "Age of the oldest outbox message not yet done (0 when none waits)",
            value=_age(oldest, now),
        )
        yield GaugeMetricFamily(
            "hotline_outbox_unsent", "Outbox messages not yet done", value=unsent
        )
        yield GaugeMetricFamily(
            "hotline_cases_overdue", "Open cases past their deadline", value=overdue or 0
        )

    def _queues(self) -> Iterator[Metric]:
        settings = self.runtime.settings
        if not settings.redis_url:
            return  # the embedded queue runs in-process: its work is the outbox's
        from redis import Redis
        from rq import Queue

        depth = GaugeMetricFamily(
            "hotline_queue_jobs", "Jobs waiting in each RQ queue", labels=["queue"]
        )
        with Redis.from_url(settings.redis_url, socket_timeout=2) as connection:
            for purpose in PURPOSES:
                queue = Queue(queue_name(self.runtime, purpose), connection=connection)
                depth.add_metric([purpose], queue.count)
        yield depth

    def _spool(self) -> Iterator[Metric]:
        if self.spool is None:
            return  # SPOOL_PATH=off
        yield GaugeMetricFamily(
            "hotline_spool_items",
            "Items in this host's outage spool not yet put into the database",
            value=self.spool.count(),
        )


def _age(oldest: datetime | None, now: datetime) -> float:
    return max(0.0, (now - aware(oldest)).total_seconds()) if oldest is not None else 0.0


def watch_tips(factory: sessionmaker[Session]) -> None:
    """Count each stored tip (a new Signal) by channel once its transaction commits."""
    sa_event.listen(factory, "after_flush", _note_new_tips)
    sa_event.listen(factory, "after_commit", _count_committed_tips)
    sa_event.listen(factory, "after_rollback", _forget_tips)


def _note_new_tips(session: Session, _context: Any) -> None:
    for obj in session.new:
        if isinstance(obj, Signal):
            session.info.setdefault(_FLUSHED_TIPS, {})[id(obj)] = (obj, obj.channel)


def _count_committed_tips(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: the outer transaction may still roll back
    for obj, channel in session.info.pop(_FLUSHED_TIPS, {}).values():
        # A savepoint rolled back (a duplicate's retry) expunged its new rows.
        if inspect(obj).persistent:
            TIPS.labels(channel=channel).inc()


def _forget_tips(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(_FLUSHED_TIPS, None)
