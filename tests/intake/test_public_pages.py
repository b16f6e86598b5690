"""The public pages: tip form in English and Spanish, the reference and passphrase shown
once, the follow-up thread, hotline numbers, quick exit and published statistics."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from intake.models import Signal, TipMessage
from workflows.models import Case


def _secret(page: str, name: str) -> str:
    found = re.search(rf'id="{name}">([^<]+)<', page)
    assert found, f"no {name} on the page"
    return found.group(1)


def submit_tip(pages, narrative: str, lang: str = "en", **extra: str):
    return pages.submit(
        f"/tip?lang={lang}", "/tip", {"narrative": narrative, "lang": lang, "anonymous": "on",
                                      **extra},
    )


@pytest.mark.parametrize("url", ["/", "/tip", "/follow-up", "/statistics", "/tip?lang=es"])
def test_public_pages_show_the_hotline_numbers_and_a_quick_exit(pages, url) -> None:
    page = pages.get(url).get_data(as_text=True)
    assert "1-888-373-7888" in page and "233733" in page
    assert 'id="quick-exit"' in page and "quick-exit.js" in page
    assert "<script>" not in page  # no inline script (strict CSP)
    assert "style=" not in page


def test_spanish_tip_form_speaks_spanish(pages) -> None:
    page = pages.get("/tip?lang=es").get_data(as_text=True)
    assert '<html lang="es">' in page
    assert "Salida rápida" in page and "¿Qué pasó?" in page


def test_a_tip_shows_reference_and_passphrase_once_and_they_open_the_thread(
    pages, db_session
) -> None:
    answer = submit_tip(pages, "Trabajadores encerrados de noche", lang="es", location="Elm St")
    assert answer.status_code == 201
    assert answer.headers["Cache-Control"] == "no-store"
    page = answer.get_data(as_text=True)
    reference, passphrase = _secret(page, "reference"), _secret(page, "passphrase")
    assert "Anótelos ahora" in page
    case = db_session.scalar(select(Case).where(Case.reference == reference))
    signal = case.signals[0]
    assert signal.language == "es" and signal.anonymous and signal.channel == "web"
    assert signal.narrative == "Trabajadores encerrados de noche"
    # The follow-up page with both shows the thread; adding information joins it.
    opened = pages.submit(
        "/follow-up?lang=es", "/follow-up",
        {"reference": reference, "passphrase": passphrase, "lang": "es"},
    )
    assert opened.status_code == 200 and "recibida" in opened.get_data(as_text=True)
    added = pages.submit(
        "/follow-up", "/follow-up/messages",
        {"reference": reference, "passphrase": passphrase, "body": "Son seis personas"},
    )
    assert added.status_code == 201
    assert "Son seis personas" in added.get_data(as_text=True)
    assert added.headers["Cache-Control"] == "no-store"


def test_a_wrong_passphrase_and_an_unknown_reference_answer_alike(pages) -> None:
    page = submit_tip(pages, "Workers locked in").get_data(as_text=True)
    reference = _secret(page, "reference")
    wrong = pages.submit("/follow-up", "/follow-up", {"reference": reference, "passphrase": "x"})
    unknown = pages.submit(
        "/follow-up", "/follow-up", {"reference": "HT-2026-999999", "passphrase": "x"}
    )
    assert wrong.status_code == unknown.status_code == 404
    assert "No tip matches" in wrong.get_data(as_text=True)
    assert "No tip matches" in unknown.get_data(as_text=True)


def test_an_empty_tip_is_refused_naming_the_field_and_stores_nothing(pages, db_session) -> None:
    answer = submit_tip(pages, "   ")
    assert answer.status_code == 422
    assert 'id="narrative-error"' in answer.get_data(as_text=True)
    assert db_session.scalar(select(func.count()).select_from(Signal)) == 0


def test_a_bad_phone_number_is_refused_beside_its_field(pages, db_session) -> None:
    answer = submit_tip(pages, "Workers locked in", phone="not a phone")
    assert answer.status_code == 422
    assert "phone number" in answer.get_data(as_text=True)
    assert db_session.scalar(select(func.count()).select_from(Case)) == 0


def test_tip_text_is_escaped_in_the_thread(pages) -> None:
    page = submit_tip(pages, "x").get_data(as_text=True)
    reference, passphrase = _secret(page, "reference"), _secret(page, "passphrase")
    added = pages.submit(
        "/follow-up", "/follow-up/messages",
        {"reference": reference, "passphrase": passphrase, "body": "<script>alert(1)</script>"},
    ).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in added
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in added


def test_a_hotline_reply_reaches_the_follow_up_page(app, pages, logged_in, db_session) -> None:
    page = submit_tip(pages, "Workers locked in").get_data(as_text=True)
    reference, passphrase = _secret(page, "reference"), _secret(page, "passphrase")
    case = db_session.scalar(select(Case).where(Case.reference == reference))
    pages.submit(
        "/follow-up", "/follow-up/messages",
        {"reference": reference, "passphrase": passphrase, "body": "Are you there?"},
    )
    operator = logged_in("operator")
    waiting = operator.get("/operator/").get_data(as_text=True)
    assert waiting.index(f"/cases/{case.id}") < waiting.index("Assigned to me")
    sent = operator.submit(f"/cases/{case.id}", f"/cases/{case.id}/reply", {"body": "Thank you"})
    assert sent.status_code == 303
    thread = pages.submit(
        "/follow-up", "/follow-up", {"reference": reference, "passphrase": passphrase}
    ).get_data(as_text=True)
    assert "Thank you" in thread and "Hotline" in thread
    assert f"/cases/{case.id}" not in operator.get("/operator/").get_data(as_text=True)
    db_session.expire_all()
    assert db_session.scalar(
        select(func.count()).select_from(TipMessage).where(TipMessage.direction == "out")
    ) == 1
