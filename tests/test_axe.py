"""axe-core on every page, in the real browser: zero violations (every rule axe runs by
default: WCAG 2.x A/AA and best practices such as "all content inside landmarks").

axe-core comes pinned with the ``axe-playwright-python`` package (its ``axe.min.js``) and
is injected through Playwright's ``page.evaluate``, which the DevTools protocol runs
outside the page's Content-Security-Policy: the production CSP stays exactly as served
(no test-only relaxation), and any CSP violation still fails the test as a console error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import axe_playwright_python
import pytest
from sqlalchemy import select

from tests.flows import screened_case, sent_referral
from tests.test_browser import log_in
from workflows.models import Referral

pytestmark = pytest.mark.browser

AXE_SOURCE = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()


def violations(page: Any) -> list[str]:
    """axe's violations on the page as loaded, one line each (rule, impact, where)."""
    page.evaluate(AXE_SOURCE)
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(node["target"]) for node in v["nodes"][:5])
        for v in result["violations"]
    ]


def audit(page: Any, urls: list[str]) -> dict[str, list[str]]:
    found = {}
    for url in urls:
        answer = page.goto(url)
        assert answer is not None and answer.status < 500, url
        page.wait_for_load_state("load")
        problems = violations(page)
        if problems:
            found[url] = problems
    return found


def test_public_pages_have_no_axe_violations(app, browser_page) -> None:
    browser_page.allowed_errors.append("status of 404")  # the not-found pages, on purpose
    page = browser_page()
    urls = ["/", "/?lang=es", "/tip", "/tip?lang=es", "/follow-up", "/follow-up?lang=es",
            "/statistics", "/login", "/no-such-page"]
    found = audit(page, urls)
    # The pages a tipster reaches by submitting: the one-time reference, a wrong passphrase.
    page.goto("/tip")
    page.get_by_label("What happened?").fill("Workers are locked in at night at the plant")
    with page.expect_navigation():
        page.locator("form button[type=submit]").last.click()
    if problems := violations(page):
        found["tip submitted"] = problems
    page.goto("/follow-up")
    page.get_by_label("Reference").fill("HT-2026-000000")
    page.get_by_label("Passphrase").fill("not the passphrase")
    with page.expect_navigation():
        page.locator("main form button[type=submit]").last.click()
    if problems := violations(page):
        found["follow-up refused"] = problems
    assert not found, found


def test_staff_and_agency_pages_have_no_axe_violations(app, browser_page, person) -> None:
    case_id = screened_case(app)
    referral = sent_referral(app)
    with app.extensions["runtime"].session() as session:
        referral_id = session.scalar(select(Referral.id).where(Referral.id == referral.id))
    found: dict[str, list[str]] = {}
    for role, agency, urls in [
        ("operator", None, ["/operator/", "/operator/calls/new", f"/cases/{case_id}",
                            f"/cases/{case_id}/screening"]),
        ("supervisor", None, ["/supervisor/", "/supervisor/failed", "/supervisor/dashboard",
                              f"/cases/{referral.case_id}"]),
        ("admin", None, ["/admin/", "/supervisor/dashboard"]),
        ("agency", "FBI", ["/agency/", f"/agency/referrals/{referral_id}"]),
    ]:
        page = browser_page()
        log_in(page, person(role, agency).username)
        found.update({f"{role} {url}": v for url, v in audit(page, urls).items()})
    assert not found, found
