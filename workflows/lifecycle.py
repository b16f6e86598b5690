"""Firing lifecycle events on cases and referrals: guards, effects, audit, outbox.

Everything here runs inside the caller's transaction (``with transaction(session):``):
the state change, its audit event and its outbox rows commit together, and an
exception anywhere rolls all of them back, state included. Two requests on the same
row cannot both win: the version column makes the loser's UPDATE match no row, which
surfaces here as Conflict (409).
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
from workflows.cases import get_case
from workflows.db import utcnow
from workflows.deadlines import aware, refresh_case_deadline
from workflows.errors import Conflict, InvalidInput, NotFound
from workflows.machines import (
    ACTIVE_REFERRAL_STATES,
    Context,
    case_machine,
    fire,
    referral_machine,
)
from workflows.models import PRIORITY_RANK, Case, Priority, Referral, User
from workflows.outbox import add_outbox_message
from workflows.screening import assess

CASE_EVENTS = tuple(case_machine.events)
REFERRAL_EVENTS = tuple(referral_machine.events)


def active_catalogs(catalogs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The catalogs this process loaded (the web app and workers build the same)."""
    if catalogs is not None:
        return catalogs
    from config.runtime import current_runtime

    return current_runtime().catalogs


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


def _flush(session: Session, what: str) -> None:
    with lost_race(what):
        session.flush()


def plan_referrals(
    case: Case, catalogs: dict[str, Any], now: datetime, *, emergency: bool = False
) -> routing.Decision:
    """Route the case's stored screening with today's rules and consents."""
    screening = case.screening or {}
    facts = dict(screening.get("facts") or {})
    if emergency:
        facts["imminent_danger"] = True
    assessment = assess(catalogs["indicators"], facts, screening.get("indicators") or [])
    return routing.route(
        catalogs["routing"],
        assessment,
        screening.get("consent"),
        configured_agencies(catalogs),
        now,
    )


def fire_case_event(
    session: Session,
    case_id: int,
    event: str,
    actor: User,
    *,
    version: int | None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    catalogs: dict[str, Any] | None = None,
) -> Case:
    """Fire one case event: guards, state, effects, one audit event, outbox rows."""
    if actor is None or actor.role == "agency":
        raise NotFound(f"no case {case_id}")
    case = get_case(session, case_id)
    if version is not None and version != case.version:
        raise Conflict(
            f"case {case_id} is at version {case.version}, not {version}; reload it",
            field="version",
            allowed=_allowed(case_machine, case.state),
            version=case.version,
        )
    with lost_race("case"):
        return _fire_case(session, case, event, actor, reason, data, catalogs)


def _fire_case(
    session: Session,
    case: Case,
    event: str,
    actor: User,
    reason: str | None,
    data: dict[str, Any] | None,
    catalogs: dict[str, Any] | None,
) -> Case:
    now = utcnow()
    ctx = Context(actor, (reason or "").strip() or None, dict(data or {}), now)
    cats = active_catalogs(catalogs)
    if event in ("submit_for_approval", "escalate") and event in _allowed(case_machine, case.state):
        ctx.plan = plan_referrals(case, cats, now, emergency=event == "escalate")
    from_state = fire(case_machine, case, event, ctx)
    session.flush()  # the version check happens here: a lost race stops before any write
    record_event(
        session,
        actor=actor.username,
        action=event,
        case_id=case.id,
        from_state=from_state,
        to_state=case.state,
        reason=ctx.reason,
        detail=_case_detail(event, ctx),
    )
    _CASE_EFFECTS.get(event, _nothing)(session, case, ctx, cats)
    refresh_case_deadline(case, cats["routing"].case_deadlines)
    session.flush()
    return case


def _allowed(machine: Any, state: str) -> list[str]:
    return [name for name, ev in machine.events.items() if state in ev.transitions]


def _case_detail(event: str, ctx: Context) -> dict[str, Any] | None:
    if event == "close":
        return {"resolution_code": ctx.data.get("resolution_code")}
    if ctx.plan is not None:
        return {"referrals": [r.agency for r in ctx.plan.referrals]}
    return None


def _nothing(*_: Any) -> None:
    return None


def _create_referrals(
    session: Session, case: Case, ctx: Context, base: datetime
) -> list[Referral]:
    """Turn the routing plan into ``pending`` referrals, one per agency."""
    created = []
    for rec in ctx.plan.referrals:
        referral = Referral(
            case=case,
            agency_code=rec.agency,
            state="pending",
            mandatory=rec.mandatory,
            deadline=base + rec.deadline,
            rule=rec.rule,
            reason=rec.reason,
            legal_basis=rec.legal_basis,
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
            detail={"agency": rec.agency, "rule": rec.rule, "mandatory": rec.mandatory},
        )
        created.append(referral)
    return created


def _withdraw_pending(session: Session, case: Case, ctx: Context, why: str) -> None:
    for referral in list(case.referrals):
        if referral.state == "pending":
            _fire_referral(session, referral, "withdraw", ctx.actor, why, {}, None, cascade=True)


def _on_submit(session: Session, case: Case, ctx: Context, _cats: dict[str, Any]) -> None:
    _withdraw_pending(session, case, ctx, "superseded by a new submission")
    screened_at = (case.screening or {}).get("screened_at")
    base = datetime.fromisoformat(screened_at) if screened_at else ctx.now
    assert ctx.now is not None
    _create_referrals(session, case, ctx, min(base, ctx.now))


def _queue_pending(session: Session, case: Case, ctx: Context, cats: dict[str, Any]) -> None:
    for referral in list(case.referrals):
        if referral.state == "pending":
            _fire_referral(
                session, referral, "queue", ctx.actor, ctx.reason, {}, cats,
                cascade=ctx.cascade,
            )
    case.referred_at = ctx.now


def _on_reject(session: Session, case: Case, ctx: Context, _cats: dict[str, Any]) -> None:
    _withdraw_pending(session, case, ctx, f"rejected by supervisor: {ctx.reason}")


def _on_escalate(session: Session, case: Case, ctx: Context, cats: dict[str, Any]) -> None:
    screening = dict(case.screening or {"facts": {}, "indicators": []})
    screening["facts"] = {**(screening.get("facts") or {}), "imminent_danger": True}
    case.screening = screening
    case.priority = Priority.EMERGENCY.value
    case.priority_rank = PRIORITY_RANK[Priority.EMERGENCY]
    _withdraw_pending(session, case, ctx, "superseded by the emergency escalation")
    assert ctx.now is not None
    _create_referrals(session, case, ctx, ctx.now)
    ctx.cascade = True
    _queue_pending(session, case, ctx, cats)
    add_outbox_message(
        session,
        "notify",
        payload={"kind": "emergency_page", "case_id": case.id, "referral_id": None,
                 "message_id": None},
    )


def _on_close(session: Session, case: Case, ctx: Context, _cats: dict[str, Any]) -> None:
    _withdraw_pending(session, case, ctx, "case closed")
    case.resolution_code = ctx.data["resolution_code"]
    case.closed_at = ctx.now


def _on_reopen(_session: Session, case: Case, ctx: Context, _cats: dict[str, Any]) -> None:
    case.resolution_code = None
    case.closed_at = None


_CASE_EFFECTS = {
    "submit_for_approval": _on_submit,
    "approve": _queue_pending,
    "reject": _on_reject,
    "escalate": _on_escalate,
    "close": _on_close,
    "reopen": _on_reopen,
}


def fire_referral_event(
    session: Session,
    referral_id: int,
    event: str,
    actor: User | None,
    *,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    catalogs: dict[str, Any] | None = None,
) -> Referral:
    """Fire one referral event; ``actor=None`` is the delivery worker."""
    referral = session.get(Referral, referral_id)
    if referral is None or referral.case.purged_at is not None:
        raise NotFound("no such referral")
    if actor is not None and actor.role == "agency" and actor.agency_code != referral.agency_code:
        raise NotFound("no such referral")  # existence never leaks to another agency
    with lost_race("referral"):
        _fire_referral(session, referral, event, actor, reason, dict(data or {}), catalogs)
        cats = active_catalogs(catalogs)
        refresh_case_deadline(referral.case, cats["routing"].case_deadlines)
        session.flush()
    return referral


def _fire_referral(
    session: Session,
    referral: Referral,
    event: str,
    actor: User | None,
    reason: str | None,
    data: dict[str, Any],
    catalogs: dict[str, Any] | None,
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
        new = _reroute(session, referral, ctx, active_catalogs(catalogs))
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
        _fire_referral(session, new, "queue", actor, ctx.reason, {}, catalogs)


def _on_queue(session: Session, referral: Referral, ctx: Context) -> None:
    referral.queued_at = ctx.now
    basis = dict(referral.legal_basis or {})
    if ctx.actor is not None and "approved_by" not in basis:
        basis.update(approved_by=ctx.actor.username, approved_at=ctx.now.isoformat())
        referral.legal_basis = basis
    session.flush()
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
    referral = Referral(
        case=declined.case,
        agency_code=agency,
        state="pending",
        mandatory=declined.mandatory,
        deadline=ctx.now + span,
        rule=declined.rule,
        reason=f"{agency}: re-routed after {declined.agency_code} declined — {kind}, "
        f"{routing.describe_deadline(span)}",
        legal_basis=basis,
        idempotency_key=uuid.uuid4().hex,
        created_at=ctx.now,
    )
    session.add(referral)
    session.flush()
    record_event(
        session,
        actor=actor_label(ctx.actor),
        action="create_referral",
        case_id=declined.case_id,
        referral_id=referral.id,
        to_state="pending",
        detail={"agency": agency, "rule": declined.rule, "rerouted_from": declined.id},
    )
    return referral


def allowed_case_events(case: Case) -> list[str]:
    """Events the case's state allows (a role may still be refused)."""
    return _allowed(case_machine, case.state)


def allowed_referral_events(referral: Referral) -> list[str]:
    """Events the referral's state allows."""
    return _allowed(referral_machine, referral.state)
