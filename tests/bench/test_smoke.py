"""The benchmark command works: a smoke run with tiny sizes prints its table with numbers.

Figures from a smoke run mean nothing (speed belongs to ``make bench``); this only
checks that every part runs against the real services and reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import ROOT

pytestmark = [
    pytest.mark.services,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("TEST_BACKEND", "services" if os.environ.get("CI") == "true" else "")
        != "services",
        reason="the bench runs gunicorn, PostgreSQL, Redis and RQ workers (TEST_BACKEND=services)",
    ),
]

PARTS = ("intake", "workflow", "delivery", "queues", "memory", "research", "scaleout", "soak")


def test_smoke_run_prints_a_table_with_numbers(tmp_path: Path) -> None:
    rows_file = tmp_path / "rows.json"
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(rows_file)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = bench.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        bench.terminate()  # the bench stops its servers and drops its database on SIGTERM
        stdout, stderr = bench.communicate(timeout=60)
        pytest.fail(f"the smoke run took over 7 minutes:\n{stdout[-3000:]}")
    result = subprocess.CompletedProcess(bench.args, bench.returncode, stdout, stderr)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| section" in result.stdout and "cores" in result.stdout
    data = json.loads(rows_file.read_text())
    sections = {row["section"] for row in data["rows"]}
    assert sections == set(PARTS), data["notes"]
    for row in data["rows"]:
        assert row["value"] >= 0, row
    assert any(r["section"] == "intake" and r["value"] > 0 for r in data["rows"])
    assert any(r["section"] == "delivery" and r["value"] > 0 for r in data["rows"])
