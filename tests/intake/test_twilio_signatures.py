"""The Twilio signature matrix (ENGINEERING.md): what must pass, what must be refused.

Each refused request must answer 403 and leave no row anywhere; each genuine one 200.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import Client
from werkzeug.wrappers import Response

from intake.twilio import twilio_signed

from .storage import rows_everywhere
from .twilio_caller import AUTH_TOKEN, CALLER, HOTLINE, PUBLIC_BASE, new_sid, sign

SMS_URL = PUBLIC_BASE + "/twilio/sms"


def sms_params(body: str = "There are kids working at the packing plant") -> MultiDict:
    return MultiDict(
        {
            "MessageSid": new_sid("SM"),
            "AccountSid": "AC" + "0" * 32,
            "From": CALLER,
            "To": HOTLINE,
            "Body": body,
            "NumMedia": "0",
        }
    )


def post(client, url_signed: str, params, target: str | None = None, **kwargs):
    """POST params to ``target`` (default: the signed URL's path and query)."""
    signature = kwargs.pop("signature", None) or sign(url_signed, params)
    if target is None:
        target = url_signed.removeprefix(PUBLIC_BASE)
    headers = {"X-Twilio-Signature": signature, **kwargs.pop("headers", {})}
    return client.post(target, data=params, headers=headers, **kwargs)


@contextmanager
def app_settings(app, **changes) -> Iterator[None]:
    """Run with some settings changed (the app reads them per request)."""
    original = app.config["HOTLINE_SETTINGS"]
    app.config["HOTLINE_SETTINGS"] = original.with_overrides(**changes)
    try:
        yield
    finally:
        app.config["HOTLINE_SETTINGS"] = original


def test_genuine_sms_passes_and_is_stored(client, db_session) -> None:
    answer = post(client, SMS_URL, sms_params())
    assert answer.status_code == 200
    assert rows_everywhere(db_session) > 0


@pytest.mark.parametrize(
    "forge",
    [
        "missing_signature",
        "wrong_token",
        "tampered_body",
        "added_parameter",
        "dropped_parameter",
        "signed_for_http",
        "signed_for_other_host",
        "signed_for_other_path",
        "signed_for_other_port",
    ],
)
def test_forged_sms_is_403_and_stores_nothing(client, db_session, caplog, forge) -> None:
    params = sms_params()
    signed_params, url, headers = MultiDict(params), SMS_URL, {}
    if forge == "tampered_body":
        params["Body"] = "changed after signing"
    elif forge == "added_parameter":
        params["Extra"] = "1"
    elif forge == "dropped_parameter":
        del params["NumMedia"]
    elif forge == "signed_for_http":
        url = SMS_URL.replace("https://", "http://")
    elif forge == "signed_for_other_host":
        url = SMS_URL.replace("hotline.example.org", "evil.example.org")
    elif forge == "signed_for_other_path":
        url = PUBLIC_BASE + "/twilio/voice"
    elif forge == "signed_for_other_port":
        url = SMS_URL.replace(".org/", ".org:8443/")
    signature = sign(url, signed_params)
    if forge == "wrong_token":
        signature = RequestValidator("not-our-token").compute_signature(url, signed_params)
    if forge != "missing_signature":
        headers["X-Twilio-Signature"] = signature
    with caplog.at_level(logging.WARNING, logger="intake.twilio"):
        answer = client.post("/twilio/sms", data=params, headers=headers)
    assert answer.status_code == 403
    assert answer.get_json()["error"]
    assert rows_everywhere(db_session) == 0
    # A log line, and nothing of the texter's in it.
    assert "refused" in caplog.text
    assert CALLER not in caplog.text and "packing plant" not in caplog.text


def test_port_present_or_absent_in_the_signed_url_both_pass(client, db_session) -> None:
    with_port = SMS_URL.replace(".org/", ".org:443/")
    assert post(client, with_port, sms_params(), target="/twilio/sms").status_code == 200
    with app_settings(client.application, public_base_url=PUBLIC_BASE + ":443"):
        assert post(client, SMS_URL, sms_params()).status_code == 200


def test_behind_a_tls_proxy_the_public_base_url_decides(client, db_session) -> None:
    # The proxy forwards plain http to an internal address; Twilio signed the https URL.
    internal = {"base_url": "http://10.0.0.7:8000"}
    assert post(client, SMS_URL, sms_params(), **internal).status_code == 200
    # What the app saw is not what Twilio signed, and must not pass.
    seen = "http://10.0.0.7:8000/twilio/sms"
    answer = post(client, seen, sms_params(), target="/twilio/sms", **internal)
    assert answer.status_code == 403


def test_without_public_base_url_proxyfix_restores_scheme_and_host(app, db_session) -> None:
    with app_settings(app, public_base_url=None):
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hotline.example.org"}
        plain = Client(app.wsgi_app, Response)
        # No proxy fix: the app sees http://localhost and refuses Twilio's https signature.
        answer = post(plain, SMS_URL, sms_params(), headers=forwarded)
        assert answer.status_code == 403
        assert rows_everywhere(db_session) == 0
        fixed = Client(ProxyFix(app.wsgi_app, x_proto=1, x_host=1), Response)
        assert post(fixed, SMS_URL, sms_params(), headers=forwarded).status_code == 200


def test_quotes_in_the_query_string_are_checked_against_the_raw_url(client, db_session) -> None:
    raw = SMS_URL + "?campaign=%27BeFree%27&note=%22hi%22+there"
    assert post(client, raw, sms_params()).status_code == 200
    # Signing the decoded URL (what request.url gives) must not pass.
    decoded = SMS_URL + "?campaign='BeFree'&note=\"hi\" there"
    answer = post(client, decoded, sms_params(), target=raw.removeprefix(PUBLIC_BASE))
    assert answer.status_code == 403


def test_repeated_keys_are_signed_value_by_value(client, db_session) -> None:
    params = sms_params()
    params.add("MediaUrl", "https://api.twilio.com/media/2")
    params.add("MediaUrl", "https://api.twilio.com/media/1")
    assert post(client, SMS_URL, params).status_code == 200
    # A signature over only the first value of the repeated key is not Twilio's.
    first_only = sign(SMS_URL, params.to_dict())
    answer = post(client, SMS_URL, sms_params(), signature=first_only)
    assert answer.status_code == 403


def test_no_auth_token_configured_refuses_everything(client, db_session) -> None:
    with app_settings(client.application, twilio_auth_token=None):
        assert post(client, SMS_URL, sms_params()).status_code == 403
    assert rows_everywhere(db_session) == 0


@pytest.fixture
def json_webhook_app(settings) -> Flask:
    """A bare app with one JSON-bodied webhook behind the same decorator."""
    bare = Flask("json-webhook")
    bare.config["HOTLINE_SETTINGS"] = settings

    @bare.post("/twilio/events")
    @twilio_signed
    def events() -> str:
        return "ok"

    return bare


def _json_url(body: bytes) -> str:
    return PUBLIC_BASE + "/twilio/events?bodySHA256=" + hashlib.sha256(body).hexdigest()


def test_json_body_is_checked_against_body_sha256(json_webhook_app) -> None:
    client = json_webhook_app.test_client()
    body = json.dumps({"CallSid": "CA1", "text": "niños trabajando"}).encode("utf-8")
    url = _json_url(body)
    signature = sign(url, {})  # Twilio signs the URL (with the hash), not the body
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/json"}
    target = url.removeprefix(PUBLIC_BASE)
    assert client.post(target, data=body, headers=headers).status_code == 200
    changed = body.replace(b"CA1", b"CA2")
    assert client.post(target, data=changed, headers=headers).status_code == 403
    # The trap we avoid: given {} instead of the raw body, the SDK accepts the changed body.
    assert RequestValidator(AUTH_TOKEN).validate(url, {}, signature)


def test_bytes_bodies_never_raise(json_webhook_app) -> None:
    client = json_webhook_app.test_client()
    not_utf8 = b'{"text": "\xff\xfe"}'
    url = _json_url(not_utf8)
    headers = {"X-Twilio-Signature": sign(url, {}), "Content-Type": "application/json"}
    answer = client.post(url.removeprefix(PUBLIC_BASE), data=not_utf8, headers=headers)
    assert answer.status_code == 403  # not a 500
    # The SDK itself cannot take bytes (it raises): this is why the decorator decodes first.
    with pytest.raises((AttributeError, IndexError, TypeError)):
        RequestValidator(AUTH_TOKEN).validate(url, not_utf8, headers["X-Twilio-Signature"])
