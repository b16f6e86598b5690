"""Issue 2's must-holds on the web tip API: bad input, verbatim text, no IP or user agent,
committed before answered, and an OpenAPI document that covers every JSON endpoint."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import create_engine, func, select
from werkzeug.datastructures import MultiDict
from werkzeug.test import Client
from werkzeug.wrappers import Response

from intake.models import Signal

from .storage import every_value, rows_everywhere
from .twilio_caller import HOTLINE, PUBLIC_BASE, new_sid, sign

BAD_TIPS = [
    # (what, body bytes, content type, expected status, field named)
    ("malformed JSON", b'{"narrative": "x"', "application/json", 400, None),
    ("not UTF-8", b'{"narrative": "\xff"}', "application/json", 400, None),
    ("a list, not an object", b'["narrative"]', "application/json", 422, None),
    ("JSON null", b"null", "application/json", 422, None),
    ("missing narrative", b'{"location": "Elm St"}', "application/json", 422, "narrative"),
    ("empty narrative", b'{"narrative": ""}', "application/json", 422, "narrative"),
    ("narrative a number", b'{"narrative": 42}', "application/json", 422, "narrative"),
    ("narrative a list", b'{"narrative": ["a"]}', "application/json", 422, "narrative"),
    ("anonymous a word", b'{"narrative": "x", "anonymous": "maybe"}', None, 422, "anonymous"),
    ("contact a string", b'{"narrative": "x", "contact": "555"}', None, 422, "contact"),
    ("language unknown", b'{"narrative": "x", "language": "xx"}', None, 422, "language"),
    ("unknown field", b'{"narrative": "x", "ip": "1.2.3.4"}', None, 422, "ip"),
    (
        "phone too short",
        b'{"narrative": "x", "contact": {"phone": "12"}}',
        None,
        422,
        "contact.phone",
    ),
    (
        "phone not a number",
        b'{"narrative": "x", "contact": {"phone": "call me"}}',
        None,
        422,
        "contact.phone",
    ),
    (
        "phone impossible",
        b'{"narrative": "x", "contact": {"phone": "+1 000 000 0000"}}',
        None,
        422,
        "contact.phone",
    ),
    (
        "phone a number type",
        b'{"narrative": "x", "contact": {"phone": 2025550143}}',
        None,
        422,
        "contact.phone",
    ),
    (
        "email invalid",
        b'{"narrative": "x", "contact": {"email": "not-an-email"}}',
        None,
        422,
        "contact.email",
    ),
    ("NUL in narrative", b'{"narrative": "a\\u0000b"}', None, 422, "narrative"),
    ("escape in narrative", b'{"narrative": "a\\u001b[31mred"}', None, 422, "narrative"),
    (
        "C1 control in location",
        b'{"narrative": "x", "location": "a\\u0085b"}',
        None,
        422,
        "location",
    ),
    ("narrative too long", json.dumps({"narrative": "x" * 20001}).encode(), None, 422, "narrative"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "field"),
    [case[1:] for case in BAD_TIPS],
    ids=[case[0] for case in BAD_TIPS],
)
def test_bad_tip_is_a_clear_4xx_json_naming_the_field_and_stores_nothing(
    client, db_session, body, content_type, status, field
) -> None:
    answer = client.post("/api/v1/tips", data=body, content_type=content_type or "application/json")
    assert answer.status_code == status, answer.get_data(as_text=True)
    error = answer.get_json()
    assert isinstance(error["error"], str) and error["error"]
    assert error["field"] == field
    assert rows_everywhere(db_session) == 0


def test_a_2_mb_body_is_413_json_and_stores_nothing(client, db_session) -> None:
    body = json.dumps({"narrative": "x" * (2 * 1024 * 1024)})
    answer = client.post("/api/v1/tips", data=body, content_type="application/json")
    assert answer.status_code == 413
    assert "1 MB" in answer.get_json()["error"]
    assert rows_everywhere(db_session) == 0


def test_a_2_mb_twilio_webhook_is_413_and_stores_nothing(client, db_session) -> None:
    params = MultiDict({"MessageSid": new_sid("SM"), "From": "+12025550143", "To": HOTLINE})
    params["Body"] = "x" * (2 * 1024 * 1024)
    answer = client.post(
        "/twilio/sms",
        data=params,
        headers={"X-Twilio-Signature": sign(PUBLIC_BASE + "/twilio/sms", params)},
    )
    assert answer.status_code == 413
    assert rows_everywhere(db_session) == 0


def test_bad_follow_up_message_is_422_and_adds_nothing(client, db_session) -> None:
    tip = client.post("/api/v1/tips", json={"narrative": "x"}).get_json()
    before = rows_everywhere(db_session)
    headers = {"X-Tip-Passphrase": tip["passphrase"]}
    url = f"/api/v1/tips/{tip['reference']}/messages"
    for bad in ({"body": "bell\x07"}, {"body": 7}, {}, {"body": ""}):
        answer = client.post(url, json=bad, headers=headers)
        assert answer.status_code == 422 and answer.get_json()["field"] == "body"
    assert rows_everywhere(db_session) == before


SQL = "Robert'); DROP TABLE cases;-- ' OR '1'='1"
HTML = "<script>alert('x')</script><img src=x onerror=alert(1)> &amp; &lt;b&gt;"
TEXT = f'{SQL}\n{HTML}\ttab "quotes" \\backslash émoji 🚨 中文 עברית'


def test_sql_and_html_payloads_that_are_valid_text_are_stored_verbatim(client, db_session) -> None:
    answer = client.post(
        "/api/v1/tips", json={"narrative": TEXT, "location": HTML, "contact": {"email": None}}
    )
    assert answer.status_code == 201, answer.get_json()
    tip = answer.get_json()
    signal = db_session.scalars(select(Signal)).one()
    assert signal.narrative == TEXT and signal.location == HTML
    headers = {"X-Tip-Passphrase": tip["passphrase"]}
    url = f"/api/v1/tips/{tip['reference']}/messages"
    assert client.post(url, json={"body": SQL}, headers=headers).status_code == 201
    thread = client.get(f"/api/v1/tips/{tip['reference']}", headers=headers).get_json()
    assert thread["messages"][0]["body"] == SQL
    # The tables are all still there and still work.
    assert client.post("/api/v1/tips", json={"narrative": "next"}).status_code == 201


def test_no_ip_address_or_user_agent_is_stored_for_an_anonymous_tip(client, db_session) -> None:
    ip, forwarded = "198.51.100.231", "203.0.113.99"
    agent = "CanaryBrowser/7.7 (ua-canary-5521)"
    answer = client.post(
        "/api/v1/tips",
        json={"narrative": "a tip", "location": "Elm St", "anonymous": True},
        headers={"User-Agent": agent, "X-Forwarded-For": forwarded, "X-Real-IP": forwarded},
        environ_base={"REMOTE_ADDR": ip},
    )
    assert answer.status_code == 201
    reference = answer.get_json()["reference"]
    client.post(
        f"/api/v1/tips/{reference}/messages",
        json={"body": "more"},
        headers={
            "X-Tip-Passphrase": answer.get_json()["passphrase"],
            "User-Agent": agent,
            "X-Forwarded-For": forwarded,
        },
        environ_base={"REMOTE_ADDR": ip},
    )
    values = list(every_value(db_session))
    assert any(value == "a tip" for _, _, value in values)  # the search does see the data
    leaks = [
        (table, column)
        for table, column, value in values
        if ip in value or forwarded in value or "ua-canary-5521" in value
    ]
    assert leaks == []


def _watching(app, engine, seen: dict, fail: bool = False):
    """The app, with a look from a second connection at the moment the answer starts."""

    def wsgi(environ, start_response):
        def spy(status, headers, exc_info=None):
            with engine.connect() as other:
                seen["signals"] = other.scalar(select(func.count()).select_from(Signal))
            if fail:
                raise ConnectionResetError("the client went away while we answered")
            return start_response(status, headers, exc_info)

        return app.wsgi_app(environ, spy)

    return Client(wsgi, Response)


def _channel_request(channel: str) -> tuple[str, dict]:
    if channel == "web":
        return "/api/v1/tips", {"json": {"narrative": "locked in at night"}}
    params = MultiDict({"From": "+12025550143", "To": HOTLINE})
    if channel == "sms":
        path = "/twilio/sms"
        params.update({"MessageSid": new_sid("SM"), "Body": "locked in at night"})
    else:
        path = "/twilio/voice"
        params.update({"CallSid": new_sid("CA"), "CallStatus": "ringing"})
    signature = sign(PUBLIC_BASE + path, params)
    return path, {"data": params, "headers": {"X-Twilio-Signature": signature}}


@pytest.mark.parametrize("channel", ["web", "sms", "voice"])
def test_a_tip_is_committed_before_its_answer(app, settings, channel) -> None:
    engine = create_engine(settings.database_url)  # its own pool: truly a second connection
    try:
        seen: dict = {}
        path, kwargs = _channel_request(channel)
        answer = _watching(app, engine, seen).post(path, **kwargs)
        assert answer.status_code in (200, 201)
        assert seen["signals"] == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("channel", ["web", "sms", "voice"])
def test_a_failure_after_the_commit_loses_nothing(app, settings, db_session, channel) -> None:
    engine = create_engine(settings.database_url)
    try:
        path, kwargs = _channel_request(channel)
        with pytest.raises(ConnectionResetError):
            _watching(app, engine, {}, fail=True).post(path, **kwargs)
    finally:
        engine.dispose()
    signal = db_session.scalars(select(Signal)).one()
    assert signal.case.state == "received"
    if channel == "web":
        assert signal.narrative == "locked in at night"


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_openapi_documents_every_json_endpoint_under_api_v1(app, client) -> None:
    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    paths = answer.get_json()["paths"]
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.endpoint == "openapi.spec":
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            documented = paths.get(_openapi_path(rule.rule), {})
            if method.lower() not in documented:
                missing.append(f"{method} {rule.rule}")
    assert missing == []
    assert "/api/v1/tips" in paths and "post" in paths["/api/v1/tips"]
