"""Who looked at a case's personal data: the ``view_pii`` events of the audit log.

Every page or API answer that shows a case's personal data to a person writes one
``view_pii`` event (who, what, when) in the audit chain; supervisors read them back here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows.audit import record_event
from workflows.models import AuditEvent, User

VIEW_PII = "view_pii"


def record_pii_view(
    session: Session,
    user: User | None,
    case_id: int,
    *,
    via: str,
    referral_id: int | None = None,
) -> AuditEvent:
    """Write one access-log entry inside the caller's transaction (``via``: api | page)."""
    detail: dict[str, Any] = {"via": via}
    if user is not None:
        detail["role"] = user.role
        if user.agency_code:
            detail["agency"] = user.agency_code
    return record_event(
        session,
        actor=user.username if user is not None else "anonymous",
        action=VIEW_PII,
        case_id=case_id,
        referral_id=referral_id,
        detail=detail,
    )


@dataclass(frozen=True)
class PiiView:
    actor: str
    at: datetime
    what: str
    via: str | None
    role: str | None
    agency: str | None
    referral_id: int | None


def access_log(session: Session, case_id: int) -> list[PiiView]:
    """Every recorded view of this case's personal data, oldest first."""
    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.case_id == case_id, AuditEvent.action == VIEW_PII)
        .order_by(AuditEvent.id)
    )
    views = []
    for event in events:
        detail = event.detail or {}
        views.append(
            PiiView(
                actor=event.actor,
                at=event.created_at,
                what=f"referral {event.referral_id} packet" if event.referral_id else "case",
                via=detail.get("via"),
                role=detail.get("role"),
                agency=detail.get("agency"),
                referral_id=event.referral_id,
            )
        )
    return views
