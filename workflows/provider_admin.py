"""Admins add and edit service-directory entries by hand (issue 13): a local shelter that
no 211 publishes yet, or a phone number the HSDS package lacks.

Every value is checked here — the fixed service types, two-letter languages, a US state,
coordinates on the globe, a phone number libphonenumber knows, an e-mail address, an
https webhook — so a page and any later API refuse the same things. Each change is one
audit event naming the fields it changed (never their values: a shelter's address is
confidential too).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

from workflows.audit import record_event
from workflows.db import utcnow
from workflows.errors import InvalidInput, NotFound
from workflows.jurisdiction import US_STATES
from workflows.providers import SERVICE_TYPES, ServiceProvider

# What an admin may set, in the order the form shows them.
FIELDS = ("name", "organization", "description", "service_types", "languages", "address",
          "city", "state", "latitude", "longitude", "phone", "email", "webhook_url")
# Entries added by hand get an id of their own, so an HSDS import never matches them.
LOCAL_PREFIX = "local-"
_LANGUAGE = re.compile(r"[a-z]{2}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}\.[A-Za-z]{2,24}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
LIMITS = {"name": 300, "organization": 300, "description": 5000, "address": 300, "city": 100}


def _text(values: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    raw = values.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            raise InvalidInput(f"{name} is required", field=name)
        return None
    if not isinstance(raw, str):
        raise InvalidInput(f"{name} must be text", field=name)
    text = raw.strip()
    if len(text) > LIMITS[name]:
        raise InvalidInput(f"{name} is at most {LIMITS[name]} characters", field=name)
    if _CONTROL.search(text.replace("\n", "").replace("\r", "") if name == "description"
                       else text):
        raise InvalidInput(f"{name} has control characters", field=name)
    return text


def _codes(values: Mapping[str, Any], name: str, allowed: Any, what: str) -> list[str]:
    raw = values.get(name) or []
    if not isinstance(raw, list | tuple) or not all(isinstance(v, str) for v in raw):
        raise InvalidInput(f"{name} must be a list", field=name)
    codes = list(dict.fromkeys(v.strip().lower() for v in raw if v.strip()))
    bad = [c for c in codes if not allowed(c)]
    if bad:
        raise InvalidInput(f"{name}: {', '.join(bad[:5])} {what}", field=name)
    return codes


def _coordinate(values: Mapping[str, Any], name: str, bound: float) -> float | None:
    raw = values.get(name)
    if raw is None or raw == "":
        return None
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number", field=name) from None
    if not -bound <= number <= bound:  # also refuses NaN
        raise InvalidInput(f"{name} must be between -{bound:g} and {bound:g}", field=name)
    return number


def _phone(values: Mapping[str, Any]) -> str | None:
    raw = values.get("phone")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str) or len(raw) > 40:
        raise InvalidInput("phone is not a phone number", field="phone")
    try:
        number = phonenumbers.parse(raw, "US")
    except phonenumbers.NumberParseException:
        raise InvalidInput("phone is not a phone number", field="phone") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput("phone is not a valid phone number", field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _email(values: Mapping[str, Any]) -> str | None:
    raw = values.get("email")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str) or len(raw.strip()) > 254 or not _EMAIL.fullmatch(raw.strip()):
        raise InvalidInput("email is not an e-mail address", field="email")
    return raw.strip()


def _webhook(values: Mapping[str, Any]) -> str | None:
    raw = values.get("webhook_url")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    url = raw.strip() if isinstance(raw, str) else ""
    parts = urlsplit(url) if url and len(url) <= 500 and not _CONTROL.search(url) else None
    # https only: the referral notice travels over the internet to someone else's server.
    if parts is None or parts.scheme != "https" or not parts.hostname or " " in url:
        raise InvalidInput("webhook_url must be an https:// address", field="webhook_url")
    return url


def checked_provider(values: Mapping[str, Any]) -> dict[str, Any]:
    """The entry's fields as stored, or InvalidInput naming the first field at fault."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", field=unknown[0])
    name = _text(values, "name", required=True)
    types = _codes(values, "service_types", SERVICE_TYPES.__contains__,
                   f"not among {', '.join(SERVICE_TYPES)}")
    if not types:
        raise InvalidInput("choose at least one service type", field="service_types")
    state: str | None = None
    raw_state = values.get("state")
    if isinstance(raw_state, str) and raw_state.strip():
        state = raw_state.strip().upper()
        if state not in US_STATES:
            raise InvalidInput(f"state {state!r} is not a US state or territory code",
                               field="state")
    elif raw_state not in (None, ""):
        raise InvalidInput("state must be a two-letter code", field="state")
    latitude = _coordinate(values, "latitude", 90)
    longitude = _coordinate(values, "longitude", 180)
    if (latitude is None) != (longitude is None):
        field = "longitude" if longitude is None else "latitude"
        raise InvalidInput("give both latitude and longitude, or neither", field=field)
    return {
        "name": name,
        "organization": _text(values, "organization") or name,
        "description": _text(values, "description"),
        "service_types": types,
        "languages": _codes(values, "languages", _LANGUAGE.fullmatch,
                            "not two-letter language codes (en, es, …)"),
        "address": _text(values, "address"),
        "city": _text(values, "city"),
        "state": state,
        "latitude": latitude,
        "longitude": longitude,
        "phone": _phone(values),
        "email": _email(values),
        "webhook_url": _webhook(values),
    }


def add_provider(session: Any, actor: str, values: Mapping[str, Any]) -> ServiceProvider:
    """A new directory entry, audited; refuses bad input whole."""
    fields = checked_provider(values)
    provider = ServiceProvider(hsds_id=LOCAL_PREFIX + uuid.uuid4().hex, updated_at=utcnow(),
                               **fields)
    session.add(provider)
    session.flush()
    record_event(session, actor=actor, action="provider_added",
                 detail={"provider_id": provider.id, "fields": sorted(fields)})
    return provider


def edit_provider(
    session: Any, actor: str, provider_id: int, values: Mapping[str, Any]
) -> ServiceProvider:
    """Change a directory entry (added by hand or imported), audited with the fields that
    changed; the same values again change nothing and write nothing."""
    provider = session.get(ServiceProvider, provider_id)
    if provider is None:
        raise NotFound(f"no service provider {provider_id}")
    fields = checked_provider(values)
    changed = sorted(k for k, v in fields.items() if getattr(provider, k) != v)
    if changed:
        for key in changed:
            setattr(provider, key, fields[key])
        provider.updated_at = utcnow()
        record_event(session, actor=actor, action="provider_edited",
                     detail={"provider_id": provider.id, "fields": changed})
    return provider
