"""No personal data in logs, outbox payloads or RQ jobs: canaries go in, none come out.

Canaries travel in an SMS ``Body`` and ``From``, a web tip's narrative, a voicemail's
transcript and recording URL, and an operator's reply; every request goes through a
real HTTP server (so werkzeug's request log is part of what is checked) with every
logger at DEBUG.
"""

from __future__ import annotations

import json
import logging
import re
import zlib
from typing import Any

import requests
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from tests.conftest import backend
from tests.intake.twilio_caller import HOTLINE, PUBLIC_BASE, Call, new_sid, post_signed
from workflows.models import Case
from workflows.outbox import OutboxMessage

CANARY_FROM = "+12025550166"
CANARY_BODY = "canary-sms-body-k4q9"
CANARY_NARRATIVE = "canary-narrative-k4q9"
CANARY_TRANSCRIPT = "canary-transcript-k4q9"
CANARY_RECORDING = "canary-recording-k4q9"
CANARY_REPLY = "canary-reply-k4q9"
CANARIES = (
    CANARY_FROM,
    "2025550166",
    "555-0166",
    CANARY_BODY,
    CANARY_NARRATIVE,
    CANARY_TRANSCRIPT,
    CANARY_RECORDING,
    CANARY_REPLY,
)


class _Answer:
    """A ``requests`` answer with the bits of Flask's test response the helpers use."""

    def __init__(self, answer: requests.Response) -> None:
        self.status_code = answer.status_code
        self.mimetype = answer.headers.get("Content-Type", "").split(";")[0]
        self._answer = answer

    def get_data(self, as_text: bool = False) -> Any:
        return self._answer.text if as_text else self._answer.content

    def get_json(self) -> Any:
        return self._answer.json()


class LiveClient:
    """Posts to the live server the way the Flask test client would."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def post(self, target: str, data: Any = None, json: Any = None, headers: Any = None) -> Any:
        if isinstance(data, MultiDict):
            data = list(data.items(multi=True))
        return _Answer(
            requests.post(self.base + target, data=data, json=json, headers=headers, timeout=60)
        )


def _text(client: LiveClient, body: str) -> None:
    sid = new_sid("SM")
    params = MultiDict(
        {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": "AC" + "0" * 32,
            "From": CANARY_FROM,
            "To": HOTLINE,
            "Body": body,
            "NumMedia": "0",
        }
    )
    answer = post_signed(client, PUBLIC_BASE + "/twilio/sms", params)
    assert answer.status_code == 200, answer.get_data(as_text=True)


def _voicemail(client: LiveClient, app, settings) -> None:  # type: ignore[no-untyped-def]
    original = app.config["HOTLINE_SETTINGS"]
    app.config["HOTLINE_SETTINGS"] = settings.with_overrides(operator_numbers=("+12025550100",))
    try:
        call = Call(client, caller=CANARY_FROM)
        call.dial_in()
        call.press("1")
        call.press("2")
        call.operator_outcome("no-answer")
        recording_sid, transcription_sid = new_sid("RE"), new_sid("TR")
        recording_url = f"https://api.twilio.com/2010-04-01/Recordings/{CANARY_RECORDING}"
        callbacks = call.record(recording_sid)
        for name, params in (
            (
                "recording",
                {
                    "RecordingSid": recording_sid,
                    "RecordingUrl": recording_url,
                    "RecordingStatus": "completed",
                    "RecordingDuration": "40",
                },
            ),
            (
                "transcription",
                {
                    "TranscriptionSid": transcription_sid,
                    "TranscriptionText": f"they said {CANARY_TRANSCRIPT}",
                    "TranscriptionStatus": "completed",
                    "RecordingSid": recording_sid,
                    "RecordingUrl": recording_url,
                },
            ),
        ):
            assert call.callback(callbacks[name], **params).status_code == 200
    finally:
        app.config["HOTLINE_SETTINGS"] = original


def _all_redis_jobs(settings) -> list[dict[bytes, bytes]]:  # type: ignore[no-untyped-def]
    """Every RQ job hash of this test run (job ids start with the run's namespace)."""
    from redis import Redis

    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", settings.redis_namespace)
    connection = Redis.from_url(settings.redis_url)
    return [connection.hgetall(key) for key in connection.scan_iter(match=f"rq:job:{prefix}*")]


def _decoded(value: bytes) -> str:
    try:
        return zlib.decompress(value).decode("utf-8", "replace")
    except zlib.error:
        return value.decode("utf-8", "replace")


def test_canaries_stay_out_of_logs_outbox_and_jobs(
    app, settings, live_server, caplog, db_session, operator
) -> None:
    caplog.set_level(logging.DEBUG)
    client = LiveClient(live_server)

    for body in (f"help us {CANARY_BODY}", f"motel {CANARY_BODY}", "no", "NO"):
        _text(client, body)  # the last answer says "not safe": an emergency page
    tip = client.post(
        "/api/v1/tips",
        json={"narrative": CANARY_NARRATIVE, "anonymous": False, "contact": {"phone": CANARY_FROM}},
    )
    assert tip.status_code == 201
    _voicemail(client, app, settings)
    case_id = db_session.scalar(select(Case.id).order_by(Case.id).limit(1))
    reply = client.post(
        f"/api/v1/cases/{case_id}/messages", json={"body": CANARY_REPLY}, headers=operator.headers
    )
    assert reply.status_code == 201, reply.get_json()

    # The data did arrive (so the checks below are not vacuous) ...
    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "werkzeug" in logged and "/twilio/sms" in logged
    outbox = db_session.scalars(select(OutboxMessage)).all()
    assert {m.payload.get("kind") for m in outbox if m.kind == "notify"} >= {"emergency_page"}
    # ... and no canary is in the log, nor in any outbox row.
    for canary in CANARIES:
        assert canary not in logged, f"{canary!r} was logged"
        assert canary not in caplog.text
    stored_payloads = json.dumps([[m.kind, m.ref_id, m.payload, m.last_error] for m in outbox])
    for canary in CANARIES:
        assert canary not in stored_payloads, f"{canary!r} is in an outbox payload"

    if backend() == "services":
        from redis import Redis

        from referrals.relay import relay_once

        runtime = app.extensions["runtime"]
        assert relay_once(runtime, Redis.from_url(settings.redis_url)) >= len(outbox)
        jobs = _all_redis_jobs(settings)
        assert len(jobs) >= len(outbox)
        for fields in jobs:
            stored = " ".join(f"{k.decode()}={_decoded(v)}" for k, v in fields.items())
            assert "outbox" in stored
            for canary in CANARIES:
                assert canary not in stored, f"{canary!r} is in an RQ job"
        for canary in CANARIES:
            assert canary not in caplog.text
