"""Merging two cases about one situation, and attaching a new contact to a case.

A merge moves every signal, referral, victim, subject, location, note and identifier
of one case onto the other and closes the first as ``merged``; nothing is deleted and
no audit event is edited (each keeps its case id, so the chain still verifies and both
histories stay readable). The merged case's reference keeps finding the survivor. The
tipster thread stays with the reference it was written under, so one tipster never
reads another's replies.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from workflows.audit import record_event
from workflows.casefile import refresh_jurisdiction
from workflows.casework import staff_case
from workflows.db import Base, is_postgres, utcnow
from workflows.errors import Conflict, InvalidInput
from workflows.models import Case, User
from workflows.vocabulary import DESK, SUPERVISOR

# Tables whose rows follow the case they belong to (the thread, tip_messages, does not).
MOVED_TABLES = (
    "signals",
    "referrals",
    "case_victims",
    "case_subjects",
    "case_locations",
    "case_notes",
    "case_identifiers",
    "sms_conversations",
)
MERGED = "merged"


def _lock(session: Session, ids: list[int]) -> None:
    if is_postgres(session):  # in id order, so two opposite merges cannot deadlock
        session.execute(
            select(Case.id).where(Case.id.in_(ids)).order_by(Case.id).with_for_update()
        ).all()


def merge_cases(session: Session, case_id: int, actor: User, into_id: int) -> Case:
    """Merge case ``case_id`` into ``into_id`` (supervisors); answers the survivor."""
    source = staff_case(session, case_id, actor, SUPERVISOR)
    target = staff_case(session, into_id, actor, SUPERVISOR)
    if source.id == target.id:
        raise Conflict("a case cannot be merged into itself", field="into")
    if source.id != case_id:
        raise Conflict(f"case {case_id} was already merged into {source.reference}", field="id")
    _lock(session, sorted([source.id, target.id]))
    session.refresh(source)
    session.refresh(target)
    if source.merged_into_id is not None or target.merged_into_id is not None:
        raise Conflict("one of these cases was merged meanwhile; reload", field="into")
    session.flush()
    moved: dict[str, int] = {}
    for name in MOVED_TABLES:
        table = Base.metadata.tables[name]
        result = session.execute(
            update(table).where(table.c.case_id == source.id).values(case_id=target.id)
        )
        moved[name] = result.rowcount or 0  # type: ignore[attr-defined]
    before = source.state
    now = utcnow()
    if source.priority_rank < target.priority_rank:
        target.priority, target.priority_rank = source.priority, source.priority_rank
    if source.deadline and (target.deadline is None or source.deadline < target.deadline):
        target.deadline = source.deadline
    if target.screening is None and source.screening is not None:
        target.screening = source.screening
    source.merged_into_id = target.id
    source.state = "closed"
    source.resolution_code = MERGED
    source.closed_at = now
    session.flush()
    for case in (source, target):  # the moved rows were changed behind the ORM's back
        session.expire(case, ["signals", "referrals", "victims", "subjects", "locations",
                              "notes"])
    refresh_jurisdiction(target)
    counts = {k: v for k, v in moved.items() if v}
    record_event(session, actor=actor.username, action="merge", case_id=source.id,
                 from_state=before, to_state="closed",
                 detail={"into": target.id, "into_reference": target.reference, **counts})
    record_event(session, actor=actor.username, action="merge_in", case_id=target.id,
                 from_state=target.state, to_state=target.state,
                 detail={"from": source.id, "from_reference": source.reference, **counts})
    session.flush()
    return target


def merged_case_ids(session: Session, case: Case) -> list[int]:
    """This case and every case merged into it (directly or not), for its whole history."""
    ids = [case.id]
    frontier = [case.id]
    while frontier:
        found = list(session.scalars(select(Case.id).where(Case.merged_into_id.in_(frontier))))
        found = [i for i in found if i not in ids]
        ids.extend(found)
        frontier = found
    return ids


def attachable_case(session: Session, case_id: int, actor: User) -> Case:
    """The case a new contact may land on: a staff-visible case not yet closed."""
    case = staff_case(session, case_id, actor, DESK)
    if case.state == "closed":
        raise Conflict(
            f"case {case.reference} is closed; reopen it first or log a new case",
            field="case_id",
        )
    return case


def note_attached(session: Session, case: Case, actor: User, detail: dict[str, Any]) -> None:
    """The audit event of a contact attached to an existing case."""
    if not detail.get("channel"):
        raise InvalidInput("an attached contact names its channel", field="channel")
    record_event(session, actor=actor.username, action="attach", case_id=case.id,
                 from_state=case.state, to_state=case.state, detail=detail)
