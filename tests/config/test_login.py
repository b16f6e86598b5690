"""Logging in and out: argon2id passwords, a lock-out after repeated failures, each role's
start page, and sessions that end."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.page_clients import PASSWORD, PageClient
from workflows.accounts import MAX_FAILED_LOGINS
from workflows.db import utcnow
from workflows.logins import lockout_for
from workflows.models import LoginFailure, User

START = {
    "operator": "/operator/",
    "supervisor": "/supervisor/",
    "agency": "/agency/",
    "admin": "/admin/",
}


@pytest.mark.parametrize("role", sorted(START))
def test_each_role_lands_on_its_own_start_page(pages, person, role) -> None:
    actor = person(role, "FBI" if role == "agency" else None)
    answer = pages.login(actor.username)
    assert answer.status_code == 302
    assert answer.headers["Location"] == START[role]
    assert pages.get(START[role]).status_code == 200


def test_password_is_stored_as_argon2id(person, db_session) -> None:
    actor = person("operator")
    stored = db_session.scalar(select(User.password_hash).where(User.username == actor.username))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_wrong_password_and_unknown_user_answer_alike(pages, person) -> None:
    actor = person("operator")
    wrong = pages.login(actor.username, "not the password at all")
    unknown = pages.login("nobody-here", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong user name or password" in wrong.get_data(as_text=True)
    assert pages.get("/operator/").status_code == 302  # still not logged in


def _login_from(app, username: str, password: str, address: str):  # type: ignore[no-untyped-def]
    client = PageClient(app.test_client())
    client.client.environ_base["REMOTE_ADDR"] = address
    return client.login(username, password)


def test_repeated_failures_lock_the_pair_even_for_the_right_password(
    app, person, db_session
) -> None:
    actor = person("supervisor")
    for _ in range(MAX_FAILED_LOGINS):
        assert _login_from(app, actor.username, "guess guess", "203.0.113.9").status_code == 401
    assert _login_from(app, actor.username, PASSWORD, "203.0.113.9").status_code == 401
    row = db_session.get(LoginFailure, (actor.username, "203.0.113.9"))
    assert row is not None and row.locked_until is not None
    # Once the lock-out has passed, the right password works again and clears the count.
    row.locked_until = utcnow() - timedelta(seconds=1)
    db_session.commit()
    assert _login_from(app, actor.username, PASSWORD, "203.0.113.9").status_code == 302
    db_session.expire_all()
    assert db_session.get(LoginFailure, (actor.username, "203.0.113.9")) is None


def test_knowing_a_user_name_does_not_lock_the_desk_out(app, person, db_session) -> None:
    """Issue 11 item 13: the lock-out is per (user, address), not per account."""
    actor = person("operator")
    for _ in range(MAX_FAILED_LOGINS * 3):  # an attacker hammers the name from outside
        _login_from(app, actor.username, "guess guess", "198.51.100.66")
    assert _login_from(app, actor.username, PASSWORD, "198.51.100.66").status_code == 401
    # The operator at the desk still gets in.
    assert _login_from(app, actor.username, PASSWORD, "10.0.0.21").status_code == 302


def test_the_lockout_backs_off(app, person, db_session) -> None:
    actor = person("operator")
    lengths = []
    for _ in range(MAX_FAILED_LOGINS + 3):
        _login_from(app, actor.username, "guess guess", "192.0.2.7")
        row = db_session.get(LoginFailure, (actor.username, "192.0.2.7"))
        db_session.refresh(row)
        if row.locked_until is not None:
            left = row.locked_until.replace(tzinfo=None) - utcnow().replace(tzinfo=None)
            lengths.append(round(left.total_seconds() / 60))
            row.locked_until = utcnow() - timedelta(seconds=1)  # let the next guess count
            db_session.commit()
    assert lengths == [1, 2, 4, 8]
    assert lockout_for(MAX_FAILED_LOGINS + 20) - utcnow() <= timedelta(hours=1)


def test_unknown_names_count_too_but_say_nothing(app, db_session) -> None:
    for _ in range(MAX_FAILED_LOGINS):
        assert _login_from(app, "nobody-at-all", "x", "192.0.2.8").status_code == 401
    assert db_session.get(LoginFailure, ("nobody-at-all", "192.0.2.8")).locked_until is not None


def test_a_success_resets_the_failure_count(app, person, db_session) -> None:
    actor = person("operator")
    for _ in range(MAX_FAILED_LOGINS - 1):
        _login_from(app, actor.username, "guess guess", "192.0.2.9")
    assert _login_from(app, actor.username, PASSWORD, "192.0.2.9").status_code == 302
    assert db_session.get(LoginFailure, (actor.username, "192.0.2.9")) is None


def test_logout_ends_the_session(logged_in) -> None:
    client = logged_in("operator")
    assert client.get("/operator/").status_code == 200
    answer = client.submit("/operator/", "/logout", {})
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"
    after = client.get("/operator/")
    assert after.status_code == 302 and after.headers["Location"].startswith("/login")


def test_pages_send_anonymous_visitors_to_login_and_back(pages, person) -> None:
    answer = pages.get("/supervisor/failed")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/login?next=/supervisor/failed"
    actor = person("supervisor")
    page = pages.get("/login?next=/supervisor/failed").get_data(as_text=True)
    assert 'value="/supervisor/failed"' in page
    back = pages.submit(
        "/login", "/login",
        {"username": actor.username, "password": PASSWORD, "next": "/supervisor/failed"},
    )
    assert back.headers["Location"] == "/supervisor/failed"


# Each one a browser would turn into another host (or a script), as given or once decoded.
OFF_SITE = [
    "//evil.example/x",
    "https://evil.example/",
    "/\\evil.example",
    "/%09/evil.example",  # issue 11: a tab the browser drops, leaving //evil.example
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/%0a/evil.example",
    "/%5C/evil.example",
    "/%5c%5cevil.example",
    "/%2F/evil.example",
    "%2F%2Fevil.example",
    "/%252F/evil.example",  # encoded twice
    "/%25252F/evil.example",
    "/%2509/evil.example",
    "javascript:alert(1)",
    " //evil.example",
    "/\x00/evil.example",
    "/\u0085/evil.example",
    "https:/evil.example",
    "/%2525252F/evil.example",  # encoded four times
    "/" + "a" * 5000,
]


@pytest.mark.parametrize("target", OFF_SITE)
def test_login_never_redirects_off_site(pages, person, target) -> None:
    actor = person("operator")
    answer = pages.submit(
        "/login", "/login", {"username": actor.username, "password": PASSWORD, "next": target}
    )
    assert answer.headers["Location"] == "/operator/"


@pytest.mark.parametrize("target", ["/%09/evil.example", "//evil.example", "/%5C/evil"])
def test_the_login_page_does_not_carry_an_off_site_target(pages, target) -> None:
    page = pages.get("/login", query_string={"next": target}).get_data(as_text=True)
    assert 'name="next" value=""' in page


@pytest.mark.parametrize(
    "target", ["/cases/1", "/supervisor/?state=screening&late=1", "/cases?q=a%20b", "/x?n=%2F%2Fy"]
)
def test_login_returns_to_a_path_on_this_site(pages, person, target) -> None:
    actor = person("operator")
    answer = pages.submit(
        "/login", "/login", {"username": actor.username, "password": PASSWORD, "next": target}
    )
    assert answer.headers["Location"] == target


def test_session_cookie_is_httponly_and_samesite(pages, person) -> None:
    actor = person("operator")
    answer = pages.login(actor.username)
    cookies = answer.headers.getlist("Set-Cookie")
    cookie = next(c for c in cookies if c.startswith("hotline_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_secure_cookie_when_configured(make_app, person) -> None:
    app = make_app(session_cookie_secure=True)
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_a_deactivated_user_loses_the_session(logged_in, db_session) -> None:
    client = logged_in("operator")
    user = db_session.scalar(select(User).where(User.username == client.actor.username))
    user.active = False
    db_session.commit()
    assert client.get("/operator/").status_code == 302
