"""Opening cases and finding them; every new case starts in ``received``."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows.audit import record_event
from workflows.db import utcnow
from workflows.deadlines import DEFAULT_CASE_DEADLINES
from workflows.errors import NotFound
from workflows.models import PRIORITY_RANK, Case, Priority


def format_reference(case_id: int, year: int) -> str:
    """Human-readable reference such as ``HT-2026-000123``."""
    return f"HT-{year}-{case_id:06d}"


def open_case(
    session: Session,
    *,
    actor: str,
    channel: str,
    anonymous: bool = False,
    priority: Priority = Priority.ROUTINE,
    passphrase_hash: str | None = None,
) -> Case:
    """Create a case in ``received`` with its reference and its first audit event."""
    # Every open case has a deadline from birth, so queues sort and "late" is one range scan.
    case = Case(
        deadline=utcnow() + DEFAULT_CASE_DEADLINES[priority.value],
        state="received",
        priority=priority.value,
        priority_rank=PRIORITY_RANK[priority],
        anonymous=anonymous,
        passphrase_hash=passphrase_hash,
    )
    session.add(case)
    session.flush()
    case.reference = format_reference(case.id, case.created_at.year)
    record_event(
        session,
        actor=actor,
        action="open",
        case_id=case.id,
        to_state="received",
        detail={"channel": channel},
    )
    return case


def get_case(session: Session, case_id: int) -> Case:
    """The case, or NotFound."""
    case = session.get(Case, case_id)
    if case is None or case.purged_at is not None:  # a purged case is a statistics shell
        raise NotFound(f"no case {case_id}")
    return case


def find_by_reference(session: Session, reference: str) -> Case | None:
    """The case with this reference (case-insensitive), or None."""
    return session.scalar(select(Case).where(Case.reference == reference.strip().upper()))
