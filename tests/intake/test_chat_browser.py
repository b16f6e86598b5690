"""Live chat in Chromium (issue 18): a tipster and an operator talk both ways, the tipster
ends the chat and the reference and passphrase open the follow-up page; with script off
the tipster can still write (form posts, refresh)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.test_browser import click_and_wait, log_in
from workflows.models import Case

pytestmark = pytest.mark.browser


def test_a_tipster_and_an_operator_chat_and_the_transcript_lands_on_a_case(
    app, browser_page, person
) -> None:
    tipster = browser_page()
    tipster.goto("/chat")
    tipster.get_by_label("Your message").fill("My boss took my passport and I cannot leave")
    click_and_wait(tipster, tipster.get_by_role("button", name="Start the chat"))
    assert "number 1 in line" in tipster.locator("#chat-status").inner_text()

    desk = browser_page()
    log_in(desk, person("operator").username)
    assert desk.title().startswith("(1) ")  # the count in the title
    desk.locator("#chat-line-link").click()
    click_and_wait(desk, desk.get_by_role("button", name=re.compile(r"Take chat #\d+")))
    assert "My boss took my passport" in desk.locator("#messages").inner_text()
    desk.get_by_label("Write to the tipster").fill("You are safe to talk here. Where are you now?")
    click_and_wait(desk, desk.locator("#send"))

    # The tipster's page shows it without a reload (chat.js polls).
    tipster.locator("#messages li", has_text="Where are you now?").wait_for(timeout=20000)
    assert "An advocate is with you" in tipster.locator("#chat-status").inner_text()
    tipster.get_by_label("Message").fill("At the restaurant on Pine Street")
    click_and_wait(tipster, tipster.locator("#chat-send"))
    desk.reload()
    assert "At the restaurant on Pine Street" in desk.locator("#messages").inner_text()
    seqs = tipster.locator("#messages li").evaluate_all("n => n.map(e => e.dataset.seq)")
    assert len(seqs) == len(set(seqs))  # nothing shown twice

    click_and_wait(tipster, tipster.locator("#chat-end"))
    reference = tipster.locator("#reference").inner_text()
    passphrase = tipster.locator("#passphrase").inner_text()
    tipster.goto("/follow-up")
    tipster.get_by_label("Reference").fill(reference)
    tipster.get_by_label("Passphrase").fill(passphrase)
    click_and_wait(tipster, tipster.get_by_role("button", name="Open"))
    assert reference in tipster.content()

    with app.extensions["runtime"].session() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        transcript = case.signals[0].narrative
    assert "Tipster: My boss took my passport" in transcript
    assert "Advocate: You are safe to talk here." in transcript
    assert "Tipster: At the restaurant on Pine Street" in transcript


def test_with_script_off_the_tipster_can_still_write(app, chromium, live_server) -> None:
    context = chromium.new_context(base_url=live_server, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/chat?lang=es")
        page.get_by_label("Su mensaje").fill("Necesito ayuda")
        with page.expect_navigation():
            page.get_by_role("button", name="Comenzar el chat").click()
        page.get_by_label("Mensaje", exact=True).fill("Estoy en Houston")
        with page.expect_navigation():
            page.get_by_role("button", name="Enviar").click()
        thread = page.locator("#messages").inner_text()
        assert "Necesito ayuda" in thread and "Estoy en Houston" in thread
        with page.expect_navigation():
            page.locator("#chat-refresh").click()
        assert page.locator("#messages li").count() == 2
    finally:
        context.close()
