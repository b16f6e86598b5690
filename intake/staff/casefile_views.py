"""Staff case file API: victims, subjects, locations, notes; search by identifier; merge.

Thin: each view validates, calls one domain function inside one transaction, answers.
Agency users get 404 here, as everywhere on the staff case API.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from config.auth import current_user, token_auth
from config.database import db_session
from intake.schemas import CaseOut
from intake.staff import casefile_schemas as s
from intake.staff.case_views import present_case
from workflows.access import record_pii_view
from workflows.audit import record_event
from workflows.casefile import add_item, delete_item, edit_item
from workflows.db import transaction
from workflows.errors import NotFound
from workflows.links import cases_naming
from workflows.merging import merge_cases
from workflows.models import User
from workflows.vocabulary import EVERYONE, STAFF, role_list

api = APIBlueprint("casefile_api", __name__, url_prefix="/api/v1", tag="case file")

ANYONE = role_list(EVERYONE)
SEARCH_KINDS = {"phone": "phone", "email": "email", "handle": "handle", "plate": "vehicle",
                "address": "address", "business": "business", "website": "website"}


def _user() -> User:
    user = current_user()
    assert user is not None  # auth_required guarantees it
    return user


def _item_routes(item: str) -> None:
    """POST, PATCH and DELETE for one kind of case file item."""
    schema_in, schema_patch, schema_out = s.ITEM_SCHEMAS[item]
    singular = item.rstrip("s")

    @api.post(f"/cases/<int:case_id>/{item}", endpoint=f"add_{singular}")
    @api.auth_required(token_auth, roles=ANYONE)
    @api.input(schema_in, arg_name="body")
    @api.output(schema_out, status_code=201)
    @api.doc(summary=f"Add a {singular} to a case", responses=[201, 401, 403, 404, 422])
    def add(case_id: int, body: dict[str, Any]) -> Any:
        session = db_session()
        with transaction(session):
            row = add_item(session, case_id, _user(), item, body)
        return row

    @api.patch(f"/cases/<int:case_id>/{item}/<int:item_id>", endpoint=f"edit_{singular}")
    @api.auth_required(token_auth, roles=ANYONE)
    @api.input(schema_patch(partial=True), arg_name="body")
    @api.output(schema_out)
    @api.doc(summary=f"Change a {singular} (whoever entered it, or a supervisor); audited",
             responses=[200, 401, 403, 404, 422])
    def edit(case_id: int, item_id: int, body: dict[str, Any]) -> Any:
        session = db_session()
        with transaction(session):
            row = edit_item(session, case_id, _user(), item, item_id, body)
            record_pii_view(session, _user(), row.case_id, via="api")
        return row

    @api.delete(f"/cases/<int:case_id>/{item}/<int:item_id>", endpoint=f"delete_{singular}")
    @api.auth_required(token_auth, roles=ANYONE)
    @api.output({}, status_code=204)
    @api.doc(summary=f"Remove a {singular} (supervisors); audited",
             responses={204: "Removed", 401: "Not signed in", 403: "Not a supervisor",
                        404: "No such case or item",
                        # an id beyond the database's range matches no DELETE route
                        405: "No such route (an id out of range)"})
    def remove(case_id: int, item_id: int) -> Any:
        session = db_session()
        with transaction(session):
            delete_item(session, case_id, _user(), item, item_id)
        return ""


for _item in s.ITEM_SCHEMAS:
    _item_routes(_item)


@api.get("/search")
@api.auth_required(token_auth, roles=ANYONE)
@api.input(s.SearchQuery, location="query", arg_name="query")
@api.output(s.SearchOut)
@api.doc(summary="Cases naming an identifier, found by its keyed hash (no plaintext index)",
         responses=[200, 401, 404, 422])
def search(query: dict[str, Any]) -> Any:
    user = _user()
    if user.role not in STAFF:
        raise NotFound("not found")
    (param, raw), = query.items()
    kind = SEARCH_KINDS[param]
    session = db_session()
    with transaction(session):
        cases = cases_naming(session, kind, raw)
        # Who looked for what kind of identifier, and how much came back; never the value.
        record_event(session, actor=user.username, action="search",
                     detail={"kind": kind, "found": len(cases)})
    return {"kind": kind, "items": cases}


@api.post("/cases/<int:case_id>/merge")
@api.auth_required(token_auth, roles=ANYONE)
@api.input(s.MergeIn, arg_name="body")
@api.output(CaseOut)
@api.doc(summary="Merge this case into another (supervisors); signals, referrals and the "
         "case file move, the reference keeps finding the case", responses=[200, 401, 403, 404,
                                                                           409, 422])
def merge(case_id: int, body: dict[str, Any]) -> Any:
    session = db_session()
    with transaction(session):
        target = merge_cases(session, case_id, _user(), body["into"])
        record_pii_view(session, _user(), target.id, via="api")  # the answer shows the case
    return present_case(target)
