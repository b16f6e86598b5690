"""Referral transitions: the guards run in the machine, the effects and audit run here.

Used by ``workflows.lifecycle`` (the public ``fire_referral_event`` and the case events
that queue or withdraw referrals). Runs inside the caller's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from workflows import routing
from workflows.audit import record_event
from workflows.db import utcnow
from workflows.deadlines import aware
from workflows.errors import Conflict, InvalidInput
from workflows.machines import ACTIVE_REFERRAL_STATES, Context, fire, referral_machine
from workflows.models import Case, Referral, User
from workflows.outbox import add_outbox_message
from workflows.packets import take_snapshot


def configured_agencies(catalogs: dict[str, Any]) -> tuple[str, ...]:
    """Agency codes that may receive referrals here."""
    agencies = catalogs.get("agencies")
    if not agencies:
        return routing.DEFAULT_AGENCIES
    # An optional agency (DOL WHD, a local task force) counts once a channel is set up.
    return tuple(code for code, a in agencies.items() if getattr(a, "configured", True))


def actor_label(actor: User | None) -> str:
    """How the audit log names who acted (the worker is ``system``)."""
    return actor.username if actor is not None else "system"


@contextmanager
def lost_race(what: str) -> Iterator[None]:
    """The version column made our UPDATE match no row: someone else won; answer 409."""
    try:
        yield
    except StaleDataError:
        raise Conflict(f"the {what} was changed by someone else meanwhile; reload it") from None


def flush_or_conflict(session: Session, what: str) -> None:
    with lost_race(what):
        session.flush()


def _nothing(*_: Any) -> None:
    return None


def fire_referral(
    session: Session,
    referral: Referral,
    event: str,
    actor: User | None,
    reason: str | None,
    data: dict[str, Any],
    catalogs: dict[str, Any],
    *,
    cascade: bool = False,
) -> None:
    now = utcnow()
    ctx = Context(actor, (reason or "").strip() or None, data, now, cascade=cascade)
    if event in ("queue", "retry") and not routing.basis_holds(
        referral.legal_basis, (referral.case.screening or {}).get("consent"), now
    ):
        raise Conflict(
            f"the legal basis of the {referral.agency_code} referral no longer holds "
            "(consent withdrawn or expired); screen the case again",
            field="consent",
        )
    from_state = fire(referral_machine, referral, event, ctx)
    session.flush()  # the version check: a lost race stops before any write
    detail: dict[str, Any] = {"agency": referral.agency_code}
    if event == "reroute":
        new = _reroute(session, referral, ctx, catalogs)
        detail["new_referral_id"] = new.id
    record_event(
        session,
        actor=actor_label(actor),
        action=event if event != "request_info" else "agency_request_info",
        case_id=referral.case_id,
        referral_id=referral.id,
        from_state=from_state,
        to_state=referral.state,
        reason=ctx.reason,
        detail=detail,
    )
    _REFERRAL_EFFECTS.get(event, _nothing)(session, referral, ctx)
    if event == "reroute":
        fire_referral(session, new, "queue", actor, ctx.reason, {}, catalogs)


def _on_queue(session: Session, referral: Referral, ctx: Context) -> None:
    referral.queued_at = ctx.now
    basis = dict(referral.legal_basis or {})
    if ctx.actor is not None and "approved_by" not in basis:
        basis.update(approved_by=ctx.actor.username, approved_at=ctx.now.isoformat())
        referral.legal_basis = basis
    session.flush()
    # The disclosure is decided here: freeze the packet now, so what the agency receives
    # and reads is what was approved, not the case as it is later (issue 11, item 1).
    take_snapshot(session, referral)
    add_outbox_message(session, "deliver_referral", ref_id=referral.id)


def _on_sent(_session: Session, referral: Referral, ctx: Context) -> None:
    referral.sent_at = ctx.now


def _on_fail(_session: Session, referral: Referral, ctx: Context) -> None:
    error = ctx.data.get("error")
    referral.last_error = str(error)[:500] if error else referral.last_error


def _on_acknowledge(_session: Session, referral: Referral, ctx: Context) -> None:
    referral.acknowledged_at = ctx.now


def _on_accept(_session: Session, referral: Referral, ctx: Context) -> None:
    referral.answered_at = ctx.now
    referral.acknowledged_at = referral.acknowledged_at or ctx.now


def _on_decline(session: Session, referral: Referral, ctx: Context) -> None:
    referral.answered_at = ctx.now
    referral.decline_reason = ctx.reason
    add_outbox_message(
        session,
        "notify",
        payload={"kind": "referral_declined", "case_id": referral.case_id,
                 "referral_id": referral.id, "message_id": None},
    )


def _on_outcome(_session: Session, referral: Referral, ctx: Context) -> None:
    referral.outcome = {**(referral.outcome or {}), **ctx.data["outcome"],
                        "recorded_at": ctx.now.isoformat()}


_REFERRAL_EFFECTS = {
    "queue": _on_queue,
    "retry": _on_queue,
    "mark_sent": _on_sent,
    "fail": _on_fail,
    "acknowledge": _on_acknowledge,
    "accept": _on_accept,
    "decline": _on_decline,
    "record_outcome": _on_outcome,
}


def _reroute(
    session: Session, declined: Referral, ctx: Context, catalogs: dict[str, Any]
) -> Referral:
    """A supervisor sends a declined referral's case to another agency: a new referral."""
    agency = str(ctx.data["agency"]).upper()
    if agency not in configured_agencies(catalogs):
        raise InvalidInput(f"unknown agency {agency!r}", field="agency")
    busy = session.scalar(
        select(Referral.id).where(
            Referral.case_id == declined.case_id,
            Referral.agency_code == agency,
            Referral.state.in_(ACTIVE_REFERRAL_STATES),
        )
    )
    if busy is not None:
        raise Conflict(f"{agency} already holds referral {busy} for this case", field="agency")
    created = aware(declined.created_at)
    due = aware(declined.deadline)
    span = (due - created) if due and created else timedelta(hours=72)
    basis = {**(declined.legal_basis or {}), "rerouted_from": declined.id}
    basis.pop("approved_by", None)
    basis.pop("approved_at", None)
    kind = "mandatory" if declined.mandatory else "same basis"
    return new_referral(
        session,
        declined.case,
        ctx,
        agency=agency,
        mandatory=declined.mandatory,
        deadline=ctx.now + span,
        rule=declined.rule,
        reason=f"{agency}: re-routed after {declined.agency_code} declined — {kind}, "
        f"{routing.describe_deadline(span)}",
        legal_basis=basis,
        detail={"agency": agency, "rule": declined.rule, "rerouted_from": declined.id},
    )


def new_referral(
    session: Session,
    case: Case,
    ctx: Context,
    *,
    agency: str,
    mandatory: bool,
    deadline: datetime,
    rule: str,
    reason: str,
    legal_basis: dict[str, Any],
    detail: dict[str, Any],
) -> Referral:
    """A ``pending`` referral and its ``create_referral`` audit event (approval or re-route)."""
    referral = Referral(
        case=case,
        agency_code=agency,
        state="pending",
        mandatory=mandatory,
        deadline=deadline,
        rule=rule,
        reason=reason,
        legal_basis=legal_basis,
        idempotency_key=uuid.uuid4().hex,
        created_at=ctx.now,
    )
    session.add(referral)
    session.flush()
    record_event(
        session,
        actor=actor_label(ctx.actor),
        action="create_referral",
        case_id=case.id,
        referral_id=referral.id,
        to_state="pending",
        detail=detail,
    )
    return referral
