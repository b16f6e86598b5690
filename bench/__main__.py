"""``python -m bench``: measure the service as deployed and print a table.

``--smoke`` runs every part with tiny sizes (the test suite uses it to check the bench
works); ``--only intake,queues`` picks parts; ``--max-cases`` caps the queue sizes.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench import delivery, intake, memory, queues, research, scaleout, soak, workflow
from bench.environment import BenchEnv
from bench.load import have_wrk
from bench.report import Report
from bench.sizes import FULL, SMOKE, Sizes

PARTS: dict[str, Callable[[BenchEnv, Report, Sizes], None]] = {
    "intake": intake.run,
    "workflow": workflow.run,
    "delivery": delivery.run,
    "queues": queues.run,
    "memory": memory.run,
    "research": research.run,
    "scaleout": scaleout.run,
    "soak": soak.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check it works")
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--max-cases", type=int, default=None, help="cap the queue sizes")
    parser.add_argument("--database", default=None, help="benchmark database (dropped!)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    # SIGTERM (a test's timeout, Ctrl-C's cousin) unwinds like an exception, so the
    # finally below stops every process we started and drops the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    sizes = SMOKE if args.smoke else FULL
    if args.max_cases:
        sizes = replace(sizes, cases=tuple(n for n in sizes.cases if n <= args.max_cases)
                        or (args.max_cases,))
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    database = args.database or (f"hotline_bench_smoke_{os.getpid()}" if args.smoke
                                 else "hotline_bench")
    env = BenchEnv(database=database)
    if args.smoke:
        env.web_workers = 2
    report = Report(smoke=args.smoke)
    print(report.header(), flush=True)
    if not have_wrk():
        report.note("wrk not found: closed-loop figures come from a Python thread client, "
                    "which takes CPU from the server (apt-get install wrk)")
    failed = False
    try:
        env.create_database()
        for name in parts:
            print(f"== {name}", flush=True)
            try:
                PARTS[name](env, report, sizes)
            except Exception as exc:  # noqa: BLE001 - report the part, go on with the next
                failed = True
                traceback.print_exc()
                report.note(f"{name} FAILED: {type(exc).__name__}: {exc}"[:300])
            finally:
                env.stop_all()
    finally:
        env.stop_all()
        env.clear_redis()
        if not args.keep:
            env.drop_database()
        print()  # also when stopped part-way: what was measured is shown
        print(report.table())
        if args.json:
            report.save(args.json)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
