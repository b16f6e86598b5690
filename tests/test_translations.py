"""Translations (issue 12): the UI's words are gettext msgids with a Spanish catalog in
translations/; a missing, empty or fuzzy Spanish string fails here, and a Spanish tipster
reads the pages and the texts in Spanish."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from babel import support
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from config.errors import error_answer
from config.i18n import TRANSLATIONS, compile_catalogs, text_in
from config.settings import ROOT
from referrals.notifications import TIPSTER_WORDS
from tests.intake.test_public_pages import submit_tip
from tests.intake.test_sms import Texter

SPANISH_PO = TRANSLATIONS / "es" / "LC_MESSAGES" / "messages.po"
# As `make translations` extracts (the mapping is pyproject.toml's [tool.babel]).
METHODS = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
FIELD = re.compile(r"\{[a-z_]*\}|%\([a-z_]+\)s")


def _spanish() -> dict[str, tuple[str, bool]]:
    """msgid → (msgstr, fuzzy); a plural's forms joined, so one empty form is caught."""
    with SPANISH_PO.open("rb") as po:
        catalog = read_po(po)
    found = {}
    for m in catalog:
        if not m.id:
            continue
        ids = [m.id] if isinstance(m.id, str) else list(m.id)
        forms = [m.string] if isinstance(m.string, str) else list(m.string)
        text = "" if not all(f.strip() for f in forms) else " | ".join(forms)
        for msgid in ids:
            found[msgid] = (text, m.fuzzy)
    return found


def test_every_msgid_has_a_spanish_translation_that_is_not_fuzzy() -> None:
    catalog = _spanish()
    assert len(catalog) > 50
    untranslated = sorted(msgid for msgid, (text, fuzzy) in catalog.items() if not text.strip())
    fuzzy = sorted(msgid for msgid, (_text, is_fuzzy) in catalog.items() if is_fuzzy)
    assert untranslated == [], "no Spanish for these (translations/es/…/messages.po)"
    assert fuzzy == [], "fuzzy Spanish is not shown: check it and drop the fuzzy flag"
    # The fields the code fills in ({ref}, {place}, …) survive the translation.
    broken = [m for m, (text, _f) in catalog.items() if any(
        set(FIELD.findall(m)) != set(FIELD.findall(form)) for form in text.split(" | "))]
    assert broken == []


def test_every_string_marked_in_the_code_is_in_the_spanish_catalog() -> None:
    """A new ``_()``/``_l()``/``{% trans %}`` without `make translations` fails here."""
    marked = set()
    for folder in ("intake", "referrals", "config"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / folder, METHODS, keywords=KEYWORDS
        ):
            marked.update([message] if isinstance(message, str) else message)
    missing = sorted(marked - set(_spanish()))
    assert missing == [], "run `make translations` and translate these"


def test_a_spanish_tipster_reads_the_public_pages_in_spanish(pages) -> None:
    home = pages.get("/?lang=es").get_data(as_text=True)
    assert "Denuncie la trata de personas" in home and "Salida rápida" in home
    assert "Report human trafficking" not in home
    form = pages.get("/tip?lang=es").get_data(as_text=True)
    assert "¿Cómo supo de esta línea? (opcional)" in form and "Pacífico (Los Ángeles)" in form
    chat = pages.get("/chat?lang=es").get_data(as_text=True)
    assert "Chatear con una persona de apoyo" in chat
    # The tipster's choice, not the browser's guess: no ``lang`` is English.
    english = pages.get("/", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert "Report human trafficking" in english and '<html lang="en">' in english


def test_error_pages_speak_the_tipsters_language(pages) -> None:
    chosen = pages.get("/no-such-page?lang=es")
    assert chosen.status_code == 404
    page = chosen.get_data(as_text=True)
    assert "No encontrado" in page and "Volver a la página de inicio" in page
    assert "Código de error" in page and '<html lang="es">' in page
    assert "No encontramos esa página." in page and "requested URL" not in page
    asked = pages.get("/no-such-page", headers={"Accept-Language": "es-MX,es;q=0.9"})
    assert "No encontrado" in asked.get_data(as_text=True)
    english = pages.get("/no-such-page").get_data(as_text=True)
    assert "Not found" in english and "Back to the start page" in english


def test_sms_texts_to_a_spanish_tipster_are_spanish(client) -> None:
    """The conversation's prompts (config/intake.yaml) and the worker's texts (catalog,
    no request: tests/referrals/test_tipster_language.py sends one end to end)."""
    welcome = Texter(client, number="+12025550144").send("Hola, necesito ayuda")
    assert welcome is not None and "contraseña" in welcome
    footer = text_in("es", TIPSTER_WORDS["footer"]).format(ref="HT-1")
    assert footer == "(Ref HT-1. Responda STOP para no recibir más mensajes.)"
    assert text_in("en", TIPSTER_WORDS["footer"]) == TIPSTER_WORDS["footer"]
    assert text_in("xx", TIPSTER_WORDS["replied"]) == "The hotline has replied to your tip."


def test_a_missing_or_stale_catalog_is_compiled_from_its_po(tmp_path: Path) -> None:
    """A clean clone has no .mo (not committed): the app compiles it at start."""
    copy = tmp_path / "translations"
    shutil.copytree(TRANSLATIONS, copy, ignore=shutil.ignore_patterns("*.mo", "*.pot"))
    mo = copy / "es" / "LC_MESSAGES" / "messages.mo"
    assert compile_catalogs(copy) == [mo]
    spanish = support.Translations.load(str(copy), ["es"])
    assert spanish.gettext("Quick exit") == "Salida rápida"
    assert compile_catalogs(copy) == []  # up to date: left alone
    po = mo.with_suffix(".po")
    os.utime(po, (mo.stat().st_mtime + 10, mo.stat().st_mtime + 10))
    assert compile_catalogs(copy) == [mo]


def test_the_statistics_and_login_pages_speak_spanish_when_asked(pages) -> None:
    stats = pages.get("/statistics?lang=es").get_data(as_text=True)
    assert "Estadísticas de la línea directa" in stats and "Ir al contenido" in stats
    csv = pages.get("/statistics/1999-01.csv?lang=es")
    assert csv.status_code == 404
    assert csv.get_data(as_text=True) == "No hay estadísticas publicadas para ese período.\n"
    login = pages.get("/login", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert "Acceso del personal" in login and "Contraseña" in login


def test_the_desk_keeps_the_staff_users_language_not_the_browsers(logged_in) -> None:
    """Staff accounts have no language yet: the desk is English whatever the browser
    asks, so a half-translated desk never mixes the two."""
    desk = logged_in("supervisor")
    page = desk.get("/supervisor/", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert ">Queues</a>" in page and "Log out" in page and "Colas" not in page


def test_a_spanish_tipster_reads_the_forms_errors_in_spanish(pages) -> None:
    answer = submit_tip(pages, "", lang="es", phone="abc", safe_start="10:00",
                        safe_end="10:00", safe_timezone="America/Chicago")
    assert answer.status_code == 422
    page = answer.get_data(as_text=True)
    assert "Revise los campos marcados abajo." in page
    assert "La longitud debe estar entre 1 y 20000 caracteres." in page
    assert "no es un número de teléfono" in page and "debe ser distinta del inicio" in page
    english = submit_tip(pages, "", phone="abc").get_data(as_text=True)
    assert "Length must be between 1 and 20000." in english and "is not a phone number" in english


def test_the_operator_desk_is_translated_when_asked_for_by_name(logged_in) -> None:
    """Desk words are msgids too: ``?lang=es`` (a choice, not a guess) shows them."""
    desk = logged_in("operator")
    page = desk.get("/operator/?lang=es").get_data(as_text=True)
    assert "Agencias que esperan mi respuesta" in page and "Registrar una llamada" in page
    assert "Nada aquí." in page and "Cerrar sesión" in page and '<html lang="es">' in page
    assert '<html lang="en">' in desk.get("/operator/").get_data(as_text=True)
    chats = desk.get("/operator/chats/?lang=es")
    assert chats.status_code == 200 and "Nadie está esperando." in chats.get_data(as_text=True)
    form = desk.get("/operator/calls/new?lang=es").get_data(as_text=True)
    assert "Durante la llamada" in form and "Guardar el registro de la llamada" in form
    assert ">Sí</option>" in form and "Desconocido" in form
    assert "Alguien está en peligro inminente" in form and "Es seguro llamar" in form


def test_a_spanish_too_many_requests_page_says_when_in_spanish(app) -> None:
    """The page's wait is the header's number, in the tipster's words."""
    with app.test_request_context("/follow-up?lang=es", headers={"Accept": "text/html"}):
        answer = error_answer(429, "too many tries for this reference", retry_after=300)
    page = answer.get_data(as_text=True)
    assert answer.headers["Retry-After"] == "300"
    assert "Demasiados intentos. Inténtelo de nuevo en 5 minutos." in page
    with app.test_request_context("/follow-up", headers={"Accept": "text/html"}):
        english = error_answer(429, "too many tries for this reference", retry_after=1)
    assert "too many tries for this reference; try again in 1 second" in english.get_data(
        as_text=True)
