"""A case's whole story for staff, and the actions on it: case events, assignment,
referral re-routing and retries, replies to an anonymous tipster, answers to an agency's
questions.

Every action calls the lifecycle functions the JSON API calls
(``workflows.lifecycle.fire_case_event`` / ``fire_referral_event``); a refused action
comes back as a message on the case page, and nothing changes.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from config.auth import current_user, login_required
from config.database import db_session, runtime
from intake import services
from intake.forms import FormErrors, load
from intake.replies import reply_to_tipster
from intake.schemas import TipMessageIn
from intake.staff import screening_form
from referrals.notifications import reply_deliveries
from referrals.schemas import ThreadMessageIn
from workflows.access import record_pii_view
from workflows.cases import get_case
from workflows.casework import SCREENABLE, decide_update, withdraw_consent
from workflows.db import transaction
from workflows.errors import DomainError, InvalidInput
from workflows.identifiers import SUBJECT_KINDS
from workflows.immigration import case_suggestion
from workflows.jurisdiction import US_STATES
from workflows.links import related_cases
from workflows.machines import (
    RESOLUTION_CODES,
    STAFF_REFERRAL_EVENTS,
    allowed_events,
    case_machine,
)
from workflows.merging import merged_case_ids
from workflows.models import AuditEvent, Case, Referral, User
from workflows.packet_updates import pending_updates
from workflows.providers import ServiceReferral
from workflows.relief import case_relief
from workflows.threads import answer_question, threads_of_case
from workflows.vocabulary import DESK, STAFF, SUPERVISOR

bp = Blueprint("case_pages", __name__, template_folder="templates")

# Buttons offered per role; the lifecycle decides whether each is allowed right now.
CASE_EVENTS = {
    "operator": ("start_screening", "request_info", "info_received", "submit_for_approval",
                 "escalate", "close", "reopen"),
    "supervisor": ("start_screening", "request_info", "info_received", "submit_for_approval",
                   "approve", "reject", "escalate", "close", "reopen", "acknowledge_emergency"),
}
EVENT_LABELS = {
    "start_screening": "Start screening",
    "request_info": "Ask for more information",
    "info_received": "Information received",
    "submit_for_approval": "Submit for approval",
    "approve": "Approve the referrals",
    "reject": "Reject (back to screening)",
    "escalate": "Escalate as an emergency",
    "close": "Close",
    "reopen": "Reopen",
    "acknowledge_emergency": "Acknowledge the emergency page",
}
NEEDS_REASON = {"reject", "request_info", "close", "reopen", "escalate"}


def _me() -> User:
    user = current_user()
    assert user is not None  # login_required guarantees it
    return user


def allowed_case_events(case: Case, user: User) -> list[str]:
    """The events this user may try on this case now, from the lifecycle's own machine."""
    allowed = set(allowed_events(case_machine, case.state))
    if case.emergency_at is None or case.emergency_acknowledged_at is not None:
        allowed.discard("acknowledge_emergency")  # nothing to acknowledge
    return [event for event in CASE_EVENTS.get(user.role, ()) if event in allowed]


def _events(case: Case) -> list[AuditEvent]:
    # A merged case's history stays under its own id: the survivor shows it too.
    ids = merged_case_ids(db_session(), case)
    return list(
        db_session().scalars(
            select(AuditEvent).where(AuditEvent.case_id.in_(ids)).order_by(AuditEvent.id)
        )
    )


def _safe_contact(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"notes": raw}
    if not isinstance(value, dict):
        return {}
    window = value.get("safe_window")
    if isinstance(window, dict):
        value["safe_window"] = (
            f"{window.get('start')} to {window.get('end')} {window.get('timezone')} "
            "(texts wait for it)"
        )
    return value


@bp.get("/cases/<int:case_id>")
@login_required(STAFF)
def show(case_id: int) -> Any:
    session = db_session()
    me = _me()
    with transaction(session):
        case = get_case(session, case_id)
        # Every view of a case's personal data by a person goes to the audit log.
        record_pii_view(session, me, case.id, via="page")
    catalog = runtime().catalogs.get("indicators")
    questions = {
        item.code: item.question
        for _title, items in screening_form.checklist(catalog or {})
        for item in items
    }
    agencies = runtime().catalogs.get("agencies") or {}
    return render_template(
        "cases/show.html",
        case=case,
        me=me,
        screening=case.screening or {},
        questions=questions,
        signals=[(s, _safe_contact(s.safe_contact)) for s in case.signals],
        events=_events(case),
        messages=services.tip_messages(session, case),
        deliveries=reply_deliveries(session, case),
        allowed=allowed_case_events(case, me),
        relief_terms=case_suggestion(case),
        relief=case_relief(session, merged_case_ids(session, case)),
        service_referrals=session.scalars(
            select(ServiceReferral)
            .where(ServiceReferral.case_id == case.id)
            .order_by(ServiceReferral.id)
        ).all(),
        screenable=case.state in SCREENABLE,
        labels=EVENT_LABELS,
        resolution_codes=RESOLUTION_CODES,
        needs_reason=NEEDS_REASON,
        agencies=agencies,
        related=related_cases(session, case.id),
        threads=threads_of_case(session, case.id),
        updates=pending_updates(session, case),
        subject_kinds=SUBJECT_KINDS,
        us_states=US_STATES,
        staff=session.scalars(
            select(User)
            .where(User.role.in_(DESK), User.active.is_(True))
            .order_by(User.username)
        ).all(),
    )


def _back(case_id: int) -> Any:
    return redirect(url_for("case_pages.show", case_id=case_id), 303)


def _refused(case_id: int, error: DomainError) -> Any:
    allowed = (error.extra or {}).get("allowed")
    shown = ", ".join(str(e) for e in allowed) if isinstance(allowed, list | tuple) else ""
    message = error.message + (f" (allowed now: {shown})" if shown else "")
    flash(message, "error")
    return _back(case_id)


def _version() -> int | None:
    raw = request.form.get("version", "")
    return int(raw) if raw.isdigit() else None


@bp.post("/cases/<int:case_id>/events")
@login_required(DESK)
def case_event(case_id: int) -> Any:
    from workflows.lifecycle import fire_case_event

    event = request.form.get("event", "")
    reason = (request.form.get("reason") or "").strip() or None
    data: dict[str, Any] = {}
    if request.form.get("resolution_code"):
        data["resolution_code"] = request.form["resolution_code"]
    session = db_session()
    try:
        if event not in EVENT_LABELS:
            raise InvalidInput(f"unknown event {event!r}", field="event")
        with transaction(session):
            fire_case_event(
                session, case_id, event, _me(), version=_version(), reason=reason,
                data=data or None, catalogs=runtime().catalogs,
            )
    except DomainError as exc:
        return _refused(case_id, exc)
    flash(f"{EVENT_LABELS[event]}: done.", "ok")
    return _back(case_id)


@bp.post("/cases/<int:case_id>/assign")
@login_required(SUPERVISOR)
def assign(case_id: int) -> Any:
    from workflows.casework import assign_case

    assignee = (request.form.get("assignee") or "").strip() or None
    session = db_session()
    try:
        with transaction(session):
            assign_case(session, case_id, _me(), assignee, version=_version())
    except DomainError as exc:
        return _refused(case_id, exc)
    flash(_("Assignment saved."), "ok")
    return _back(case_id)


@bp.post("/cases/<int:case_id>/immigration-relief")
@login_required(DESK)
def immigration_relief(case_id: int) -> Any:
    from workflows.casework import staff_case
    from workflows.immigration import set_protected
    from workflows.vocabulary import DESK

    session = db_session()
    try:
        with transaction(session):
            case = staff_case(session, case_id, _me(), DESK)
            set_protected(session, case, _me().username,
                          request.form.get("protected") == "yes", version=_version())
            session.flush()
    except DomainError as exc:
        return _refused(case_id, exc)
    flash(_("Immigration-relief flag saved."), "ok")
    return _back(case_id)


@bp.post("/cases/<int:case_id>/reply")
@login_required(DESK)
def reply(case_id: int) -> Any:
    session = db_session()
    try:
        data = load(TipMessageIn(), {"body": request.form.get("body") or ""})
        with transaction(session):
            reply_to_tipster(session, case_id, _me(), data["body"])
    except FormErrors as exc:
        flash(_("Reply not sent: %(error)s", error=exc), "error")
        return _back(case_id)
    except DomainError as exc:
        return _refused(case_id, exc)
    flash(_("Reply sent to the tipster."), "ok")
    return _back(case_id)


@bp.post("/referrals/<int:referral_id>/events")
@login_required(SUPERVISOR)
def referral_event(referral_id: int) -> Any:
    from workflows.lifecycle import fire_referral_event

    session = db_session()
    referral = session.get(Referral, referral_id)
    if referral is None:
        flash(_("No such referral."), "error")
        return redirect(url_for("supervisor_pages.queues"), 303)
    case_id = referral.case_id
    event = request.form.get("event", "")
    data: dict[str, Any] = {}
    if request.form.get("agency"):
        data["agency"] = request.form["agency"]
    try:
        if event not in STAFF_REFERRAL_EVENTS:
            raise InvalidInput(f"unknown event {event!r}", field="event")
        with transaction(session):
            fire_referral_event(
                session, referral_id, STAFF_REFERRAL_EVENTS[event], _me(),
                reason=(request.form.get("reason") or "").strip() or None, data=data or None,
                catalogs=runtime().catalogs,
            )
    except DomainError as exc:
        return _refused(case_id, exc)
    flash(f"Referral {event}: done.", "ok")
    if request.form.get("back") == "failed":
        return redirect(url_for("supervisor_pages.failed"), 303)
    return _back(case_id)


@bp.post("/referrals/<int:referral_id>/thread")
@login_required(DESK)
def answer_agency(referral_id: int) -> Any:
    """Answer the agency in the referral's thread, as ``POST /api/v1/cases/<id>/referrals/
    <id>/thread`` does (the same schema, the same domain function)."""
    session = db_session()
    referral = session.get(Referral, referral_id)
    if referral is None:
        flash(_("No such referral."), "error")
        return redirect(url_for("supervisor_pages.queues"), 303)
    case_id, agency = referral.case_id, referral.agency_code
    try:
        data = load(ThreadMessageIn(), {"body": request.form.get("body") or ""})
        with transaction(session):
            answer_question(session, referral, _me(), data["body"], catalogs=runtime().catalogs)
    except FormErrors as exc:
        flash(_("Answer not sent: %(error)s", error=exc), "error")
        return _back(case_id)
    except DomainError as exc:
        return _refused(case_id, exc)
    flash(_("Answer sent to %(agency)s.", agency=agency), "ok")
    return _back(case_id)


@bp.post("/cases/<int:case_id>/referrals/<int:referral_id>/packet-update")
@login_required(DESK)
def packet_update(case_id: int, referral_id: int) -> Any:
    """"Send update" or "not now" for the new information shown on the case page."""
    decision = request.form.get("decision", "")
    session = db_session()
    try:
        if decision not in ("send", "not_now"):
            raise InvalidInput("choose send or not now", field="decision")
        with transaction(session):
            decide_update(session, case_id, referral_id, _me(), send=decision == "send",
                          digest=request.form.get("digest", ""))
    except DomainError as exc:
        return _refused(case_id, exc)
    flash(_("Update queued for the agency.") if decision == "send"
          else _("Not sent; you will be asked again when more arrives."), "ok")
    return _back(case_id)


@bp.post("/cases/<int:case_id>/consent/withdraw")
@login_required(DESK)
def consent_withdraw(case_id: int) -> Any:
    """The victim withdrew a consent: record it and tell the agencies holding it."""
    session = db_session()
    try:
        with transaction(session):
            told = withdraw_consent(
                session, case_id, _me(), scope=request.form.get("scope", ""),
                given_by=request.form.get("given_by") or "victim",
                reason=request.form.get("reason"), catalogs=runtime().catalogs,
            )
    except DomainError as exc:
        return _refused(case_id, exc)
    flash(_("Consent withdrawn; %(count)s agency notice(s) queued.", count=len(told)), "ok")
    return _back(case_id)
