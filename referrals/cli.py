"""``flask --app wsgi worker``: the one command that runs delivery.

With ``REDIS_URL`` it runs a real RQ worker (with its scheduler) on the ``referrals``,
``notifications`` and ``default`` queues, plus the outbox relay and the per-minute
deadline watch in a child process. Start it as many times, on as many machines, as
throughput needs: claims and leases in the database keep any row from being delivered
twice. Without ``REDIS_URL`` the same jobs run in-process in the foreground.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Any

import click
from flask.cli import AppGroup, with_appcontext
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.orm import configure_mappers

from config.database import runtime as app_runtime
from config.logs import log_formatter
from config.runtime import Runtime
from config.settings import Settings
from referrals.embedded import EmbeddedWorker
from referrals.relay import PURPOSES, queue_name, run_relay_loop
from referrals.tasks import JobIdFilter, run_deadline_check

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s job=%(job_id)s %(message)s"

def _stamp_job_ids(settings: Settings) -> None:
    """Every log line of the worker names its job (never the tip's text), in LOG_FORMAT."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(JobIdFilter())
        handler.setFormatter(log_formatter(settings, LOG_FORMAT))
    # transitions logs every state callback at INFO: one line per delivery is enough.
    logging.getLogger("transitions").setLevel(logging.WARNING)


def _relay_main(runtime: Runtime, parent_pid: int) -> None:
    """The relay child: leaves when the worker stops or dies (it must not outlive it)."""
    runtime.engine.dispose(close=False)  # never share the parent's pooled connections
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def watch_parent() -> None:
        while not stop.wait(1):
            if os.getppid() != parent_pid:
                stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    run_relay_loop(runtime, stop)


# Deliveries and pages never wait behind maintenance (the deadline watch, the retention
# purge, the audit anchor, the statistics publication: seconds each on a large database):
# the worker's main process takes these queues, a maintenance child takes the rest.
DELIVERY_PURPOSES = tuple(p for p in PURPOSES if p != "default")
MAINTENANCE_PURPOSES = ("default",)


def worker_queues(runtime: Runtime, connection: Any,
                  purposes: tuple[str, ...] = DELIVERY_PURPOSES) -> list[Any]:
    """Queues in the order a worker takes jobs: ``emergency`` first (PURPOSES)."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    return [Queue(queue_name(runtime, p), connection=connection, serializer=JSONSerializer)
            for p in purposes]


def _work(runtime: Runtime, purposes: tuple[str, ...], *, burst: bool, scheduler: bool) -> None:
    """An RQ SimpleWorker on ``purposes`` until stopped (or, with ``burst``, idle)."""
    from redis import Redis
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    settings = runtime.settings
    assert settings.redis_url
    connection = Redis.from_url(settings.redis_url)
    wait = 1.0
    while True:
        try:
            # SimpleWorker: jobs run in this process, warm (pool, compiled statements),
            # not in a work-horse forked per job at ~0.25 s CPU each (BENCHMARKS.md).
            # A job that dies with the process is redone by the relay's lease.
            worker = SimpleWorker(worker_queues(runtime, connection, purposes),
                                  connection=connection, serializer=JSONSerializer)
            worker.work(with_scheduler=scheduler, burst=burst,
                        logging_level=settings.log_level)
            return  # stopped by a signal, or the burst is done
        except RedisConnectionError as exc:
            # RQ retries a lost connection while it waits for jobs, but not while it
            # starts: a worker started while Redis is down would exit. Keep trying; the
            # outbox holds the work meanwhile, so nothing is lost.
            log.warning(
                "queue unreachable at start (%s); retrying in %.0f s", type(exc).__name__, wait
            )
            time.sleep(wait)
            wait = min(wait * 2, 10.0)


def _maintenance_main(runtime: Runtime, parent_pid: int) -> None:
    """The maintenance child: RQ's own SIGTERM handling stops it; it also leaves when the
    worker dies (it must not outlive it)."""
    runtime.engine.dispose(close=False)  # never share the parent's pooled connections

    def watch_parent() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch_parent, daemon=True).start()
    _work(runtime, MAINTENANCE_PURPOSES, burst=False, scheduler=False)


def run_rq_worker(runtime: Runtime, burst: bool = False) -> None:
    """Relay child + maintenance child + RQ worker with scheduler, until SIGTERM/SIGINT.

    With ``burst`` one worker takes every queue until they are empty (tests, scripts).
    """
    # Map every model once here, not in each forked child (Redash does the same),
    # and fork with no open database connections.
    configure_mappers()
    runtime.engine.dispose()
    fork = multiprocessing.get_context("fork")
    children = [fork.Process(target=_relay_main, args=(runtime, os.getpid()),
                             name="outbox-relay", daemon=True)]
    if not burst:
        children.append(fork.Process(target=_maintenance_main, args=(runtime, os.getpid()),
                                     name="maintenance-worker", daemon=True))
    for child in children:
        child.start()
    try:
        _work(runtime, PURPOSES if burst else DELIVERY_PURPOSES, burst=burst, scheduler=True)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.join(10)


def run_in_process(runtime: Runtime) -> None:
    """The embedded default: the same jobs, run here, until interrupted."""
    worker = EmbeddedWorker(runtime)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop.set())
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.5)
    except KeyboardInterrupt:
        worker.stop.set()
        worker.join(5)


def _start(burst: bool) -> None:
    runtime = app_runtime()
    _stamp_job_ids(runtime.settings)
    if runtime.settings.uses_redis:
        click.echo(f"delivery worker on {', '.join(queue_name(runtime, p) for p in PURPOSES)}")
        run_rq_worker(runtime, burst=burst)
    else:
        click.echo("no REDIS_URL: running queued jobs in-process (embedded default)")
        run_in_process(runtime)


@click.group("worker", cls=AppGroup, invoke_without_command=True)
@click.option("--burst", is_flag=True, help="Quit when the queues are empty (RQ only).")
@click.pass_context
@with_appcontext
def worker_cli(ctx: click.Context, burst: bool) -> None:
    """Run delivery: an RQ worker + outbox relay with REDIS_URL, in-process without."""
    if ctx.invoked_subcommand is None:
        _start(burst)


@worker_cli.command("deadlines")
def deadlines() -> None:
    """Run the deadline watch once and say how many new breaches it notified."""
    click.echo(f"{run_deadline_check()} new deadline breach(es)")
