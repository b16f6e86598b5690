"""Page forms validated by the API's own marshmallow schemas (no second copy of a rule).

A form becomes the same dict the JSON API accepts; the schema's errors come back as
``{field: message}`` for the page to show beside each field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError


class FormErrors(Exception):
    """The form did not pass the schema; ``errors`` maps dotted field names to messages."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, str]:
    """marshmallow's nested messages as ``{"contact.phone": "is not a phone number"}``."""
    if isinstance(messages, list):
        texts = [m for m in messages if isinstance(m, str)]
        return {prefix or "_form": texts[0] if texts else "is not valid"}
    if not isinstance(messages, Mapping):
        return {prefix or "_form": str(messages)}
    flat: dict[str, str] = {}
    for key, value in messages.items():
        name = "_form" if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
        flat.update(flatten_errors(value, name))
    return flat


def load(schema: Schema, data: dict[str, Any]) -> dict[str, Any]:
    """Validate like the API does; FormErrors naming each bad field."""
    try:
        return schema.load(data)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise FormErrors(flatten_errors(exc.messages)) from None


def text_or_none(form: Mapping[str, str], name: str) -> str | None:
    """A trimmed text field, or None when left empty (the API's ``null`` = unknown)."""
    value = (form.get(name) or "").strip()
    return value or None


def tri_state(form: Mapping[str, str], name: str) -> bool | None:
    """A yes / no / unknown select as True, False or None."""
    return {"yes": True, "no": False}.get(form.get(name) or "")
