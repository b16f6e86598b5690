"""A client generated from /api/v1/openapi.json validates what the server validates.

datamodel-code-generator turns the served document into pydantic models, as an agency
would (``--strict-types bool``: JSON's true/false only, as the document's ``boolean``
means; integers as JSON Schema counts them, 15.0 included). Each probe body below is
then given to both: the generated model must accept exactly the bodies the server
accepts (no 400/422), and refuse exactly those it refuses.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

N = "A narrative long enough to be a tip"
# (schema, url template, method, role, body); {case} is a fresh logged call's id.
PROBES: list[tuple[str, str, str, str | None, dict[str, Any]]] = [
    ("TipIn", "/api/v1/tips", "post", None, {"narrative": N}),
    ("TipIn", "/api/v1/tips", "post", None, {"narrative": N, "anonymous": 0}),
    ("TipIn", "/api/v1/tips", "post", None, {"narrative": N, "anonymous": "true"}),
    ("TipIn", "/api/v1/tips", "post", None, {"narrative": N, "anonymous": False}),
    ("TipIn", "/api/v1/tips", "post", None, {"narrative": "bell\x07"}),
    ("TipIn", "/api/v1/tips", "post", None, {"narrative": "tab\tand\nnewline"}),
    ("TipIn", "/api/v1/tips", "post", None, {"narrative": ""}),
    ("TipIn", "/api/v1/tips", "post", None, {"narrative": "x" * 20001}),
    ("TipIn", "/api/v1/tips", "post", None, {"narrative": "x" * 20000}),
    ("TipIn", "/api/v1/tips", "post", None, {"narrative": N, "extra": 1}),
    ("TipIn", "/api/v1/tips", "post", None, {"narrative": N, "language": "fr"}),
    ("TipIn", "/api/v1/tips", "post", None, {"narrative": N, "location": "c1\x85"}),
    ("CallIn", "/api/v1/calls", "post", "operator",
     {"caller_type": "victim", "narrative": N, "call_sid": ""}),
    ("CallIn", "/api/v1/calls", "post", "operator",
     {"caller_type": "victim", "narrative": N, "call_sid": "CA" + "0" * 65}),
    ("CallIn", "/api/v1/calls", "post", "operator",
     {"caller_type": "victim", "narrative": N, "anonymous": 1}),
    ("CallIn", "/api/v1/calls", "post", "operator", {"caller_type": "pirate", "narrative": N}),
    ("CallIn", "/api/v1/calls", "post", "operator",
     {"caller_type": "other", "narrative": N, "safe_contact": {"safe_to_call": "no"}}),
    ("ScreeningIn", "/api/v1/cases/{case}/screening", "put", "operator",
     {"facts": {"victim_age": 15.0}}),
    ("ScreeningIn", "/api/v1/cases/{case}/screening", "put", "operator",
     {"facts": {"victim_age": 15.5}}),
    ("ScreeningIn", "/api/v1/cases/{case}/screening", "put", "operator",
     {"facts": {"victim_age": 121}}),
    ("ScreeningIn", "/api/v1/cases/{case}/screening", "put", "operator",
     {"facts": {"victim_minor": 1}}),
    ("ScreeningIn", "/api/v1/cases/{case}/screening", "put", "operator",
     {"facts": {"trafficking_type": "labor"}, "consent": {"services": True}}),
    ("CaseEventIn", "/api/v1/cases/{case}/events", "post", "operator",
     {"event": "explode", "version": 1}),
    ("CaseEventIn", "/api/v1/cases/{case}/events", "post", "operator",
     {"event": "start_screening", "version": 1.5}),
    ("CaseEventIn", "/api/v1/cases/{case}/events", "post", "operator",
     {"event": "start_screening"}),
    ("CaseEventIn", "/api/v1/cases/{case}/events", "post", "operator",
     {"event": "start_screening", "version": "{version}"}),
    ("ReplyIn", "/api/v1/cases/{case}/messages", "post", "operator", {"body": "a\x00b"}),
    ("AgencyEventIn", "/api/v1/agency/referrals/1/events", "post", "agency",
     {"event": "shred"}),
]
# Status codes after validation passed (the body was fine; the state or the id decided).
VALID_BODY = {200, 201, 404, 409}
INVALID_BODY = {400, 422}


@pytest.fixture(scope="module")
def models(app, tmp_path_factory: pytest.TempPathFactory) -> Any:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("client")
    spec = folder / "openapi.json"
    spec.write_text(json.dumps(app.test_client().get("/api/v1/openapi.json").get_json()))
    target = folder / "hotline_models.py"
    subprocess.run(
        [str(Path(sys.executable).with_name("datamodel-codegen")),
         "--input", str(spec), "--input-file-type", "openapi",
         "--output", str(target), "--output-model-type", "pydantic_v2.BaseModel",
         "--strict-types", "bool", "--use-annotated"],
        check=True, capture_output=True, timeout=300,
    )
    loader = importlib.util.spec_from_file_location("hotline_models", target)
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    sys.modules["hotline_models"] = module  # pydantic resolves the annotations through it
    loader.loader.exec_module(module)
    yield module
    sys.modules.pop("hotline_models", None)


def test_every_request_schema_has_a_generated_model(models, app) -> None:  # type: ignore[no-untyped-def]
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    for item in spec["paths"].values():
        for operation in item.values():
            body = operation.get("requestBody")
            if body:
                ref = body["content"]["application/json"]["schema"]["$ref"]
                assert hasattr(models, ref.rsplit("/", 1)[1]), ref
    assert hasattr(models, "Problem")


@pytest.mark.parametrize("probe", range(len(PROBES)))
def test_the_generated_model_agrees_with_the_server(
    probe, models, client, make_actor
) -> None:
    schema, url, method, role, body = PROBES[probe]
    headers = make_actor(role, "FBI" if role == "agency" else None).headers if role else {}
    if "{case}" in url:
        operator = make_actor("operator")
        case = client.post("/api/v1/calls", json={"caller_type": "victim", "narrative": N},
                           headers=operator.headers).get_json()
        url = url.replace("{case}", str(case["id"]))
        body = {k: (case["version"] if v == "{version}" else v) for k, v in body.items()}
    answer = getattr(client, method)(url, json=body, headers=headers)
    assert answer.status_code in VALID_BODY | INVALID_BODY, (answer.status_code, answer.json)
    server_accepts = answer.status_code in VALID_BODY
    try:
        getattr(models, schema).model_validate(body)
        client_accepts = True
    except ValidationError:
        client_accepts = False
    assert client_accepts == server_accepts, (schema, body, answer.status_code, answer.json)
    if not server_accepts:
        assert models.Problem.model_validate(answer.json)  # the documented error body
