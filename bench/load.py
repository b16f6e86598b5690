"""Load generators: ``wrk`` for closed-loop throughput, a paced client for a fixed rate.

wrk (Debian's ``wrk``) is an epoll client in C: one wrk thread drives hundreds of
connections on a fraction of a core, so on a 2-core machine it leaves the server the
CPU that a Python client would take. Without wrk the bench falls back to a thread
client and says so in the table (its figures are then a lower bound).
The fixed-rate test (100 tips/s) is cheap enough for Python, and measures each request
from its *scheduled* start, so a slow server cannot hide its queueing (no coordinated
omission).
"""

from __future__ import annotations

import http.client
import json
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

WRK_REQUESTS = r"""
local reqs = {}
for line in io.lines("DATA_FILE") do
  local path, headers, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
  local h = {}
  for pair in headers:gmatch("[^\30]+") do
    local k, v = pair:match("^([^:]+): (.*)$")
    h[k] = v
  end
  reqs[#reqs + 1] = wrk.format("POST", path, h, body)
end
local n = #reqs
local i = 0
request = function()
  i = i + 1
  return reqs[((i - 1) % n) + 1]
end
"""

WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Request:
    """One HTTP request the generator repeats (or cycles through)."""

    path: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def wrk_files(requests: list[Request], directory: Path) -> Path:
    """A wrk Lua script cycling through ``requests``, read from a data file at start.

    Each data line is ``path TAB name: value RS name: value TAB body``; bodies are JSON or
    form-encoded, so they hold no tab or newline.
    """
    data = directory / "requests.txt"
    with data.open("w", encoding="utf-8") as out:
        for req in requests:
            text = req.body.decode()
            assert "\t" not in text and "\n" not in text
            headers = "\x1e".join(f"{k}: {v}" for k, v in req.headers.items())
            out.write(f"{req.path}\t{headers}\t{text}\n")
    script = directory / "requests.lua"
    script.write_text(
        WRK_REQUESTS.replace("DATA_FILE", str(data)) + WRK_DONE, encoding="utf-8"
    )
    return script


def run_wrk(base: str, requests: list[Request], connections: int, seconds: float) -> LoadResult:
    """Closed loop: ``connections`` keep-alive connections, each sending as fast as answered."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = wrk_files(requests, Path(tmp))
        out = subprocess.run(
            [
                "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                "--timeout", "10s", "-s", str(script), base,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCHJSON "))
    data = json.loads(line.removeprefix("BENCHJSON "))
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["non2xx"] + data["socket_errors"],
        tool="wrk",
    )


class _Connection:
    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def post(self, req: Request) -> int:
        try:
            self.conn.request("POST", req.path, body=req.body, headers=req.headers)
            resp = self.conn.getresponse()
            resp.read()
            return resp.status
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            return 0


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def run_threads(base: str, requests: list[Request], connections: int, seconds: float) -> LoadResult:
    """The fallback closed-loop client: one thread per connection (heavier than wrk)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = [0]
    stop_at = time.perf_counter() + seconds

    def worker() -> None:
        conn = _Connection(base)
        mine: list[float] = []
        bad = 0
        while time.perf_counter() < stop_at:
            with lock:
                req = requests[counter[0] % len(requests)]
                counter[0] += 1
            t0 = time.perf_counter()
            status = conn.post(req)
            mine.append(time.perf_counter() - t0)
            bad += not 200 <= status < 300
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=statistics.median(latencies) * 1000 if latencies else 0.0,
        p99_ms=percentile(latencies, 99) * 1000,
        errors=errors[0],
        tool="python-threads",
    )


def run_closed(base: str, requests: list[Request], connections: int, seconds: float) -> LoadResult:
    """Closed-loop load with the best generator available here."""
    if have_wrk():
        return run_wrk(base, requests, connections, seconds)
    return run_threads(base, requests, connections, seconds)


def run_paced(
    base: str, requests: list[Request], rate: float, seconds: float, threads: int = 16
) -> LoadResult:
    """Open loop at ``rate`` requests/s; latency counts from each request's scheduled time."""
    total = max(1, int(rate * seconds))
    interval = 1.0 / rate
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    next_index = [0]
    start = time.perf_counter() + 0.05
    give_up = start + 2 * seconds + 10  # a server far slower than the rate: stop, count it

    def worker() -> None:
        conn = _Connection(base)
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= total:
                return
            if time.perf_counter() > give_up:
                with lock:
                    errors[0] += 1
                continue
            scheduled = start + index * interval
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            status = conn.post(requests[index % len(requests)])
            elapsed = time.perf_counter() - scheduled
            with lock:
                latencies.append(elapsed)
                errors[0] += not 200 <= status < 300

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return LoadResult(
        requests=len(latencies),
        seconds=time.perf_counter() - start,
        p50_ms=statistics.median(latencies) * 1000 if latencies else 0.0,
        p99_ms=percentile(latencies, 99) * 1000,
        errors=errors[0],
        tool="paced-python",
    )
