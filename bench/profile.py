"""``python -m bench.profile tips|sms|bare``: where a gunicorn worker spends its time.

Serves the target with one worker, drives it with the same load as the benchmark and
samples the worker with py-spy (installed from ``bench/requirements.txt`` on first use).
Writes a flame graph to ``bench/results/`` and prints the functions with the most
samples of their own (leaf time) and in total.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.environment import ROOT, BenchEnv, children
from bench.intake import sms_requests, tip_request
from bench.load import run_closed

RESULTS = ROOT / "bench" / "results"
TARGETS = {
    "tips": ("wsgi:app", lambda: [tip_request()]),
    "sms": ("wsgi:app", lambda: sms_requests(5000)),
    "bare": ("bench.bare_app:app", lambda: [tip_request()]),
}


def py_spy() -> str:
    """The py-spy binary, installed from bench/requirements.txt if missing."""
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "-r",
             str(ROOT / "bench" / "requirements.txt")],
            check=True,
        )
        found = str(Path(sys.executable).parent / "py-spy")
    return found


def summarise(collapsed: Path, top: int = 20) -> str:
    """Leaf and inclusive sample counts per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        samples += count
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1] if " (" in f else f
                  for f in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{samples} samples", "", "own time:"]
    lines += [f"  {100 * c / samples:5.1f}%  {f}" for f, c in own.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"  {100 * c / samples:5.1f}%  {f}" for f, c in total.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    spy = py_spy()
    RESULTS.mkdir(exist_ok=True)
    env = BenchEnv(database="hotline_bench_profile")
    app, make_requests = TARGETS[args.target]
    env.create_database()
    try:
        with env.gunicorn(app, workers=1) as base:
            worker = children(env.processes[-1].pid)[0]
            run_closed(base, make_requests(), args.connections, 2)  # warm up
            stamp = time.strftime("%Y%m%d-%H%M%S")
            raw = RESULTS / f"profile-{args.target}-{stamp}.txt"
            record = subprocess.Popen(
                [spy, "record", "--pid", str(worker), "--duration", str(args.seconds),
                 "--rate", "200", "--format", "raw", "--output", str(raw)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            result = run_closed(base, make_requests(), args.connections, args.seconds)
            record.wait(timeout=args.seconds + 60)
        print(f"{args.target}: {result.rate:.1f} req/s, p50 {result.p50_ms:.1f} ms, "
              f"p99 {result.p99_ms:.1f} ms ({result.errors} errors) with 1 worker")
        print(f"collapsed stacks: {raw}")
        print(summarise(raw))
    finally:
        env.stop_all()
        env.clear_redis()
        env.drop_database()
    return 0


if __name__ == "__main__":
    sys.exit(main())
