"""Screening: the indicator checklist, the legal-definition level, score, priority, consent.

Trafficking needs an act, a means (force, fraud or coercion) and a purpose (commercial
sex, or labor/services); for anyone under 18 in commercial sex no means is needed
(22 U.S.C. 7102(11)). Hard triggers are checked first, then the level, then a weighted
score that only ranks cases for review.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from workflows.catalog_files import CatalogError, line_of, read_yaml, read_yaml_nodes
from workflows.errors import InvalidInput
from workflows.models import Priority
from workflows.vocabulary import LANGUAGES

ELEMENTS = ("act", "means", "purpose")
TYPES = ("sex", "labor", "general")
VENUE_TYPES = ("sex", "labor", "both")
# Never indicators (SPEC 4): a code or question about these is refused at start-up.
FORBIDDEN_WORDS = ("race", "ethnic", "gender", "religio", "skin colo", "nationality")

TRAFFICKING_TYPES = ("sex", "labor", "both", "unknown")
REQUEST_TYPES = ("crisis", "tip", "referral", "information", "high_risk")
BOOLEAN_FACTS = (
    "victim_minor",
    "foreign_national",
    "imminent_danger",
    "cross_border",
    "documents_confiscated",
    "force_fraud_coercion",
    "commercial_sex",
    "wage_violations",
)
FACT_NAMES = (
    "trafficking_type",
    "victim_age",
    *BOOLEAN_FACTS,
    "request_type",
    "venue",
    "caller_type",
    # Jurisdiction: where it happened (a USPS state code; county and city as told).
    "state",
    "county",
    "city",
)
CONSENT_SCOPES = ("law_enforcement", "services", "callback")
# Who gave a consent: the victim, a minor's guardian, or a third party (a caller about
# someone else), who may consent only to a report of what they know.
CONSENT_GIVERS = ("victim", "guardian", "third_party")
LEVELS = ("high_indicators", "moderate_indicators", "high_risk", "none")
TRIGGERS = ("imminent_danger", "minor_commercial_sex", "foreign_national_minor")


@dataclass(frozen=True)
class Indicator:
    code: str
    element: str
    type: str
    weight: int
    question: dict[str, str]
    implies: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Venue:
    code: str
    type: str
    name: dict[str, str]


@dataclass(frozen=True)
class IndicatorCatalog:
    indicators: dict[str, Indicator]
    venues: dict[str, Venue]
    fact_weights: dict[str, int]


def _fail(path: Path, node: Any, where: tuple[str | int, ...], message: str) -> CatalogError:
    line = line_of(node, *where)
    return CatalogError(f"{path}, line {line}: {message}")


def load_indicators(path: Path) -> IndicatorCatalog:
    """Read and check config/indicators.yaml; a mistake names the item and its line."""
    data = read_yaml(path)
    node = read_yaml_nodes(path)
    if not isinstance(data, dict) or not isinstance(data.get("indicators"), list):
        raise _fail(path, node, (), "expected a mapping with an 'indicators' list")
    indicators: dict[str, Indicator] = {}
    for i, item in enumerate(data["indicators"]):
        where: tuple[str | int, ...] = ("indicators", i)
        if not isinstance(item, dict):
            raise _fail(path, node, where, f"indicator #{i + 1} must be a mapping")
        code = item.get("code")
        label = f"indicator {code!r}" if code else f"indicator #{i + 1}"
        if not isinstance(code, str) or not code.isidentifier():
            raise _fail(path, node, where, f"{label}: 'code' must be a lower_case identifier")
        if code in indicators:
            raise _fail(path, node, (*where, "code"), f"{label}: duplicate code")
        unknown = set(item) - {"code", "element", "type", "weight", "question", "implies"}
        if unknown:
            raise _fail(path, node, where, f"{label}: unknown keys {sorted(unknown)}")
        if item.get("element") not in ELEMENTS:
            raise _fail(path, node, (*where, "element"), f"{label}: element must be {ELEMENTS}")
        if item.get("type") not in TYPES:
            raise _fail(path, node, (*where, "type"), f"{label}: type must be one of {TYPES}")
        weight = item.get("weight")
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
            raise _fail(path, node, (*where, "weight"), f"{label}: weight must be 0 to 100")
        question = item.get("question")
        if not isinstance(question, dict) or any(
            not isinstance(question.get(lang), str) or not question[lang].strip()
            for lang in LANGUAGES
        ):
            raise _fail(path, node, (*where, "question"), f"{label}: question needs en and es")
        text = " ".join([code, *question.values()]).lower()
        if any(word in text for word in FORBIDDEN_WORDS):
            raise _fail(
                path, node, where, f"{label}: race, ethnicity, gender, religion are not indicators"
            )
        implies = item.get("implies") or {}
        if not isinstance(implies, dict) or any(
            k not in BOOLEAN_FACTS or not isinstance(v, bool) for k, v in implies.items()
        ):
            raise _fail(
                path, node, (*where, "implies"), f"{label}: implies maps facts {BOOLEAN_FACTS}"
            )
        indicators[code] = Indicator(code, item["element"], item["type"], weight, question, implies)
    venues: dict[str, Venue] = {}
    for i, item in enumerate(data.get("venues") or []):
        where = ("venues", i)
        code = item.get("code") if isinstance(item, dict) else None
        if not isinstance(code, str) or not code.isidentifier() or code in venues:
            raise _fail(path, node, where, f"venue #{i + 1}: a unique lower_case 'code' is needed")
        if item.get("type") not in VENUE_TYPES:
            raise _fail(path, node, where, f"venue {code!r}: type must be one of {VENUE_TYPES}")
        name = item.get("name")
        if not isinstance(name, dict) or any(not isinstance(name.get(x), str) for x in LANGUAGES):
            raise _fail(path, node, where, f"venue {code!r}: name needs en and es")
        venues[code] = Venue(code, item["type"], name)
    weights = data.get("fact_weights") or {}
    if not isinstance(weights, dict) or any(
        k not in BOOLEAN_FACTS or not isinstance(v, int) for k, v in weights.items()
    ):
        raise _fail(path, node, ("fact_weights",), f"fact_weights maps {BOOLEAN_FACTS} to numbers")
    return IndicatorCatalog(indicators, venues, dict(weights))


def check_input(
    catalog: IndicatorCatalog, facts: dict[str, Any], indicators: list[str]
) -> None:
    """Refuse codes the catalog does not know, and facts that contradict each other."""
    for i, code in enumerate(indicators):
        if code not in catalog.indicators:
            raise InvalidInput(f"unknown indicator code {code!r}", field=f"indicators.{i}")
    venue = facts.get("venue")
    if venue is not None and venue not in catalog.venues:
        raise InvalidInput(f"unknown venue code {venue!r}", field="facts.venue")
    age = facts.get("victim_age")
    if age is not None and age >= 18 and facts.get("victim_minor") is True:
        raise InvalidInput(
            "victim_age 18 or over contradicts victim_minor", field="facts.victim_minor"
        )


@dataclass(frozen=True)
class Assessment:
    """What the screening says: effective facts, triggers, level, score and priority."""

    facts: dict[str, Any]
    indicators: tuple[str, ...]
    triggers: tuple[str, ...]
    level: str
    score: int
    priority: Priority
    elements: dict[str, bool]

    def view(self) -> dict[str, Any]:
        """The flat facts routing conditions are written against."""
        return {
            **self.facts,
            **self.elements,
            "level": self.level,
            "triggers": list(self.triggers),
            "indicators": list(self.indicators),
        }


def assess(
    catalog: IndicatorCatalog, facts: dict[str, Any], indicators: list[str] | tuple[str, ...]
) -> Assessment:
    """Hard triggers first, then the level from act/means/purpose, then score and priority."""
    chosen = tuple(dict.fromkeys(indicators))
    items = [catalog.indicators[code] for code in chosen]
    eff: dict[str, Any] = {name: facts.get(name) for name in FACT_NAMES}
    for item in items:
        for key, value in item.implies.items():
            if eff[key] is None:
                eff[key] = value
    ttype = eff["trafficking_type"]
    if eff["commercial_sex"] is None and ttype in ("sex", "both"):
        eff["commercial_sex"] = True
    age = eff["victim_age"]
    minor = eff["victim_minor"] is True or (age is not None and age < 18)
    eff["victim_minor"] = True if minor else eff["victim_minor"]
    commercial_sex = eff["commercial_sex"] is True
    sex = commercial_sex or ttype in ("sex", "both") or any(
        i.type == "sex" and i.element == "purpose" for i in items
    )
    labor = ttype in ("labor", "both") or any(
        i.type == "labor" and i.element == "purpose" for i in items
    )
    elements = {
        "act": eff["cross_border"] is True or any(i.element == "act" for i in items),
        "means": eff["force_fraud_coercion"] is True
        or eff["documents_confiscated"] is True
        or any(i.element == "means" for i in items),
        "purpose": sex or labor,
    }
    true_facts = [name for name in BOOLEAN_FACTS if eff[name] is True]
    signs = bool(items) or any(
        eff[name] is True
        for name in BOOLEAN_FACTS
        if name not in ("victim_minor", "foreign_national")
    ) or ttype in ("sex", "labor", "both") or eff["request_type"] in ("crisis", "high_risk")
    # A sign of trafficking itself: an act, means or purpose (indicator or fact),
    # commercial sex, or a known trafficking type. Nationality and age are never one.
    indicated = any(elements.values())
    triggers = []
    if eff["imminent_danger"] is True:
        triggers.append("imminent_danger")
    if minor and commercial_sex:
        triggers.append("minor_commercial_sex")
    if minor and eff["foreign_national"] is True and indicated:
        triggers.append("foreign_national_minor")
    present = sum(elements.values())
    if (minor and commercial_sex) or present == 3:
        level = "high_indicators"
    elif present == 2:
        level = "moderate_indicators"
    elif signs:
        level = "high_risk"
    else:
        level = "none"
    score = sum(i.weight for i in items) + sum(catalog.fact_weights.get(f, 0) for f in true_facts)
    if "imminent_danger" in triggers:
        priority = Priority.EMERGENCY
    elif triggers or level == "high_indicators" or eff["request_type"] == "crisis":
        priority = Priority.URGENT
    else:
        priority = Priority.ROUTINE
    eff.update(
        minor=minor,
        adult=not minor,
        sex=sex,
        labor=labor,
        signs=signs,
        trafficking_indicated=indicated,
        third_party=eff["caller_type"] not in (None, "victim"),
    )
    return Assessment(eff, chosen, tuple(triggers), level, score, priority, elements)


def consent_records(
    given: dict[str, bool | None],
    previous: dict[str, Any] | None,
    *,
    given_by: str,
    recorded_by: str,
    now: datetime,
    valid_for: timedelta,
) -> dict[str, Any]:
    """Each consent with its scope, who gave it, who recorded it, when, and its expiry.

    An answer that did not change keeps its first record, so the time stays the time it
    was given; a changed answer is a new record. A victim's own "no" is never replaced
    by a third party's answer.
    """
    records: dict[str, Any] = {}
    for scope in CONSENT_SCOPES:
        value = given.get(scope)
        old = (previous or {}).get(scope)
        if isinstance(old, dict) and old.get("given") == value:
            records[scope] = old
            continue
        if (
            isinstance(old, dict)
            and old.get("given") is False
            and old.get("given_by") in ("victim", "guardian")
            and given_by == "third_party"
        ):
            records[scope] = old
            continue
        records[scope] = {
            "scope": scope,
            "given": value,
            "given_by": given_by,
            "recorded_by": recorded_by,
            "recorded_at": now.isoformat(),
            "expires_at": (now + valid_for).isoformat() if value is not None else None,
        }
    return records


def consent_state(record: dict[str, Any] | None, now: datetime) -> str:
    """``given``, ``refused``, ``expired`` or ``unknown`` for one consent record."""
    if not record or record.get("given") is None:
        return "unknown"
    if record["given"] is False:
        return "refused"
    expires = record.get("expires_at")
    if expires and datetime.fromisoformat(expires) <= now:
        return "expired"
    return "given"
