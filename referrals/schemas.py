"""Agency API schemas: they validate requests and generate the OpenAPI document."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Boolean, Date, DateTime, Dict, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range, Regexp
from marshmallow import ValidationError, validates, validates_schema

from config.contract import StrictSchema, Text
from workflows.db import MAX_ID, utcnow
from workflows.outcomes import (
    MAX_AMOUNT,
    MAX_NOTES,
    OUTCOME_KINDS,
    OUTCOME_STATUSES,
    outcome_problem,
)
from workflows.threads import MAX_BODY
from workflows.vocabulary import AGENCY_EVENTS

VISIBLE_STATES = ("queued", "sent", "acknowledged", "accepted", "declined", "failed", "withdrawn")


class OutcomeIn(StrictSchema):
    """One typed outcome (issue 13); each kind's statuses are in workflows.outcomes."""

    kind = String(required=True, validate=OneOf(tuple(OUTCOME_KINDS)), metadata={
        "description": "What happened; the kinds an agency may record are configured "
                       "per agency (config/agencies.yaml): another is 422."})
    status = String(required=True, validate=OneOf(OUTCOME_STATUSES), metadata={
        "description": "; ".join(f"{k}: {', '.join(v.statuses)}"
                                 for k, v in OUTCOME_KINDS.items())})
    date = Date(required=True, metadata={"description": "When it happened; not in the future."})
    amount = Float(allow_none=True, validate=Range(min=0, max=MAX_AMOUNT), metadata={
        "description": "US dollars ordered, assessed or paid on that date; required for "
                       "restitution and back_wages, refused for every other kind."})
    notes = Text(MAX_NOTES, allow_none=True)

    @validates_schema
    def _rules_of_kind(self, data: dict[str, Any], **_: Any) -> None:
        problem = outcome_problem(data, utcnow().date())
        if problem is not None:
            raise ValidationError(problem[1], field_name=problem[0])


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
    after = Integer(load_default=None, validate=Range(min=0, max=MAX_ID))
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
    outcome = Dict(allow_none=True, metadata={
        "description": "What the agency reported: `outcomes`, a list of {kind, status, date, "
                       "amount?, notes?, recorded_at} in the order recorded (rows from before "
                       "typed outcomes may hold investigation_status and restitution_* keys)."})
    created_at = DateTime()
    sent_at = DateTime(allow_none=True)
    acknowledged_at = DateTime(allow_none=True)
    answered_at = DateTime(allow_none=True)
    other_agencies = List(Nested(OtherAgencyOut))
    packet_version = Integer(allow_none=True, metadata={
        "description": "The newest packet version the hotline sent for this referral (1, then "
        "one more per update or consent withdrawal); the packet shown is that version."})
    packet = Dict(allow_none=True, metadata={
        "description": "The referral packet, newest version (detail only)."})
    question_due = DateTime(allow_none=True, metadata={
        "description": "You asked the hotline: its answer is due then (…/thread)."})
    new_answer = Boolean(metadata={
        "description": "The hotline answered and you have not read the thread since."})


class AgencyReferralPage(Schema):
    items = List(Nested(AgencyReferralOut))
    next = Integer(allow_none=True, metadata={"description": "Pass as `after` for more."})


class ThreadMessageIn(StrictSchema):
    body = Text(MAX_BODY, required=True, metadata={"description": "The question or answer."})

    @validates("body")
    def _not_blank(self, value: str, **_: Any) -> None:
        if not value.strip():
            raise ValidationError("must not be blank")


class IdempotencyHeader(Schema):
    idempotency_key = String(
        data_key="Idempotency-Key",
        load_default=None,
        validate=[Length(min=1, max=64), Regexp(r"^[A-Za-z0-9_.:-]+$")],
        metadata={"description": "Optional: a replayed POST with the same key writes nothing "
                  "new and answers the thread as it is."},
    )


class ThreadMessageOut(Schema):
    id = Integer()
    side = String(metadata={"description": "agency: the agency wrote it; hotline: the hotline"})
    author = String(
        allow_none=True,
        metadata={"description": "Who wrote it (an agency is not told hotline staff names)."},
    )
    body = String()
    created_at = DateTime()


class ThreadOut(Schema):
    referral_id = Integer()
    question_due = DateTime(
        allow_none=True,
        metadata={"description": "When the hotline owes an answer; null when all is answered."},
    )
    messages = List(Nested(ThreadMessageOut))
