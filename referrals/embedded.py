"""The embedded default (no ``REDIS_URL``): a thread in the web process claims due
outbox rows and runs them here, with the same code as the RQ jobs.

Apart from ``referrals.relay`` (which moves rows to RQ and never runs a job) and
``referrals.tasks`` (the jobs), so neither needs the other back.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from config.runtime import Runtime
from referrals.relay import BATCH, claim_due
from referrals.tasks import run_claims_in_process
from workflows.db import transaction, utcnow

log = logging.getLogger(__name__)


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
