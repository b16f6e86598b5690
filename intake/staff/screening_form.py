"""The screening part of the call-log form: the checklist from config/indicators.yaml and
the form fields turned into the body ``PUT /api/v1/cases/<id>/screening`` takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l

from intake.forms import FormErrors, tri_state

YES_NO_FACTS = (
    ("imminent_danger", _l("Someone is in imminent danger")),
    ("victim_minor", _l("The victim is under 18")),
    ("foreign_national", _l("The victim is a foreign national")),
    ("commercial_sex", _l("Commercial sex is involved")),
    ("force_fraud_coercion", _l("Force, fraud or coercion")),
    ("documents_confiscated", _l("Documents confiscated")),
    ("cross_border", _l("Moved across a border")),
    ("wage_violations", _l("Wage violations")),
)
CONSENTS = (
    ("law_enforcement", _l("The victim agrees to a referral to law enforcement")),
    ("services", _l("The victim agrees to a referral to services")),
    ("callback", _l("We may contact the caller back")),
)
TRAFFICKING_TYPES = ("sex", "labor", "both", "unknown")
REQUEST_TYPES = ("crisis", "tip", "referral", "information", "high_risk")
INDICATOR_GROUPS = (("general", _l("General")), ("labor", _l("Labor")), ("sex", _l("Sex")),
                    ("minor", _l("Minors")))


@dataclass(frozen=True)
class ChecklistItem:
    code: str
    group: str
    question: str


def _get(item: Any, key: str, default: Any = None) -> Any:
    if isinstance(item, Mapping):
        return item.get(key, default)
    return getattr(item, key, default)


def _text(value: Any, lang: str) -> str:
    if isinstance(value, Mapping):
        return str(value.get(lang) or value.get("en") or "")
    return str(value or "")


def _entries(catalog: Any, key: str) -> list[Any]:
    entries = _get(catalog, key) or []
    return list(entries.values()) if isinstance(entries, Mapping) else list(entries)


def checklist(catalog: Any, lang: str = "en") -> list[tuple[str, list[ChecklistItem]]]:
    """The indicator questions grouped for the form, in the catalog's order."""
    items = []
    for entry in _entries(catalog, "indicators"):
        code = str(_get(entry, "code"))
        group = str(_get(entry, "type") or "general")
        if code.startswith(("minor_", "under_18")):
            group = "minor"
        items.append(ChecklistItem(code, group, _text(_get(entry, "question"), lang) or code))
    return [
        (title, [i for i in items if i.group == group])
        for group, title in INDICATOR_GROUPS
        if any(i.group == group for i in items)
    ]


def venues(catalog: Any, lang: str = "en") -> list[tuple[str, str]]:
    """The venue typology as (code, name) pairs."""
    return [
        (str(_get(v, "code")), _text(_get(v, "name"), lang) or str(_get(v, "code")))
        for v in _entries(catalog, "venues")
    ]


def screening_body(form: Mapping[str, str], indicator_codes: list[str]) -> dict[str, Any]:
    """The screening API body from the form; unknown answers stay ``null``."""
    facts: dict[str, Any] = {fact: tri_state(form, fact) for fact, _ in YES_NO_FACTS}
    facts["trafficking_type"] = form.get("trafficking_type") or None
    facts["request_type"] = form.get("request_type") or None
    facts["venue"] = form.get("venue") or None
    facts["caller_type"] = form.get("caller_type") or None
    age = (form.get("victim_age") or "").strip()
    if age and not age.isdigit():
        raise FormErrors({"facts.victim_age": "must be a whole number of years"})
    facts["victim_age"] = int(age) if age else None
    return {
        "facts": facts,
        "indicators": indicator_codes,
        "consent": {name: tri_state(form, f"consent_{name}") for name, _ in CONSENTS},
    }


def form_from_screening(screening: dict[str, Any] | None) -> tuple[dict[str, str], set[str]]:
    """A recorded screening as form values (to screen again) and the checked indicators."""
    screening = screening or {}
    form: dict[str, str] = {}
    for name, value in (screening.get("facts") or {}).items():
        if isinstance(value, bool):
            form[name] = "yes" if value else "no"
        elif value is not None:
            form[name] = str(value)
    for scope, record in (screening.get("consent") or {}).items():
        given = record.get("given") if isinstance(record, Mapping) else record
        if isinstance(given, bool):
            form[f"consent_{scope}"] = "yes" if given else "no"
    return form, set(screening.get("indicators") or [])
