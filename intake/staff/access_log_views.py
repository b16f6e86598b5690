"""Security API: a case's access log (supervisors) and revoking tokens (admins)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import DateTime, Integer, List, Nested, String

from config.auth import current_user, token_auth
from config.database import db_session
from workflows.access import access_log
from workflows.accounts import revoke_token
from workflows.audit import record_event
from workflows.db import transaction
from workflows.errors import Forbidden, NotFound
from workflows.models import Case, Role
from workflows.vocabulary import ADMIN, EVERYONE, OVERSIGHT, role_list

api = APIBlueprint("security_api", __name__, url_prefix="/api/v1", tag="security")


class PiiViewOut(Schema):
    actor = String(required=True)
    at = DateTime(required=True)
    what = String(required=True, metadata={"example": "case"})
    via = String(allow_none=True, metadata={"description": "api or page, when recorded"})
    role = String(allow_none=True)
    agency = String(allow_none=True)
    referral_id = Integer(allow_none=True)


class AccessLogOut(Schema):
    case_id = Integer(required=True)
    views = List(Nested(PiiViewOut), required=True)


class RevokedOut(Schema):
    revoked = Integer(required=True)


@api.get("/cases/<int:case_id>/access-log")
@api.auth_required(token_auth, roles=role_list(EVERYONE))
@api.output(AccessLogOut)
@api.doc(summary="Who viewed this case's personal data, and when (supervisors, admins)",
         responses=[200, 401, 403, 404])
def case_access_log(case_id: int) -> Any:
    session = db_session()
    user = current_user()
    assert user is not None  # auth_required guarantees it
    # Agencies get 404, as from every case route: a case's existence never leaks to them.
    if user.role == Role.AGENCY.value or session.get(Case, case_id) is None:
        raise NotFound(f"no case {case_id}")
    if user.role not in OVERSIGHT:
        raise Forbidden("only supervisors and admins read the access log")
    return {"case_id": case_id, "views": access_log(session, case_id)}


@api.delete("/tokens/<string:prefix>")
@api.auth_required(token_auth, roles=role_list(ADMIN))
@api.output(RevokedOut)
@api.doc(
    summary="Revoke API tokens by their first 10 characters (admin)",
    responses=[200, 401, 403, 404],
)
def revoke_tokens(prefix: str) -> Any:
    session = db_session()
    with transaction(session):
        count = revoke_token(session, prefix) if len(prefix) == 10 else 0
        if not count:
            raise NotFound("no live token starts with that prefix")
        record_event(
            session,
            actor=current_user().username,  # type: ignore[union-attr]
            action="token_revoke",
            detail={"prefix": prefix, "count": count},
        )
    return {"revoked": count}
