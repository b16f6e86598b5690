"""The agency API: own referrals only; another agency's is a 404.

A supervisor retries a failed delivery through the case API's referral events
(``POST /api/v1/cases/<id>/referrals/<id>/events`` with ``{"event": "retry"}``).
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.auth import current_user, token_auth
from config.database import db_session, runtime
from referrals import schemas
from workflows.access import record_pii_view
from workflows.db import transaction, utcnow
from workflows.errors import NotFound
from workflows.lifecycle import fire_referral_event
from workflows.models import Referral, User
from workflows.packets import disclosed_packet, latest_versions
from workflows.threads import (
    mark_read_by_agency,
    present_thread,
    replayed,
    thread,
    with_new_answers,
)
from workflows.vocabulary import AGENCY, role_list

api = APIBlueprint("referrals_api", __name__, url_prefix="/api/v1", tag="agency")



def disclosed(referral: Referral) -> bool:
    """Queued at least once, so the agency was given it (issue 11, item 1).

    A referral withdrawn while still ``pending`` (a rejection, a close, a re-submission)
    was never approved: its agency never learns it existed, in any list, filter or page.
    """
    return referral.queued_at is not None


# The same rule in SQL, for lists and filters.
DISCLOSED = Referral.queued_at.is_not(None)


def _agency_user() -> User:
    user = current_user()
    assert user is not None and user.agency_code  # auth_required(roles=["agency"])
    return user


def own_referral(session: Session, user: User, referral_id: int) -> Referral:
    """The agency's own, disclosed referral; anything else is NotFound (nothing leaks)."""
    referral = session.get(Referral, referral_id)
    if (
        referral is None
        or referral.agency_code != user.agency_code
        or not disclosed(referral)
        or referral.case.purged_at is not None
    ):
        raise NotFound(f"no referral {referral_id}")
    return referral


def others_on_case(referral: Referral) -> list[Referral]:
    """The case's other disclosed referrals (an agency sees who else holds the case)."""
    return [r for r in referral.case.referrals if r.id != referral.id and disclosed(r)]


def present(
    referral: Referral,
    *,
    with_packet: bool,
    session: Session | None = None,
    packet_version: int | None = None,
    new_answer: bool = False,
) -> dict[str, Any]:
    """A referral as its agency sees it: others on the case by agency and state only.

    The packet is the newest version disclosed (the snapshot frozen at queue time, or an
    update or consent withdrawal since), never rebuilt from the live case.
    """
    others = [{"agency": r.agency_code, "state": r.state} for r in others_on_case(referral)]
    packet = None
    if with_packet and referral.state != "withdrawn" and session is not None:
        packet = disclosed_packet(session, referral)
        packet_version = packet["packet_version"] if packet else packet_version
    return {
        "packet_version": packet_version,
        "id": referral.id,
        "agency": referral.agency_code,
        "state": referral.state,
        "case_reference": referral.case.reference,
        "priority": referral.case.priority,
        "mandatory": referral.mandatory,
        "deadline": referral.deadline,
        "send_by": referral.send_by,
        "answer_by": referral.answer_by,
        "rule": referral.rule,
        "reason": referral.reason,
        "legal_basis": referral.legal_basis,
        "decline_reason": referral.decline_reason,
        "outcome": referral.outcome,
        "created_at": referral.created_at,
        "sent_at": referral.sent_at,
        "acknowledged_at": referral.acknowledged_at,
        "answered_at": referral.answered_at,
        "other_agencies": others,
        "packet": packet,
        "question_due": referral.question_due,
        "new_answer": new_answer,
    }


@api.get("/agency/referrals")
@api.auth_required(token_auth, roles=role_list(AGENCY))
@api.input(schemas.ListQuery, location="query", arg_name="query")
@api.output(schemas.AgencyReferralPage)
@api.doc(summary="The agency's referrals, newest first", responses=[200, 401, 403, 422])
def list_referrals(query: dict[str, Any]) -> Any:
    session = db_session()
    user = _agency_user()
    stmt = (
        select(Referral)
        .where(
            Referral.agency_code == user.agency_code,
            DISCLOSED,
        )
        .order_by(Referral.id.desc())
        .limit(query["limit"] + 1)
    )
    if query["state"]:
        stmt = stmt.where(Referral.state == query["state"])
    if query["after"] is not None:
        stmt = stmt.where(Referral.id < query["after"])
    rows = [r for r in session.scalars(stmt) if r.case.purged_at is None]
    page = rows[: query["limit"]]
    more = len(rows) > query["limit"]
    versions = latest_versions(session, [r.id for r in page])
    unread = with_new_answers(session, [r.id for r in page])
    return {
        "items": [present(r, with_packet=False, packet_version=versions.get(r.id),
                          new_answer=r.id in unread) for r in page],
        "next": page[-1].id if more and page else None,
    }


@api.get("/agency/referrals/<int:referral_id>")
@api.auth_required(token_auth, roles=role_list(AGENCY))
@api.output(schemas.AgencyReferralOut)
@api.doc(summary="One of the agency's referrals, with its packet", responses=[200, 401, 403, 404])
def show_referral(referral_id: int) -> Any:
    session = db_session()
    user = _agency_user()
    with transaction(session):
        referral = own_referral(session, user, referral_id)
        # The packet holds personal data: every read of it is on the audit log.
        record_pii_view(session, user, referral.case_id, via="api", referral_id=referral.id)
    unread = with_new_answers(session, [referral.id])
    return present(referral, with_packet=True, session=session, new_answer=bool(unread))


@api.post("/agency/referrals/<int:referral_id>/events")
@api.auth_required(token_auth, roles=role_list(AGENCY))
@api.input(schemas.AgencyEventIn, arg_name="data")
@api.output(schemas.AgencyReferralOut)
@api.doc(
    summary="Acknowledge, accept, decline, ask for information or record the outcome",
    responses=[200, 401, 403, 404, 409, 422],
)
def referral_event(referral_id: int, data: dict[str, Any]) -> Any:
    session = db_session()
    user = _agency_user()
    outcome = data.get("outcome")
    with transaction(session):
        own_referral(session, user, referral_id)
        referral = fire_referral_event(
            session,
            referral_id,
            data["event"],
            user,
            reason=data.get("reason"),
            data={"outcome": outcome} if outcome else None,
            catalogs=runtime().catalogs,
        )
    version = latest_versions(session, [referral.id]).get(referral.id)
    return present(referral, with_packet=False, packet_version=version)



def ask_hotline(
    session: Session, user: User, referral_id: int, body: str, key: str | None
) -> Referral:
    """The agency writes in the thread: its ``request_info`` event (the page and the API).

    A repeated ``Idempotency-Key`` finds the message already written and adds nothing;
    two requests with one key at once meet the unique key, and the loser reads the
    winner's message.
    """
    try:
        with transaction(session):
            own_referral(session, user, referral_id)
            if replayed(session, referral_id, "agency", key) is None:
                fire_referral_event(
                    session, referral_id, "request_info", user, reason=body,
                    data={"idempotency_key": key}, catalogs=runtime().catalogs,
                )
    except IntegrityError:
        if replayed(session, referral_id, "agency", key) is None:
            raise
    return own_referral(session, user, referral_id)


def _read_thread(session: Session, user: User, referral_id: int) -> dict[str, Any]:
    with transaction(session):
        referral = own_referral(session, user, referral_id)
        # Messages may quote the case: every read of them is on the audit log.
        record_pii_view(session, user, referral.case_id, via="api", referral_id=referral.id)
        mark_read_by_agency(session, referral.id, utcnow())
        return present_thread(referral, thread(session, referral.id), for_agency=True)


@api.get("/agency/referrals/<int:referral_id>/thread")
@api.auth_required(token_auth, roles=role_list(AGENCY))
@api.output(schemas.ThreadOut)
@api.doc(summary="The referral's thread: your questions and the hotline's answers",
         responses=[200, 401, 403, 404])
def show_thread(referral_id: int) -> Any:
    return _read_thread(db_session(), _agency_user(), referral_id)


@api.post("/agency/referrals/<int:referral_id>/thread")
@api.auth_required(token_auth, roles=role_list(AGENCY))
@api.input(schemas.IdempotencyHeader, location="headers", arg_name="headers")
@api.input(schemas.ThreadMessageIn, arg_name="data")
@api.output(schemas.ThreadOut, status_code=201)
@api.doc(
    summary="Ask the hotline, or reply to its answer (opens the hotline's task)",
    description="The same as the `request_info` event, whose reason is the first "
    "message: 409 in a state that allows no question (pending, declined, withdrawn).",
    responses=[201, 401, 403, 404, 409, 422],
)
def post_thread(referral_id: int, headers: dict[str, Any], data: dict[str, Any]) -> Any:
    session = db_session()
    user = _agency_user()
    ask_hotline(session, user, referral_id, data["body"], headers.get("idempotency_key"))
    return _read_thread(session, user, referral_id)
