"""Request and response schemas: they validate input and generate the OpenAPI document."""

from __future__ import annotations

from typing import Any

import phonenumbers
from apiflask import Schema
from apiflask.fields import (
    Boolean,
    DateTime,
    Dict,
    Email,
    Function,
    Integer,
    List,
    Nested,
    String,
)
from apiflask.validators import Length, OneOf, Range
from marshmallow import ValidationError, validates_schema

from config.contract import OptionalId, StrictBoolean, StrictSchema, Text
from workflows.campaigns import HEARD_FROM
from workflows.db import MAX_ID
from workflows.safe_hours import parse_hhmm, parse_zone
from workflows.vocabulary import CALLER_TYPES, LANGUAGES


def to_e164(raw: str, region: str = "US") -> str:
    """Parse a phone number a person typed and return it in E.164, or raise."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ValidationError("is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError("is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)



class PhoneField(String):
    """A phone number, answered in E.164."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        return to_e164(text)


class ContactIn(StrictSchema):
    phone = PhoneField(allow_none=True, metadata={"example": "+12025550143"})
    email = Email(allow_none=True, validate=Length(max=254))


def HeardFrom() -> String:  # noqa: N802 - a field factory, read like a field class
    """How the tipster heard of the hotline: one of the campaign codes, or nothing."""
    return String(allow_none=True, load_default=None, validate=OneOf(list(HEARD_FROM)),
                  metadata={"description": "How they heard of the hotline (campaign source)"})


class TipIn(StrictSchema):
    narrative = Text(
        20000, required=True, metadata={"description": "What happened, in the tipster's words."}
    )
    location = Text(500, allow_none=True)
    anonymous = StrictBoolean(load_default=True)
    contact = Nested(ContactIn, allow_none=True)
    safe_contact = Nested("SafeContactIn", allow_none=True, metadata={
        "description": "When and how the hotline may text the contact phone back."})
    language = String(load_default="en", validate=OneOf(LANGUAGES))
    heard_from = HeardFrom()


class TipCreated(Schema):
    reference = String(required=True, metadata={"example": "HT-2026-000123"})
    passphrase = String(required=True, metadata={"description": "Shown once; store it."})


class TipMessageIn(StrictSchema):
    body = Text(5000, required=True)


class TipMessageOut(Schema):
    id = Integer()
    direction = String(metadata={"description": "in: from the tipster; out: from the hotline"})
    # Never a staff user name: a tipster (or whoever holds their phone) learns nothing
    # about who works the desk.
    author = Function(
        lambda message: "tipster" if message.direction == "in" else "hotline",
        metadata={"description": "tipster or hotline"},
    )
    body = String()
    created_at = DateTime()


class TipStatusOut(Schema):
    reference = String()
    status = String()
    created_at = DateTime()
    messages = List(Nested(TipMessageOut))


class PassphraseHeader(Schema):
    x_tip_passphrase = String(
        data_key="X-Tip-Passphrase", required=True, validate=Length(min=1, max=200)
    )


def _checked(parse: Any) -> Any:
    """A marshmallow validator from a parser that raises ValueError with its message."""

    def check(value: str) -> None:
        try:
            parse(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    return check


class SafeWindowIn(StrictSchema):
    """Daily hours a text is safe, local to an IANA zone; end before start crosses midnight."""

    start = String(required=True, validate=_checked(parse_hhmm),
                   metadata={"example": "18:00", "description": "HH:MM, 24-hour"})
    end = String(required=True, validate=_checked(parse_hhmm),
                 metadata={"example": "22:00",
                           "description": "HH:MM, 24-hour; before start: crosses midnight"})
    # Required: the hotline has no time zone of its own to assume (config/settings.py),
    # and a guessed zone would text a victim at the wrong hour.
    timezone = String(required=True, validate=[Length(max=64), _checked(parse_zone)],
                      metadata={"example": "America/Chicago",
                                "description": "IANA time zone of the tipster"})

    @validates_schema
    def _a_window_has_length(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("start") is not None and data.get("start") == data.get("end"):
            raise ValidationError("must differ from start", field_name="end")


class SafeContactIn(StrictSchema):
    safe_to_call = StrictBoolean(allow_none=True)
    safe_to_text = StrictBoolean(allow_none=True)
    safe_for_voicemail = StrictBoolean(allow_none=True)
    safe_hours = Text(200, allow_none=True, metadata={
        "description": "Notes on safe hours; texts follow safe_window, not this text."})
    safe_window = Nested(SafeWindowIn, allow_none=True, metadata={
        "description": "Texts to the tipster wait for this window."})
    announce_only = StrictBoolean(allow_none=True, metadata={
        "description": "Texts only announce a message; the tipster reads it with reference "
                       "and passphrase."})
    safe_word = Text(100, allow_none=True)
    unsafe_word = Text(100, allow_none=True)
    notes = Text(2000, allow_none=True)


class CallIn(StrictSchema):
    """A call log; ``case_id`` (or a ``call_sid`` the IVR recorded) attaches it to a case."""


    caller_type = String(required=True, validate=OneOf(CALLER_TYPES))
    language = String(load_default="en", validate=OneOf(LANGUAGES))
    location = Text(500, allow_none=True)
    narrative = Text(20000, required=True)
    caller_phone = PhoneField(allow_none=True)
    caller_name = Text(200, allow_none=True)
    anonymous = StrictBoolean(load_default=False)
    safe_contact = Nested(SafeContactIn, allow_none=True)
    call_sid = OptionalId(64)
    heard_from = HeardFrom()
    case_id = Integer(allow_none=True, strict=True, validate=Range(1, MAX_ID), metadata={
        "description": "attach this call to an open case instead of opening one"})
    victims = List(Nested("VictimIn"), validate=Length(max=20), load_default=list)
    subjects = List(Nested("SubjectIn"), validate=Length(max=50), load_default=list)
    locations = List(Nested("LocationIn"), validate=Length(max=10), load_default=list)

    @validates_schema
    def _anonymous_has_no_name(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("anonymous") and data.get("caller_name"):
            raise ValidationError("an anonymous caller has no name", field_name="caller_name")


class SignalOut(Schema):
    id = Integer()
    channel = String()
    created_at = DateTime()
    language = String()
    caller_type = String(allow_none=True)
    call_sid = String(allow_none=True)
    call_status = String(allow_none=True)
    recording_sid = String(allow_none=True)
    recording_duration = Integer(allow_none=True)
    transcription_status = String(allow_none=True)
    transcript = String(allow_none=True)
    location = String(allow_none=True)
    narrative = String(allow_none=True)
    caller_name = String(allow_none=True)
    from_phone = String(allow_none=True)
    contact_phone = String(allow_none=True)
    contact_email = String(allow_none=True)
    anonymous = Boolean()
    ivr_path = Dict(
        allow_none=True,
        metadata={"description": "Voice: the IVR steps taken; SMS: the answers to its questions."},
    )


class EventOut(Schema):
    id = Integer()
    actor = String()
    action = String()
    from_state = String(allow_none=True)
    to_state = String(allow_none=True)
    reason = String(allow_none=True)
    created_at = DateTime()


class ReferralBrief(Schema):
    id = Integer()
    agency = String(attribute="agency_code")
    state = String()
    mandatory = Boolean()
    deadline = DateTime(allow_none=True, metadata={
        "description": "The next thing due: send_by until sent, then answer_by."})
    send_by = DateTime(allow_none=True, metadata={
        "description": "Ours: when the notice must be sent (the rule's clock)."})
    answer_by = DateTime(allow_none=True, metadata={
        "description": "The agency's: when it should answer (config/agencies.yaml)."})
    rule = String()
    reason = String()


class ReferralOut(ReferralBrief):
    legal_basis = Dict(allow_none=True)
    decline_reason = String(allow_none=True)
    outcome = Dict(allow_none=True)
    attempts = Integer()
    created_at = DateTime()
    sent_at = DateTime(allow_none=True)
    question_due = DateTime(allow_none=True, metadata={
        "description": "The agency asked: the hotline's answer is due then (…/thread); "
                       "null when nothing is waiting."})


class CaseSummary(Schema):
    """A case in a queue: what a supervisor sorts and picks by."""

    id = Integer()
    reference = String()
    state = String()
    priority = String()
    level = String(allow_none=True)
    score = Integer()
    version = Integer()
    deadline = DateTime(allow_none=True)
    overdue = Boolean()
    emergency_at = DateTime(allow_none=True, metadata={
        "description": "The first emergency signal: the case is due 15 minutes after it."})
    emergency_acknowledged_at = DateTime(allow_none=True)
    emergency_acknowledged_by = String(allow_none=True)
    created_at = DateTime()
    assignee = String(allow_none=True)
    referrals = List(Nested(ReferralBrief))


class ImmigrationReliefOut(Schema):
    protected = Boolean()
    set_by = String(allow_none=True)
    set_at = DateTime(allow_none=True)
    suggested = List(String(), metadata={
        "description": "Terms in the narratives that suggest the flag; staff confirm."})


class CaseOut(CaseSummary):
    """A whole case, as staff see it."""

    updated_at = DateTime()
    resolution_code = String(allow_none=True)
    anonymous = Boolean()
    screening = Dict(allow_none=True)
    signals = List(Nested(SignalOut))
    referrals = List(Nested(ReferralOut))
    events = List(Nested(EventOut))
    messages = List(Nested(TipMessageOut))
    allowed_events = List(String(), metadata={"description": "events the state allows now"})
    immigration_relief = Nested(ImmigrationReliefOut, metadata={
        "description": "8 U.S.C. 1367: staff only, never in a packet or an agency view."})
    victims = List(Nested("VictimOut"))
    subjects = List(Nested("SubjectOut"))
    locations = List(Nested("LocationOut"))
    notes = List(Nested("NoteOut"))
    related = List(Nested("RelatedOut"), metadata={
        "description": "other cases naming an identifier this one names"})
    merged = List(Integer(), metadata={"description": "ids of cases merged into this one"})
    packet_updates = List(Nested("PacketUpdateOut"), metadata={
        "description": "new information since a referral was sent, per agency whose basis "
        "covers it: confirm with POST …/referrals/<id>/packet-update"})
    incident_state = String(allow_none=True)
