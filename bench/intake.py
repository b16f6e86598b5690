"""Intake: ``POST /api/v1/tips`` and signed ``POST /twilio/sms`` under load, against a
bare Flask app on the same gunicorn settings and a raw PostgreSQL insert-and-commit loop.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlencode

import psycopg

from bench.environment import PUBLIC_BASE_URL, TWILIO_TOKEN, BenchEnv, CpuMeter, cpu_count
from bench.load import LoadResult, Request, percentile, run_closed, run_paced
from bench.report import Report, Row
from bench.sizes import Sizes

NARRATIVE = (
    "Three women work at the nail salon on Main Street from 8am to 10pm every day; "
    "the manager keeps their passports and they sleep in the back room."
)


# The bounds for the open-loop runs: p99 from each request's scheduled start.
PACED_P99_MS = {100.0: 50.0, 300.0: 250.0}


def tip_request() -> Request:
    body = json.dumps({"narrative": NARRATIVE, "location": "Springfield", "anonymous": True})
    return Request("/api/v1/tips", body.encode(), {"Content-Type": "application/json"})


class FreshTexts:
    """Each call gives texts never sent before: a replayed MessageSid is answered from
    the dedupe check alone, which would flatter the figures (Twilio retries are rare)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.sent = 0

    def __call__(self) -> list[Request]:
        batch = sms_requests(self.count, start=self.sent)
        self.sent += self.count
        return batch


def sms_requests(count: int, start: int = 0) -> list[Request]:
    """Signed first texts from ``count`` different senders (each opens a conversation)."""
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(TWILIO_TOKEN)
    url = PUBLIC_BASE_URL + "/twilio/sms"
    out = []
    for i in range(start, start + count):
        params = {
            "MessageSid": f"SMbench{i:026d}",
            "AccountSid": "AC" + "0" * 32,
            "From": f"+1303{i % 10_000_000:07d}",
            "To": "+1233733",
            "Body": "There are kids working at the farm on route 9",
            "NumMedia": "0",
        }
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": validator.compute_signature(url, params),
        }
        out.append(Request("/twilio/sms", urlencode(params).encode(), headers))
    return out


def has_route(base: str, path: str) -> bool:
    """True when the app serves ``path`` (an unsigned POST is 403, not 404)."""
    req = urllib.request.Request(base + path, data=b"", method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=5):  # noqa: S310 - local
            return True
    except urllib.error.HTTPError as exc:
        return exc.code not in (404, 405)


def closed_median(
    env: BenchEnv, base: str, reqs: list[Request] | Callable[[], list[Request]], conc: int,
    sizes: Sizes,
) -> tuple[LoadResult, float, float]:
    """Repeat a closed-loop run and keep the one with the median rate; with its CPU cost
    per request (ms) in the app (gunicorn) and in PostgreSQL. ``reqs`` may be a function
    giving each run its own requests."""
    meter = CpuMeter(env, env.processes[-1].pid)
    runs = []
    for _ in range(sizes.repeats):
        meter.start()
        res = run_closed(base, reqs() if callable(reqs) else reqs, conc, sizes.seconds)
        app, db = meter.stop()
        per = max(res.requests, 1)
        runs.append((res, app * 1000 / per, db * 1000 / per))
    runs.sort(key=lambda r: r[0].rate)
    return runs[len(runs) // 2]


def raw_insert(env: BenchEnv, seconds: float) -> tuple[float, float, float]:
    """Single-row INSERT + COMMIT in a loop on one connection: rows/s, p50, p99 (ms)."""
    latencies = []
    with psycopg.connect(env.psycopg_dsn) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_raw_insert "
            "(id bigserial PRIMARY KEY, narrative text, created_at timestamptz DEFAULT now())"
        )
        conn.commit()
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            conn.execute("INSERT INTO bench_raw_insert (narrative) VALUES (%s)", (NARRATIVE,))
            conn.commit()
            latencies.append(time.perf_counter() - t0)
        conn.execute("DROP TABLE bench_raw_insert")
        conn.commit()
    total = sum(latencies)
    return (
        len(latencies) / total,
        statistics.median(latencies) * 1000,
        percentile(latencies, 99) * 1000,
    )


def _row(report: Report, what: str, res: LoadResult, cpu: tuple[float, float] | None = None,
         **kw: object) -> Row:
    note = f"{res.tool}; {res.errors} errors" if res.errors else res.tool
    if cpu is not None:
        note += f"; CPU/req app {cpu[0]:.2f} ms + PG {cpu[1]:.2f} ms"
    return report.add(
        Row("intake", what, res.rate, "req/s", res.p50_ms, res.p99_ms, note=note, **kw)  # type: ignore[arg-type]
    )


def _ceiling(report: Report, label: str, cpu: tuple[float, float], bare_cpu: float) -> None:
    """What the CPU cost per request allows on this machine's cores, load aside."""
    per = cpu[0] + cpu[1]
    ceiling = cpu_count() * 1000 / per if per else 0.0
    report.add(Row(
        "intake", f"{label}: CPU ceiling", ceiling, "req/s",
        ratio=bare_cpu / per if per else None, ratio_to="of bare (CPU)",
        target=">=500/s, >=0.35x bare", ok=ceiling >= 500 and per and bare_cpu / per >= 0.35,
        note=f"{per:.2f} ms CPU per request (app {cpu[0]:.2f} + PG {cpu[1]:.2f}) "
             f"on {cpu_count()} cores",
    ))


def run(env: BenchEnv, report: Report, sizes: Sizes) -> None:
    """Every intake figure, baselines first."""
    raw_rate, raw_p50, raw_p99 = raw_insert(env, sizes.raw_insert_seconds)
    report.add(Row("intake", "raw PG insert+commit (1 conn)", raw_rate, "rows/s", raw_p50, raw_p99))
    tip = [tip_request()]
    bare: dict[int, LoadResult] = {}
    bare_cpu: list[float] = []
    with env.gunicorn("bench.bare_app:app") as base:
        for conc in sizes.concurrency:
            bare[conc], app_cpu, _db = closed_median(env, base, tip, conc, sizes)
            bare_cpu.append(app_cpu)
            _row(report, f"bare Flask, c={conc}", bare[conc], (app_cpu, 0.0))
    best_bare = max(r.rate for r in bare.values())
    bare_per = statistics.median(bare_cpu)
    variants = [("POST /api/v1/tips", "wsgi:app", tip)]
    with env.gunicorn() as base:
        if has_route(base, "/twilio/sms"):
            variants.append(("POST /twilio/sms (signed)", "wsgi:app",
                             FreshTexts(20_000 if not report.smoke else 500)))
        else:
            report.note("POST /twilio/sms is not served yet: SMS intake not measured")
    for label, target, reqs in variants:
        with env.gunicorn(target) as base:
            best, cpus = 0.0, []
            for conc in sizes.concurrency:
                res, app_cpu, db_cpu = closed_median(env, base, reqs, conc, sizes)
                best = max(best, res.rate)
                if res.requests:
                    cpus.append((app_cpu, db_cpu))
                _row(report, f"{label}, c={conc}", res, (app_cpu, db_cpu),
                     ratio=res.rate / bare[conc].rate, ratio_to="of bare")
            report.add(Row(
                "intake", f"{label}: best", best, "req/s", ratio=best / best_bare,
                ratio_to="of best bare", target=">=500/s, >=0.35x bare",
                ok=best >= 500 and best / best_bare >= 0.35,
                note=f"{best / raw_rate:.2f}x raw insert loop",
            ))
            if cpus:
                cpu = (statistics.median(c[0] for c in cpus), statistics.median(c[1] for c in cpus))
                _ceiling(report, label, cpu, bare_per)
            for rate in sizes.paced_rates:
                paced = run_paced(base, reqs() if callable(reqs) else reqs, rate,
                                  sizes.paced_seconds,
                                  threads=max(16, int(rate // 4)))
                bound = PACED_P99_MS.get(rate)
                _row(report, f"{label} at {rate:.0f}/s (paced)", paced,
                     target=f"p99 < {bound:.0f} ms" if bound else "",
                     ok=(paced.p99_ms < bound and paced.rate >= 0.9 * rate) if bound else None)
