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
    session_data = {"user_id": 1, "_permanent": True, "epoch": 0, "login_at": int(time.time())}
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


# --- issue 11 item 13: revocation, absolute lifetime, no staff names for tipsters ------


def _session_cookie(client) -> str:  # type: ignore[no-untyped-def]
    cookie = client.get_cookie("hotline_session")
    assert cookie is not None
    return cookie.value  # type: ignore[no-any-return]


def test_a_cookie_replayed_after_logout_opens_nothing(app, make_actor) -> None:
    browser, _ = _login(app, make_actor)
    assert browser.get("/operator/").status_code == 200
    captured = _session_cookie(browser.client)
    other_device = PageClient(app.test_client())  # the same user, logged in elsewhere
    other_device.login(browser_user(app, captured))
    browser.submit("/operator/", "/logout", {})
    thief = app.test_client()
    thief.set_cookie("hotline_session", captured)
    answer = thief.get("/operator/")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login")
    # Logout ends every session of that user (the epoch moved on), the other device too.
    assert other_device.get("/operator/").status_code == 302
    # Logging in again works, with a fresh cookie.
    fresh = PageClient(app.test_client())
    assert fresh.login(browser_user(app, captured)).status_code == 302
    assert fresh.get("/operator/").status_code == 200


def browser_user(app, cookie: str) -> str:  # type: ignore[no-untyped-def]
    """The user name behind a session cookie (read as the server would)."""
    from workflows.models import User

    data = app.session_interface.get_signing_serializer(app).loads(cookie)
    with app.extensions["runtime"].session() as db:
        return db.get(User, data["user_id"]).username  # type: ignore[no-any-return]


def test_a_session_ends_twelve_hours_after_login_however_active(app, make_actor) -> None:
    browser, _ = _login(app, make_actor)
    serializer = app.session_interface.get_signing_serializer(app)
    data = serializer.loads(_session_cookie(browser.client))
    for hours, alive in ((11.9, True), (12.1, False)):
        # Freshly signed (so the idle limit is met), but logged in ``hours`` ago.
        cookie = serializer.dumps({**data, "login_at": int(time.time() - hours * 3600)})
        client = app.test_client()
        client.set_cookie("hotline_session", cookie)
        answer = client.get("/operator/")
        assert (answer.status_code == 200) is alive, (hours, answer.status_code)
    # A cookie without a login time (made before this rule) is refused too.
    client = app.test_client()
    client.set_cookie("hotline_session", serializer.dumps({k: v for k, v in data.items()
                                                           if k != "login_at"}))
    assert client.get("/operator/").status_code == 302


def test_tipsters_never_see_staff_user_names(app, client, make_actor) -> None:
    """The follow-up thread (API and page) names the hotline, never who answered."""
    operator = make_actor("operator", password=PASSWORD)
    tip = client.post("/api/v1/tips", json={"narrative": "they keep our passports"}).get_json()
    reference, passphrase = tip["reference"], tip["passphrase"]
    staff = PageClient(app.test_client())
    staff.login(operator.username)
    from workflows.cases import find_by_reference

    with app.extensions["runtime"].session() as db:
        case_id = find_by_reference(db, reference).id
    answer = staff.submit(f"/cases/{case_id}", f"/cases/{case_id}/reply",
                          {"body": "We read your message; call us when safe."})
    assert answer.status_code in (200, 302, 303), answer.status_code
    thread = client.get(f"/api/v1/tips/{reference}",
                        headers={"X-Tip-Passphrase": passphrase})
    assert thread.status_code == 200, thread.get_json()
    body = thread.get_data(as_text=True)
    assert "We read your message" in body
    assert operator.username not in body
    assert {m["author"] for m in thread.get_json()["messages"]} <= {"tipster", "hotline"}
    page = PageClient(app.test_client())
    shown = page.submit("/follow-up", "/follow-up",
                        {"reference": reference, "passphrase": passphrase})
    text = shown.get_data(as_text=True)
    assert "We read your message" in text and operator.username not in text
