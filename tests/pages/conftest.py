"""Fixtures for the page tests: people who log in with a password, and a form helper."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

PASSWORD = "correct horse battery staple"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(page: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _TOKEN.search(page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


class PageClient:
    """The Flask test client, posting forms the way a browser does (token included)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, **kwargs)

    def submit(self, page_url: str, action: str, data: dict[str, Any], **kwargs: Any) -> Any:
        """Open ``page_url``, take its token, post ``data`` to ``action``."""
        page = self.client.get(page_url)
        assert page.status_code == 200, page.status_code
        return self.client.post(
            action, data={**data, "csrf_token": csrf_token(page.get_data(as_text=True))}, **kwargs
        )

    def login(self, username: str, password: str = PASSWORD) -> Any:
        return self.submit("/login", "/login", {"username": username, "password": password})


@pytest.fixture
def pages(app) -> PageClient:  # type: ignore[no-untyped-def]
    """A fresh browser-like client (its own cookie jar)."""
    return PageClient(app.test_client())


@pytest.fixture
def person(make_actor) -> Callable[..., Any]:  # type: ignore[no-untyped-def]
    """A user who logs in with ``PASSWORD``: ``person("agency", "FBI")``."""

    def _make(role: str, agency: str | None = None) -> Any:
        return make_actor(role, agency, password=PASSWORD)

    return _make


@pytest.fixture
def logged_in(app, person) -> Callable[..., PageClient]:  # type: ignore[no-untyped-def]
    """A client logged in as a new user of the role: ``logged_in("supervisor")``."""

    def _make(role: str, agency: str | None = None) -> PageClient:
        actor = person(role, agency)
        client = PageClient(app.test_client())
        answer = client.login(actor.username)
        assert answer.status_code == 302, answer.get_data(as_text=True)
        client.actor = actor  # type: ignore[attr-defined]
        return client

    return _make
