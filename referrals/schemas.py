"""Agency API schemas: they validate requests and generate the OpenAPI document."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from marshmallow import ValidationError, validates_schema

from config.contract import StrictSchema, Text
from workflows.vocabulary import AGENCY_EVENTS

INVESTIGATION_STATUSES = (
    "not_started",
    "open",
    "closed_no_action",
    "referred_for_prosecution",
    "charged",
    "convicted",
    "acquitted",
    "closed",
)
VISIBLE_STATES = ("queued", "sent", "acknowledged", "accepted", "declined", "failed", "withdrawn")


class OutcomeIn(StrictSchema):
    investigation_status = String(required=True, validate=OneOf(INVESTIGATION_STATUSES))
    charges = List(Text(300), load_default=list, validate=Length(max=100))
    convictions = List(Text(300), load_default=list, validate=Length(max=100))
    restitution_ordered = Float(allow_none=True, validate=Range(min=0, max=1e12))
    restitution_paid = Float(allow_none=True, validate=Range(min=0, max=1e12))
    currency = String(load_default="USD", validate=Length(equal=3))
    notes = Text(5000, allow_none=True)


class AgencyEventIn(StrictSchema):
    event = String(required=True, validate=OneOf(AGENCY_EVENTS))
    reason = Text(5000, allow_none=True, metadata={"description": "Required to decline."})
    outcome = Nested(OutcomeIn, allow_none=True)

    @validates_schema
    def _required_by_event(self, data: dict[str, Any], **_: Any) -> None:
        if data["event"] in {"decline", "request_info"} and not (data.get("reason") or "").strip():
            raise ValidationError(f"{data['event']} needs a reason", field_name="reason")
        if data["event"] == "record_outcome" and not data.get("outcome"):
            raise ValidationError("record_outcome needs an outcome", field_name="outcome")
        if data["event"] != "record_outcome" and data.get("outcome"):
            raise ValidationError("only record_outcome takes an outcome", field_name="outcome")


class ListQuery(StrictSchema):
    state = String(load_default=None, validate=OneOf(VISIBLE_STATES))
    after = Integer(load_default=None, validate=Range(min=0, max=2**31 - 1))  # a database id
    limit = Integer(load_default=50, validate=Range(min=1, max=200))


class OtherAgencyOut(Schema):
    agency = String()
    state = String()


class AgencyReferralOut(Schema):
    id = Integer()
    agency = String()
    state = String()
    case_reference = String()
    priority = String()
    mandatory = Boolean()
    deadline = DateTime(allow_none=True)
    send_by = DateTime(allow_none=True, metadata={"description": "The hotline's: notice due."})
    answer_by = DateTime(allow_none=True, metadata={"description": "Yours: answer due."})
    rule = String()
    reason = String()
    legal_basis = Dict(allow_none=True)
    decline_reason = String(allow_none=True)
    outcome = Dict(allow_none=True)
    created_at = DateTime()
    sent_at = DateTime(allow_none=True)
    acknowledged_at = DateTime(allow_none=True)
    answered_at = DateTime(allow_none=True)
    other_agencies = List(Nested(OtherAgencyOut))
    packet = Dict(allow_none=True, metadata={"description": "The referral packet (detail only)."})


class AgencyReferralPage(Schema):
    items = List(Nested(AgencyReferralOut))
    next = Integer(allow_none=True, metadata={"description": "Pass as `after` for more."})
