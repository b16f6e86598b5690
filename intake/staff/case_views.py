"""Staff case API: call logs, cases, screening, events, queues, assignment, replies.

Thin: each view validates, calls one domain function inside one transaction, answers.
Agency users get 404 here, as if no case existed.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import jsonify
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.auth import current_user, token_auth
from config.database import db_session, runtime
from intake import services
from intake.models import TipMessage
from intake.outage import commit_or_spool, spooled_answer
from intake.replay import spool_call_log
from intake.replies import reply_to_tipster
from intake.schemas import CallIn, CaseOut, TipMessageOut
from intake.spool import Spool
from intake.staff import case_schemas as s
from referrals.schemas import IdempotencyHeader, ThreadMessageIn, ThreadOut
from workflows.access import record_pii_view
from workflows.cases import get_case, new_reference
from workflows.casework import (
    assign_case,
    decide_update,
    record_screening,
    staff_case,
    withdraw_consent,
)
from workflows.db import transaction, utcnow
from workflows.deadlines import is_overdue
from workflows.errors import NotFound
from workflows.immigration import case_suggestion, set_protected
from workflows.lifecycle import allowed_case_events, fire_case_event, fire_referral_event
from workflows.links import related_cases
from workflows.machines import STAFF_REFERRAL_EVENTS
from workflows.merging import merged_case_ids
from workflows.models import AuditEvent, Case, Referral, User
from workflows.packet_updates import pending_updates
from workflows.queues import QueueFilter, case_queue
from workflows.referral_events import flush_or_conflict
from workflows.threads import answer_question, present_thread, replayed, thread
from workflows.vocabulary import AGENCY, DESK, EVERYONE, STAFF, role_list

api = APIBlueprint("case_api", __name__, url_prefix="/api/v1", tag="cases")

# Agencies pass authentication so that the domain can answer 404 (existence never leaks).
ANYONE = role_list(EVERYONE)


def _user() -> User:
    user = current_user()
    assert user is not None  # auth_required guarantees it
    return user


@api.put("/cases/<int:case_id>/screening")
@api.auth_required(token_auth, roles=ANYONE)
@api.input(s.ScreeningIn, arg_name="body")
@api.output(s.ScreeningOut)
@api.doc(summary="Record facts, indicators and consent; get score, level, priority and "
         "recommended referrals", responses=[200, 401, 403, 404, 409, 422])
def put_screening(case_id: int, body: dict[str, Any]) -> Any:
    session = db_session()
    with transaction(session):
        return record_screening(
            session, case_id, _user(), body, catalogs=runtime().catalogs
        )


@api.post("/cases/<int:case_id>/events")
@api.auth_required(token_auth, roles=ANYONE)
@api.input(s.CaseEventIn, arg_name="body")
@api.output(CaseOut)
@api.doc(summary="Fire a lifecycle event (409 lists the allowed ones)",
         responses=[200, 401, 403, 404, 409, 422])
def post_event(case_id: int, body: dict[str, Any]) -> Any:
    session = db_session()
    with transaction(session):
        case = fire_case_event(
            session,
            case_id,
            body["event"],
            _user(),
            version=body["version"],
            reason=body.get("reason"),
            data={"resolution_code": body.get("resolution_code")},
            catalogs=runtime().catalogs,
        )
        record_pii_view(session, _user(), case.id, via="api")  # the answer shows the case
    return present_case(case)


@api.post("/cases/<int:case_id>/referrals/<int:referral_id>/events")
@api.auth_required(token_auth, roles=ANYONE)
@api.input(s.ReferralEventIn, arg_name="body")
@api.output(CaseOut)
@api.doc(summary="Supervisor: retry a failed referral, withdraw one, re-route a declined one "
         "(a new pending referral on its own legal basis, or 409 naming why), approve a "
         "pending one",
         responses=[200, 401, 403, 404, 409, 422])
def post_referral_event(case_id: int, referral_id: int, body: dict[str, Any]) -> Any:
    session = db_session()
    user = _user()
    with transaction(session):
        case = staff_case(session, case_id, user, frozenset(STAFF))
        referral = session.get(Referral, referral_id)
        if referral is None or referral.case_id != case.id:
            raise NotFound("no such referral")
        fire_referral_event(
            session, referral_id, STAFF_REFERRAL_EVENTS[body["event"]], user,
            reason=body.get("reason"),
            data={"agency": body.get("agency")} if body.get("agency") else {},
            catalogs=runtime().catalogs,
        )
        record_pii_view(session, user, case.id, via="api")  # the answer shows the case
    return present_case(case)


def _case_referral(session: Session, case_id: int, referral_id: int, roles: frozenset[str]
                   ) -> Referral:
    case = staff_case(session, case_id, _user(), roles)
    referral = session.get(Referral, referral_id)
    if referral is None or referral.case_id != case.id:
        raise NotFound("no such referral")
    return referral


def _staff_thread(session: Session, case_id: int, referral_id: int) -> dict[str, Any]:
    with transaction(session):
        referral = _case_referral(session, case_id, referral_id, frozenset(STAFF))
        record_pii_view(session, _user(), case_id, via="api", referral_id=referral.id)
        return present_thread(referral, thread(session, referral.id), for_agency=False)


@api.get("/cases/<int:case_id>/referrals/<int:referral_id>/thread")
@api.auth_required(token_auth, roles=ANYONE)
@api.output(ThreadOut)
@api.doc(summary="The agency's questions on a referral and the hotline's answers",
         responses=[200, 401, 403, 404])
def show_referral_thread(case_id: int, referral_id: int) -> Any:
    return _staff_thread(db_session(), case_id, referral_id)


@api.post("/cases/<int:case_id>/referrals/<int:referral_id>/thread")
@api.auth_required(token_auth, roles=ANYONE)
@api.input(IdempotencyHeader, location="headers", arg_name="headers")
@api.input(ThreadMessageIn, arg_name="body")
@api.output(ThreadOut, status_code=201)
@api.doc(summary="Answer the agency (closes the hotline's task; the agency is told)",
         description="409 when the agency has asked nothing on this referral.",
         responses=[201, 401, 403, 404, 409, 422])
def answer_referral_thread(
    case_id: int, referral_id: int, headers: dict[str, Any], body: dict[str, Any]
) -> Any:
    session = db_session()
    key = headers.get("idempotency_key")
    try:
        with transaction(session):
            referral = _case_referral(session, case_id, referral_id, DESK)
            if replayed(session, referral.id, "hotline", key) is None:
                answer_question(session, referral, _user(), body["body"],
                                catalogs=runtime().catalogs, idempotency_key=key)
    except IntegrityError:  # the same key twice at once: the other request wrote it
        if replayed(session, referral_id, "hotline", key) is None:
            raise
    return _staff_thread(session, case_id, referral_id)


@api.post("/cases/<int:case_id>/referrals/<int:referral_id>/packet-update")
@api.auth_required(token_auth, roles=ANYONE)
@api.input(s.PacketUpdateIn, arg_name="body")
@api.output(CaseOut)
@api.doc(summary="Send the new information to the agency as the next packet version, or "
         "not now (409 if more arrived since the digest was shown)",
         responses=[200, 401, 403, 404, 409, 422])
def post_packet_update(case_id: int, referral_id: int, body: dict[str, Any]) -> Any:
    session = db_session()
    user = _user()
    with transaction(session):
        decide_update(session, case_id, referral_id, user,
                      send=body["decision"] == "send", digest=body["digest"])
        case = get_case(session, case_id)
        record_pii_view(session, user, case.id, via="api")  # the answer shows the case
    return present_case(case)


@api.post("/cases/<int:case_id>/consent/withdraw")
@api.auth_required(token_auth, roles=ANYONE)
@api.input(s.ConsentWithdrawIn, arg_name="body")
@api.output(CaseOut)
@api.doc(summary="The victim withdraws a consent: each agency holding what it covered is "
         "sent a consent_withdrawn version (409 if that consent is not given)",
         responses=[200, 401, 403, 404, 409, 422])
def post_consent_withdrawal(case_id: int, body: dict[str, Any]) -> Any:
    session = db_session()
    user = _user()
    with transaction(session):
        withdraw_consent(session, case_id, user, scope=body["scope"],
                         given_by=body["given_by"], reason=body.get("reason"),
                         catalogs=runtime().catalogs)
        case = get_case(session, case_id)
        record_pii_view(session, user, case.id, via="api")
    return present_case(case)


@api.get("/cases")
@api.auth_required(token_auth, roles=ANYONE)
@api.input(s.CaseQuery, location="query", arg_name="query")
@api.output(s.CasePage)
@api.doc(summary="The queues: filter, sorted by deadline then age, keyset pages",
         responses=[200, 401, 404, 422])
def list_cases(query: dict[str, Any]) -> Any:
    user = _user()
    if user.role not in STAFF:
        raise NotFound("not found")
    session = db_session()
    now = utcnow()
    filters = QueueFilter(
        states=tuple(query.get("state") or ()),
        priority=query.get("priority"),
        assignee=user.username if query.get("assignee") == "me" else query.get("assignee"),
        agency=query.get("agency"),
        overdue=query.get("overdue"),
        reference=query.get("reference"),
    )
    cases, cursor = case_queue(
        session, filters, limit=query["limit"], cursor=query.get("cursor"), now=now
    )
    items = [
        {
            "id": c.id,
            "reference": c.reference,
            "state": c.state,
            "priority": c.priority,
            "level": c.level,
            "score": c.score,
            "version": c.version,
            "deadline": c.deadline,
            "overdue": is_overdue(c.deadline, now),
            "emergency_at": c.emergency_at,
            "emergency_acknowledged_at": c.emergency_acknowledged_at,
            "emergency_acknowledged_by": c.emergency_acknowledged_by,
            "created_at": c.created_at,
            "assignee": c.assignee.username if c.assignee else None,
            "referrals": c.referrals,
        }
        for c in cases
    ]
    return {"items": items, "next": cursor}


@api.post("/cases/<int:case_id>/assign")
@api.auth_required(token_auth, roles=ANYONE)
@api.input(s.AssignIn, arg_name="body")
@api.output(CaseOut)
@api.doc(summary="Assign a case (supervisor), or take it (operator)",
         responses=[200, 401, 403, 404, 409, 422])
def assign(case_id: int, body: dict[str, Any]) -> Any:
    session = db_session()
    with transaction(session):
        case = assign_case(session, case_id, _user(), body["assignee"], version=body["version"])
        record_pii_view(session, _user(), case.id, via="api")  # the answer shows the case
    return present_case(case)


@api.put("/cases/<int:case_id>/immigration-relief")
@api.auth_required(token_auth, roles=ANYONE)
@api.input(s.ImmigrationReliefIn, arg_name="body")
@api.output(CaseOut)
@api.doc(summary="Set or clear the 8 U.S.C. 1367 flag (staff confirm a suggestion)",
         responses=[200, 401, 403, 404, 409, 422])
def immigration_relief(case_id: int, body: dict[str, Any]) -> Any:
    session = db_session()
    user = _user()
    with transaction(session):
        case = staff_case(session, case_id, user, DESK)
        set_protected(session, case, user.username, body["protected"], version=body["version"])
        flush_or_conflict(session, "case")
        record_pii_view(session, user, case.id, via="api")  # the answer shows the case
    return present_case(case)


@api.post("/cases/<int:case_id>/messages")
@api.auth_required(token_auth, roles=ANYONE)
@api.input(s.ReplyIn, arg_name="body")
@api.output(TipMessageOut, status_code=201)
@api.doc(summary="Reply to the tipster (texted only with call-back consent)",
         responses=[201, 401, 403, 404, 422])
def reply(case_id: int, body: dict[str, Any]) -> Any:
    session = db_session()
    with transaction(session):
        return reply_to_tipster(session, case_id, _user(), body["body"])


@api.post("/calls")
@api.auth_required(token_auth, roles=role_list(DESK))
@api.input(CallIn, arg_name="data")
@api.output(CaseOut, status_code=201)
@api.doc(
    summary="Log a call (operator); 409 when its call_sid is already recorded",
    description="202: the database is down; the call log is spooled and will be replayed.",
    responses=[201, 202, 401, 403, 409, 422],
)
def log_call(data: dict[str, Any]) -> Any:
    user = current_user()
    assert user is not None  # auth_required guarantees it
    # Chosen before the insert, so a spooled call log is replayed under the same reference.
    reference = new_reference()

    def spool_it(spool: Spool) -> Case | None:
        spool_call_log(spool, user, data, reference)
        return None

    case = commit_or_spool(
        db_session(),
        lambda session: services.log_call(session, user, data, reference=reference),
        spool_it,
    )
    if case is None:  # the database is down: accepted into the spool, replayed later
        accepted = jsonify(spooled_answer(reference))
        accepted.status_code = 202  # a Response is passed through, not fitted to CaseOut
        return accepted
    return present_case(case)


@api.get("/cases/<int:case_id>")
@api.auth_required(token_auth, roles=role_list(STAFF, AGENCY))
@api.output(CaseOut)
@api.doc(
    summary="A case with its signals, screening, referrals and events",
    responses=[200, 401, 403, 404],
)
def show_case(case_id: int) -> Any:
    session = db_session()
    if current_user().role not in STAFF:  # type: ignore[union-attr]
        raise NotFound(f"no case {case_id}")  # agencies never learn a case exists
    with transaction(session):
        case = get_case(session, case_id)
        # Every view of a case's personal data by a person is written to the audit log.
        record_pii_view(session, current_user(), case.id, via="api")
    return present_case(case)


def present_case(case: Case) -> dict[str, Any]:
    """A case as the API shows it to staff, events included."""
    session = db_session()
    if case.purged_at is not None:
        raise NotFound(f"no case {case.id}")
    # A merged case's history and tipster thread stay under its own id: show them here.
    ids = merged_case_ids(session, case)
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.case_id.in_(ids)).order_by(AuditEvent.id)
    ).all()
    messages = case.messages if len(ids) == 1 else session.scalars(
        select(TipMessage).where(TipMessage.case_id.in_(ids)).order_by(TipMessage.id)
    ).all()
    return {
        "id": case.id,
        "reference": case.reference,
        "state": case.state,
        "priority": case.priority,
        "level": case.level,
        "score": case.score,
        "version": case.version,
        "deadline": case.deadline,
        "emergency_at": case.emergency_at,
        "emergency_acknowledged_at": case.emergency_acknowledged_at,
        "emergency_acknowledged_by": case.emergency_acknowledged_by,
        "created_at": case.created_at,
        "updated_at": case.updated_at,
        "assignee": case.assignee.username if case.assignee else None,
        "resolution_code": case.resolution_code,
        "anonymous": case.anonymous,
        "screening": case.screening,
        "signals": case.signals,
        "referrals": case.referrals,
        "events": events,
        "messages": messages,
        "victims": case.victims,
        "subjects": case.subjects,
        "locations": case.locations,
        "notes": case.notes,
        "related": [r.as_json() for r in related_cases(session, case.id)],
        "merged": [i for i in ids if i != case.id],
        "packet_updates": [
            {"referral_id": rid, **update.as_json()}
            for rid, update in pending_updates(session, case).items()
        ],
        "incident_state": case.incident_state,
        "allowed_events": allowed_case_events(case),
        "immigration_relief": {
            "protected": case.protected_immigration,
            "set_by": case.protected_set_by,
            "set_at": case.protected_set_at,
            "suggested": case_suggestion(case),
        },
        "overdue": is_overdue(case.deadline, utcnow()),
    }
