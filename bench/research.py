"""``python -m bench.research``: the research export at 10 k and 100 k cases, time and memory.

Seeds a fresh database per size (``bench.seed``), then runs ``flask --app wsgi export
research`` over the whole range in a child process and reads the child's peak RSS, so
the seeding's memory does not count. Constant memory shows as the same peak at both
sizes; the issue asks under 30 s at 100 k.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env(database_url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, "HOTLINE_ENV": "development",
            "LOG_LEVEL": "WARNING"}


# Runs flask in this child and reports the child's own peak RSS (KiB) on its last line.
_WRAPPER = (
    "import atexit, resource, sys; from flask.cli import main;"
    "atexit.register(lambda: print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss));"
    "sys.argv = ['flask'] + sys.argv[1:]; main()"
)


def _flask(env: dict[str, str], *args: str, app: str = "wsgi") -> tuple[str, float, int]:
    """Run one flask command; its output, wall seconds and its own peak RSS (KiB)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAPPER, "--app", app, *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    peak = int(done.stdout.strip().splitlines()[-1].split()[1])
    return done.stdout, elapsed, peak


def measure(cases: int, work: Path, database_url: str | None) -> dict[str, float]:
    url = database_url or f"sqlite:///{work / f'research-{cases}.sqlite3'}"
    env = _env(url)
    _flask(env, "db", "upgrade")
    _, seeded, _ = _flask(env, "seed", "--cases", str(cases), app="bench.seed")
    out = work / f"extract-{cases}"
    _, elapsed, rss = _flask(env, "export", "research", "--from", "2000-01-01", "--to",
                             "2100-12-31", "--out", str(out))
    size = sum(p.stat().st_size for p in out.iterdir())
    return {"cases": cases, "seed_s": seeded, "export_s": elapsed, "peak_rss_mib": rss / 1024,
            "package_mib": size / 2**20}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.research", description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--database", default=None,
                        help="a database URL to use (emptied first!); default: SQLite files")
    args = parser.parse_args(argv)
    print(f"{'cases':>8} {'seed s':>8} {'export s':>9} {'peak RSS MiB':>13} {'zip→files MiB':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            # Peak RSS of children only grows: measure each size in its own bench process.
            row = subprocess.run(
                [sys.executable, "-c",
                 "import json,sys; from pathlib import Path; from bench.research import measure;"
                 f"print(json.dumps(measure({size}, Path(sys.argv[1]), {args.database!r})))",
                 tmp], cwd=ROOT, capture_output=True, text=True, check=True)
            r = json.loads(row.stdout.strip().splitlines()[-1])
            print(f"{r['cases']:>8} {r['seed_s']:>8.1f} {r['export_s']:>9.1f} "
                  f"{r['peak_rss_mib']:>13.0f} {r['package_mib']:>14.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
