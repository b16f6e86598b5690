"""LOG_FORMAT=json: one JSON object per line, our fields only, the request's id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from config.logs import HANDLER_NAME, REQUEST_ID_HEADER, configure_logging
from referrals.tasks import JobIdFilter, current_job_id

CANARY_BODY = "canary-log-body-q7w2"
CANARY_FROM = "+12025550177"


@pytest.fixture
def json_lines(settings) -> Iterator[io.StringIO]:  # type: ignore[no-untyped-def]
    """Our root handler, JSON, writing to a buffer (removed afterwards)."""
    stream = io.StringIO()
    handler = configure_logging(settings.with_overrides(log_format="json"), stream=stream)
    assert handler is not None
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)


def _records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_request_logs_one_json_object_per_line_with_its_id(client, json_lines) -> None:
    answer = client.post("/twilio/sms", data={"Body": CANARY_BODY, "From": CANARY_FROM})
    assert answer.status_code == 403
    request_id = answer.headers[REQUEST_ID_HEADER]
    [refused] = [r for r in _records(json_lines) if r["logger"] == "intake.twilio"]
    assert set(refused) == {"time", "level", "logger", "message", "request_id"}
    assert refused["level"] == "WARNING" and refused["request_id"] == request_id
    assert refused["time"].endswith("+00:00") and "refused" in refused["message"]
    assert CANARY_BODY not in json_lines.getvalue() and "2025550177" not in json_lines.getvalue()


def test_every_request_gets_its_own_id_and_a_sent_one_is_not_taken(client) -> None:
    first = client.get("/healthz", headers={REQUEST_ID_HEADER: CANARY_FROM})
    second = client.get("/healthz")
    ids = {first.headers[REQUEST_ID_HEADER], second.headers[REQUEST_ID_HEADER]}
    assert len(ids) == 2 and CANARY_FROM not in ids


def test_extras_never_reach_the_line_and_a_traceback_does(app, json_lines) -> None:
    log = logging.getLogger("tests.logs")
    with app.test_request_context("/"):
        log.warning("with extras", extra={"tip_text": CANARY_BODY})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    with_extras, failed = _records(json_lines)[-2:]
    assert "tip_text" not in with_extras and CANARY_BODY not in json_lines.getvalue()
    assert failed["level"] == "ERROR" and "ValueError: boom" in failed["exc_info"]
    assert "request_id" not in failed  # outside a request


def test_a_worker_line_names_its_job(json_lines) -> None:
    [ours] = [h for h in logging.getLogger().handlers if h.get_name() == HANDLER_NAME]
    ours.addFilter(JobIdFilter())  # as the worker's start-up does
    token = current_job_id.set("outbox-7-1")
    try:
        logging.getLogger("referrals.tasks").warning("a job's line")
    finally:
        current_job_id.reset(token)
    [line] = [r for r in _records(json_lines) if r["message"] == "a job's line"]
    assert line["job_id"] == "outbox-7-1" and "request_id" not in line
