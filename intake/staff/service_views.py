"""The service directory and service referrals, for the desk (issue 13).

Providers answer through their signed link (``referrals.provider_pages``); staff find
providers here and refer a case on the victim's services consent.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Float, Integer, List, Nested, Raw, String
from apiflask.validators import Length, OneOf, Range, Regexp

from config.auth import current_user, token_auth
from config.database import db_session
from intake.schemas import StrictSchema, Text
from workflows.casework import staff_case
from workflows.db import MAX_ID, transaction
from workflows.errors import InvalidInput
from workflows.outbox import add_notification
from workflows.providers import SERVICE_TYPES, ServiceReferral, refer_to_provider, search_providers
from workflows.vocabulary import DESK, role_list

api = APIBlueprint("service_api", __name__, url_prefix="/api/v1", tag="services")

DESK_ROLES = role_list(DESK)


class ServiceQuery(Schema):
    type = String(load_default=None, validate=OneOf(SERVICE_TYPES))
    lang = String(load_default=None, validate=Regexp(r"^[a-z]{2}$"))
    state = String(load_default=None, validate=Regexp(r"^[A-Za-z]{2}$"))
    near = String(
        load_default=None,
        validate=[Length(max=40), Regexp(r"^-?\d{1,2}(\.\d+)?,-?\d{1,3}(\.\d+)?$")],
    )


class ServiceOut(Schema):
    id = Integer()
    hsds_id = String()
    name = String()
    organization = String()
    description = String(allow_none=True)
    email = String(allow_none=True)
    service_types = List(String())
    languages = List(String())
    city = String(allow_none=True)
    state = String(allow_none=True)
    latitude = Float(allow_none=True)
    longitude = Float(allow_none=True)
    distance_km = Float(allow_none=True)


class ServiceList(Schema):
    items = List(Nested(ServiceOut))


class ServiceReferralIn(StrictSchema):
    service_id = Integer(required=True, strict=True, validate=Range(1, MAX_ID))
    reason = Text(2000, required=True)


class ServiceReferralOut(Schema):
    id = Integer()
    case_id = Integer()
    state = String()
    provider = Raw()
    reason = String()
    legal_basis = Raw(allow_none=True)
    answer_note = String(allow_none=True)
    created_by = String()
    created_at = String()
    service_given_at = String(allow_none=True)


class ServiceReferralList(Schema):
    items = List(Nested(ServiceReferralOut))


@api.get("/services")
@api.auth_required(token_auth, roles=DESK_ROLES)
@api.input(ServiceQuery, location="query", arg_name="query")
@api.output(ServiceList)
@api.doc(summary="Search the service directory (HSDS import)", responses=[200, 401, 403, 422])
def list_services(query: dict[str, Any]) -> Any:
    near = None
    if query.get("near"):
        lat, lon = (float(part) for part in query["near"].split(","))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise InvalidInput("near: latitude,longitude out of range", field="near")
        near = (lat, lon)
    found = search_providers(
        db_session(),
        service_type=query.get("type"),
        language=query.get("lang"),
        state=query.get("state"),
        near=near,
    )
    return {"items": [{**p.as_json(), "distance_km": d} for p, d in found]}


@api.post("/cases/<int:case_id>/service-referrals")
@api.auth_required(token_auth, roles=DESK_ROLES)
@api.input(ServiceReferralIn, arg_name="body")
@api.output(ServiceReferralOut, status_code=201)
@api.doc(
    summary="Refer a case to a service provider (needs the services consent)",
    responses=[201, 401, 403, 404, 409, 422],
)
def create_service_referral(case_id: int, body: dict[str, Any]) -> Any:
    session = db_session()
    me = current_user()
    assert me is not None
    with transaction(session):
        case = staff_case(session, case_id, me, DESK)
        referral = refer_to_provider(session, case, body["service_id"], body["reason"], me)
        # The provider is told through the outbox, in the same transaction.
        add_notification(session, "service_referral", case_id=case.id,
                         service_referral_id=referral.id)
    return referral.as_json()


@api.get("/cases/<int:case_id>/service-referrals")
@api.auth_required(token_auth, roles=DESK_ROLES)
@api.output(ServiceReferralList)
@api.doc(summary="The case's service referrals and their states", responses=[200, 401, 403, 404])
def list_service_referrals(case_id: int) -> Any:
    session = db_session()
    me = current_user()
    assert me is not None
    case = staff_case(session, case_id, me, DESK)
    rows = session.query(ServiceReferral).filter_by(case_id=case.id).order_by(ServiceReferral.id)
    return {"items": [r.as_json() for r in rows]}
