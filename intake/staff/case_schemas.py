"""Schemas of the staff case API: screening, events, queues, assignment, replies."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range

from config.contract import StrictBoolean, StrictInteger, StrictSchema, Text
from intake.schemas import CaseSummary
from workflows.jurisdiction import US_STATES
from workflows.machines import CASE_EVENTS, CASE_STATES, STAFF_REFERRAL_EVENTS
from workflows.screening import CONSENT_GIVERS, CONSENT_SCOPES, REQUEST_TYPES, TRAFFICKING_TYPES
from workflows.vocabulary import CALLER_TYPES


def _fact_bool() -> StrictBoolean:
    return StrictBoolean(allow_none=True, load_default=None)


class FactsIn(StrictSchema):
    trafficking_type = String(allow_none=True, validate=OneOf(TRAFFICKING_TYPES))
    victim_age = StrictInteger(allow_none=True, validate=Range(0, 120))
    victim_minor = _fact_bool()
    foreign_national = _fact_bool()
    imminent_danger = _fact_bool()
    cross_border = _fact_bool()
    documents_confiscated = _fact_bool()
    force_fraud_coercion = _fact_bool()
    commercial_sex = _fact_bool()
    wage_violations = _fact_bool()
    request_type = String(allow_none=True, validate=OneOf(REQUEST_TYPES))
    venue = String(allow_none=True, validate=Length(max=64), metadata={
        "description": "A venue code of the typology in config/indicators.yaml."})
    caller_type = String(allow_none=True, validate=OneOf(CALLER_TYPES))
    state = String(allow_none=True, validate=OneOf(US_STATES), metadata={
        "description": "where it happened (USPS code); default: the case's first location"})
    county = Text(100, allow_none=True)
    city = Text(100, allow_none=True)


class ConsentIn(StrictSchema):
    law_enforcement = _fact_bool()
    services = _fact_bool()
    callback = _fact_bool()
    given_by = String(allow_none=True, validate=OneOf(CONSENT_GIVERS), metadata={
        "description": "Who gave these answers: victim, guardian (of a minor) or "
        "third_party (a caller about someone else; default unless the caller is the "
        "victim). A third party's yes never overrides the victim's own no, and never "
        "discloses the victim's identity or contact details."})


class ScreeningIn(StrictSchema):
    facts = Nested(FactsIn, allow_none=True)
    indicators = List(String(validate=Length(min=1, max=64)), allow_none=True,
                      validate=Length(max=100),
                      metadata={"description": "Indicator codes from config/indicators.yaml."})
    consent = Nested(ConsentIn, allow_none=True)


class RecommendationOut(Schema):
    agency = String()
    mandatory = Boolean()
    deadline_hours = Float()
    rule = String()
    reason = String(metadata={"example": "FBI: minor in commercial sex — mandatory, 24 h"})
    legal_basis = Dict()
    emergency = Boolean()
    send_by = String(metadata={"description": "When the notice must be sent: the rule's "
                               "clock runs from its first triggering screening."})


class ScreeningOut(Schema):
    case_id = Integer()
    state = String()
    version = Integer()
    score = Integer()
    level = String(metadata={"description": "high_indicators | moderate_indicators | "
                                            "high_risk | none"})
    priority = String(metadata={"description": "emergency | urgent | routine"})
    triggers = List(String())
    recommended_referrals = List(Nested(RecommendationOut))
    withheld_referrals = List(Dict())
    recommended_action = String()
    close_as = String(allow_none=True)
    deadline = DateTime(allow_none=True)


class CaseEventIn(StrictSchema):
    event = String(required=True, validate=OneOf(CASE_EVENTS))
    version = StrictInteger(required=True)
    reason = Text(2000, allow_none=True)
    resolution_code = String(allow_none=True, validate=Length(max=32))


class ReferralEventIn(StrictSchema):
    event = String(required=True, validate=OneOf(tuple(STAFF_REFERRAL_EVENTS)))
    reason = Text(2000, allow_none=True)
    agency = String(allow_none=True, validate=Length(min=2, max=32))


class PacketUpdateIn(StrictSchema):
    decision = String(required=True, validate=OneOf(("send", "not_now")), metadata={
        "description": "send: the new information goes to the agency as the next "
        "packet_version; not_now: nothing is sent, and this content is not offered again"})
    digest = String(required=True, validate=Length(equal=64), metadata={
        "description": "packet_updates[].digest as shown: 409 if more arrived since"})


class PacketUpdateOut(Schema):
    referral_id = Integer()
    agency = String()
    digest = String()
    changed = List(String(), metadata={"description": "packet fields with new information"})


class ConsentWithdrawIn(StrictSchema):
    scope = String(required=True, validate=OneOf(CONSENT_SCOPES))
    given_by = String(load_default="victim", validate=OneOf(CONSENT_GIVERS), metadata={
        "description": "who withdrew it (default: the victim)"})
    reason = Text(2000, allow_none=True)


class ImmigrationReliefIn(StrictSchema):
    protected = StrictBoolean(required=True, metadata={
        "description": "The case involves a T/U visa, VAWA or continued-presence "
        "application (8 U.S.C. 1367): never sent to nor shown to an agency."})
    version = StrictInteger(required=True)


class AssignIn(StrictSchema):
    assignee = String(required=True, allow_none=True, validate=Length(min=1, max=64))
    version = StrictInteger(required=True)


class ReplyIn(StrictSchema):
    body = Text(5000, required=True)


class CaseQuery(StrictSchema):
    state = List(String(validate=OneOf(CASE_STATES)), load_default=None)
    priority = String(validate=OneOf(("emergency", "urgent", "routine")))
    assignee = String(validate=Length(min=1, max=64),
                      metadata={"description": "a username, or `none` for unassigned"})
    agency = String(validate=Length(min=2, max=32))
    overdue = Boolean(truthy={"true"}, falsy={"false"})
    reference = String(validate=Length(min=1, max=32))
    limit = Integer(load_default=50, validate=Range(1, 200))
    cursor = String(validate=Length(max=400))


class CasePage(Schema):
    items = List(Nested(CaseSummary))
    next = String(allow_none=True, metadata={"description": "cursor of the next page"})
