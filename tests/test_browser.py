"""Real-browser walks through the pages: Playwright driving Debian's Chromium against the
app served by a real HTTP server on the test database."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.flows import sent_referral
from tests.page_clients import PASSWORD
from workflows.db import transaction
from workflows.lifecycle import fire_referral_event
from workflows.models import Case, Referral

pytestmark = pytest.mark.browser


def log_in(page, username: str) -> None:
    """Log in with the keyboard only: type, tab, type, Enter."""
    page.goto("/login")
    page.get_by_label("User name").fill(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def click_and_wait(page, locator) -> None:
    """Click a submit button and wait for the page the form leads to."""
    with page.expect_navigation():
        locator.click()


def fire_event_button(page, event: str) -> None:
    click_and_wait(page, page.locator(f"#event-{event}"))


def test_operator_call_to_supervisor_approval_to_agency_acceptance(
    app, browser_page, person, db_session, catalogs
) -> None:
    operator, supervisor, fbi = person("operator"), person("supervisor"), person("agency", "FBI")

    desk = browser_page()
    log_in(desk, operator.username)
    assert desk.url.endswith("/operator/")
    desk.get_by_role("link", name="Log a call").first.click()
    desk.get_by_label("Caller type").select_option("community_member")
    desk.get_by_label("Location").fill("Motel 6, Exit 12")
    desk.get_by_label("Narrative").fill("A girl of 16 is advertised online and driven to a motel")
    desk.get_by_label("Victim's age").fill("16")
    desk.get_by_label("Trafficking type").select_option("sex")
    desk.get_by_label("Commercial sex is involved").select_option("yes")
    desk.locator("#ind-under_18_commercial_sex").check()
    desk.locator("#ind-advertised_online").check()
    click_and_wait(desk, desk.get_by_role("button", name="Save and screen"))
    desk.wait_for_url(re.compile(r"/cases/\d+$"))
    case_id = int(desk.url.rsplit("/", 1)[1])
    assert desk.locator("#screening-level").inner_text() == "high indicators"
    assert "FBI" in desk.locator("#recommended").inner_text()
    fire_event_button(desk, "submit_for_approval")
    assert desk.locator("#case-state").inner_text() == "pending_approval"

    desk_of_supervisor = browser_page()
    log_in(desk_of_supervisor, supervisor.username)
    assert desk_of_supervisor.url.endswith("/supervisor/")
    assert desk_of_supervisor.locator("#pending-approval").inner_text() == "1"
    reference = db_session.get(Case, case_id).reference
    desk_of_supervisor.get_by_role("link", name=reference).click()
    fire_event_button(desk_of_supervisor, "approve")
    assert desk_of_supervisor.locator("#case-state").inner_text() == "referred"

    referral = db_session.scalar(select(Referral).where(Referral.case_id == case_id))
    with transaction(db_session):  # the delivery worker's step: the agency has it
        fire_referral_event(db_session, referral.id, "mark_sent", None, catalogs=catalogs)

    agency = browser_page()
    log_in(agency, fbi.username)
    assert agency.url.endswith("/agency/")
    agency.get_by_role("link", name=f"#{referral.id}").click()
    assert "advertised online" in agency.locator("#summary").inner_text()
    click_and_wait(agency, agency.locator("#answer-accept"))
    assert agency.locator("#referral-state").inner_text() == "accepted"
    db_session.expire_all()
    assert db_session.get(Referral, referral.id).state == "accepted"


def test_tipster_submits_in_spanish_and_reads_a_reply(app, browser_page, person) -> None:
    tipster = browser_page()
    tipster.goto("/")
    tipster.get_by_role("link", name="Español").click()
    tipster.get_by_role("link", name="Enviar una denuncia en línea").click()
    assert tipster.locator("html").get_attribute("lang") == "es"
    tipster.get_by_label("¿Qué pasó?").fill("Hay trabajadores encerrados de noche en la fábrica")
    tipster.get_by_label("¿Dónde? (ciudad, dirección o lugar)").fill("Calle Olmo 12")
    click_and_wait(tipster, tipster.get_by_role("button", name="Enviar la denuncia"))
    reference = tipster.locator("#reference").inner_text()
    passphrase = tipster.locator("#passphrase").inner_text()
    assert re.fullmatch(r"HT-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", reference)

    operator = browser_page()
    log_in(operator, person("operator").username)
    with app.extensions["runtime"].session() as session:
        case_id = session.scalar(select(Case.id).where(Case.reference == reference))
    operator.goto(f"/cases/{case_id}")
    assert "Hay trabajadores encerrados" in operator.locator(".narrative").first.inner_text()
    operator.get_by_label("Reply to the tipster").fill("Gracias. ¿Cuántas personas hay?")
    click_and_wait(operator, operator.get_by_role("button", name="Send reply"))

    tipster.goto("/follow-up?lang=es")
    tipster.get_by_label("Referencia").fill(reference)
    tipster.get_by_label("Frase de acceso").fill(passphrase)
    click_and_wait(tipster, tipster.get_by_role("button", name="Abrir"))
    thread = tipster.locator("#thread").inner_text()
    assert "Gracias. ¿Cuántas personas hay?" in thread and "Línea directa" in thread
    tipster.get_by_label("Agregar información").fill("Son seis personas")
    click_and_wait(tipster, tipster.get_by_role("button", name="Enviar"))
    assert "Son seis personas" in tipster.locator("#thread").inner_text()


def test_an_agency_user_cannot_open_another_agencys_referral(app, browser_page, person) -> None:
    referral = sent_referral(app)
    browser_page.allowed_errors.append("status of 404")  # the page under test is a 404
    ice = browser_page()
    log_in(ice, person("agency", "ICE").username)
    assert f"#{referral.id}" not in ice.locator("main").inner_text()
    answer = ice.goto(f"/agency/referrals/{referral.id}")
    assert answer.status == 404
    assert "Not found" in ice.locator("h1").inner_text()
    assert "A girl of 16" not in ice.content()


def test_a_script_in_a_narrative_shows_as_text(app, browser_page, person) -> None:
    narrative = '<script>window.pwned = true</script><img src=x onerror="window.pwned=true">'
    desk = browser_page()
    log_in(desk, person("operator").username)
    desk.goto("/operator/calls/new")
    desk.get_by_label("Caller type").select_option("victim")
    desk.get_by_label("Narrative").fill(narrative)
    click_and_wait(desk, desk.get_by_role("button", name="Save and screen"))
    desk.wait_for_url(re.compile(r"/cases/\d+$"))
    assert desk.locator(".narrative").first.inner_text() == narrative
    assert desk.evaluate("window.pwned === undefined")
    assert desk.locator(".narrative img").count() == 0


def test_quick_exit_leaves_and_replaces_the_page_in_history(browser_page) -> None:
    tipster = browser_page()
    tipster.route(
        "https://www.weather.gov/**",
        lambda route: route.fulfill(body="<h1>Weather</h1>", content_type="text/html"),
    )
    tipster.goto("/")
    tipster.get_by_role("link", name="Send a tip online").click()
    tipster.wait_for_url(re.compile(r"/tip"), wait_until="load")  # quick-exit.js has run
    with tipster.expect_navigation(url="https://www.weather.gov/**"):
        tipster.keyboard.press("Escape")
    tipster.go_back()
    assert "/tip" not in tipster.url  # the tip form is gone from the history


def test_the_supervisor_sees_late_items_and_the_dashboard(
    app, browser_page, person, db_session
) -> None:
    from datetime import timedelta

    from tests.flows import screened_case
    from workflows.db import utcnow

    sent_referral(app)
    late = screened_case(app)
    db_session.get(Case, late).deadline = utcnow() - timedelta(hours=3)
    db_session.commit()
    supervisor = browser_page()
    log_in(supervisor, person("supervisor").username)
    assert supervisor.locator("#late-cases").inner_text() == "1"
    first_row = supervisor.locator("#queue tbody tr").first
    assert "late" in first_row.inner_text()
    supervisor.get_by_role("link", name="Dashboard").click()
    supervisor.wait_for_url(re.compile(r"/supervisor/dashboard$"))
    assert supervisor.locator("svg").count() == 8
    box = supervisor.locator("#chart-signals svg").bounding_box()
    assert box is not None and box["width"] > 200  # drawn, styled by the CSS file
    assert supervisor.locator("#chart-signals rect.ch-operator").count() >= 1


def test_the_dashboard_takes_a_date_range_and_its_csv_link_downloads(
    app, browser_page, person, db_session
) -> None:
    from datetime import timedelta

    from workflows.db import utcnow

    referral = sent_referral(app)
    case = db_session.get(Case, referral.case_id)
    case.created_at = utcnow() - timedelta(days=200)
    db_session.commit()
    supervisor = browser_page()
    log_in(supervisor, person("supervisor").username)
    supervisor.goto("/supervisor/dashboard")
    start = (utcnow() - timedelta(days=365)).date().isoformat()
    supervisor.locator("#dashboard-range input[name=from]").fill(start)
    click_and_wait(supervisor, supervisor.locator("#dashboard-range button"))
    assert f"from={start}" in supervisor.url
    assert "Signals per week" in supervisor.content()
    assert "FBI" in supervisor.locator("#acceptance").inner_text()
    with supervisor.expect_download() as info:
        supervisor.locator("#csv-agencies").click()
    download = info.value
    assert download.suggested_filename.startswith(f"agencies-{start}-")
    lines = download.path().read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("agency,referrals") and lines[1].startswith("FBI,1,")
