"""The API contract's shared pieces: every endpoint's schemas build on these.

- ``problem`` / ``PROBLEM_SCHEMA``: the one error body (RFC 9457 problem details, served
  as ``application/problem+json``): ``type``, ``title``, ``status``, ``detail``, plus
  ``field`` (the input at fault, or null) and ``error`` (= ``detail``; the key clients of
  the first API version read, kept so they keep working; new clients read ``detail``).
  Extension members: ``errors`` (validation messages by location and field),
  ``retry_after`` (429: the same seconds as the ``Retry-After`` header), and whatever a
  domain error carries (``allowed`` events on a 409, ``case_id`` of a duplicate, …).
- ``StrictSchema``: unknown keys are an error. Request bodies built on it are marked
  ``required`` in the document (``config.errors`` does it for every operation).
- Field types that say in the document what the server checks: ``Text`` (length and no
  control characters, as ``maxLength`` and ``pattern``), ``StrictBoolean`` (``true`` or
  ``false``; never ``0`` or ``"yes"``), ``StrictInteger`` (a JSON Schema integer: ``16``
  or ``16.0``, never ``16.5``, ``true`` or ``"16"``), ``OptionalId`` (an optional unique
  identifier: blank means absent, never a stored empty string).

New endpoints: build request schemas on ``StrictSchema`` with these fields, give lifecycle
``event`` fields ``OneOf`` of the machine's events, list every status the view can
answer in ``@api.doc(responses=[...])``, raise ``workflows.errors`` for refusals.
"""

from __future__ import annotations

import math
import re
from http import HTTPStatus
from typing import Any

from apiflask import Schema
from apiflask.fields import Boolean, Field, Integer, String
from apiflask.validators import Length, Regexp
from marshmallow import ValidationError

PROBLEM_CONTENT_TYPE = "application/problem+json"

# C0/C1 controls other than tab, newline and carriage return have no place in free text
# (they break logs, exports and screens). \uXXXX escapes read the same in Python's re and
# in ECMA-262, the dialect of JSON Schema's "pattern".
NO_CONTROL_CHARACTERS = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def title_of(status: int) -> str:
    """The HTTP reason phrase: the problem's title when its type is about:blank."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(
    status: int, detail: str, field: str | None = None, **extensions: Any
) -> dict[str, Any]:
    """An RFC 9457 problem-details body (``type`` is about:blank: the status says it all)."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title_of(status),
        "status": status,
        "detail": detail,
        "field": field,
        "error": detail,
    }
    for key, value in extensions.items():
        if key not in body and value is not None:
            body[key] = value
    return body


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details (application/problem+json).",
    "properties": {
        "type": {"type": "string", "description": "about:blank: see status and title"},
        "title": {"type": "string", "description": "the HTTP reason phrase"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "what went wrong, for a person"},
        "field": {
            "type": ["string", "null"],
            "description": "the input at fault (dotted for nested fields), or null",
        },
        "error": {
            "type": "string",
            "deprecated": True,
            "description": "the same as detail; read detail",
        },
        "errors": {
            "type": "object",
            "description": "validation messages by location (json, query, headers) and field",
        },
        "retry_after": {
            "type": "integer",
            "minimum": 0,
            "description": "429: seconds to wait, the same as the Retry-After header",
        },
        "allowed": {
            "type": "array",
            "items": {"type": "string"},
            "description": "409 on an event: the events the current state allows",
        },
        "state": {"type": "string", "description": "409 on an event: the current state"},
        "version": {"type": "integer", "description": "409 on a stale version: the current one"},
        "case_id": {"type": "integer", "description": "409 on a duplicate call: its case"},
    },
    "required": ["type", "title", "status", "detail", "field", "error"],
    "additionalProperties": True,
}


def reject_control_characters(value: str) -> None:
    """Refuse control characters (the check behind ``NO_CONTROL_CHARACTERS``)."""
    if _CONTROL.search(value):
        raise ValidationError("must not contain control characters")


class StrictSchema(Schema):
    """Unknown keys are an error (marshmallow's default, stated here on purpose)."""

    class Meta:
        unknown = "raise"


def Text(max_length: int, required: bool = False, **kwargs: Any) -> String:  # noqa: N802
    """A free-text field: bounded length, no control characters, stored verbatim."""
    return String(
        required=required,
        validate=[
            Length(min=1 if required else 0, max=max_length),
            Regexp(NO_CONTROL_CHARACTERS, error="must not contain control characters"),
        ],
        **kwargs,
    )


class StrictBoolean(Boolean):
    """true or false only: ``"yes"``, ``1`` and ``"true"`` are wrong types here."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("must be true or false")
        return value


class StrictInteger(Integer):
    """A whole number as JSON Schema counts one: ``16`` and ``16.0``; not ``16.5``,
    ``true`` or ``"16"`` (the document says ``integer``, and generated clients hold it so)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("must be a whole number")
        return int(super()._deserialize(value, attr, data, **kwargs))


class OptionalId(Field[str | None]):
    """An optional unique identifier (a call SID): blank means absent.

    Stored as given, an empty string would take the unique slot: the first request
    succeeds, every later one conflicts forever. Blank (or only spaces) loads as None.
    """

    def __init__(self, max_length: int, **kwargs: Any) -> None:
        kwargs.setdefault("allow_none", True)
        self.max_length = max_length
        # Checked in _deserialize (after blank became None); stated here for the document.
        metadata = {
            "type": "string",  # a Field, not a String (it loads None): the document's type
            "description": "optional; an empty string means absent",
            "maxLength": max_length,
            "pattern": NO_CONTROL_CHARACTERS,
            **kwargs.pop("metadata", {}),
        }
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str | None:
        if not isinstance(value, str):
            raise ValidationError("Not a valid string.")
        text = value
        if len(text) > self.max_length:  # as the document says: the length as sent
            raise ValidationError(f"Longer than maximum length {self.max_length}.")
        reject_control_characters(text)
        return text.strip() or None


def _ref(path: str, method: str) -> str:
    """An OpenAPI operationRef (a JSON pointer: "/" is "~1")."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


_CASE = "$response.body#/id"
# How answers lead to the next requests (OpenAPI links): clients and Schemathesis' stateful
# phase follow them (a tip's reference and passphrase to its follow-up, a logged call's
# case id to its screening, events, assignment and replies).
LINKS: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {
    ("/api/v1/tips", "post", "201"): {
        "ReadTip": {
            "operationRef": _ref("/api/v1/tips/{reference}", "get"),
            "parameters": {
                "path.reference": "$response.body#/reference",
                "header.X-Tip-Passphrase": "$response.body#/passphrase",
            },
        },
        "AddToTip": {
            "operationRef": _ref("/api/v1/tips/{reference}/messages", "post"),
            "parameters": {
                "path.reference": "$response.body#/reference",
                "header.X-Tip-Passphrase": "$response.body#/passphrase",
            },
        },
    },
    ("/api/v1/calls", "post", "201"): {
        name: {"operationRef": _ref(path, method), "parameters": {"path.case_id": _CASE}}
        for name, path, method in [
            ("ShowCase", "/api/v1/cases/{case_id}", "get"),
            ("ScreenCase", "/api/v1/cases/{case_id}/screening", "put"),
            ("FireCaseEvent", "/api/v1/cases/{case_id}/events", "post"),
            ("AssignCase", "/api/v1/cases/{case_id}/assign", "post"),
            ("ReplyToTipster", "/api/v1/cases/{case_id}/messages", "post"),
            ("CaseAccessLog", "/api/v1/cases/{case_id}/access-log", "get"),
        ]
    },
}


def add_links(spec: dict[str, Any]) -> None:
    """Put ``LINKS`` into the document (only between operations it has)."""
    paths = spec.get("paths", {})
    for (path, method, status), links in LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        present = {
            name: link for name, link in links.items()
            if _target_exists(paths, link["operationRef"])
        }
        if present:
            response["links"] = present


def _target_exists(paths: dict[str, Any], ref: str) -> bool:
    *_, pointer_path, method = ref.split("/")
    path = pointer_path.replace("~1", "/").replace("~0", "~")
    return method in paths.get(path, {})
