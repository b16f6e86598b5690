"""Public pages: the anonymous tip form (English, Spanish), the one-time reference and
passphrase, and the follow-up thread. No IP address or user agent is stored.

Pages that show a passphrase are answers to a POST and say ``Cache-Control: no-store``,
so neither the browser's history nor a shared cache can show it again.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from flask import Blueprint, render_template, request
from flask_babel import gettext

from config.database import db_session, runtime
from config.i18n import pin_locale
from config.security import open_tip_throttled
from intake import schemas, services
from intake.forms import FormErrors, load, text_or_none
from intake.public_text import (
    HOTLINE_PHONE,
    HOTLINE_TEXT,
    STATISTICS_TABLES,
    STATUS_WORDS,
    TEXT,
    TIME_ZONES,
    pick_language,
    tipster_errors,
)
from workflows import publication
from workflows.campaigns import HEARD_FROM
from workflows.db import transaction
from workflows.errors import NotFound
from workflows.models import Case

bp = Blueprint("public_pages", __name__, template_folder="templates")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@bp.context_processor
def _words() -> dict[str, Any]:
    """The page speaks the language the tipster chose (``lang``), English if none (here,
    not in a before_request hook: APIFlask's spec chokes on a plain blueprint's hooks)."""
    lang = pick_language(request.values.get("lang"))
    pin_locale(lang)
    return {
        "heard_from_choices": {code: words[lang] for code, words in HEARD_FROM.items()},
        "lang": lang,
        "t": TEXT,
        "other_lang": "es" if lang == "en" else "en",
        "hotline_phone": HOTLINE_PHONE,
        "hotline_text": HOTLINE_TEXT,
        "time_zones": TIME_ZONES,
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
        "heard_from": text_or_none(form, "heard_from"),
    }
    contact = {"phone": text_or_none(form, "phone"), "email": text_or_none(form, "email")}
    if any(contact.values()):
        data["contact"] = contact
    window = {part: text_or_none(form, f"safe_{part}") for part in ("start", "end", "timezone")}
    safe: dict[str, Any] = {}
    if any(window.values()):  # any part given: the schema names each part still missing
        safe["safe_window"] = window
    if form.get("announce_only") == "on":
        safe["announce_only"] = True
    if safe:
        data["safe_contact"] = safe
    return data


@bp.post("/tip")
def tip_submit() -> Any:
    lang = pick_language(request.form.get("lang"))
    try:
        data = load(schemas.TipIn(), _tip_from_form(request.form, lang))
    except FormErrors as exc:
        errors = tipster_errors(exc.errors)
        return render_template("public/tip_form.html", form=request.form, errors=errors), 422
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
        page = render_template(
            "public/follow_up.html", case=None, error=TEXT["not_found"], reference=reference
        )
        return page, 404, NO_STORE
    page = render_template(
        "public/follow_up.html",
        case=case,
        error=None,
        reference=case.reference,
        passphrase=passphrase,
        status_word=STATUS_WORDS[services.public_status(case)],
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
    session = db_session()
    try:
        data = load(schemas.TipMessageIn(), {"body": request.form.get("body") or ""})
    except FormErrors:
        return _thread(reference, passphrase, status=422)
    with transaction(session):
        case: Case | None
        try:
            case = open_tip_throttled(session, reference, passphrase)
        except NotFound:
            case = None
        if case is not None:
            services.add_tip_message(session, case, data["body"], direction="in", author="tipster")
    if case is None:
        return _thread(reference, passphrase)
    return _thread(reference, passphrase, status=201, note=TEXT["added"])


PERIOD = re.compile(r"\d{4}(-\d{2})?")
# Published periods never change (workflows/publication.py): shared caches may keep them.
PUBLISHED_CACHE = {"Cache-Control": "public, max-age=3600"}


@bp.get("/statistics")
def statistics() -> Any:
    """The published snapshot of a period (default: the newest); never computed live."""
    session = db_session()
    periods = publication.published_periods(session)
    period = request.args.get("period", "")[:8] or (periods[0] if periods else "")
    shown = publication.snapshot(session, period) if period in periods else None
    status = 404 if period and shown is None else 200
    page = render_template("public/statistics.html", periods=periods, period=period,
                           shown=shown, total=publication.TOTAL, tables={
                               name: STATISTICS_TABLES.get(name, title)
                               for name, title in publication.TABLES.items()},
                           k=runtime().settings.statistics_k)
    return page, status, PUBLISHED_CACHE if status == 200 else {}


@bp.get("/statistics/<period>.csv")
def statistics_csv(period: str) -> Any:
    """The same snapshot as CSV: period, table, category, count (empty where hidden)."""
    shown = publication.snapshot(db_session(), period) if PERIOD.fullmatch(period) else None
    if shown is None:
        return gettext("No statistics are published for that period.") + "\n", 404, {
            "Content-Type": "text/plain; charset=utf-8"}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["period", "table", "category", "count", "hidden"])
    for table, cells in shown["figures"].items():
        for category, count in cells.items():
            writer.writerow([period, table, category, "" if count is None else count,
                             "true" if count is None else "false"])
    return out.getvalue(), 200, {
        **PUBLISHED_CACHE, "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="hotline-statistics-{period}.csv"'}


def resend_tip_form(message: str) -> Any:
    """After a refused CSRF token, the tip form again with what was typed, not an error
    page: a tipster must never lose a tip because a cookie expired."""
    form = {k: v for k, v in request.form.items() if k != "csrf_token"}
    errors = {"_form": TEXT["resend"]}
    return render_template("public/tip_form.html", form=form, errors=errors), 400
