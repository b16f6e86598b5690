"""The case file: victims, subjects, locations and notes that staff add to a case.

Every addition, change and removal writes one audit event naming who, what item and
which fields changed, never a value (the log outlives the personal data it would hold).
Operators edit what they entered; supervisors edit anything and alone delete.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from workflows.audit import record_event
from workflows.casework import staff_case
from workflows.errors import Forbidden, InvalidInput, NotFound
from workflows.identifiers import LINKED_KINDS, normalise
from workflows.jurisdiction import incident_state
from workflows.models import Case, Location, Note, Subject, User, Victim
from workflows.vocabulary import DESK, SUPERVISOR

CaseItem = Victim | Subject | Location | Note

# item kind in the URL -> (model, fields a person may set, who "entered" it)
ITEMS: dict[str, tuple[type[CaseItem], tuple[str, ...], str]] = {
    "victims": (
        Victim,
        ("age", "age_min", "age_max", "minor", "citizenship", "language", "gender", "needs"),
        "created_by",
    ),
    "subjects": (
        Subject, ("kind", "value", "platform", "plate_state", "description"), "created_by"
    ),
    "locations": (
        Location,
        ("address", "city", "county", "state", "zip", "tribal_land"),
        "created_by",
    ),
    "notes": (Note, ("body", "internal"), "author"),
}
SINGULAR = {"victims": "victim", "subjects": "subject", "locations": "location", "notes": "note"}


def check_item(item: str, values: dict[str, Any]) -> None:
    """Rules across fields that a schema alone cannot see."""
    if item == "subjects":
        kind, value = values.get("kind"), values.get("value")
        if kind in LINKED_KINDS and value:
            normalise(kind, value)  # refuses a phone that is no phone, with a 422
        if values.get("platform") and kind != "handle":
            raise InvalidInput("only a handle has a platform", field="platform")
        if values.get("plate_state") and kind != "vehicle":
            raise InvalidInput("only a vehicle has a plate state", field="plate_state")
    if item == "victims":
        low, high, age = values.get("age_min"), values.get("age_max"), values.get("age")
        if low is not None and high is not None and low > high:
            raise InvalidInput("age_min is above age_max", field="age_min")
        minor = values.get("minor")
        oldest = age if age is not None else low
        if minor is True and oldest is not None and oldest >= 18:
            raise InvalidInput("an age of 18 or over contradicts minor", field="minor")
        youngest = age if age is not None else high
        if minor is False and youngest is not None and youngest < 18:
            raise InvalidInput("an age under 18 contradicts minor: false", field="minor")


def refresh_jurisdiction(case: Case) -> None:
    """Keep the case's incident state (routing and statistics) in step with its file."""
    state = incident_state(case.screening, [loc.state for loc in case.locations])
    if case.incident_state != state:
        case.incident_state = state


def add_item(
    session: Session, case_id: int, actor: User, item: str, data: dict[str, Any]
) -> CaseItem:
    """Add a victim, subject, location or note to a case."""
    model, fields, owner = ITEMS[item]
    case = staff_case(session, case_id, actor, DESK)
    values = {k: v for k, v in data.items() if k in fields}
    check_item(item, values)
    row = model(case_id=case.id, **values, **{owner: actor.username})
    getattr(case, item).append(row)
    session.flush()
    if item == "locations":
        refresh_jurisdiction(case)
    detail: dict[str, Any] = {"item": SINGULAR[item], "item_id": row.id,
                              "fields": sorted(k for k, v in values.items() if v is not None)}
    if item == "subjects":
        detail["kind"] = values.get("kind")
    record_event(session, actor=actor.username, action="casefile_add", case_id=case.id,
                 detail=detail)
    return row


def _item(session: Session, case: Case, item: str, item_id: int) -> Any:
    model = ITEMS[item][0]
    row = session.get(model, item_id)
    if row is None or row.case_id != case.id:  # type: ignore[attr-defined]
        raise NotFound(f"no {SINGULAR[item]} {item_id} on this case")
    return row


def edit_item(
    session: Session, case_id: int, actor: User, item: str, item_id: int, data: dict[str, Any]
) -> Any:
    """Change some fields; the audit event lists the fields, not their old or new values."""
    _model, fields, owner = ITEMS[item]
    case = staff_case(session, case_id, actor, DESK)
    row = _item(session, case, item, item_id)
    if actor.role != "supervisor" and getattr(row, owner) != actor.username:
        raise Forbidden(f"only a supervisor or whoever entered this {SINGULAR[item]} may edit it")
    changes = {k: v for k, v in data.items() if k in fields and getattr(row, k) != v}
    check_item(item, {f: changes.get(f, getattr(row, f)) for f in fields})
    for name, value in changes.items():
        setattr(row, name, value)
    if changes:
        if item == "locations":
            refresh_jurisdiction(case)
        record_event(
            session,
            actor=actor.username,
            action="casefile_edit",
            case_id=case.id,
            detail={"item": SINGULAR[item], "item_id": row.id, "fields": sorted(changes)},
        )
        session.flush()
    return row


def delete_item(session: Session, case_id: int, actor: User, item: str, item_id: int) -> None:
    """Remove an item (supervisors only); the audit event keeps that it existed."""
    case = staff_case(session, case_id, actor, SUPERVISOR)
    row = _item(session, case, item, item_id)
    detail: dict[str, Any] = {"item": SINGULAR[item], "item_id": row.id}
    if item == "subjects":
        detail["kind"] = row.kind
    getattr(case, item).remove(row)
    session.delete(row)
    session.flush()
    if item == "locations":
        refresh_jurisdiction(case)
    record_event(session, actor=actor.username, action="casefile_delete", case_id=case.id,
                 detail=detail)
