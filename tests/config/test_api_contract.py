"""The API as a contract: one error body, the document saying what the server checks.

Each test here failed before issue 17's fix (the old behaviour is named in its docstring).
"""

from __future__ import annotations

import re
import uuid

import pytest

from config.contract import NO_CONTROL_CHARACTERS, PROBLEM_CONTENT_TYPE

PROBLEM_KEYS = {"type", "title", "status", "detail", "field", "error"}


def assert_problem(answer, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert answer.status_code == status, answer.get_data(as_text=True)[:300]
    assert answer.content_type == PROBLEM_CONTENT_TYPE
    body = answer.get_json()
    assert PROBLEM_KEYS <= set(body)
    assert body["status"] == status and body["type"] == "about:blank"
    assert body["error"] == body["detail"]  # the old key, kept for existing clients
    return body


@pytest.fixture
def spec(client) -> dict:  # type: ignore[no-untyped-def]
    return client.get("/api/v1/openapi.json").get_json()


# --- empty means absent for optional unique fields ------------------------------------


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_call_sid_is_absent_so_calls_never_conflict_forever(
    client, operator, blank
) -> None:
    """Before: "" was stored in the unique column; every later call answered 409."""
    body = {"caller_type": "victim", "narrative": "a call", "call_sid": blank}
    answers = [client.post("/api/v1/calls", json=body, headers=operator.headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert all(a.get_json()["signals"][0]["call_sid"] is None for a in answers)


def test_a_blank_sid_never_reaches_the_unique_columns_from_any_path(db_session) -> None:
    """The model itself turns a blank SID into NULL (IVR, SMS, call log, future paths)."""
    from tests.factories import CaseFactory, SignalFactory, TipMessageFactory

    case = CaseFactory(anonymous=True)
    signals = SignalFactory.create_batch(
        2, case=case, voice=True, call_sid="", recording_sid=" ", transcription_sid=""
    )
    messages = TipMessageFactory.create_batch(2, case=case, message_sid="")
    db_session.commit()  # two of each: a stored "" would break the unique constraint
    assert {(s.call_sid, s.recording_sid, s.transcription_sid) for s in signals} == {
        (None, None, None)
    }
    assert {m.message_sid for m in messages} == {None}


def test_a_real_call_sid_still_conflicts_with_the_case_named(client, operator) -> None:
    body = {"caller_type": "victim", "narrative": "n", "call_sid": " CA-twice "}
    first = client.post("/api/v1/calls", json=body, headers=operator.headers)
    again = client.post("/api/v1/calls", json={**body, "call_sid": "CA-twice"},
                        headers=operator.headers)
    problem = assert_problem(again, 409)
    assert problem["field"] == "call_sid" and problem["case_id"] == first.get_json()["id"]


# --- every header an HTTP error carries is kept --------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("delete", "/api/v1/tips", {"POST", "OPTIONS"}),
        ("put", "/api/v1/calls", {"POST", "OPTIONS"}),
        ("patch", "/api/v1/cases/1/events", {"POST", "OPTIONS"}),
        ("post", "/healthz", {"GET", "HEAD", "OPTIONS"}),
    ],
)
def test_405_keeps_its_allow_header(client, method, path, allowed) -> None:
    """Before: the error handler dropped the exception's headers (RFC 9110 needs Allow)."""
    answer = getattr(client, method)(path)
    assert_problem(answer, 405)
    assert {m.strip() for m in answer.headers["Allow"].split(",")} == allowed


def test_405_on_a_page_keeps_its_allow_header_too(client) -> None:
    answer = client.delete("/login")
    assert answer.status_code == 405 and answer.content_type.startswith("text/html")
    assert "GET" in answer.headers["Allow"]


def test_401_keeps_www_authenticate(client) -> None:
    answer = client.get("/api/v1/cases")
    assert_problem(answer, 401)
    assert answer.headers.get("WWW-Authenticate", "").startswith("Bearer")


# --- 429: header and body from one number --------------------------------------------


def _limited_client(make_app, settings):  # type: ignore[no-untyped-def]
    namespace = f"{settings.redis_namespace}{uuid.uuid4().hex[:8]}-"
    return make_app(rate_limits_enabled=True, redis_namespace=namespace).test_client()


def _agree(answer) -> int:  # type: ignore[no-untyped-def]
    wait = int(answer.headers["Retry-After"])
    body = answer.get_json()
    assert body["retry_after"] == wait
    minutes = f"{wait // 60} minute{'s' if wait // 60 != 1 else ''}"
    seconds = f"{wait} second{'s' if wait != 1 else ''}"
    assert body["detail"].endswith(f"try again in {minutes if wait % 60 == 0 else seconds}")
    return wait


def test_the_passphrase_throttle_says_the_same_wait_in_header_and_body(
    make_app, settings
) -> None:
    """Before: the body said "try again in 15 minutes", the header Retry-After: 60."""
    client = _limited_client(make_app, settings)
    tip = client.post("/api/v1/tips", json={"narrative": "x"}).get_json()
    url = f"/api/v1/tips/{tip['reference']}"
    answer = None
    for _ in range(12):
        answer = client.get(url, headers={"X-Tip-Passphrase": "wrong"},
                            environ_base={"REMOTE_ADDR": "10.1.0.1"})  # one client
        if answer.status_code == 429:
            break
    assert answer is not None
    assert_problem(answer, 429)
    assert "passphrase" in answer.get_json()["detail"]
    assert _agree(answer) > 0
    # The web page refuses with the same number in its header and sentence.
    page = client.post("/follow-up", data={"reference": tip["reference"], "passphrase": "x"},
                       environ_base={"REMOTE_ADDR": "10.1.0.1"})
    if page.status_code == 429:
        wait = int(page.headers["Retry-After"])
        assert f"try again in {wait} seconds" in page.get_data(as_text=True) or (
            wait % 60 == 0 and f"try again in {wait // 60} minute" in page.get_data(as_text=True)
        )


def test_no_retry_after_on_answers_that_were_not_refused(make_app, settings) -> None:
    client = _limited_client(make_app, settings)
    answer = client.post("/api/v1/tips", json={"narrative": "x"})
    assert answer.status_code == 201 and "Retry-After" not in answer.headers


# --- strict types, as the document says ----------------------------------------------


@pytest.mark.parametrize("value", [0, 1, "true", "yes", None])
def test_anonymous_takes_true_or_false_only(client, value) -> None:
    """Before: 0 and "yes" were taken as booleans (the document says boolean)."""
    answer = client.post("/api/v1/tips", json={"narrative": "x", "anonymous": value})
    assert assert_problem(answer, 422)["field"] == "anonymous"


def _screenable_case(client, operator) -> int:  # type: ignore[no-untyped-def]
    return _new_case(client, operator)["id"]


def _new_case(client, operator) -> dict:  # type: ignore[no-untyped-def]
    return client.post("/api/v1/calls", json={"caller_type": "victim", "narrative": "n"},
                       headers=operator.headers).get_json()


@pytest.mark.parametrize(("age", "status"), [(15.0, 200), (15, 200), (15.5, 422),
                                             (True, 422), ("15", 422)])
def test_victim_age_is_a_json_schema_integer(client, operator, age, status) -> None:
    """Before: 15.0 was refused, though JSON Schema (OpenAPI 3.1) counts it an integer."""
    case_id = _screenable_case(client, operator)
    answer = client.put(f"/api/v1/cases/{case_id}/screening",
                        json={"facts": {"victim_age": age}}, headers=operator.headers)
    assert answer.status_code == status, answer.get_json()


def test_an_unknown_event_is_refused_by_the_schema(client, operator) -> None:
    case_id = _screenable_case(client, operator)
    answer = client.post(f"/api/v1/cases/{case_id}/events",
                         json={"event": "explode", "version": 1}, headers=operator.headers)
    assert assert_problem(answer, 422)["field"] == "event"


def test_an_event_the_state_does_not_allow_is_a_documented_409(client, operator, spec) -> None:
    case = _new_case(client, operator)
    answer = client.post(f"/api/v1/cases/{case['id']}/events",
                         json={"event": "approve", "version": case["version"]},
                         headers=operator.headers)
    problem = assert_problem(answer, 409)
    assert problem["allowed"] == case["allowed_events"] and problem["state"] == "received"
    stale = client.post(f"/api/v1/cases/{case['id']}/events",
                        json={"event": "start_screening", "version": case["version"] + 7},
                        headers=operator.headers)
    assert assert_problem(stale, 409)["version"] == case["version"]
    assert "409" in spec["paths"]["/api/v1/cases/{case_id}/events"]["post"]["responses"]
    assert "409" in spec["paths"]["/api/v1/calls"]["post"]["responses"]


# --- bodies --------------------------------------------------------------------------


def test_a_missing_body_is_400_and_another_media_type_415(client, operator) -> None:
    """Before: a body-less or text/plain screening was read as {} and accepted."""
    case_id = _screenable_case(client, operator)
    url = f"/api/v1/cases/{case_id}/screening"
    assert_problem(client.put(url, headers=operator.headers), 400)
    assert_problem(client.put(url, data="{}", content_type="text/plain",
                              headers=operator.headers), 415)
    assert client.put(url, json={}, headers=operator.headers).status_code == 200


def test_control_characters_are_refused_as_the_pattern_says(client) -> None:
    pattern = re.compile(NO_CONTROL_CHARACTERS)
    for text in ["bell\x07", "esc\x1b[2J", "c1\x85"]:
        assert not pattern.match(text)
        answer = client.post("/api/v1/tips", json={"narrative": text})
        assert assert_problem(answer, 422)["field"] == "narrative"
    assert pattern.match("tab\tnew\nline\r ok")
    assert client.post("/api/v1/tips", json={"narrative": "tab\tnew\nline"}).status_code == 201


# --- the document --------------------------------------------------------------------


def test_the_document_is_exact_about_bodies_errors_and_events(spec) -> None:
    from workflows.machines import CASE_EVENTS

    schemas = spec["components"]["schemas"]
    assert "HTTPError" not in schemas and "ValidationError" not in schemas
    assert {"type", "title", "status", "detail"} <= set(schemas["Problem"]["required"])
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if "requestBody" in operation:
                assert operation["requestBody"]["required"] is True, (method, path)
                assert {"400", "413", "415"} <= set(operation["responses"]), (method, path)
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == [PROBLEM_CONTENT_TYPE], (path, status)
                if status == "429":
                    assert "Retry-After" in response["headers"]
    assert schemas["CaseEventIn"]["properties"]["event"]["enum"] == list(CASE_EVENTS)
    assert set(schemas["ReferralEventIn"]["properties"]["event"]["enum"]) == {
        "retry", "withdraw", "reroute", "approve"}
    assert set(schemas["AgencyEventIn"]["properties"]["event"]["enum"]) == {
        "acknowledge", "accept", "decline", "request_info", "record_outcome"}
    narrative = schemas["TipIn"]["properties"]["narrative"]
    assert narrative["maxLength"] == 20000 and narrative["pattern"] == NO_CONTROL_CHARACTERS
    assert schemas["TipIn"]["properties"]["anonymous"]["type"] == "boolean"
