"""Scale-out: tips/s with 1, 2 and 4 web processes on one PostgreSQL, and two web
processes beside four delivery workers, every delivery counted at the agency server.

Growth with web processes stops where PostgreSQL (or the machine's cores) is the limit;
the PostgreSQL backends' CPU, in cores busy, says which.
"""

from __future__ import annotations

import threading
import time

from bench.delivery import (
    agency,
    clear_outbox,
    duplicates,
    queued_backlog,
    start_workers,
    wait_for,
)
from bench.environment import BenchEnv, CpuMeter, cpu_count
from bench.intake import tip_request
from bench.load import LoadResult, run_closed
from bench.report import Report, Row
from bench.sizes import Sizes


def _connections(sizes: Sizes) -> int:
    return 32 if 32 in sizes.concurrency else sizes.concurrency[0]


def web_processes(env: BenchEnv, report: Report, sizes: Sizes) -> None:
    """Closed-loop tips against 1, 2, 4 gunicorn workers; CPU per tip and PG cores busy."""
    first = 0.0
    for count in sizes.web_processes:
        with env.gunicorn(workers=count) as base:
            meter = CpuMeter(env, env.processes[-1].pid)
            meter.start()
            res = run_closed(base, [tip_request()], _connections(sizes), sizes.scaleout_seconds)
            app, db = meter.stop()
        first = first or res.rate
        per = max(res.requests, 1)
        report.add(Row(
            "scaleout", f"tips, {count} web process(es), c={_connections(sizes)}", res.rate,
            "tips/s", res.p50_ms, res.p99_ms, ratio=res.rate / first if first else None,
            ratio_to="of 1 process",
            note=f"CPU/tip app {app * 1000 / per:.2f} ms + PG {db * 1000 / per:.2f} ms; "
                 f"cores busy: app {app / res.seconds:.2f}, PG {db / res.seconds:.2f} "
                 f"of {cpu_count()}; {res.errors} errors",
        ))


def beside_delivery(env: BenchEnv, report: Report, sizes: Sizes) -> None:
    """Two web processes take tips while four workers drain a backlog: both rates, and
    how many referrals reached the agency twice."""
    clear_outbox(env)
    ids = queued_backlog(env, sizes.deliveries * 2)
    with agency(env) as agency_base, env.gunicorn(workers=2) as base:
        procs = start_workers(env, 4, agency_base)
        # Time from the first receipt on: the workers are up, the backlog still deep.
        deadline = time.monotonic() + 120
        while not wait_for(agency_base, ids, 0, partial=True) and time.monotonic() < deadline:
            time.sleep(0.1)
        result: list[LoadResult] = []
        started = time.time()
        load = threading.Thread(target=lambda: result.append(
            run_closed(base, [tip_request()], _connections(sizes), sizes.scaleout_seconds)))
        load.start()
        load.join()
        window = time.time() - started
        during = sum(1 for t in wait_for(agency_base, ids, 0, partial=True).values()
                     if started <= t <= started + window)
        got = wait_for(agency_base, ids, timeout=sizes.delivery_cap_seconds, partial=True)
        for proc in procs:
            env.stop(proc)
        twice = duplicates(agency_base)
    tips = result[0]
    report.add(Row(
        "scaleout", "2 web processes beside 4 workers: tips", tips.rate, "tips/s",
        tips.p50_ms, tips.p99_ms, note=f"{tips.errors} errors; c={_connections(sizes)}",
    ))
    report.add(Row(
        "scaleout", "2 web processes beside 4 workers: deliveries", during / window,
        "deliveries/s", target="none twice", ok=twice == 0,
        note=f"{during} delivered in the {window:.1f} s of tips; "
             f"{len(got)}/{len(ids)} in all, {twice} twice (counted at the agency)",
    ))


def run(env: BenchEnv, report: Report, sizes: Sizes) -> None:
    web_processes(env, report, sizes)
    beside_delivery(env, report, sizes)
