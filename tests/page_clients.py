"""Page-test fixtures (a plugin of tests/conftest.py): people who log in with a password,
a form helper, and a real browser.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
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


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def live_server(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The app served by a real HTTP server on a free port, in a thread; yields its URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (no browser download); skips without it,
    except with CI=true, where the browser tests must run."""
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: apt-get install chromium (or run `make test`)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " — CI=true requires the browser tests")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium, live_server, output_dir, request) -> Iterator[Callable[[], Any]]:  # type: ignore[no-untyped-def]
    """New pages, each in its own context (its own cookies: one person each).

    Every console error (a CSP violation, a script error) fails the test, and each page
    is saved as a screenshot of where it ended, under test-output/, when the test ends.
    """
    contexts: list[Any] = []
    pages: list[Any] = []
    errors: list[str] = []

    def _new() -> Any:
        context = chromium.new_context(base_url=live_server)
        context.set_default_timeout(15000)
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        pages.append(page)
        return page

    _new.allowed_errors = []  # type: ignore[attr-defined]  # texts a test expects
    yield _new
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    for number, page in enumerate(pages, start=1):
        suffix = "" if len(pages) == 1 else f"-{number}"
        page.screenshot(path=str(output_dir / f"{name}{suffix}.png"), full_page=True)
    for context in contexts:
        context.close()
    allowed = _new.allowed_errors  # type: ignore[attr-defined]
    unexpected = [e for e in errors if not any(a in e for a in allowed)]
    assert not unexpected, f"the browser reported errors: {unexpected}"
