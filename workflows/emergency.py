"""Emergencies: the 15-minute clock, the page, the re-pages and their acknowledgement.

An emergency starts at its first signal: the IVR's emergency option, an SMS "not safe",
or imminent danger found in screening. From that moment the case is due in 15 minutes
(routing.yaml ``case_deadlines.emergency``) and leads every queue; the on-call
supervisor is paged at once, re-paged at 5 minutes and every supervisor at 10, until a
supervisor acknowledges (``acknowledge_emergency``, an audited case event).

Pages are outbox rows written in the caller's transaction, so an IVR request never
waits on Redis or a phone network and a page is never lost.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from workflows.audit import record_event
from workflows.deadlines import refresh_case_deadline, start_clocks
from workflows.models import PRIORITY_RANK, Case, Priority
from workflows.outbox import add_notification

# (level, after): level 1 re-pages the on-call supervisor, level 2 every supervisor.
REPAGES = ((1, timedelta(minutes=5)), (2, timedelta(minutes=10)))
# The rule that imminent danger triggers in routing.yaml: its clock is the emergency's.
EMERGENCY_RULE = "imminent_danger"


def page(session: Session, case: Case, kind: str = "emergency_page", level: int = 0) -> None:
    """Queue one page about this case to supervisors (the notify worker sends it)."""
    add_notification(session, kind, case_id=case.id, priority_rank=case.priority_rank,
                     **({"level": level} if level else {}))


def start_emergency(
    session: Session,
    case: Case,
    *,
    actor: str,
    channel: str,
    now: datetime,
    case_deadlines: dict[str, timedelta] | None = None,
) -> bool:
    """Make the case an emergency from ``now`` and page; once per case (False if already).

    A retry, a second key press or a re-screening never pages twice nor moves the clock.
    """
    if case.priority != Priority.EMERGENCY.value:
        case.priority = Priority.EMERGENCY.value
        case.priority_rank = PRIORITY_RANK[Priority.EMERGENCY]
    if case.emergency_at is not None:
        refresh_case_deadline(case, case_deadlines)
        return False
    case.emergency_at = now
    start_clocks(case, [EMERGENCY_RULE], now)
    # What the tipster's channel told us is a screening fact until staff say otherwise.
    case.signal_facts = {**(case.signal_facts or {}), "imminent_danger": True}
    refresh_case_deadline(case, case_deadlines)
    record_event(
        session,
        actor=actor,
        action="emergency",
        case_id=case.id,
        reason="imminent danger reported",
        detail={"channel": channel, "deadline": case.deadline.isoformat() if case.deadline
                else None},
    )
    page(session, case)
    session.flush()
    return True


def due_repages(case_emergency_at: datetime, now: datetime) -> list[tuple[int, datetime]]:
    """The re-pages whose time has come: (level, when it was due)."""
    return [(level, case_emergency_at + after) for level, after in REPAGES
            if now >= case_emergency_at + after]
