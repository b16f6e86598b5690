"""Public pages: the anonymous tip form (English, Spanish), the one-time reference and
passphrase, and the follow-up thread. No IP address or user agent is stored.

Pages that show a passphrase are answers to a POST and say ``Cache-Control: no-store``,
so neither the browser's history nor a shared cache can show it again.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from config.database import db_session
from config.security import open_tip_throttled
from intake import schemas, services
from intake import statistics as stats
from intake.forms import FormErrors, load, text_or_none
from intake.public_text import HOTLINE_PHONE, HOTLINE_TEXT, STATUS_WORDS, TEXT, pick_language
from workflows.db import transaction
from workflows.errors import NotFound

bp = Blueprint("public_pages", __name__, template_folder="templates")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@bp.context_processor
def _words() -> dict[str, Any]:
    lang = pick_language(request.values.get("lang"))
    return {
        "lang": lang,
        "t": TEXT[lang],
        "other_lang": "es" if lang == "en" else "en",
        "hotline_phone": HOTLINE_PHONE,
        "hotline_text": HOTLINE_TEXT,
        "public": True,
    }


@bp.get("/")
def home() -> Any:
    return render_template("public/home.html")


@bp.get("/tip")
def tip_form() -> Any:
    return render_template("public/tip_form.html", form={"anonymous": "on"}, errors={})


def _tip_from_form(form: Any, lang: str) -> dict[str, Any]:
    """The form as the JSON body ``POST /api/v1/tips`` takes."""
    narrative = form.get("narrative") or ""
    data: dict[str, Any] = {
        "narrative": narrative if narrative.strip() else "",
        "location": text_or_none(form, "location"),
        "anonymous": form.get("anonymous") == "on",
        "language": lang,
    }
    contact = {"phone": text_or_none(form, "phone"), "email": text_or_none(form, "email")}
    if any(contact.values()):
        data["contact"] = contact
    return data


@bp.post("/tip")
def tip_submit() -> Any:
    lang = pick_language(request.form.get("lang"))
    try:
        data = load(schemas.TipIn(), _tip_from_form(request.form, lang))
    except FormErrors as exc:
        return (
            render_template("public/tip_form.html", form=request.form, errors=exc.errors),
            422,
        )
    session = db_session()
    with transaction(session):
        tip = services.submit_tip(session, data)
    # Committed above: only now does the tipster see a reference.
    page = render_template(
        "public/tip_received.html", reference=tip.case.reference, passphrase=tip.passphrase
    )
    return page, 201, NO_STORE


@bp.get("/follow-up")
def follow_up() -> Any:
    return render_template("public/follow_up.html", case=None, error=None, reference="")


def _thread(reference: str, passphrase: str, status: int = 200, note: str | None = None) -> Any:
    session = db_session()
    try:
        case = open_tip_throttled(session, reference, passphrase)
    except NotFound:
        lang = pick_language(request.values.get("lang"))
        page = render_template(
            "public/follow_up.html", case=None, error=TEXT[lang]["not_found"], reference=reference
        )
        return page, 404, NO_STORE
    lang = pick_language(request.values.get("lang"))
    page = render_template(
        "public/follow_up.html",
        case=case,
        error=None,
        reference=case.reference,
        passphrase=passphrase,
        status_word=STATUS_WORDS[lang][services.public_status(case)],
        messages=services.tip_messages(session, case),
        note=note,
        errors={},
    )
    return page, status, NO_STORE


@bp.post("/follow-up")
def follow_up_open() -> Any:
    reference = (request.form.get("reference") or "").strip()[:32]
    passphrase = (request.form.get("passphrase") or "")[:200]
    return _thread(reference, passphrase)


@bp.post("/follow-up/messages")
def follow_up_add() -> Any:
    reference = (request.form.get("reference") or "").strip()[:32]
    passphrase = (request.form.get("passphrase") or "")[:200]
    lang = pick_language(request.form.get("lang"))
    session = db_session()
    try:
        data = load(schemas.TipMessageIn(), {"body": request.form.get("body") or ""})
    except FormErrors:
        return _thread(reference, passphrase, status=422)
    with transaction(session):
        try:
            case = open_tip_throttled(session, reference, passphrase)
        except NotFound:
            case = None
        else:
            services.add_tip_message(session, case, data["body"], direction="in", author="tipster")
    if case is None:
        return _thread(reference, passphrase)
    return _thread(reference, passphrase, status=201, note=TEXT[lang]["added"])


@bp.get("/statistics")
def statistics() -> Any:
    figures = stats.published(db_session())
    return render_template("public/statistics.html", figures=figures, floor=stats.SUPPRESS_BELOW)


def resend_tip_form(message: str) -> Any:
    """After a refused CSRF token, the tip form again with what was typed, not an error
    page: a tipster must never lose a tip because a cookie expired."""
    lang = pick_language(request.form.get("lang"))
    form = {k: v for k, v in request.form.items() if k != "csrf_token"}
    errors = {"_form": TEXT[lang]["resend"]}
    return render_template("public/tip_form.html", form=form, errors=errors), 400
