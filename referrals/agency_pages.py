"""Agency pages: the inbox of the agency's own referrals with their deadlines, one
referral (the same packet the webhook carries), and the agency's answers.

Another agency's referral, or one not yet approved, is a 404 page: existence does
not leak (the agency API's own ``own_referral``). Answers are validated by the agency
API's schema and go through ``workflows.lifecycle.fire_referral_event``, which checks
the agency again.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from config.auth import current_user, login_required
from config.database import db_session, runtime
from intake.forms import FormErrors, load
from referrals.schemas import AgencyEventIn, ThreadMessageIn
from referrals.views import DISCLOSED, ask_hotline, others_on_case, own_referral
from workflows.access import record_pii_view
from workflows.db import transaction, utcnow
from workflows.errors import DomainError
from workflows.lifecycle import fire_referral_event
from workflows.models import Case, Referral, User
from workflows.outcomes import OUTCOME_KINDS, outcome_entries
from workflows.packets import disclosed_packet, latest_versions
from workflows.referral_events import outcome_kinds
from workflows.threads import mark_read_by_agency, thread, with_new_answers
from workflows.vocabulary import AGENCY

bp = Blueprint("agency_pages", __name__, template_folder="templates")

ANSWERS = {
    "acknowledge": "Acknowledge",
    "accept": "Accept",
    "decline": "Decline",
    "request_info": "Ask for more information",
    "record_outcome": "Record the outcome",
}
OPEN_STATES = ("queued", "sent", "acknowledged")


def _me() -> User:
    user = current_user()
    assert user is not None  # login_required guarantees it
    return user


ANSWERED_PAGE = 25


@bp.get("/agency/")
@login_required(AGENCY)
def inbox() -> Any:
    """Open referrals, emergencies first then by deadline; the answered ones a page at a
    time, newest first (an agency's history grows without end)."""
    me = _me()
    session = db_session()
    visible = (
        select(Referral)
        .join(Case, Case.id == Referral.case_id)
        .where(Referral.agency_code == me.agency_code, DISCLOSED)
    )
    open_referrals = session.scalars(
        visible.where(Referral.state.in_(OPEN_STATES)).order_by(
            Case.priority_rank, Referral.deadline.is_(None), Referral.deadline, Referral.id
        )
    ).all()
    page = request.args.get("page", "1")
    number = int(page) if page.isdigit() and 0 < len(page) < 7 else 1
    answered = session.scalars(
        visible.where(Referral.state.notin_(OPEN_STATES))
        .order_by(Referral.updated_at.desc(), Referral.id.desc())
        .offset((number - 1) * ANSWERED_PAGE)
        .limit(ANSWERED_PAGE + 1)
    ).all()
    agency = (runtime().catalogs.get("agencies") or {}).get(me.agency_code)
    shown = [*open_referrals, *answered[:ANSWERED_PAGE]]
    return render_template(
        "agency/inbox.html",
        agency=agency,
        versions=latest_versions(session, [r.id for r in shown]),
        open_referrals=open_referrals,
        answered=answered[:ANSWERED_PAGE],
        page=number,
        more=len(answered) > ANSWERED_PAGE,
        new_answers=with_new_answers(session, (r.id for r in shown)),
    )


@bp.get("/agency/referrals/<int:referral_id>")
@login_required(AGENCY)
def show(referral_id: int) -> Any:
    me = _me()
    session = db_session()
    referral = own_referral(session, me, referral_id)
    with transaction(session):
        record_pii_view(session, me, referral.case_id, via="page", referral_id=referral.id)
        messages = thread(session, referral.id)
        new = {m.id for m in messages if m.side == "hotline" and m.read_at is None}
        mark_read_by_agency(session, referral.id, utcnow())
    others = others_on_case(referral)
    return render_template(
        "agency/show.html",
        referral=referral,
        packet=disclosed_packet(session, referral) if referral.state != "withdrawn" else None,
        others=others,
        answers=ANSWERS,
        recorded=outcome_entries(referral.outcome),
        outcome_kinds=[(k, OUTCOME_KINDS[k])
                       for k in outcome_kinds(runtime().catalogs, me.agency_code or "")],
        today=utcnow().date().isoformat(),
        messages=messages,
        new_messages=new,
    )


def answer_from_form(form: Any) -> dict[str, Any]:
    """The form as the body ``POST /api/v1/agency/referrals/<id>/events`` takes."""
    body: dict[str, Any] = {
        "event": form.get("event") or "",
        "reason": (form.get("reason") or "").strip() or None,
    }
    if body["event"] == "record_outcome":
        # One form per kind: blank fields are absent, so the API's own rules name them.
        body["outcome"] = {
            name: value
            for name in ("kind", "status", "date", "amount", "notes")
            if (value := (form.get(name) or "").strip())
        }
    return body


@bp.post("/agency/referrals/<int:referral_id>/events")
@login_required(AGENCY)
def answer(referral_id: int) -> Any:
    me = _me()
    session = db_session()
    own_referral(session, me, referral_id)
    try:
        data = load(AgencyEventIn(), answer_from_form(request.form))
        with transaction(session):
            fire_referral_event(
                session, referral_id, data["event"], me, reason=data.get("reason"),
                data={"outcome": data["outcome"]} if data.get("outcome") else None,
                catalogs=runtime().catalogs,
            )
    except FormErrors as exc:
        fields = "; ".join(f"{k}: {v}" for k, v in exc.errors.items())
        flash(_("Not saved:") + " " + fields, "error")
    except DomainError as exc:
        flash(exc.message, "error")
    else:
        flash(f"{ANSWERS[data['event']]}: done.", "ok")
    return redirect(url_for("agency_pages.show", referral_id=referral_id), 303)


@bp.post("/agency/referrals/<int:referral_id>/thread")
@login_required(AGENCY)
def ask(referral_id: int) -> Any:
    """Write to the hotline in the referral's thread (``POST …/thread`` of the API)."""
    me = _me()
    session = db_session()
    own_referral(session, me, referral_id)
    try:
        data = load(ThreadMessageIn(), {"body": request.form.get("body") or ""})
        ask_hotline(session, me, referral_id, data["body"], None)
    except FormErrors as exc:
        fields = "; ".join(f"{k}: {v}" for k, v in exc.errors.items())
        flash(_("Not sent:") + " " + fields, "error")
    except DomainError as exc:
        flash(exc.message, "error")
    else:
        flash(_("Sent to the hotline: it will answer here."), "ok")
    return redirect(url_for("agency_pages.show", referral_id=referral_id) + "#thread", 303)
