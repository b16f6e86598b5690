"""``python -m bench.research``: the research export at 10 k and 100 k cases, time and memory.

Seeds a fresh database per size (``bench.seed``), then runs ``flask --app wsgi export
research`` over the whole range in a child process and reads the child's peak RSS, so
the seeding's memory does not count. Constant memory shows as the same peak at both
sizes; the issue asks under 30 s at 100 k. The full bench (``python -m bench``) runs it
as its ``research`` part on PostgreSQL (``run``); alone it uses SQLite files by default.
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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.environment import BenchEnv
    from bench.report import Report
    from bench.sizes import Sizes

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


def _in_own_process(size: int, work: Path, database_url: str | None) -> dict[str, float]:
    """``measure`` in a fresh interpreter: a child's peak RSS is per process."""
    row = subprocess.run(
        [sys.executable, "-c",
         "import json,sys; from pathlib import Path; from bench.research import measure;"
         f"print(json.dumps(measure({size}, Path(sys.argv[1]), {database_url!r})))",
         str(work)], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(row.stdout.strip().splitlines()[-1])


def run(env: BenchEnv, report: Report, sizes: Sizes) -> None:
    """The full bench's part: each size in its own fresh PostgreSQL database."""
    from sqlalchemy import create_engine, text

    from bench.report import Row

    target_s = 30.0
    first: dict[str, float] | None = None
    for size in sizes.research_cases:
        database = f"{env.database}_research"
        admin = create_engine(env.pg_admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{database}"'))
        try:
            url = env.pg_admin_url.rsplit("/", 1)[0] + f"/{database}"
            with tempfile.TemporaryDirectory() as tmp:
                r = _in_own_process(size, Path(tmp), url)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            admin.dispose()
        first = first or r
        scaled = r["export_s"] * 100_000 / size
        report.add(Row("research", f"export of {size:,} cases (CLI, app start included)",
                       r["export_s"], "s", target=f"< {target_s:.0f} s at 100 k",
                       ok=scaled < target_s if size >= 100_000 else None,
                       note=f"{size / r['export_s']:,.0f} cases/s; package "
                            f"{r['package_mib']:.1f} MiB; seeding took {r['seed_s']:.0f} s"))
        report.add(Row("research", f"export peak RSS at {size:,} cases", r["peak_rss_mib"],
                       "MiB", ratio=r["peak_rss_mib"] / first["peak_rss_mib"],
                       ratio_to=f"of at {int(first['cases']):,} cases",
                       target="flat: < 1.25x of the smallest size",
                       ok=r["peak_rss_mib"] < 1.25 * first["peak_rss_mib"]
                       if r is not first else None))


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
            r = _in_own_process(size, Path(tmp), args.database)
            print(f"{r['cases']:>8} {r['seed_s']:>8.1f} {r['export_s']:>9.1f} "
                  f"{r['peak_rss_mib']:>13.0f} {r['package_mib']:>14.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
