"""Identifiers a tip names, in one normal form each, and their keyed hashes.

Two tips link when they name the same phone, e-mail, handle, plate, business or address,
however each was typed; so each is normalised by a kept library where one exists
(phones: ``phonenumbers``, E.164; addresses: ``usaddress-scourgify``, USPS Pub. 28)
and hashed with the look-up HMAC (``PII_LOOKUP_KEY``). The hash input is
``kind:normal form``, so a handle that reads like a phone number never links to one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from urllib.parse import urlsplit

import phonenumbers
from scourgify import normalize_address_record
from scourgify.exceptions import AddressNormalizationError

from workflows.errors import InvalidInput
from workflows.pii import lookup_hash

SUBJECT_KINDS = ("person", "business", "phone", "email", "handle", "vehicle", "address", "website")
# A person's name is too ambiguous to link tips by; every other kind is an identifier.
LINKED_KINDS = ("phone", "email", "handle", "vehicle", "address", "business", "website")
DEFAULT_REGION = "US"
# The free text scanned for phone numbers is bounded (phonenumbers' matcher gives up after
# this many candidates), so a hostile 20,000-character narrative costs milliseconds.
MAX_PHONE_CANDIDATES = 200

_SPACE = re.compile(r"\s+")
_NOT_WORD = re.compile(r"[^\w\s]")
_PLATE_NOISE = re.compile(r"[\s\-.·]")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_HANDLE = re.compile(r"^[\w.\-]{1,100}$")
# Legal-form words do not tell two businesses apart ("Sunrise Spa LLC" = "Sunrise Spa").
_BUSINESS_SUFFIXES = frozenset({"LLC", "INC", "CO", "CORP", "CORPORATION", "LTD", "COMPANY", "LP"})


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def normal_phone(raw: str) -> str:
    """E.164 (US numbers may be written without +1), or InvalidInput."""
    try:
        number = phonenumbers.parse(_fold(raw), DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise InvalidInput("is not a phone number", field="value") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidInput("is not a possible phone number", field="value")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normal_email(raw: str) -> str:
    value = _fold(raw).lower()
    if not _EMAIL.match(value):
        raise InvalidInput("is not an e-mail address", field="value")
    return value


def normal_handle(raw: str) -> str:
    """Lower case, without the leading ``@``."""
    value = _fold(raw).lstrip("@").lower()
    if not _HANDLE.match(value):
        raise InvalidInput("a handle is letters, digits, '.', '-' or '_'", field="value")
    return value


def normal_plate(raw: str) -> str:
    """Upper case without spaces or dashes."""
    value = _PLATE_NOISE.sub("", _fold(raw)).upper()
    if not value.isalnum() or len(value) > 12:
        raise InvalidInput("a plate is up to 12 letters and digits", field="value")
    return value


def normal_address(raw: str) -> str:
    """USPS form by ``scourgify`` ("123 N MAIN ST APT 4 DALLAS TX"); when it cannot parse
    the text (a motel's name, a highway exit), upper case without punctuation.

    The ZIP code is left out: tipsters rarely know it, and with it two tips about the
    same door would not meet.
    """
    text = _fold(raw)
    if not text:
        raise InvalidInput("an address is needed", field="value")
    try:
        record = normalize_address_record(text)
        parts = [record.get(k) for k in ("address_line_1", "address_line_2", "city", "state")]
        value = " ".join(p for p in parts if p)
    except AddressNormalizationError:
        value = text
    return _SPACE.sub(" ", _NOT_WORD.sub(" ", value.upper())).strip()


def normal_business(raw: str) -> str:
    words = _NOT_WORD.sub(" ", _fold(raw).upper()).split()
    kept = [w for w in words if w not in _BUSINESS_SUFFIXES] or words
    if not kept:
        raise InvalidInput("a business needs a name", field="value")
    return " ".join(kept)


def normal_website(raw: str) -> str:
    """Host and path, lower case, without scheme, ``www.`` or a trailing slash."""
    text = _fold(raw)
    parts = urlsplit(text if "//" in text else "//" + text)
    host = (parts.hostname or "").removeprefix("www.")
    if "." not in host:
        raise InvalidInput("is not a web address", field="value")
    return (host + parts.path.rstrip("/")).lower()


NORMALISERS = {
    "phone": normal_phone,
    "email": normal_email,
    "handle": normal_handle,
    "vehicle": normal_plate,
    "address": normal_address,
    "business": normal_business,
    "website": normal_website,
}


def normalise(kind: str, raw: str) -> str:
    """The one form of this identifier that every spelling of it shares."""
    return NORMALISERS[kind](raw)


def identifier_hash(kind: str, normal: str) -> str:
    """The keyed look-up hash of a normalised identifier (no plaintext index anywhere)."""
    return lookup_hash(f"{kind}:{normal}")


def phones_in_text(text: str | None) -> Iterator[str]:
    """Phone numbers written in free text (a narrative, a text message), in E.164."""
    if not text:
        return
    matcher = phonenumbers.PhoneNumberMatcher(
        text, DEFAULT_REGION, leniency=phonenumbers.Leniency.VALID,
        max_tries=MAX_PHONE_CANDIDATES,
    )
    for match in matcher:
        yield phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
