"""Schemas of the case file API: victims, subjects, locations, notes, search, merge."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from marshmallow import ValidationError, validates_schema

from config.contract import (
    StrictBoolean,
    StrictInteger,
    StrictSchema,
    Text,
    reject_control_characters,
)
from workflows.db import MAX_ID
from workflows.identifiers import SUBJECT_KINDS
from workflows.jurisdiction import US_STATES


def _age() -> StrictInteger:
    return StrictInteger(allow_none=True, validate=Range(0, 120))


class VictimIn(StrictSchema):
    age = _age()
    age_min = _age()
    age_max = _age()
    minor = StrictBoolean(allow_none=True)
    citizenship = Text(100, allow_none=True, metadata={"description": "country, as told"})
    language = String(allow_none=True, validate=[Length(min=2, max=16), reject_control_characters],
                      metadata={"description": "a language tag such as en, es, zh-Hant"})
    gender = Text(50, allow_none=True, metadata={
        "description": "only as the victim states it; never an indicator"})
    needs = Text(2000, allow_none=True)


class SubjectIn(StrictSchema):
    kind = String(required=True, validate=OneOf(SUBJECT_KINDS))
    value = Text(500, required=True, metadata={"example": "+1 214 555 0134"})
    platform = String(allow_none=True, validate=Length(min=1, max=64),
                      metadata={"description": "of a handle: instagram, whatsapp, …"})
    plate_state = String(allow_none=True, validate=OneOf(US_STATES),
                         metadata={"description": "of a vehicle plate"})
    description = Text(2000, allow_none=True)


class SubjectPatch(SubjectIn):
    kind = String(validate=OneOf(SUBJECT_KINDS))
    value = Text(500)


class LocationIn(StrictSchema):
    address = Text(500, allow_none=True)
    city = Text(100, allow_none=True)
    county = Text(100, allow_none=True)
    state = String(allow_none=True, validate=OneOf(US_STATES))
    zip = String(allow_none=True, validate=Length(min=5, max=10))
    tribal_land = StrictBoolean(allow_none=True)

    @validates_schema
    def _something(self, data: dict[str, Any], partial: Any = None, **_: Any) -> None:
        if not partial and not any(data.get(k) for k in ("address", "city", "county", "state",
                                                         "zip")):
            raise ValidationError("a location needs an address, city, county, state or ZIP")


class NoteIn(StrictSchema):
    body = Text(10000, required=True)
    internal = StrictBoolean(load_default=True)


class NotePatch(StrictSchema):
    body = Text(10000)
    internal = StrictBoolean()


class VictimOut(Schema):
    id = Integer()
    age = Integer(allow_none=True)
    age_min = Integer(allow_none=True)
    age_max = Integer(allow_none=True)
    minor = Boolean(allow_none=True)
    citizenship = String(allow_none=True)
    language = String(allow_none=True)
    gender = String(allow_none=True)
    needs = String(allow_none=True)
    created_by = String()
    created_at = DateTime()
    updated_at = DateTime()


class SubjectOut(Schema):
    id = Integer()
    kind = String()
    value = String()
    platform = String(allow_none=True)
    plate_state = String(allow_none=True)
    description = String(allow_none=True)
    created_by = String()
    created_at = DateTime()
    updated_at = DateTime()


class LocationOut(Schema):
    id = Integer()
    address = String(allow_none=True)
    city = String(allow_none=True)
    county = String(allow_none=True)
    state = String(allow_none=True)
    zip = String(allow_none=True)
    tribal_land = Boolean(allow_none=True)
    created_by = String()
    created_at = DateTime()
    updated_at = DateTime()


class NoteOut(Schema):
    id = Integer()
    author = String()
    body = String()
    internal = Boolean()
    created_at = DateTime()
    updated_at = DateTime()


class RelatedOut(Schema):
    id = Integer()
    reference = String(allow_none=True)
    shared = List(String(), metadata={"description": "the kinds of identifier shared"})


ITEM_SCHEMAS = {
    "victims": (VictimIn, VictimIn, VictimOut),
    "subjects": (SubjectIn, SubjectPatch, SubjectOut),
    "locations": (LocationIn, LocationIn, LocationOut),
    "notes": (NoteIn, NotePatch, NoteOut),
}


class SearchQuery(StrictSchema):
    phone = String(validate=Length(min=1, max=64))
    email = String(validate=Length(min=1, max=254))
    handle = String(validate=Length(min=1, max=100))
    plate = String(validate=Length(min=1, max=20))
    address = String(validate=Length(min=1, max=500))
    business = String(validate=Length(min=1, max=200))
    website = String(validate=Length(min=1, max=500))

    @validates_schema
    def _exactly_one(self, data: dict[str, Any], **_: Any) -> None:
        if len(data) != 1:
            raise ValidationError("give exactly one of phone, email, handle, plate, address, "
                                  "business, website")


class SearchHit(Schema):
    id = Integer()
    reference = String(allow_none=True)
    state = String()
    priority = String()
    created_at = DateTime()


class SearchOut(Schema):
    kind = String()
    items = List(Nested(SearchHit))


class MergeIn(StrictSchema):
    into = StrictInteger(required=True, validate=Range(1, MAX_ID))
