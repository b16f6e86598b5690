"""Intake: ``POST /api/v1/tips`` and signed ``POST /twilio/sms`` under load, against a
bare Flask app on the same gunicorn settings and a raw PostgreSQL insert-and-commit loop.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

import psycopg

from bench.environment import PUBLIC_BASE_URL, TWILIO_TOKEN, BenchEnv
from bench.load import LoadResult, Request, percentile, run_closed, run_paced
from bench.report import Report, Row
from bench.sizes import Sizes

NARRATIVE = (
    "Three women work at the nail salon on Main Street from 8am to 10pm every day; "
    "the manager keeps their passports and they sleep in the back room."
)


def tip_request() -> Request:
    body = json.dumps({"narrative": NARRATIVE, "location": "Springfield", "anonymous": True})
    return Request("/api/v1/tips", body.encode(), {"Content-Type": "application/json"})


def sms_requests(count: int) -> list[Request]:
    """Signed first texts from ``count`` different senders (each opens a conversation)."""
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(TWILIO_TOKEN)
    url = PUBLIC_BASE_URL + "/twilio/sms"
    out = []
    for i in range(count):
        params = {
            "MessageSid": f"SMbench{i:026d}",
            "AccountSid": "AC" + "0" * 32,
            "From": f"+1202555{i % 10_000:04d}" if i < 10_000 else f"+1303{i:07d}"[:12],
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


def closed_median(base: str, reqs: list[Request], conc: int, sizes: Sizes) -> LoadResult:
    """Repeat a closed-loop run and keep the one with the median rate."""
    runs = [run_closed(base, reqs, conc, sizes.seconds) for _ in range(sizes.repeats)]
    runs.sort(key=lambda r: r.rate)
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


def _row(report: Report, what: str, res: LoadResult, **kw: object) -> Row:
    note = f"{res.tool}; {res.errors} errors" if res.errors else res.tool
    return report.add(
        Row("intake", what, res.rate, "req/s", res.p50_ms, res.p99_ms, note=note, **kw)  # type: ignore[arg-type]
    )


def run(env: BenchEnv, report: Report, sizes: Sizes) -> None:
    """Every intake figure, baselines first."""
    raw_rate, raw_p50, raw_p99 = raw_insert(env, sizes.raw_insert_seconds)
    report.add(Row("intake", "raw PG insert+commit (1 conn)", raw_rate, "rows/s", raw_p50, raw_p99))
    tip = [tip_request()]
    bare: dict[int, LoadResult] = {}
    with env.gunicorn("bench.bare_app:app") as base:
        for conc in sizes.concurrency:
            bare[conc] = closed_median(base, tip, conc, sizes)
            _row(report, f"bare Flask, c={conc}", bare[conc])
    best_bare = max(r.rate for r in bare.values())
    variants = [("POST /api/v1/tips", "wsgi:app")]
    if not report.smoke:
        variants.append(("tips, passphrase HMAC (what-if)", "bench.variants:fast_passphrase_app"))
    for label, target in variants:
        with env.gunicorn(target) as base:
            best = 0.0
            for conc in sizes.concurrency:
                res = closed_median(base, tip, conc, sizes)
                best = max(best, res.rate)
                _row(report, f"{label}, c={conc}", res, ratio=res.rate / bare[conc].rate,
                     ratio_to="of bare")
            report.add(Row(
                "intake", f"{label}: best", best, "tips/s", ratio=best / best_bare,
                ratio_to="of best bare", target=">=500/s, >=0.35x bare",
                ok=best >= 500 and best / best_bare >= 0.35,
                note=f"{best / raw_rate:.2f}x raw insert loop",
            ))
            paced = run_paced(base, tip, sizes.paced_rate, sizes.paced_seconds)
            _row(report, f"{label} at {sizes.paced_rate:.0f}/s (paced)", paced,
                 target="p99 < 50 ms",
                 ok=paced.p99_ms < 50 and paced.rate >= 0.9 * sizes.paced_rate)
            if target == "wsgi:app":
                _sms(base, report, sizes, bare)


def _sms(base: str, report: Report, sizes: Sizes, bare: dict[int, LoadResult]) -> None:
    if not has_route(base, "/twilio/sms"):
        report.note("POST /twilio/sms is not served yet: SMS intake not measured")
        return
    reqs = sms_requests(20_000 if not report.smoke else 500)
    best = 0.0
    for conc in sizes.concurrency:
        res = closed_median(base, reqs, conc, sizes)
        best = max(best, res.rate)
        _row(report, f"POST /twilio/sms (signed), c={conc}", res,
             ratio=res.rate / bare[conc].rate, ratio_to="of bare")
    paced = run_paced(base, reqs, sizes.paced_rate, sizes.paced_seconds)
    _row(report, f"POST /twilio/sms at {sizes.paced_rate:.0f}/s (paced)", paced,
         target="p99 < 50 ms", ok=paced.p99_ms < 50)
