"""The public pages' words (tipsters choose their language; nothing is guessed).

English msgids marked with ``lazy_gettext``: each is translated when a page renders, in
the locale the tipster chose (config/i18n.py); the Spanish is in
translations/es/LC_MESSAGES/messages.po (``make translations``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from flask_babel import LazyString, gettext
from flask_babel import lazy_gettext as _l

from workflows.vocabulary import LANGUAGES

HOTLINE_PHONE = "1-888-373-7888"
HOTLINE_TEXT = "233733"

TEXT: dict[str, LazyString] = {
    "title": _l("Report human trafficking"),
    "intro": _l(
        "Tell us what you saw or what is happening "
        "to you. You do not have to give your name."
    ),
    "call_us": _l("Call the hotline"),
    "text_us": _l("Text"),
    "emergency": _l("In immediate danger? Call 911."),
    "warning": _l(
        "We may report to law enforcement where someone "
        "is in danger or a minor is involved."
    ),
    "quick_exit": _l("Quick exit"),
    "quick_exit_hint": _l("Leaves this site at once (or press Escape)."),
    "tip_link": _l("Send a tip online"),
    "follow_link": _l("Follow up on a tip you sent"),
    "narrative": _l("What happened?"),
    "narrative_hint": _l("Who, what, when, where. Please do not put yourself at risk."),
    "location": _l("Where? (city, address or place)"),
    "anonymous": _l("Keep me anonymous: do not share my name or contact details with agencies"),
    "contact": _l("How we could reach you (optional)"),
    "phone": _l("Phone number"),
    "email": _l("E-mail address"),
    "safe_hours": _l("When is it safe to text you? (optional; we hold texts until then)"),
    "safe_from": _l("From"),
    "safe_to": _l("to"),
    "safe_zone": _l("Your time zone"),
    "safe_zone_pick": _l("Choose"),
    "announce_only": _l(
        "Texts only say that you have a message, never what "
        "it says (you read it here with your reference and passphrase)"
    ),
    "send": _l("Send the tip"),
    "errors": _l("Please check the fields marked below."),
    "resend": _l("Your page had expired, so nothing was sent yet. Please press Send again."),
    "received_title": _l("Thank you. Your tip was received."),
    "received_keep": _l(
        "Write these down now. They are shown "
        "only once, and we cannot show them again."
    ),
    "reference": _l("Reference"),
    "passphrase": _l("Passphrase"),
    "received_next": _l("With both you can read our replies and add information later:"),
    "follow_title": _l("Follow up on your tip"),
    "open": _l("Open"),
    "not_found": _l("No tip matches that reference and passphrase."),
    "status": _l("Status"),
    "replies": _l("Messages"),
    "no_messages": _l("No messages yet."),
    "from_you": _l("You"),
    "from_hotline": _l("Hotline"),
    "add_info": _l("Add information"),
    "add": _l("Send"),
    "added": _l("Thank you, your information was added."),
    "other_language": _l("Español"),
}
STATUS_WORDS: dict[str, LazyString] = {
    "received": _l("received"),
    "in review": _l("in review"),
    "closed": _l("closed"),
}


def pick_language(raw: str | None) -> str:
    """A supported language code; anything else is English."""
    return raw if raw in LANGUAGES else "en"


# The zones a tipster picks from on the tip form (the API takes any IANA name).
TIME_ZONES: dict[str, LazyString] = {
    "America/New_York": _l("Eastern (New York)"),
    "America/Chicago": _l("Central (Chicago)"),
    "America/Denver": _l("Mountain (Denver)"),
    "America/Phoenix": _l("Arizona (Phoenix)"),
    "America/Los_Angeles": _l("Pacific (Los Angeles)"),
    "America/Anchorage": _l("Alaska"),
    "Pacific/Honolulu": _l("Hawaii"),
    "America/Puerto_Rico": _l("Puerto Rico"),
    "America/Mexico_City": _l("Mexico City"),
}

# The schema's messages a tipster can meet on the tip form (intake/schemas.py and
# marshmallow's own, in English for the API), as msgids the page translates.
FORM_ERRORS: dict[str, LazyString] = {
    "is not a phone number": _l("is not a phone number"),
    "is not a valid phone number": _l("is not a valid phone number"),
    "Not a valid email address.": _l("Not a valid email address."),
    "must be a time as HH:MM (24-hour), e.g. 18:00": _l(
        "must be a time as HH:MM (24-hour), e.g. 18:00"
    ),
    "must be an IANA time zone name, e.g. America/Chicago": _l(
        "must be an IANA time zone name, e.g. America/Chicago"
    ),
    "must differ from start": _l("must differ from start"),
    "Field may not be null.": _l("Field may not be null."),
    "Missing data for required field.": _l("Missing data for required field."),
}
_LENGTH = re.compile(r"Length must be between (\d+) and (\d+)\.")


def tipster_errors(errors: Mapping[str, str]) -> dict[str, str]:
    """The form's errors in the tipster's language (an unknown message stays as it is)."""
    shown = {}
    for field, message in errors.items():
        length = _LENGTH.fullmatch(message)
        if length:
            shown[field] = gettext(
                "Length must be between %(min)s and %(max)s.",
                min=length.group(1), max=length.group(2),
            )
        else:
            shown[field] = str(FORM_ERRORS.get(message, message))
    return shown

# The published tables' titles (workflows.publication.TABLES, whose English they repeat).
STATISTICS_TABLES: dict[str, LazyString] = {
    "signals_by_channel": _l("contacts (calls, texts, web tips, call logs) by channel"),
    "cases_by_heard_from": _l("cases by how the first contact heard of the hotline"),
    "cases_by_us_state": _l("cases by state of the incident"),
    "cases_by_type": _l("cases by type of trafficking"),
    "cases_by_venue": _l("cases by venue or industry"),
    "referrals_by_agency": _l("referrals made, by agency"),
    "investigations_by_agency": _l("referrals that led to an investigation, by agency"),
}
