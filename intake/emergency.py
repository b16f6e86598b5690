"""The emergency option of the IVR and SMS: priority emergency and a page, at once.

The page is an outbox row (C's worker sends it), written in the same transaction as
the priority change, so the request never waits on Redis or a phone network.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from workflows.audit import record_event
from workflows.models import PRIORITY_RANK, Case, Priority
from workflows.outbox import add_outbox_message


def page_emergency(session: Session, case: Case, *, channel: str) -> bool:
    """Mark the case an emergency and page the on-call supervisor; once per case."""
    if case.priority == Priority.EMERGENCY.value:
        return False  # already paged: a retry or a second key press pages nobody twice
    case.priority = Priority.EMERGENCY.value
    case.priority_rank = PRIORITY_RANK[Priority.EMERGENCY]
    record_event(
        session,
        actor="tipster",
        action="emergency_option",
        case_id=case.id,
        reason="caller reported imminent danger",
        detail={"channel": channel},
    )
    add_outbox_message(
        session,
        "notify",
        payload={
            "kind": "emergency_page",
            "case_id": case.id,
            "referral_id": None,
            "message_id": None,
        },
    )
    session.flush()
    return True
