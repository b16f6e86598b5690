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
from workflows.deadlines import clock_start, start_clocks
from workflows.errors import Conflict, InvalidInput
from workflows.immigration import set_protected
from workflows.machines import ACTIVE_REFERRAL_STATES, Context, fire, referral_machine
from workflows.models import Case, Referral, User
from workflows.outbox import add_notification, add_outbox_message
from workflows.outcomes import RELIEF_KINDS, checked_outcome, with_outcome
from workflows.packets import take_snapshot
from workflows.screening import assess
from workflows.threads import record_question


def configured_agencies(catalogs: dict[str, Any]) -> tuple[str, ...]:
    """Agency codes that may receive referrals here."""
    agencies = catalogs.get("agencies")
    if not agencies:
        return routing.DEFAULT_AGENCIES
    # An optional agency (DOL WHD, a local task force) counts once a channel is set up.
    return tuple(code for code, a in agencies.items() if getattr(a, "configured", True))


DEFAULT_ANSWER_WINDOW = timedelta(hours=72)


def outcome_kinds(catalogs: dict[str, Any], agency: str) -> tuple[str, ...]:
    """The outcome kinds this agency may record (config/agencies.yaml ``outcomes``)."""
    entry = (catalogs.get("agencies") or {}).get(agency)
    return tuple(getattr(entry, "outcomes", ()) or ())


def answer_window(catalogs: dict[str, Any], agency: str, priority: str) -> timedelta:
    """How long the agency has to answer, by case priority (config/agencies.yaml)."""
    entry = (catalogs.get("agencies") or {}).get(agency)
    minutes = getattr(entry, "deadline_minutes", {}).get(priority) if entry else None
    return timedelta(minutes=minutes) if minutes else DEFAULT_ANSWER_WINDOW


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
    ctx = Context(actor, (reason or "").strip() or None, data, now, cascade=cascade,
                  catalogs=catalogs)
    if event in ("queue", "retry") and not routing.basis_holds(
        referral.legal_basis, (referral.case.screening or {}).get("consent"), now
    ):
        raise Conflict(
            f"the legal basis of the {referral.agency_code} referral no longer holds "
            "(consent withdrawn or expired); screen the case again",
            field="consent",
        )
    from_state = fire(referral_machine, referral, event, ctx)
    if event == "record_outcome":
        # Checked after the machine's guards (state, own agency), before anything is written.
        ctx.data["outcome"] = checked_outcome(
            ctx.data["outcome"], outcome_kinds(catalogs, referral.agency_code), now.date()
        )
    session.flush()  # the version check: a lost race stops before any write
    detail: dict[str, Any] = {"agency": referral.agency_code}
    if event == "record_outcome":
        detail.update(kind=ctx.data["outcome"]["kind"], status=ctx.data["outcome"]["status"])
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
    add_outbox_message(session, "deliver_referral", ref_id=referral.id,
                       priority_rank=referral.case.priority_rank)


def _on_sent(_session: Session, referral: Referral, ctx: Context) -> None:
    # The statutory clock stops here: from now on the agency's answer is what is due.
    referral.sent_at = ctx.now
    assert ctx.now is not None
    window = answer_window(ctx.catalogs, referral.agency_code, referral.case.priority)
    referral.answer_by = ctx.now + window
    referral.deadline = referral.answer_by


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
    add_notification(session, "referral_declined", case_id=referral.case_id,
                     referral_id=referral.id)


def _on_request_info(session: Session, referral: Referral, ctx: Context) -> None:
    # The agency's words open (or join) the referral's thread and the hotline's task.
    assert ctx.reason is not None  # the machine's needs_reason guard
    record_question(
        session, referral, actor_label(ctx.actor), ctx.reason, ctx.now, ctx.catalogs,
        idempotency_key=ctx.data.get("idempotency_key"),
    )


def _on_outcome(session: Session, referral: Referral, ctx: Context) -> None:
    entry = {**ctx.data["outcome"], "recorded_at": ctx.now.isoformat()}
    referral.outcome = with_outcome(referral.outcome, entry)
    case = referral.case
    if entry["kind"] in RELIEF_KINDS and not case.protected_immigration:
        # An agency just told us of a T/U visa or continued presence: 8 U.S.C. 1367 now
        # protects the case, whatever staff had flagged (audited like a staff change).
        set_protected(session, case, actor_label(ctx.actor), True, version=None)


_REFERRAL_EFFECTS = {
    "queue": _on_queue,
    "retry": _on_queue,
    "mark_sent": _on_sent,
    "fail": _on_fail,
    "acknowledge": _on_acknowledge,
    "accept": _on_accept,
    "decline": _on_decline,
    "request_info": _on_request_info,
    "record_outcome": _on_outcome,
}


def _reroute(
    session: Session, declined: Referral, ctx: Context, catalogs: dict[str, Any]
) -> Referral:
    """A supervisor sends a declined referral's case to another agency: a new ``pending``
    referral, on its own legal basis, to be approved like any other.

    Routing runs again for the target agency alone, so a mandatory basis reaches only the
    agencies its rule names, and a consent reaches only the agencies its scope allows
    (a services consent never reaches FBI or ICE). No basis: 409 naming why.
    """
    agency = str(ctx.data["agency"]).upper()
    if agency not in configured_agencies(catalogs):
        raise InvalidInput(f"unknown agency {agency!r}", field="agency")
    case = declined.case
    busy = session.scalar(
        select(Referral.id).where(
            Referral.case_id == declined.case_id,
            Referral.agency_code == agency,
            Referral.state.in_(ACTIVE_REFERRAL_STATES),
        )
    )
    if busy is not None:
        raise Conflict(f"{agency} already holds referral {busy} for this case", field="agency")
    assert ctx.now is not None
    screening = case.screening or {}
    assessment = assess(
        catalogs["indicators"], screening.get("facts") or {}, screening.get("indicators") or []
    )
    decision = routing.route(
        catalogs["routing"], assessment, screening.get("consent"), (agency,), ctx.now
    )
    rec = next((r for r in decision.referrals if r.agency == agency), None)
    if rec is None:
        raise Conflict(
            f"cannot re-route to {agency}: {_no_basis(agency, decision.withheld)}",
            field="agency",
            withheld=[w for w in decision.withheld if w["agency"] == agency],
        )
    start_clocks(case, [rec.rule], ctx.now)
    return new_referral(
        session,
        case,
        ctx,
        agency=agency,
        mandatory=rec.mandatory,
        send_by=clock_start(case, rec.rule, ctx.now) + rec.deadline,
        catalogs=catalogs,
        rule=rec.rule,
        reason=f"{rec.reason} (re-routed after {declined.agency_code} declined)",
        legal_basis={**rec.legal_basis, "rerouted_from": declined.id},
        detail={"agency": agency, "rule": rec.rule, "rerouted_from": declined.id},
    )


def _no_basis(agency: str, withheld: list[dict[str, Any]]) -> str:
    """Why routing gives this agency nothing, in words a supervisor can act on."""
    mine = [w for w in withheld if w["agency"] == agency]
    if mine:
        parts = [f"rule {w['rule']} needs consent that is {w['consent']}" for w in mine]
        return "; ".join(parts) + " — record the victim's consent or choose another agency"
    return (
        f"no routing rule refers this case to {agency} on its screening facts "
        "(a re-route needs its own legal basis)"
    )


def new_referral(
    session: Session,
    case: Case,
    ctx: Context,
    *,
    agency: str,
    mandatory: bool,
    send_by: datetime,
    catalogs: dict[str, Any],
    rule: str,
    reason: str,
    legal_basis: dict[str, Any],
    detail: dict[str, Any],
) -> Referral:
    """A ``pending`` referral and its ``create_referral`` audit event (approval or re-route).

    ``send_by`` is ours (the rule's); ``answer_by`` the agency's, counted from ``send_by``
    until the notice is sent and from the sending after that.
    """
    referral = Referral(
        case=case,
        agency_code=agency,
        state="pending",
        mandatory=mandatory,
        deadline=send_by,
        send_by=send_by,
        answer_by=send_by + answer_window(catalogs, agency, case.priority),
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
