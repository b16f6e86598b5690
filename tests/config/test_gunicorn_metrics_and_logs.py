"""/metrics and JSON logs under gunicorn: every worker's counts, whichever worker answers
the scrape; gunicorn's lines and the app's alike one JSON object each.

Runs the deployment's gunicorn (``gunicorn.conf.py`` from the project root) with two
workers, ``PROMETHEUS_MULTIPROC_DIR`` and ``LOG_FORMAT=json``; prometheus_client picks
multiprocess mode from the environment at import, so only a real server shows it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from config.cli import upgrade_database
from config.settings import ROOT
from tests.config.test_gunicorn_refusals import _free_port
from tests.scrapes import BEARER, TOKEN, scrape

pytestmark = pytest.mark.slow


class _Client:
    """``requests`` with the bits of Flask's test client that ``scrape`` uses."""

    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, headers: dict[str, str]) -> object:
        answer = requests.get(self.base + path, headers={**headers, "Connection": "close"},
                              timeout=30)

        class _Answer:
            status_code = answer.status_code
            mimetype = answer.headers.get("Content-Type", "").split(";")[0]

            @staticmethod
            def get_data(as_text: bool = False) -> str:
                return answer.text

        return _Answer()


def _pids(folder: Path) -> set[int]:
    return {int(p.stem.rpartition("_")[2]) for p in folder.glob("counter_*.db")}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    folder = tmp_path_factory.mktemp("metrics-gunicorn")
    counts = folder / "prometheus"
    counts.mkdir()
    database_url = f"sqlite:///{folder / 'db.sqlite3'}"
    upgrade_database(database_url)
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "HOTLINE_INSTANCE_DIR": str(folder),
        "REDIS_URL": "",
        "EMBEDDED_WORKER": "false",
        "RATE_LIMITS_ENABLED": "false",
        "SPOOL_PATH": str(folder / "spool"),
        "METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(counts),
        "LOG_FORMAT": "json",
        "HOTLINE_BIND": "",
    }
    log = folder / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}",
             "--workers", "2", "--graceful-timeout", "2"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while len(_pids(counts)) < 2:  # each worker made its series at start-up
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text())
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", counts, log
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()  # our own child: it must not outlive the test
            proc.wait(5)


def test_every_scrape_counts_the_tips_of_every_worker(served: tuple[str, Path, Path]) -> None:
    base, counts, _ = served
    for _ in range(6):  # a new connection each: gunicorn's workers share them out
        answer = requests.post(f"{base}/api/v1/tips", json={"narrative": "n"},
                               headers={"Connection": "close"}, timeout=30)
        assert answer.status_code == 201, answer.text[:300]
    client = _Client(base)
    for _ in range(4):
        samples = scrape(client, BEARER)
        assert samples[("hotline_tips_total", (("channel", "web"),))] == 6

    # A worker that exits (gunicorn starts another) leaves its counts in the total.
    os.kill(min(_pids(counts)), signal.SIGTERM)
    for _ in range(4):
        samples = scrape(client, BEARER)
        assert samples[("hotline_tips_total", (("channel", "web"),))] == 6


def test_the_endpoint_is_hidden_from_a_client_without_the_token(
    served: tuple[str, Path, Path],
) -> None:
    base, _, _ = served
    answer = requests.get(f"{base}/metrics", timeout=30)
    assert answer.status_code == 404 and "hotline_" not in answer.text


def test_gunicorn_and_the_app_log_json_lines(served: tuple[str, Path, Path]) -> None:
    base, _, log = served
    requests.post(f"{base}/twilio/voice", data={"CallSid": "CA1"}, timeout=30)  # unsigned
    deadline = time.monotonic() + 10
    while "intake.twilio" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    loggers = {line["logger"] for line in lines}
    assert {"gunicorn.error", "intake.twilio"} <= loggers
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    [refused] = [line for line in lines if line["logger"] == "intake.twilio"]
    assert len(refused["request_id"]) == 16
