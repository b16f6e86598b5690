"""Firing lifecycle events on cases and referrals: guards, effects, audit, outbox.

Everything here runs inside the caller's transaction (``with transaction(session):``):
the state change, its audit event and its outbox rows commit together, and an
exception anywhere rolls all of them back, state included. Two requests on the same
row cannot both win: the version column makes the loser's UPDATE match no row, which
surfaces here as Conflict (409).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from workflows import routing
from workflows.audit import record_event
from workflows.cases import get_case
from workflows.db import utcnow
from workflows.deadlines import clock_start, refresh_case_deadline, start_clocks
from workflows.emergency import start_emergency
from workflows.errors import Conflict, InvalidInput, NotFound
from workflows.machines import Context, allowed_events, case_machine, fire, referral_machine
from workflows.models import Case, Referral, User
from workflows.referral_events import (
    configured_agencies,
    fire_referral,
    lost_race,
    new_referral,
)
from workflows.screening import assess

__all__ = [
    "allowed_case_events",
    "allowed_referral_events",
    "configured_agencies",
    "fire_case_event",
    "fire_referral_event",
    "plan_referrals",
]


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
    catalogs: dict[str, Any],
) -> Case:
    """Fire one case event: guards, state, effects, one audit event, outbox rows."""
    if actor is None or actor.role == "agency":
        raise NotFound(f"no case {case_id}")
    case = get_case(session, case_id)
    if version is not None and version != case.version:
        raise Conflict(
            f"case {case_id} is at version {case.version}, not {version}; reload it",
            field="version",
            allowed=allowed_events(case_machine, case.state),
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
    catalogs: dict[str, Any],
) -> Case:
    now = utcnow()
    ctx = Context(actor, (reason or "").strip() or None, dict(data or {}), now)
    cats = catalogs
    planned = event in ("submit_for_approval", "escalate")
    if planned and event in allowed_events(case_machine, case.state):
        ctx.plan = plan_referrals(case, cats, now, emergency=event == "escalate")
    if event == "close" and event in allowed_events(case_machine, case.state):
        ctx.data["unsent_mandatory"] = _check_unsent_mandatory(case, ctx)
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


def unsent_mandatory(case: Case) -> list[dict[str, Any]]:
    """Mandatory referrals the case was screened for (or holds) that were never sent."""
    sent = {r.agency_code for r in case.referrals if r.sent_at is not None}
    found: dict[str, dict[str, Any]] = {}
    for rec in (case.screening or {}).get("recommended_referrals") or []:
        if rec.get("mandatory") and rec.get("agency") not in sent:
            found[rec["agency"]] = {"agency": rec["agency"], "rule": rec.get("rule"),
                                    "referral_id": None, "state": None}
    for referral in case.referrals:
        if referral.mandatory and referral.agency_code not in sent and (
            referral.state in ("pending", "queued", "failed") or referral.agency_code in found
        ):
            found[referral.agency_code] = {"agency": referral.agency_code, "rule": referral.rule,
                                           "referral_id": referral.id, "state": referral.state}
    return sorted(found.values(), key=lambda x: x["agency"])


def _person(ctx: Context) -> User:
    """The person behind a case event: fire_case_event refuses one without (agencies and
    the delivery worker fire referral events only)."""
    assert ctx.actor is not None
    return ctx.actor


def _check_unsent_mandatory(case: Case, ctx: Context) -> list[dict[str, Any]]:
    """Closing over an unsent mandatory referral: a supervisor's decision, with a reason."""
    unsent = unsent_mandatory(case)
    if not unsent:
        return []
    named = ", ".join(
        f"{u['agency']} ({u['rule']}"
        + (f", referral {u['referral_id']} {u['state']}" if u["referral_id"] else ", not created")
        + ")"
        for u in unsent
    )
    if _person(ctx).role != "supervisor":
        raise Conflict(
            f"the mandatory referral to {named} has not been sent; only a supervisor may "
            "close this case, with a reason",
            field="referrals",
            unsent_mandatory=unsent,
        )
    if not ctx.reason:
        raise InvalidInput(
            f"closing with the mandatory referral to {named} unsent needs a reason",
            field="reason",
        )
    return unsent


def _case_detail(event: str, ctx: Context) -> dict[str, Any] | None:
    if event == "close":
        detail: dict[str, Any] = {"resolution_code": ctx.data.get("resolution_code")}
        if ctx.data.get("unsent_mandatory"):
            detail["unsent_mandatory"] = ctx.data["unsent_mandatory"]
        return detail
    if ctx.plan is not None:
        return {"referrals": [r.agency for r in ctx.plan.referrals]}
    return None


def _nothing(*_: Any) -> None:
    return None


def _create_referrals(
    session: Session, case: Case, ctx: Context, cats: dict[str, Any]
) -> list[Referral]:
    """Turn the routing plan into ``pending`` referrals, one per agency.

    Each referral's ``send_by`` runs from its rule's clock (the first time the rule's
    facts were known), so neither re-screening nor a new submission moves it later.
    """
    start_clocks(case, [rec.rule for rec in ctx.plan.referrals], ctx.now)
    return [
        new_referral(
            session,
            case,
            ctx,
            agency=rec.agency,
            mandatory=rec.mandatory,
            send_by=clock_start(case, rec.rule, ctx.now) + rec.deadline,
            catalogs=cats,
            rule=rec.rule,
            reason=rec.reason,
            legal_basis=rec.legal_basis,
            detail={"agency": rec.agency, "rule": rec.rule, "mandatory": rec.mandatory},
        )
        for rec in ctx.plan.referrals
    ]


def _withdraw_pending(
    session: Session, case: Case, ctx: Context, why: str, cats: dict[str, Any]
) -> None:
    for referral in list(case.referrals):
        if referral.state == "pending":
            fire_referral(session, referral, "withdraw", ctx.actor, why, {}, cats, cascade=True)


def _on_submit(session: Session, case: Case, ctx: Context, cats: dict[str, Any]) -> None:
    _withdraw_pending(session, case, ctx, "superseded by a new submission", cats)
    _create_referrals(session, case, ctx, cats)


def _queue_pending(session: Session, case: Case, ctx: Context, cats: dict[str, Any]) -> None:
    for referral in list(case.referrals):
        if referral.state == "pending":
            fire_referral(
                session, referral, "queue", ctx.actor, ctx.reason, {}, cats,
                cascade=ctx.cascade,
            )
    case.referred_at = ctx.now


def _on_reject(session: Session, case: Case, ctx: Context, cats: dict[str, Any]) -> None:
    _withdraw_pending(session, case, ctx, f"rejected by supervisor: {ctx.reason}", cats)


def _on_escalate(session: Session, case: Case, ctx: Context, cats: dict[str, Any]) -> None:
    screening = dict(case.screening or {"facts": {}, "indicators": []})
    screening["facts"] = {**(screening.get("facts") or {}), "imminent_danger": True}
    case.screening = screening
    # Pages once: an emergency already signalled (IVR, SMS, screening) keeps its clock.
    start_emergency(session, case, actor=_person(ctx).username, channel="escalation",
                    now=ctx.now, case_deadlines=cats["routing"].case_deadlines)
    _withdraw_pending(session, case, ctx, "superseded by the emergency escalation", cats)
    _create_referrals(session, case, ctx, cats)
    ctx.cascade = True
    _queue_pending(session, case, ctx, cats)


def _on_close(session: Session, case: Case, ctx: Context, cats: dict[str, Any]) -> None:
    _withdraw_pending(session, case, ctx, "case closed", cats)
    case.resolution_code = ctx.data["resolution_code"]
    case.closed_at = ctx.now


def _on_acknowledge_emergency(
    _session: Session, case: Case, ctx: Context, _cats: dict[str, Any]
) -> None:
    case.emergency_acknowledged_at = ctx.now
    case.emergency_acknowledged_by = _person(ctx).username


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
    "acknowledge_emergency": _on_acknowledge_emergency,
}


def fire_referral_event(
    session: Session,
    referral_id: int,
    event: str,
    actor: User | None,
    *,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    catalogs: dict[str, Any],
) -> Referral:
    """Fire one referral event; ``actor=None`` is the delivery worker."""
    referral = session.get(Referral, referral_id)
    if referral is None or referral.case.purged_at is not None:
        raise NotFound("no such referral")
    if actor is not None and actor.role == "agency" and actor.agency_code != referral.agency_code:
        raise NotFound("no such referral")  # existence never leaks to another agency
    with lost_race("referral"):
        fire_referral(session, referral, event, actor, reason, dict(data or {}), catalogs)
        refresh_case_deadline(referral.case, catalogs["routing"].case_deadlines)
        session.flush()
    return referral


def allowed_case_events(case: Case) -> list[str]:
    """Events the case's state allows (a role may still be refused)."""
    return allowed_events(case_machine, case.state)


def allowed_referral_events(referral: Referral) -> list[str]:
    """Events the referral's state allows."""
    return allowed_events(referral_machine, referral.state)
