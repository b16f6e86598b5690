"""Memory: resident size of a gunicorn web worker and of an RQ worker after many requests
or jobs, against the same process after warm-up (the first tenth). Growth after warm-up
is what a leak looks like; a fixed size is not.
"""

from __future__ import annotations

import time

from bench.delivery import agency, clear_outbox, queued_backlog, start_workers, wait_for
from bench.environment import BenchEnv, children, process_rss_kib
from bench.intake import tip_request
from bench.load import run_closed
from bench.report import Report, Row
from bench.sizes import Sizes


def _worker_rss(master_pid: int) -> int:
    """The largest resident size among gunicorn's workers (KiB)."""
    return max((process_rss_kib(pid) for pid in children(master_pid)), default=0)


def web(env: BenchEnv, report: Report, sizes: Sizes) -> None:
    """Tips through the real request path."""
    target = sizes.memory_requests
    with env.gunicorn(workers=2) as base:
        master = env.processes[-1].pid
        done, warm_rss = 0, 0
        started = time.monotonic()
        chunk_seconds = 2.0
        while done < target and time.monotonic() - started < sizes.memory_cap_seconds:
            res = run_closed(base, [tip_request()], 8, chunk_seconds)
            done += res.requests
            if not warm_rss and done >= target / 10:
                warm_rss = _worker_rss(master)
            rate = max(res.rate, 1.0)
            chunk_seconds = min(30.0, max(1.0, (target - done) / rate / 4))
        end_rss = _worker_rss(master)
    warm_rss = warm_rss or end_rss
    growth = (end_rss - warm_rss) / warm_rss
    report.add(Row("memory", f"web worker RSS after {done:,} tips", end_rss / 1024, "MiB",
                   ratio=end_rss / warm_rss, ratio_to="of after warm-up",
                   target="no growth after warm-up", ok=growth < 0.05,
                   note=f"after warm-up {warm_rss / 1024:.1f} MiB"))


def rq(env: BenchEnv, report: Report, sizes: Sizes) -> None:
    """One ``flask worker`` delivering a backlog; RSS of its main process and relay."""
    count = sizes.memory_jobs
    clear_outbox(env)
    ids = queued_backlog(env, count)
    cap = sizes.memory_cap_seconds
    with agency(env) as base:
        proc = start_workers(env, 1, base)[0]
        warm_got = wait_for(base, ids[: max(2, count // 10)], timeout=cap / 5, partial=True)
        warm = process_rss_kib(proc.pid)
        warm_relay = sum(process_rss_kib(p) for p in children(proc.pid))
        got = wait_for(base, ids, timeout=cap, partial=True)
        end = process_rss_kib(proc.pid)
        end_relay = sum(process_rss_kib(p) for p in children(proc.pid))
        env.stop(proc)
    done = len(got)
    report.add(Row("memory", f"RQ worker RSS after {done:,} jobs", end / 1024, "MiB",
                   ratio=end / warm, ratio_to="of after warm-up",
                   target="no growth after warm-up", ok=(end - warm) / warm < 0.05,
                   note=f"after warm-up ({len(warm_got)} jobs) {warm / 1024:.1f} MiB; "
                        f"relay+horse {warm_relay / 1024:.1f} -> {end_relay / 1024:.1f} MiB"))


def run(env: BenchEnv, report: Report, sizes: Sizes) -> None:
    web(env, report, sizes)
    rq(env, report, sizes)
