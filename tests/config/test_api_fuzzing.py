"""Schemathesis over /api/v1/openapi.json: no 5xx, every answer as documented.

Each operation gets a bounded number of generated requests (valid and invalid ones),
each sent as one of the roles with a real token (or none), against a database holding a
referred case. Figures per operation go to ``test-output/schemathesis/``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
ROLES = [
    ("anonymous", None),
    ("operator", None),
    ("supervisor", None),
    ("admin", None),
    ("researcher", None),
    ("agency", "FBI"),
    ("agency", "ICE"),
    ("agency", "HHS"),
]
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
    "GET /api/v1/cases/{case_id}/access-log",
    "GET /api/v1/agency/referrals",
    "GET /api/v1/agency/referrals/{referral_id}",
    "POST /api/v1/agency/referrals/{referral_id}/events",
    "DELETE /api/v1/tokens/{prefix}",
    "GET /api/v1/exports/research",
]


@pytest.fixture(scope="session")
def api_schema(app):  # type: ignore[no-untyped-def]
    """The OpenAPI document as the app serves it, loaded by Schemathesis."""
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


def _operations(schema: Any) -> dict[str, Any]:
    found = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        found[f"{operation.method.upper()} {operation.path}"] = operation
    return found


def test_every_operation_is_fuzzed(api_schema) -> None:
    assert sorted(_operations(api_schema)) == sorted(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_fuzzed_requests_get_documented_answers(
    label, api_schema, app, make_actor, output_dir
) -> None:
    from tests.flows import sent_referral

    sent_referral(app)  # a case, screened and referred to FBI: real ids to land on
    headers = {
        f"{role}{'-' + agency if agency else ''}": (
            {} if role == "anonymous" else make_actor(role, agency).headers
        )
        for role, agency in ROLES
    }
    operation = _operations(api_schema)[label]
    strategy = st.one_of(
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
    )
    figures = {"operation": label, "examples": 0, "failures": 0, "statuses": {}}

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    @given(case=strategy, who=st.sampled_from(sorted(headers)))
    def fuzz(case, who) -> None:  # type: ignore[no-untyped-def]
        figures["examples"] += 1
        response = case.call(headers=headers[who])
        status = str(response.status_code)
        figures["statuses"][status] = figures["statuses"].get(status, 0) + 1
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseException:
            figures["failures"] += 1
            raise

    try:
        fuzz()
    except BaseException as exc:
        # Operations without parameters have no invalid variant to generate.
        if "Unsatisfiable" not in type(exc).__name__:
            raise
    finally:
        folder = output_dir / "schemathesis"
        folder.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")
        (folder / f"{name}.json").write_text(json.dumps(figures, indent=1))
    assert figures["examples"] > 0
