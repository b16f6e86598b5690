"""Who may open which page: table-driven over every page and every role."""

from __future__ import annotations

import pytest

from tests.flows import screened_case

PUBLIC = ["/", "/tip", "/tip?lang=es", "/follow-up", "/statistics", "/login"]
# page -> roles that may open it (everyone else: 403, agencies 404; nobody logged in: login)
STAFF_PAGES = {
    "/operator/": {"operator", "supervisor"},
    "/operator/calls/new": {"operator", "supervisor"},
    "/supervisor/": {"supervisor"},
    "/supervisor/failed": {"supervisor"},
    "/supervisor/dashboard": {"supervisor", "admin"},
    "/agency/": {"agency"},
    "/admin/": {"admin"},
    "/cases/{case_id}": {"operator", "supervisor", "admin"},
    "/cases/{case_id}/screening": {"operator", "supervisor"},
}
ROLES = ["operator", "supervisor", "agency", "admin"]


@pytest.mark.parametrize("url", PUBLIC)
def test_public_pages_open_to_anyone(pages, url) -> None:
    assert pages.get(url).status_code == 200


def test_each_staff_page_opens_for_exactly_its_roles(app, pages, logged_in) -> None:
    case_id = screened_case(app)
    clients = {role: logged_in(role, "FBI" if role == "agency" else None) for role in ROLES}
    for template, allowed in STAFF_PAGES.items():
        url = template.format(case_id=case_id)
        anonymous = pages.get(url)
        assert anonymous.status_code == 302, url
        assert anonymous.headers["Location"].startswith("/login?next="), url
        for role, client in clients.items():
            status = client.get(url).status_code
            refused = 404 if role == "agency" else 403
            assert status == (200 if role in allowed else refused), (url, role, status)


def test_the_navigation_shows_only_what_the_role_may_open(logged_in) -> None:
    agency = logged_in("agency", "ICE").get("/agency/").get_data(as_text=True)
    assert "/supervisor/" not in agency and "/operator/" not in agency
    operator = logged_in("operator").get("/operator/").get_data(as_text=True)
    assert "/supervisor/dashboard" not in operator and "/agency/" not in operator
