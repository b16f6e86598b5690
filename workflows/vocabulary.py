"""The hotline's words, defined once: languages, caller types, role groups, agency events.

Schemas, forms, catalogs and the state machines all check input against these, so a new
language or caller type is added here and nowhere else (its texts then go in the
catalogs: translations/ and config/intake.yaml).
"""

from __future__ import annotations

from collections.abc import Iterable

from workflows.models import Role

LANGUAGES = ("en", "es")
CALLER_TYPES = ("victim", "community_member", "law_enforcement", "service_provider", "other")

# Role groups: who may do what is decided in workflows.machines' guards and the views'
# role checks, both from these.
SUPERVISOR = frozenset({Role.SUPERVISOR.value})
ADMIN = frozenset({Role.ADMIN.value})
AGENCY = frozenset({Role.AGENCY.value})
DESK = frozenset({Role.OPERATOR.value, Role.SUPERVISOR.value})  # who takes calls and screens
STAFF = frozenset({*DESK, Role.ADMIN.value})  # everyone who may read a case
OVERSIGHT = frozenset({Role.SUPERVISOR.value, Role.ADMIN.value})  # dashboard, access log
EVERYONE = frozenset(role.value for role in Role)  # routes whose rows decide who sees what



def role_list(*groups: Iterable[str]) -> list[str]:
    """The roles of these groups as one sorted list: the API's ``roles=`` takes a list."""
    return sorted({role for group in groups for role in group})


# What an agency may answer about its referral (API, inbox and the referral machine).
AGENCY_EVENTS = ("acknowledge", "accept", "decline", "request_info", "record_outcome")
