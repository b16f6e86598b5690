"""Login sessions: cookie flags, expiry, and the per-address limits on public forms."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from itsdangerous import TimestampSigner

from tests.page_clients import PASSWORD, PageClient, csrf_token


def _login(app, make_actor) -> tuple[PageClient, object]:  # type: ignore[no-untyped-def]
    person = make_actor("operator", password=PASSWORD)
    browser = PageClient(app.test_client())
    answer = browser.login(person.username)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return browser, answer


def test_the_session_cookie_is_secure_httponly_samesite_and_short_lived(make_app, make_actor):
    secure_app = make_app(session_cookie_secure=True)
    _, answer = _login(secure_app, make_actor)
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if "hotline_session=" in c)
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "secure" in flags and "httponly" in flags and "samesite=lax" in flags
    # A permanent session with the configured lifetime (30 minutes), not a year.
    expires = next(part.split("=", 1)[1] for part in cookie.split(";") if "Expires=" in part)
    lifetime = parsedate_to_datetime(expires) - datetime.now(UTC)
    assert timedelta(minutes=28) < lifetime <= timedelta(minutes=30)


def test_secure_can_be_switched_off_for_local_http(app, make_actor) -> None:
    _, answer = _login(app, make_actor)  # the test settings say session_cookie_secure=False
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if "hotline_session=" in c)
    assert "secure" not in [part.strip().lower() for part in cookie.split(";")]


def test_a_session_older_than_its_lifetime_is_refused(app, make_actor, monkeypatch) -> None:
    browser, _ = _login(app, make_actor)
    assert browser.get("/start").headers["Location"] != "/login"
    session_data = {"user_id": 1, "_permanent": True}
    serializer = app.session_interface.get_signing_serializer(app)
    with monkeypatch.context() as patched:
        # A cookie signed 31 minutes ago, as a browser would still hold after idling.
        patched.setattr(TimestampSigner, "get_timestamp", lambda _self: int(time.time()) - 31 * 60)
        stale = serializer.dumps(session_data)
    fresh = serializer.dumps(session_data)
    client = app.test_client()
    client.set_cookie("hotline_session", stale)
    assert client.get("/start").headers["Location"].startswith("/login")
    client.set_cookie("hotline_session", fresh)
    assert not client.get("/start").headers["Location"].startswith("/login")


def _limited(make_app, settings):  # type: ignore[no-untyped-def]
    namespace = f"{settings.redis_namespace}{uuid.uuid4().hex[:8]}-"
    return make_app(rate_limits_enabled=True, redis_namespace=namespace)


def test_login_is_limited_per_address(make_app, settings, make_actor) -> None:
    limited = _limited(make_app, settings)
    browser = PageClient(limited.test_client())
    token = csrf_token(browser.get("/login").get_data(as_text=True))
    statuses = [
        browser.client.post(
            "/login", data={"username": f"nobody{i}", "password": "x", "csrf_token": token}
        ).status_code
        for i in range(11)
    ]
    assert statuses == [401] * 10 + [429]
    # Another address still gets to try.
    other = browser.client.post(
        "/login",
        data={"username": "nobody", "password": "x", "csrf_token": token},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert other.status_code == 401


def test_the_public_tip_form_is_limited_per_address(make_app, settings) -> None:
    limited = _limited(make_app, settings)
    browser = PageClient(limited.test_client())
    token = csrf_token(browser.get("/tip").get_data(as_text=True))
    statuses = [
        browser.client.post("/tip", data={"narrative": f"tip {i}", "csrf_token": token}).status_code
        for i in range(11)
    ]
    assert statuses[:10] == [statuses[0]] * 10 and statuses[0] < 400, statuses
    assert statuses[10] == 429
