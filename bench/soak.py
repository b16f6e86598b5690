"""Soak: tips paced at 50/s for ten minutes while referrals are queued and delivered;
resident memory of every process at minute 1 and at the end.

A leak grows with requests served; a cache or pool fills in the first minute and stays.
So minute 1, not the start, is the baseline.
"""

from __future__ import annotations

import threading
import time

from bench.delivery import _make_case, agency, clear_outbox, duplicates, start_workers, wait_for
from bench.environment import BenchEnv, children, process_rss_kib
from bench.intake import tip_request
from bench.load import LoadResult, run_paced
from bench.report import Report, Row
from bench.sizes import Sizes
from bench.workflow import _in_process_app


def _feed(env: BenchEnv, per_second: float, stop: threading.Event, ids: list[int]) -> None:
    """Queue referrals (a queued referral + its outbox row, as approval writes them)."""
    from workflows.db import transaction
    from workflows.outbox import add_outbox_message

    app = _in_process_app(env)
    runtime = app.extensions["runtime"]
    with app.app_context():
        session = runtime.session()
        while not stop.wait(1.0):
            with transaction(session):
                for _ in range(max(1, round(per_second))):
                    _case, referral = _make_case(session, "referred", "queued")
                    add_outbox_message(session, "deliver_referral", ref_id=referral.id)
                    ids.append(referral.id)
            session.expunge_all()
        session.close()
    runtime.engine.dispose()


def _processes(web_master: int, worker: int) -> dict[str, int]:
    named = {f"web worker {i + 1}": pid for i, pid in enumerate(sorted(children(web_master)))}
    named["RQ worker"] = worker
    # Its children: the outbox relay, RQ's scheduler and the maintenance worker.
    named.update({f"worker child {i + 1}": pid for i, pid in enumerate(children(worker))})
    return named


def run(env: BenchEnv, report: Report, sizes: Sizes) -> None:
    clear_outbox(env)
    seconds = sizes.soak_seconds
    first_sample = min(60.0, seconds / 10)
    ids: list[int] = []
    with agency(env) as agency_base, env.gunicorn(workers=2) as base:
        master = env.processes[-1].pid
        worker = start_workers(env, 1, agency_base)[0]
        stop = threading.Event()
        feeder = threading.Thread(target=_feed, args=(env, sizes.soak_referrals_per_second,
                                                      stop, ids))
        result: list[LoadResult] = []
        load = threading.Thread(target=lambda: result.append(
            run_paced(base, [tip_request()], sizes.soak_rate, seconds)))
        feeder.start()
        load.start()
        time.sleep(first_sample)
        names = _processes(master, worker.pid)
        early: dict[str, int] = {name: process_rss_kib(pid) for name, pid in names.items()}
        load.join()
        stop.set()
        feeder.join()
        late = {name: process_rss_kib(pid) for name, pid in names.items()}
        got = wait_for(agency_base, list(ids), timeout=60, partial=True)
        env.stop(worker)
        twice = duplicates(agency_base)
    tips = result[0]
    report.add(Row(
        "soak", f"tips paced at {sizes.soak_rate:.0f}/s for {seconds:.0f} s", tips.rate,
        "tips/s", tips.p50_ms, tips.p99_ms,
        note=f"{tips.requests:,} tips, {tips.errors} errors; {len(got):,}/{len(ids):,} "
             f"referrals delivered beside them, {twice} twice",
    ))
    for name in names:
        before, after = early[name], late[name]
        if not before:
            continue
        report.add(Row(
            "soak", f"{name} RSS, {first_sample:.0f} s -> {seconds:.0f} s",
            after / 1024, "MiB", ratio=after / before, ratio_to=f"of the {first_sample:.0f} s RSS",
            target="flat (< 5 % growth)", ok=(after - before) / before < 0.05,
            note=f"{before / 1024:.1f} -> {after / 1024:.1f} MiB",
        ))
