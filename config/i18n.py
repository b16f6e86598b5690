"""Translations with Flask-Babel: the gettext catalogs in translations/ and the locale of
each request.

The locale is the language the person chose, never the browser's guess alone: a page
pins it (``g.locale``, the public pages from their ``lang``), else the request's
``lang``, else for logged-in staff their account's language if it has one (today none
does: English), else what the browser asks (error pages, the login page), else English.

Catalogs are compiled (``.po`` → ``.mo``) by ``make translations`` and at install; the
app also compiles a missing or stale ``.mo`` at start, so a clean clone runs its tests
without a build step."""

from __future__ import annotations

import logging
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from babel import support
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, g, has_request_context, request, session
from flask_babel import Babel, get_locale, refresh

from workflows.vocabulary import LANGUAGES

log = logging.getLogger(__name__)

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
DEFAULT_LOCALE = "en"


def select_locale() -> str:
    """The request's language (see the module docstring for the order)."""
    if not has_request_context():
        return DEFAULT_LOCALE
    pinned = g.get("locale")
    if pinned in LANGUAGES:
        return str(pinned)
    asked = (request.values.get("lang") or "")[:5].lower()
    if asked in LANGUAGES:
        return asked
    if "user_id" in session or g.get("current_user") is not None:
        # Staff: their account's language if it has one, else the desk's (English): a
        # browser's guess must not turn a half-translated desk half Spanish.
        from config.auth import current_user  # not at the top: config.auth imports intake

        chosen = getattr(current_user(), "language", None)
        return str(chosen) if chosen in LANGUAGES else DEFAULT_LOCALE
    return request.accept_languages.best_match(list(LANGUAGES), default=DEFAULT_LOCALE) or "en"


def compile_catalogs(directory: Path = TRANSLATIONS) -> list[Path]:
    """Write each ``.mo`` that is missing or older than its ``.po``; the ones written.

    Atomic (a temporary file renamed over), so gunicorn workers starting together never
    read half a catalog; a read-only install (compiled at build) is left as it is.
    """
    written = []
    for po_path in sorted(directory.glob("*/LC_MESSAGES/*.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as po:
            catalog = read_po(po, locale=po_path.parent.parent.name)
        try:
            fd, tmp = tempfile.mkstemp(dir=po_path.parent, suffix=".mo.tmp")
            with os.fdopen(fd, "wb") as out:
                write_mo(out, catalog)
            os.replace(tmp, mo_path)
        except OSError:
            log.warning("cannot write %s: run `make translations`", mo_path)
            continue
        written.append(mo_path)
    return written


def init_app(app: Flask) -> None:
    """Flask-Babel with the top-level catalogs and the tipster-first locale selector."""
    compile_catalogs()
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals["page_locale"] = page_locale  # <html lang> of desk pages


def page_locale() -> str:
    """The language this request's words are in (``<html lang>`` must say the same)."""
    locale = get_locale()
    return locale.language if locale is not None else DEFAULT_LOCALE


def pin_locale(lang: str) -> None:
    """This request speaks ``lang`` (a tipster's choice outranks the browser's guess)."""
    g.locale = lang if lang in LANGUAGES else DEFAULT_LOCALE
    refresh()  # forget a locale Flask-Babel already picked for this request


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "extract, translate later"
    """Mark ``message`` for extraction only; :func:`text_in` translates it when sent."""
    return message


@lru_cache(maxsize=8)
def _catalog(lang: str) -> support.NullTranslations:
    compile_catalogs()
    return support.Translations.load(str(TRANSLATIONS), [lang])


def text_in(lang: str, message: str) -> str:
    """``message`` in ``lang`` without a request: texts a worker sends to a tipster are in
    the tipster's language, not the (absent) browser's."""
    return _catalog(lang if lang in LANGUAGES else DEFAULT_LOCALE).gettext(message)
