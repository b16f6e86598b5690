"""Schemathesis over /api/v1/openapi.json, per role: every check, every phase, zero failures.

For each role (a tipster without a token, operator, supervisor, admin, researcher, an
agency) the Schemathesis CLI runs, as CI would run it, against the app behind a real HTTP server on
the test database (holding a case screened and referred to FBI): all checks (server
errors, status codes, content types, response schemas and headers, positive data
accepted, negative data refused, missing required headers, unsupported methods and
their ``Allow``, ignored auth, use after free, resource availability), both generation
modes (valid and invalid data), and the phases examples, coverage, fuzzing and stateful
(chains along the document's links: a tip to its follow-up, a logged call to its
screening, events, assignment and replies).

Budget: ``MAX_EXAMPLES`` per operation and phase, and per role two runs with a ceiling
each (``RUNS``: seconds), deterministic generation (the same requests every run on a
machine fast enough not to reach the ceilings). Figures per role (requests, statuses) go to
``test-output/schemathesis/<role>.json``.

Exceptions (nothing else may fail): ``CONFIG`` below, each with its reason.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

MAX_EXAMPLES = 4
# Two runs per role, each with its own ceiling, so the stateful phase always gets its
# turn (one shared --max-time would let a slow machine spend it all before).
RUNS = {"examples,coverage,fuzzing": 25, "stateful": 15}

ROLES = {
    "tipster": None,  # no token: the public tip API, and 401 everywhere else
    "operator": ("operator", None),
    "supervisor": ("supervisor", None),
    "admin": ("admin", None),
    "researcher": ("researcher", None),
    "agency": ("agency", "FBI"),
}
# Every operation of the document; a new one fails test_every_operation_is_fuzzed.
OPERATIONS = [
    "GET /healthz",
    "GET /readyz",
    "POST /api/v1/tips",
    "GET /api/v1/tips/{reference}",
    "POST /api/v1/tips/{reference}/messages",
    "POST /api/v1/calls",
    "GET /api/v1/cases",
    "GET /api/v1/cases/{case_id}",
    "PUT /api/v1/cases/{case_id}/screening",
    "POST /api/v1/cases/{case_id}/events",
    "POST /api/v1/cases/{case_id}/assign",
    "POST /api/v1/cases/{case_id}/messages",
    "POST /api/v1/cases/{case_id}/referrals/{referral_id}/events",
    "POST /api/v1/cases/{case_id}/referrals/{referral_id}/packet-update",
    "POST /api/v1/cases/{case_id}/consent/withdraw",
    "GET /api/v1/cases/{case_id}/access-log",
    "GET /api/v1/agency/referrals",
    "GET /api/v1/agency/referrals/{referral_id}",
    "POST /api/v1/agency/referrals/{referral_id}/events",
    "GET /api/v1/agency/referrals/{referral_id}/thread",
    "POST /api/v1/agency/referrals/{referral_id}/thread",
    "GET /api/v1/cases/{case_id}/referrals/{referral_id}/thread",
    "POST /api/v1/cases/{case_id}/referrals/{referral_id}/thread",
    "DELETE /api/v1/tokens/{prefix}",
    "GET /api/v1/exports/research",
    "GET /api/v1/chats",
    "POST /api/v1/chats",
    "POST /api/v1/chats/{chat_id}/end",
    "POST /api/v1/chats/{chat_id}/take",
    "GET /api/v1/chats/{chat_id}/messages",
    "POST /api/v1/chats/{chat_id}/messages",
    "PUT /api/v1/cases/{case_id}/immigration-relief",
    *[
        f"{method} /api/v1/cases/{{case_id}}/{item}{tail}"
        for item in ("victims", "subjects", "locations", "notes")
        for method, tail in (("POST", ""), ("PATCH", "/{item_id}"), ("DELETE", "/{item_id}"))
    ],
    "GET /api/v1/search",
    "POST /api/v1/cases/{case_id}/merge",
    "GET /api/v1/services",
    "GET /api/v1/cases/{case_id}/service-referrals",
    "POST /api/v1/cases/{case_id}/service-referrals",
]

# The documented exceptions (schemathesis.toml). Each widens what one check accepts:
CONFIG = """
[checks.positive_data_acceptance]
# Valid by the schema, refused (422) by a rule no JSON Schema keyword can state: a phone
# number libphonenumber does not know (the schema can only say "string"); an agency
# `decline` without a reason (a rule across fields); an indicator, venue or agency code
# missing from the catalogs in config/ (they change without a new API version); an
# assignee who is no user; an outcome whose status or amount its kind does not take, dated
# in the future, or of a kind the agency does not record (config/agencies.yaml). 404
# (ids that name nothing), 409 (an event the state does not allow now) and 429 are
# Schemathesis' defaults.
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]
"""


def _st() -> str:
    return str(Path(sys.executable).with_name("st"))


def test_every_operation_is_fuzzed(client) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    found = [f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item]
    assert sorted(found) == sorted(OPERATIONS)


def _figures(ndjson: Path) -> dict[str, Any]:
    """Requests and statuses from Schemathesis' event stream (each recorded interaction)."""
    statuses: Counter[str] = Counter()
    for line in ndjson.read_text().splitlines():
        _count(json.loads(line), statuses)
    return {"requests": sum(statuses.values()), "statuses": dict(sorted(statuses.items()))}


def _count(node: Any, statuses: Counter[str]) -> None:
    # Each interaction is recorded once, with its response's status_code.
    if isinstance(node, dict):
        if "interactions" in node and isinstance(node["interactions"], dict):
            for interaction in node["interactions"].values():
                response = (interaction or {}).get("response") or {}
                if "status_code" in response:
                    statuses[str(response["status_code"])] += 1
            return
        for value in node.values():
            _count(value, statuses)
    elif isinstance(node, list):
        for value in node:
            _count(value, statuses)


@pytest.mark.slow
@pytest.mark.services  # CI runs it once, on PostgreSQL and Redis (not again embedded)
@pytest.mark.parametrize("role", list(ROLES))
def test_schemathesis_finds_nothing(
    role, live_server, app, make_actor, output_dir, tmp_path
) -> None:
    from tests.flows import sent_referral

    sent_referral(app)  # real ids to land on
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    folder = output_dir / "schemathesis"
    folder.mkdir(exist_ok=True)
    header = []
    if ROLES[role] is not None:
        header = ["--header", f"Authorization: Bearer {make_actor(*ROLES[role]).token}"]
    totals: Counter[str] = Counter()
    logs = []
    for phases, seconds in RUNS.items():
        ndjson = folder / f"{role}-{phases.split(',')[-1]}.ndjson"
        command = [
            _st(), "--config-file", str(config), "--no-color", "run",
            f"http://127.0.0.1:{live_server}/api/v1/openapi.json",
            "--checks", "all",
            "--mode", "all",
            "--phases", phases,
            "--max-examples", str(MAX_EXAMPLES),
            "--max-time", str(seconds),
            "--generation-deterministic",
            "--no-shrink",
            "--workers", "1",
            "--report", "ndjson", "--report-ndjson-path", str(ndjson),
            *header,
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds * 4 + 120
        )
        logs.append(result.stdout + result.stderr)
        totals.update(_figures(ndjson)["statuses"])
        assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
        if phases == "stateful":
            # The stateful phase ran chains, not "no links" or "out of time".
            scenarios = re.search(r"Scenarios:\s+(\d+)", result.stdout)
            assert scenarios and int(scenarios.group(1)) > 0, result.stdout[-3000:]
    figures = {"role": role, "requests": sum(totals.values()),
               "statuses": dict(sorted(totals.items()))}
    (folder / f"{role}.json").write_text(json.dumps(figures, indent=1))
    (folder / f"{role}.log").write_text("\n".join(logs))
    assert figures["requests"] > 0
    assert not any(status.startswith("5") for status in figures["statuses"])
