"""Queues at scale: the supervisor's queue and the overdue list at 10 k, 100 k and 1 M cases.

Measured two ways at each size: through the API as a supervisor sees it
(``GET /api/v1/cases`` with B's filters, served by gunicorn), and as plain SQL in the
shape the spec asks for (open cases by deadline then age; open cases past their
deadline), which shows what the indexes alone allow. p95 of sequential requests.
"""

from __future__ import annotations

import http.client
import json
import math
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import create_engine, text

from bench.environment import BenchEnv
from bench.load import percentile
from bench.report import Report, Row
from bench.sizes import Sizes

OPEN_STATES = ("received", "screening", "awaiting_info", "pending_approval")
PAGE = 50

SQL_QUEUE = text(
    "SELECT id, reference, state, priority, deadline, created_at FROM cases "
    "WHERE state IN ('received','screening','awaiting_info','pending_approval') "
    "ORDER BY deadline NULLS LAST, created_at LIMIT :page"
)
SQL_OVERDUE = text(
    "SELECT id, reference, state, priority, deadline FROM cases "
    "WHERE state IN ('received','screening','awaiting_info','pending_approval') "
    "AND deadline < :now ORDER BY deadline LIMIT :page"
)
SQL_REFERRALS_OVERDUE = text(
    "SELECT id, case_id, agency_code, state, deadline FROM referrals "
    "WHERE state IN ('pending','queued','sent','failed') AND deadline < :now "
    "ORDER BY deadline LIMIT :page"
)

API_QUERIES = {
    "API queue (open, by deadline)": "/api/v1/cases",
    "API queue state=pending_approval": "/api/v1/cases?state=pending_approval",
    "API overdue=true": "/api/v1/cases?overdue=true",
}


def _timed(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm the cache and the plan, as a live queue page is
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def sql_latencies(env: BenchEnv, repeats: int) -> dict[str, list[float]]:
    engine = create_engine(env.database_url)
    now = datetime.now(UTC)
    results = {}
    with engine.connect() as conn:
        for name, stmt in (("SQL queue", SQL_QUEUE), ("SQL overdue cases", SQL_OVERDUE),
                           ("SQL overdue referrals", SQL_REFERRALS_OVERDUE)):
            results[name] = _timed(
                lambda s=stmt: conn.execute(s, {"page": PAGE, "now": now}).fetchall(), repeats
            )
    engine.dispose()
    return results


def api_latencies(base: str, token: str, repeats: int) -> dict[str, list[float]] | None:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Authorization": f"Bearer {token}"}

    def get(path: str) -> int:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status} {body[:200]!r}")
        json.loads(body)
        return resp.status

    try:
        get("/api/v1/cases")
    except RuntimeError as exc:
        if " 404 " in str(exc) or " 405 " in str(exc):
            return None
        raise
    results = {name: _timed(lambda p=path: get(p), repeats) for name, path in API_QUERIES.items()}
    conn.close()
    return results


def staff_token(env: BenchEnv, username: str, role: str) -> str:
    """Create a user (once) and return a fresh bearer token for it."""
    try:
        env.flask("users", "create", username, "--role", role)
    except RuntimeError as exc:
        if "already exists" not in str(exc):
            raise
    return env.flask("tokens", "create", username).strip().splitlines()[-1]


def run(env: BenchEnv, report: Report, sizes: Sizes) -> None:
    """Seed up to each size in turn, and time the queries at each."""
    token = staff_token(env, "bench-supervisor", "supervisor")
    p95: dict[str, dict[int, float]] = {}
    seeded = 0
    with env.gunicorn() as base:  # serving all along, as in production while data grows
        for n in sizes.cases:
            t0 = time.perf_counter()
            env.flask("seed", "--cases", str(n - seeded), app="bench.seed")
            report.note(f"seeded {n - seeded:,} cases in {time.perf_counter() - t0:.0f} s "
                        f"(flask seed, COPY)")
            seeded = n
            results = sql_latencies(env, sizes.query_repeats)
            api = api_latencies(base, token, sizes.query_repeats)
            if api is None:
                if n == sizes.cases[0]:
                    report.note("GET /api/v1/cases is not served yet: API queries not measured")
            else:
                results.update(api)
            for name, values in results.items():
                p95.setdefault(name, {})[n] = percentile(values, 95)
                report.add(Row("queues", f"{name} @ {n:,}", percentile(values, 95), "ms p95",
                               statistics.median(values), percentile(values, 99)))
    _growth(report, p95, sizes.cases)


def _growth(report: Report, p95: dict[str, dict[int, float]], ns: tuple[int, ...]) -> None:
    if len(ns) < 2:
        return
    small, large = ns[0], ns[-1]
    log_ratio = math.log(large) / math.log(small)
    for name, by_n in p95.items():
        if small not in by_n or large not in by_n:
            continue
        growth = by_n[large] / by_n[small] if by_n[small] else float("inf")
        # Noise on a shared 2-core box is a millisecond or so; allow it on top of log n.
        ok = by_n[large] < 50 and (growth <= log_ratio * 1.5 or by_n[large] - by_n[small] < 2)
        report.add(Row(
            "queues", f"{name}: growth {small:,} -> {large:,}", growth, "x p95",
            ratio=log_ratio, ratio_to="= log n growth",
            target="<50 ms p95 at 1M, ~log n", ok=ok,
        ))
