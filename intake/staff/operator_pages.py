"""Operator pages: the start page (my calls, my cases) and the one-form call log with the
indicator checklist, victim facts, consent and safe-contact notes.

The form is validated by the API's own schemas and saved by the same services the API
uses (``intake.services.log_call`` and B's screening), in one transaction.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from config.auth import current_user, login_required
from config.database import db_session, runtime
from config.kept_forms import restored_form
from intake import schemas, services
from intake.chat import chats_in
from intake.forms import FormErrors, load, text_or_none, tri_state
from intake.models import Signal, TipMessage
from intake.staff import screening_form
from intake.staff.case_schemas import ScreeningIn
from intake.staff.casefile_pages import form_values
from workflows.campaigns import HEARD_FROM
from workflows.cases import find_surviving_by_reference, get_case
from workflows.casework import record_screening as screen
from workflows.db import transaction
from workflows.errors import DomainError
from workflows.identifiers import SUBJECT_KINDS
from workflows.jurisdiction import US_STATES
from workflows.links import cases_naming
from workflows.models import Case, User
from workflows.threads import open_questions
from workflows.vocabulary import CALLER_TYPES, DESK, LANGUAGES

bp = Blueprint("operator_pages", __name__, template_folder="templates")

SAFE_FLAGS = (
    ("safe_to_call", _l("Safe to call")),
    ("safe_to_text", _l("Safe to text")),
    ("safe_for_voicemail", _l("Safe to leave a voicemail")),
    ("announce_only", _l(
        "Texts only say “you have a message” (the reply is read with the reference)"
    )),
)
SAFE_TEXTS = (
    ("safe_hours", _l("Safe hours (notes)")),
    ("safe_word", _l("Code word for “safe”")),
    ("unsafe_word", _l("Code word for “not safe”")),
)

# Offered as suggestions; any IANA name is accepted. The hotline has no zone of its own
# (config/settings.py), so the operator asks the caller and none is assumed.
COMMON_ZONES = (
    "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
    "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu", "America/Puerto_Rico",
    "America/Mexico_City",
)


@bp.get("/operator/")
@login_required(DESK)
def start() -> Any:
    me = _me()
    session = db_session()
    my_calls = session.scalars(
        select(Case)
        .join(Signal, Signal.case_id == Case.id)
        .where(Signal.operator_id == me.id, Case.purged_at.is_(None))
        .order_by(Case.created_at.desc())
        .limit(25)
    ).all()
    assigned = session.scalars(
        select(Case)
        .where(Case.assignee_id == me.id, Case.state.notin_(("closed", "purged")))
        .order_by(Case.priority_rank, Case.deadline, Case.created_at)
        .limit(50)
    ).all()
    return render_template(
        "operator/start.html",
        my_calls=my_calls,
        assigned=assigned,
        questions=open_questions(session, assignee_id=me.id, limit=50),
        waiting=tipsters_waiting(session),
        chats_waiting=len(chats_in(session, "waiting")),
    )


def tipsters_waiting(session: Any, limit: int = 25) -> list[Case]:
    """Open cases whose follow-up thread ends with the tipster: they wait for an answer."""
    last = (
        select(TipMessage.case_id, func.max(TipMessage.id).label("last_id"))
        .group_by(TipMessage.case_id)
        .subquery()
    )
    return list(
        session.scalars(
            select(Case)
            .join(last, last.c.case_id == Case.id)
            .join(TipMessage, TipMessage.id == last.c.last_id)
            .where(TipMessage.direction == "in", Case.state != "closed",
                   Case.purged_at.is_(None))
            .order_by(TipMessage.id)
            .limit(limit)
        )
    )


def _me() -> User:
    user = current_user()
    assert user is not None  # login_required guarantees it
    return user


def _catalog() -> Any:
    return runtime().catalogs.get("indicators") or {}


def _screening_context() -> dict[str, Any]:
    catalog = _catalog()
    return {
        "checklist": screening_form.checklist(catalog),
        "venues": screening_form.venues(catalog),
        "facts": screening_form.YES_NO_FACTS,
        "consents": screening_form.CONSENTS,
        "trafficking_types": screening_form.TRAFFICKING_TYPES,
        "request_types": screening_form.REQUEST_TYPES,
    }


# Asked while the caller talks, before everything else on the call form (issue 19).
FIRST_FACTS = ("imminent_danger", "victim_minor")


SUBJECT_ROWS = 3


def _form_page(
    form: Any, errors: dict[str, str], status: int = 200, offer: list[Case] | None = None
) -> Any:
    page = render_template(
        "operator/call_form.html",
        first_facts=FIRST_FACTS,
        form=form,
        offer=offer or [],
        subject_rows=range(1, SUBJECT_ROWS + 1),
        subject_kinds=SUBJECT_KINDS,
        us_states=US_STATES,
        checked=set(form.getlist("indicators")) if hasattr(form, "getlist") else set(),
        errors=errors,
        caller_types=CALLER_TYPES,
        languages=LANGUAGES,
        safe_flags=SAFE_FLAGS,
        safe_texts=SAFE_TEXTS,
        common_zones=COMMON_ZONES,
        heard_from_choices=HEARD_FROM,
        **_screening_context(),
    )
    return page, status


@bp.get("/operator/calls/new")
@login_required(DESK)
def new_call() -> Any:
    return _form_page(restored_form("call:new") or {}, {})


@bp.post("/operator/calls/preview")
@login_required(DESK)
def preview() -> Any:
    """The screening result and recommended referrals of the form as it stands, before
    saving: the very code that saves it runs, in a transaction that is rolled back."""
    form = request.form
    body = call_from_form(form)
    body["caller_type"] = body["caller_type"] or "other"
    body["narrative"] = body["narrative"] or "(not typed yet)"
    session = db_session()
    try:
        call = load(schemas.CallIn(), body)
        screening = screening_form.screening_body(form, form.getlist("indicators"))
        case = services.log_call(session, _me(), {**call, "call_sid": None})
        result = screen(session, case.id, _me(), load(ScreeningIn(), screening),
                        catalogs=runtime().catalogs)
    except FormErrors as exc:
        return {"error": "check the form", "fields": exc.errors}, 422
    except DomainError as exc:
        return {"error": exc.message, "field": exc.field}, exc.status
    finally:
        session.rollback()  # a preview stores nothing
    return {
        "level": (result["level"] or "none").replace("_", " "),
        "priority": result["priority"],
        "recommended": [r["reason"] for r in result["recommended_referrals"]],
        "action": result["recommended_action"],
    }


def call_from_form(form: Any) -> dict[str, Any]:
    """The form as the JSON body ``POST /api/v1/calls`` takes."""
    safe: dict[str, Any] = {name: tri_state(form, name) for name, _ in SAFE_FLAGS}
    safe.update({name: text_or_none(form, name) for name, _ in SAFE_TEXTS})
    safe["notes"] = text_or_none(form, "safe_notes")
    window = {part: text_or_none(form, f"safe_window_{part}")
              for part in ("start", "end", "timezone")}
    # Any part given makes a window; the schema then names each part still missing.
    safe["safe_window"] = window if any(window.values()) else None
    narrative = form.get("narrative") or ""
    victim = form_values("victims", form, prefix="v_")
    location = form_values("locations", form, prefix="loc_")
    subjects = []
    for n in range(1, SUBJECT_ROWS + 1):
        row = form_values("subjects", form, prefix=f"subject{n}_")
        if row.get("value"):
            subjects.append(row)
    call_sid = text_or_none(form, "call_sid")
    return {
        "victims": [victim] if any(v is not None for v in victim.values()) else [],
        "subjects": subjects,
        "locations": [location] if any(v is not None for v in location.values()) else [],
        "call_sid": call_sid,
        "caller_type": form.get("caller_type") or None,
        "language": form.get("language") or "en",
        "location": text_or_none(form, "location"),
        "narrative": narrative if narrative.strip() else "",
        "caller_name": text_or_none(form, "caller_name"),
        "caller_phone": text_or_none(form, "caller_phone"),
        "anonymous": form.get("anonymous") == "on",
        "safe_contact": safe if any(v is not None for v in safe.values()) else None,
        "heard_from": text_or_none(form, "heard_from"),
    }


@bp.post("/operator/calls/new")
@login_required(DESK)
def create_call() -> Any:
    form = request.form
    session = db_session()
    try:
        call = load(schemas.CallIn(), call_from_form(form))
        call["case_id"] = _chosen_case(session, form)
    except FormErrors as exc:
        return _form_page(form, exc.errors, 422)
    if call["case_id"] is None and call.get("caller_phone") and form.get("new_case") != "on":
        # A returning caller: offer their open cases before opening another one.
        offer = [c for c in cases_naming(session, "phone", call["caller_phone"])
                 if c.state != "closed"]
        if offer:
            return _form_page(form, {}, 200, offer=offer)
    try:
        body = screening_form.screening_body(form, form.getlist("indicators"))
        with transaction(session):
            attaching = call["case_id"] is not None or (
                call.get("call_sid") is not None and session.scalar(
                    select(Signal.id).where(Signal.call_sid == call["call_sid"])) is not None
            )
            case = services.log_call(session, _me(), call)
            if not attaching or form.getlist("indicators"):
                # An attached call keeps the case's screening unless the operator ticked
                # indicators (screen again from the case page otherwise).
                record_screening(session, case, body, _me())
    except FormErrors as exc:
        return _form_page(form, exc.errors, 422)
    except DomainError as exc:
        return _form_page(form, {exc.field or "_form": exc.message}, exc.status)
    return redirect(url_for("case_pages.show", case_id=case.id), 303)


def _chosen_case(session: Any, form: Any) -> int | None:
    """The case this call is added to: the reference typed, or the open case offered."""
    reference = text_or_none(form, "case_reference")
    if reference is None:
        return None
    case = find_surviving_by_reference(session, reference[:32])
    if case is None:
        raise FormErrors({"case_reference": "no case has this reference"})
    return case.id


def record_screening(session: Any, case: Case, body: dict[str, Any], user: User) -> None:
    """Screen the new case exactly as ``PUT /api/v1/cases/<id>/screening`` does: the
    same request schema, the same domain function."""
    data = load(ScreeningIn(), body)
    screen(session, case.id, user, data, catalogs=runtime().catalogs)


def _screen_page(case: Case, form: Any, checked: set[str], errors: dict[str, str],
                 status: int = 200) -> Any:
    page = render_template(
        "operator/screen_form.html", case=case, form=form, checked=checked, errors=errors,
        **_screening_context(),
    )
    return page, status


@bp.get("/cases/<int:case_id>/screening")
@login_required(DESK)
def screen_again(case_id: int) -> Any:
    case = get_case(db_session(), case_id)
    restored = restored_form(f"screen:{case_id}")
    if restored is not None:
        return _screen_page(case, restored, set(restored.getlist("indicators")), {})
    form, checked = screening_form.form_from_screening(case.screening)
    return _screen_page(case, form, checked, {})


@bp.post("/cases/<int:case_id>/screening")
@login_required(DESK)
def save_screening(case_id: int) -> Any:
    session = db_session()
    case = get_case(session, case_id)
    form = request.form
    try:
        body = screening_form.screening_body(form, form.getlist("indicators"))
        with transaction(session):
            record_screening(session, case, body, _me())
    except FormErrors as exc:
        return _screen_page(case, form, set(form.getlist("indicators")), exc.errors, 422)
    except DomainError as exc:
        errors = {exc.field or "_form": exc.message}
        return _screen_page(case, form, set(form.getlist("indicators")), errors, exc.status)
    return redirect(url_for("case_pages.show", case_id=case_id), 303)
