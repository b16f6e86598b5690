"""JSON API for intake: web tips, the anonymous follow-up, operator call logs, cases."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from sqlalchemy import select

from config.auth import current_user, token_auth
from config.database import db_session
from config.security import open_tip_throttled
from intake import schemas, services
from workflows.access import record_pii_view
from workflows.cases import get_case
from workflows.db import transaction, utcnow
from workflows.deadlines import is_overdue
from workflows.errors import NotFound
from workflows.lifecycle import allowed_case_events
from workflows.models import AuditEvent, Case, Role

api = APIBlueprint("intake_api", __name__, url_prefix="/api/v1", tag="intake")

STAFF = [Role.OPERATOR.value, Role.SUPERVISOR.value, Role.ADMIN.value]


@api.post("/tips")
@api.input(schemas.TipIn, arg_name="data")
@api.output(schemas.TipCreated, status_code=201)
@api.doc(summary="Submit a tip (anonymous by default)", responses=[201, 413, 422, 429])
def submit_tip(data: dict[str, Any]) -> Any:
    session = db_session()
    with transaction(session):
        tip = services.submit_tip(session, data)
    # Committed above: only now does the tipster get a reference.
    return {"reference": tip.case.reference, "passphrase": tip.passphrase}


@api.get("/tips/<string:reference>")
@api.input(schemas.PassphraseHeader, location="headers", arg_name="headers")
@api.output(schemas.TipStatusOut)
@api.doc(summary="Read a tip's status and the hotline's replies", responses=[200, 404, 422, 429])
def read_tip(reference: str, headers: dict[str, Any]) -> Any:
    session = db_session()
    case = open_tip_throttled(session, reference, headers["x_tip_passphrase"])
    return {
        "reference": case.reference,
        "status": services.public_status(case),
        "created_at": case.created_at,
        "messages": services.tip_messages(session, case),
    }


@api.post("/tips/<string:reference>/messages")
@api.input(schemas.PassphraseHeader, location="headers", arg_name="headers")
@api.input(schemas.TipMessageIn, arg_name="data")
@api.output(schemas.TipMessageOut, status_code=201)
@api.doc(summary="Add information to a tip", responses=[201, 404, 422, 429])
def add_tip_message(reference: str, headers: dict[str, Any], data: dict[str, Any]) -> Any:
    session = db_session()
    with transaction(session):
        case = open_tip_throttled(session, reference, headers["x_tip_passphrase"])
        message = services.add_tip_message(
            session, case, data["body"], direction="in", author="tipster"
        )
    return message


@api.post("/calls")
@api.auth_required(token_auth, roles=[Role.OPERATOR.value, Role.SUPERVISOR.value])
@api.input(schemas.CallIn, arg_name="data")
@api.output(schemas.CaseOut, status_code=201)
@api.doc(summary="Log a call (operator)", responses=[201, 401, 403, 422])
def log_call(data: dict[str, Any]) -> Any:
    session = db_session()
    user = current_user()
    assert user is not None  # auth_required guarantees it
    with transaction(session):
        case = services.log_call(session, user, data)
    return present_case(case)


@api.get("/cases/<int:case_id>")
@api.auth_required(token_auth, roles=[*STAFF, Role.AGENCY.value])
@api.output(schemas.CaseOut)
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
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.case_id == case.id).order_by(AuditEvent.id)
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
        "created_at": case.created_at,
        "updated_at": case.updated_at,
        "assignee": case.assignee.username if case.assignee else None,
        "resolution_code": case.resolution_code,
        "anonymous": case.anonymous,
        "screening": case.screening,
        "signals": case.signals,
        "referrals": case.referrals,
        "events": events,
        "messages": case.messages,
        "allowed_events": allowed_case_events(case),
        "overdue": is_overdue(case.deadline, utcnow()),
    }
