"""What staff do to a case besides lifecycle events: screen it, assign it, send an
agency the new information, record a withdrawn consent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows.audit import record_event
from workflows.cases import get_case
from workflows.db import utcnow
from workflows.deadlines import clock_start, refresh_case_deadline, start_clocks
from workflows.emergency import start_emergency
from workflows.errors import Conflict, Forbidden, InvalidInput, NotFound
from workflows.lifecycle import configured_agencies, fire_case_event
from workflows.models import PRIORITY_RANK, Case, ReferralPacket, User
from workflows.packet_updates import (
    current_update,
    notify_withdrawal,
    queue_packet,
    referral_on_case,
    withdrawn_scopes,
)
from workflows.packets import consent_given
from workflows.referral_events import flush_or_conflict
from workflows.routing import route
from workflows.screening import (
    CONSENT_GIVERS,
    CONSENT_SCOPES,
    FACT_NAMES,
    assess,
    check_input,
    consent_records,
)
from workflows.vocabulary import DESK, STAFF

SCREENABLE = ("received", "screening", "awaiting_info")


def staff_case(session: Session, case_id: int, actor: User, roles: frozenset[str]) -> Case:
    if actor is None or actor.role not in STAFF:
        raise NotFound(f"no case {case_id}")  # agencies never learn a case exists
    if actor.role not in roles:
        raise Forbidden(f"only {' or '.join(sorted(roles))} may do this")
    return get_case(session, case_id)


def _signal_caller_type(case: Case) -> str | None:
    for signal in case.signals:
        if getattr(signal, "caller_type", None):
            return str(signal.caller_type)
    return None


def consent_giver(consent: dict[str, Any], caller_type: str | None) -> str:
    """Who gave this consent: as recorded, else the victim on their own call, else a
    third party (the least a packet may then carry)."""
    stated = consent.get("given_by")
    if stated in CONSENT_GIVERS:
        return str(stated)
    return "victim" if caller_type == "victim" else "third_party"


def record_screening(
    session: Session,
    case_id: int,
    actor: User,
    body: dict[str, Any],
    *,
    catalogs: dict[str, Any],
) -> dict[str, Any]:
    """Record facts, indicators and consent; answer score, level, priority and referrals."""
    case = staff_case(session, case_id, actor, DESK)
    if case.state not in SCREENABLE:
        raise Conflict(
            f"a case in {case.state} cannot be screened; "
            + ("reject it first" if case.state == "pending_approval" else "reopen it first"),
            field="state",
            allowed=list(SCREENABLE),
        )
    cats = catalogs
    facts = {k: v for k, v in (body.get("facts") or {}).items() if k in FACT_NAMES}
    # What the tipster's channel answered (SMS, IVR emergency option) holds until staff
    # say otherwise: an unanswered fact keeps the signal's value.
    for name, value in (case.signal_facts or {}).items():
        if facts.get(name) is None and name in FACT_NAMES:
            facts[name] = value
    if facts.get("caller_type") is None:
        facts["caller_type"] = _signal_caller_type(case)
    if not facts.get("state"):  # the case file's first location with a state says where
        place = next((loc for loc in case.locations if loc.state), None)
        if place is not None:
            facts.update(state=place.state, county=facts.get("county") or place.county,
                         city=facts.get("city") or place.city)
    indicators = list(body.get("indicators") or [])
    check_input(cats["indicators"], facts, indicators)
    if case.state == "received":
        fire_case_event(
            session, case.id, "start_screening", actor, version=None, catalogs=cats
        )
    now = utcnow()
    previous = (case.screening or {}).get("consent")
    given_by = consent_giver(body.get("consent") or {}, facts.get("caller_type"))
    config = cats["routing"]
    consent = consent_records(
        body.get("consent") or {},
        previous,
        given_by=given_by,
        recorded_by=actor.username,
        now=now,
        valid_for=config.consent_valid_for,
    )
    assessment = assess(cats["indicators"], facts, indicators)
    decision = route(config, assessment, consent, configured_agencies(cats), now)
    if "imminent_danger" in assessment.triggers:
        start_emergency(session, case, actor=actor.username, channel="screening", now=now,
                        case_deadlines=config.case_deadlines)
    # Each rule's clock runs from the first screening that found its facts, never later.
    start_clocks(case, [r.rule for r in decision.referrals], now)
    recommended = [
        {**r.as_json(), "send_by": (clock_start(case, r.rule, now) + r.deadline).isoformat()}
        for r in decision.referrals
    ]
    due = [now + config.case_deadlines[assessment.priority.value]]
    due += [clock_start(case, r.rule, now) + r.deadline for r in decision.referrals]
    if decision.emergency:
        action = "escalate"
    elif decision.referrals:
        action = "submit_for_approval"
    else:
        action = "close"
    case.screening = {
        "facts": facts,
        "indicators": list(assessment.indicators),
        "consent": consent,
        "derived": {k: assessment.facts[k] for k in
                    ("minor", "adult", "sex", "labor", "signs", "trafficking_indicated",
                     "third_party")},
        "elements": assessment.elements,
        "triggers": list(assessment.triggers),
        "level": assessment.level,
        "score": assessment.score,
        "priority": assessment.priority.value,
        "recommended_referrals": recommended,
        "withheld_referrals": decision.withheld,
        "recommended_action": action,
        "close_as": decision.close_as,
        "screened_by": actor.username,
        "screened_at": now.isoformat(),
        "deadline": min(due).isoformat(),
    }
    # A "no" where there was a "yes" is a withdrawal: the agencies holding what that
    # consent covered are told, as through POST …/consent/withdraw.
    for scope in withdrawn_scopes(previous, consent, now):
        notify_withdrawal(session, case, scope, actor, now, cats)
    case.level = assessment.level
    case.score = assessment.score
    case.priority = assessment.priority.value
    case.priority_rank = PRIORITY_RANK[assessment.priority]
    ttype = facts.get("trafficking_type")
    sex, labor = assessment.facts["sex"], assessment.facts["labor"]
    case.case_type = ttype if ttype and ttype != "unknown" else (
        "both" if sex and labor else "sex" if sex else "labor" if labor else "unknown"
    )
    refresh_case_deadline(case, config.case_deadlines)
    case.incident_state = facts.get("state") or case.incident_state
    record_event(
        session,
        actor=actor.username,
        action="screen",
        case_id=case.id,
        from_state=case.state,
        to_state=case.state,
        detail={
            "level": assessment.level,
            "score": assessment.score,
            "priority": assessment.priority.value,
            "triggers": list(assessment.triggers),
            "recommended": [r.agency for r in decision.referrals],
        },
    )
    flush_or_conflict(session, "case")
    return {
        "case_id": case.id,
        "state": case.state,
        "version": case.version,
        "score": assessment.score,
        "level": assessment.level,
        "priority": assessment.priority.value,
        "triggers": list(assessment.triggers),
        "recommended_referrals": recommended,
        "withheld_referrals": decision.withheld,
        "recommended_action": action,
        "close_as": decision.close_as,
        "deadline": case.deadline,
    }


def assign_case(
    session: Session, case_id: int, actor: User, assignee: str | None, *, version: int | None
) -> Case:
    """Give a case to a person (or to nobody); supervisors assign, operators take their own."""
    case = staff_case(session, case_id, actor, DESK)
    if version is not None and version != case.version:
        raise Conflict(
            f"case {case_id} is at version {case.version}, not {version}; reload it",
            field="version",
        )
    user = None
    if assignee is not None:
        user = session.scalar(select(User).where(User.username == assignee))
        if user is None or not user.active or user.role not in ("operator", "supervisor"):
            raise InvalidInput(f"no operator or supervisor {assignee!r}", field="assignee")
    if actor.role == "operator" and (user is None or user.id != actor.id):
        raise Forbidden("operators may only take a case themselves")
    before = case.assignee.username if case.assignee else None
    case.assignee_id = user.id if user else None
    case.assignee = user
    record_event(
        session,
        actor=actor.username,
        action="assign",
        case_id=case.id,
        from_state=case.state,
        to_state=case.state,
        detail={"from": before, "to": assignee},
    )
    flush_or_conflict(session, "case")
    return case


def decide_update(
    session: Session, case_id: int, referral_id: int, actor: User, *, send: bool, digest: str
) -> ReferralPacket | None:
    """Staff confirm ("send") or put off ("not now") the update they were shown.

    ``digest`` is what they saw: if more arrived meanwhile, 409, so nothing goes out that
    a person did not look at. Sending queues the version through the outbox here, in the
    caller's transaction; "not now" sends nothing and hides this content until more comes.
    """
    case = staff_case(session, case_id, actor, DESK)
    referral = referral_on_case(session, case, referral_id)
    update = current_update(session, referral, digest)
    snapshot = None
    if send:
        snapshot = queue_packet(session, referral, update.packet, "update")
        referral.update_dismissed_digest = None
    else:
        referral.update_dismissed_digest = update.digest
    record_event(
        session,
        actor=actor.username,
        action="packet_update" if send else "packet_update_not_now",
        case_id=case.id,
        referral_id=referral.id,
        detail={"agency": referral.agency_code, "fields": list(update.changed),
                "packet_version": snapshot.version if snapshot else None},
    )
    flush_or_conflict(session, "referral")
    return snapshot


def withdraw_consent(
    session: Session,
    case_id: int,
    actor: User,
    *,
    scope: str,
    given_by: str,
    reason: str | None,
    catalogs: dict[str, Any],
) -> list[int]:
    """Record that the victim (or guardian) withdrew a consent, and tell its holders.

    The record, its audit event, the withdrawals and every ``consent_withdrawn`` version
    with its outbox row commit together. 409 when that consent is not given now.
    """
    case = staff_case(session, case_id, actor, DESK)
    if scope not in CONSENT_SCOPES:
        raise InvalidInput(f"scope must be one of {', '.join(CONSENT_SCOPES)}", field="scope")
    if given_by not in CONSENT_GIVERS:
        raise InvalidInput(f"given_by must be one of {', '.join(CONSENT_GIVERS)}",
                           field="given_by")
    now = utcnow()
    screening = dict(case.screening or {})
    consents = dict(screening.get("consent") or {})
    if not consent_given(screening, scope):
        raise Conflict(f"no {scope} consent is given on this case", field="scope")
    consents[scope] = {
        "scope": scope,
        "given": False,
        "given_by": given_by,
        "recorded_by": actor.username,
        "recorded_at": now.isoformat(),
        "expires_at": None,
        "withdrawn": True,
    }
    screening["consent"] = consents
    case.screening = screening
    told = notify_withdrawal(session, case, scope, actor, now, catalogs)
    record_event(
        session,
        actor=actor.username,
        action="consent_withdrawn",
        case_id=case.id,
        from_state=case.state,
        to_state=case.state,
        reason=(reason or "").strip() or None,
        detail={"scope": scope, "given_by": given_by, "referrals": told},
    )
    flush_or_conflict(session, "case")
    return told
