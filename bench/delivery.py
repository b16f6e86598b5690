"""Delivery: referrals per second to a local agency server with 1, 2 and 4 workers, and
latency from a supervisor's approval to the agency's receipt with one idle worker.

Workers are the real command (``flask --app wsgi worker``: RQ worker + outbox relay),
the agency is a separate process answering 200 (``bench.agency_server``). The backlog
is written the way approval writes it (a queued referral and its outbox row), in bulk.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.environment import BenchEnv, children, cpu_count, cpu_seconds, free_port, wait_http
from bench.load import percentile
from bench.report import Report, Row
from bench.sizes import Sizes
from bench.workflow import _in_process_app

AGENCIES = ("FBI", "ICE", "HHS", "DOL_WHD")
SECRET = "bench-agency-webhook-secret"  # noqa: S105 - a fixture value


@contextmanager
def agency(env: BenchEnv) -> Iterator[str]:
    """The stand-in agency server; yields its base URL."""
    port = free_port()
    proc = env.start([sys.executable, "-m", "bench.agency_server", str(port)])
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/stats", proc)
        yield base
    finally:
        env.stop(proc)


def agency_env(base: str) -> dict[str, str]:
    out = {}
    for code in AGENCIES:
        out[f"AGENCY_{code}_WEBHOOK_URL"] = f"{base}/hook/{code}"
        out[f"AGENCY_{code}_WEBHOOK_SECRET"] = SECRET
    return out


def stats(base: str) -> tuple[dict[int, float], int]:
    """The agency's first-arrival time per referral, and how many POSTs it got in all."""
    with urllib.request.urlopen(base + "/stats", timeout=10) as resp:  # noqa: S310 - local
        data = json.loads(resp.read())
    return {int(k): v for k, v in data["arrivals"].items()}, int(data["deliveries"])


def arrivals(base: str) -> dict[int, float]:
    return stats(base)[0]


def duplicates(base: str) -> int:
    """POSTs beyond the first per referral: "never twice", counted at the agency."""
    got, posts = stats(base)
    return posts - len(got)


def start_workers(env: BenchEnv, count: int, base: str) -> list[Any]:
    """``flask --app wsgi worker`` ``count`` times, pointed at the agency server.

    The stand-in agency listens on plain http on loopback, which production refuses (an
    agency's webhook must be https), so these workers run as ``development``; nothing
    else in a worker depends on it.
    """
    return [
        env.start([sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
                  HOTLINE_ENV="development", **agency_env(base))
        for _ in range(count)
    ]


def _make_case(session: Any, state: str, referral_state: str, priority: str = "urgent") -> Any:
    from intake.models import Signal
    from workflows.models import PRIORITY_RANK, Case, Priority, Referral

    case = Case(state=state, priority=priority, priority_rank=PRIORITY_RANK[Priority(priority)],
                level="high", score=12,
                case_type="labor", screening={"facts": {"trafficking_type": "labor"},
                                              "indicators": [], "consent": {}})
    session.add(case)
    session.flush()
    case.reference = f"HT-BENCH-{case.id:07d}"
    session.add(Signal(case_id=case.id, channel="web", narrative="Workers kept at a farm.",
                       location="Springfield", anonymous=True))
    referral = Referral(
        case_id=case.id, agency_code=random.choice(AGENCIES[:3]), state=referral_state,
        mandatory=True, rule="bench", reason="bench referral",
        legal_basis={"type": "mandatory", "rule": "bench"},
        idempotency_key=f"bench-{uuid.uuid4().hex}",
    )
    session.add(referral)
    session.flush()
    return case, referral


def clear_outbox(env: BenchEnv) -> None:
    """Forget what an earlier run left undelivered (its rows and its queued jobs), so
    the next run's workers start on its own backlog."""
    import psycopg

    with psycopg.connect(env.psycopg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE outbox SET done_at = now(), lease_until = NULL "
                     "WHERE done_at IS NULL")
    env.clear_redis()


def queued_backlog(env: BenchEnv, count: int) -> list[int]:
    """``count`` queued referrals with their outbox rows, as approval leaves them: with
    the packet frozen at queue time (``take_snapshot``, as ``_on_queue`` does), so the
    workers' CPU is delivery's, not approval's."""
    from workflows.db import transaction
    from workflows.outbox import add_outbox_message
    from workflows.packets import take_snapshot

    app = _in_process_app(env)
    runtime = app.extensions["runtime"]
    ids = []
    with app.app_context():
        session = runtime.session()
        for start in range(0, count, 500):
            with transaction(session):
                for _ in range(min(500, count - start)):
                    _case, referral = _make_case(session, "referred", "queued", "routine")
                    take_snapshot(session, referral)
                    add_outbox_message(session, "deliver_referral", ref_id=referral.id)
                    ids.append(referral.id)
            session.expunge_all()
        session.close()
    runtime.engine.dispose()
    return ids


def wait_for(base: str, ids: list[int], timeout: float, partial: bool = False) -> dict[int, float]:
    """Receipt times of ``ids``; after ``timeout`` fail, or with ``partial`` return what came."""
    wanted = set(ids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = arrivals(base)
        if wanted <= got.keys():
            return {i: got[i] for i in ids}
        time.sleep(0.2)
    got = arrivals(base)
    if partial:
        return {i: got[i] for i in ids if i in got}
    missing = len(wanted - got.keys())
    raise RuntimeError(f"{missing} of {len(ids)} referrals not delivered within {timeout:.0f} s")


def throughput(
    env: BenchEnv, workers: int, count: int, cap: float
) -> tuple[float, int, float, float, int]:
    """Deliveries/s from first to last receipt, how many arrived, the wall time taken,
    the workers' CPU ms per delivery (start-up included; PostgreSQL's share not) and how
    many arrived twice.

    The backlog is drained, or the run stops after ``cap`` seconds (slow machines).
    """
    clear_outbox(env)
    ids = queued_backlog(env, count)
    with agency(env) as base:
        started = time.time()
        procs = start_workers(env, workers, base)
        got = wait_for(base, ids, timeout=cap, partial=True)
        cpu = sum(_tree_cpu(p.pid) for p in procs)
        for proc in procs:
            env.stop(proc)
        twice = duplicates(base)
    times = sorted(got.values())
    if len(times) < 2:
        return 0.0, len(times), time.time() - started, 0.0, twice
    span = times[-1] - times[0]
    return ((len(times) - 1) / span, len(times), times[-1] - started,
            cpu * 1000 / len(times), twice)


def _tree_cpu(pid: int) -> float:
    """CPU of a worker: itself, its ended work horses, and its live children (the relay)."""
    return cpu_seconds(pid, reaped_children=True) + sum(
        cpu_seconds(child, reaped_children=True) for child in children(pid)
    )


def approval_latency(env: BenchEnv, count: int, backlog: int = 0,
                     workers: int = 1, priority: str = "urgent") -> list[float]:
    """Seconds from an approval's commit to the agency's receipt.

    Approvals go one at a time, the next only after the previous arrived. With
    ``backlog``, that many referrals are queued first and the approvals follow every
    0.25 s without waiting, so each is timed while the backlog is still draining.
    """
    from sqlalchemy import select

    from workflows.accounts import create_user
    from workflows.db import transaction
    from workflows.lifecycle import fire_case_event
    from workflows.models import User

    app = _in_process_app(env)
    runtime = app.extensions["runtime"]
    approved: dict[int, float] = {}
    clear_outbox(env)
    with agency(env) as base:
        procs = start_workers(env, workers, base)
        with app.app_context():
            session = runtime.session()
            with transaction(session):
                boss = session.scalar(select(User).where(User.username == "bench-boss"))
                boss = boss or create_user(session, "bench-boss", "supervisor")
            cases = []
            with transaction(session):
                for _ in range(count + 1):
                    cases.append(_make_case(session, "pending_approval", "pending", priority))
            # The first approval only proves the worker is up; the rest find it idle.
            warm_case, warm_referral = cases.pop(0)
            with transaction(session):
                fire_case_event(
                    session, warm_case.id, "approve", boss, version=warm_case.version,
                    catalogs=runtime.catalogs,
                )
            wait_for(base, [warm_referral.id], timeout=180)
            time.sleep(1)
            if backlog:
                queued_backlog(env, backlog)
            for case, referral in cases:
                with transaction(session):
                    fire_case_event(
                        session, case.id, "approve", boss, version=case.version,
                        catalogs=runtime.catalogs,
                    )
                approved[referral.id] = time.time()
                if backlog:  # open loop: every approval lands while the backlog drains
                    time.sleep(0.25)
                    continue
                # Wait for the receipt, then a pause: each approval finds the worker idle
                # (on a loaded machine a fixed pace would build a queue and time that).
                wait_for(base, [referral.id], timeout=60)
                time.sleep(random.uniform(0.1, 0.4))
            session.close()
        got = wait_for(base, list(approved), timeout=60 + backlog / 5)
        for proc in procs:
            env.stop(proc)
    runtime.engine.dispose()
    return [got[i] - approved[i] for i in approved]


def run(env: BenchEnv, report: Report, sizes: Sizes) -> None:
    latencies = approval_latency(env, sizes.idle_deliveries)
    report.add(Row("delivery", f"approve -> agency receipt, 1 idle worker (n={len(latencies)})",
                   statistics.median(latencies) * 1000, "ms p50",
                   statistics.median(latencies) * 1000, percentile(latencies, 99) * 1000,
                   target="p99 < 250 ms", ok=percentile(latencies, 99) < 0.25,
                   note="relay woken by the outbox's NOTIFY (poll RELAY_POLL_MS as fallback)"))
    for priority in ("emergency", "routine"):
        queued = approval_latency(env, sizes.backlog_approvals, backlog=sizes.backlog,
                                  workers=4, priority=priority)
        first = priority == "emergency"
        report.add(Row(
            "delivery", f"approve {priority} -> receipt, {sizes.backlog:,} routine queued, "
                        f"4 workers (n={len(queued)})",
            statistics.median(queued) * 1000, "ms p50",
            statistics.median(queued) * 1000, percentile(queued, 99) * 1000,
            target="p99 < 1 s" if first else "", ok=percentile(queued, 99) < 1.0 if first else None,
            note="the emergency lane: claimed first, a queue every worker takes first" if first
            else "first in, first out behind the backlog, by design (fair to older work)",
        ))
    rates = {}
    for workers in sizes.delivery_workers:
        rate, done, drain, cpu_ms, twice = throughput(
            env, workers, sizes.deliveries, sizes.delivery_cap_seconds
        )
        rates[workers] = rate
        base_rate = rates[sizes.delivery_workers[0]]
        report.add(Row(
            "delivery", f"{done} referrals, {workers} worker(s)", rate,
            "deliveries/s", ratio=rate / base_rate, ratio_to="of 1 worker",
            target=">= 300/s, none twice" if workers == 4 else "none twice",
            ok=(rate >= 300 and not twice) if workers == 4 else not twice,
            note=f"{done}/{sizes.deliveries} delivered {drain:.1f} s after start, {twice} "
                 f"twice; worker CPU {cpu_ms:.1f} ms/delivery (ceiling "
                 f"{cpu_count() * 1000 / max(cpu_ms, 0.01):.0f}/s on {cpu_count()} cores, "
                 f"PG aside)",
        ))
