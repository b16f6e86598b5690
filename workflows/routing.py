"""Routing: ordered, declarative rules (config/routing.yaml) from screening facts to agencies.

Every referral carries the rule that produced it, a sentence a person can read and its
legal basis, so the hotline can show for any disclosure why it was made. An adult
victim's "no" to law enforcement is never overridden except by a mandatory rule.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from workflows.catalog_files import CatalogError, line_of, read_yaml, read_yaml_nodes
from workflows.jurisdiction import US_STATES
from workflows.screening import (
    CONSENT_SCOPES,
    FACT_NAMES,
    LEVELS,
    REQUEST_TYPES,
    TRAFFICKING_TYPES,
    TRIGGERS,
    Assessment,
    IndicatorCatalog,
    consent_state,
)
from workflows.vocabulary import CALLER_TYPES

# Until config/agencies.yaml is loaded, these are the agencies a rule may name.
DEFAULT_AGENCIES = ("ICE", "FBI", "HHS", "DOL_WHD")
DERIVED = ("minor", "adult", "sex", "labor", "act", "means", "purpose", "signs",
           "trafficking_indicated", "third_party")
# Law enforcement: never referred to on who someone is (nationality, age) alone.
LAW_ENFORCEMENT = frozenset({"ICE", "FBI"})
# Conditions that, held true, show trafficking itself or imminent danger (SPEC 4).
_INDICATION_TRUE = frozenset({
    "imminent_danger", "cross_border", "documents_confiscated", "force_fraud_coercion",
    "commercial_sex", "sex", "labor", "act", "means", "purpose", "trafficking_indicated",
})
_INDICATION_VALUES: dict[str, frozenset[Any]] = {
    "trafficking_type": frozenset({"sex", "labor", "both"}),
    "level": frozenset({"high_indicators", "moderate_indicators"}),
    "triggers": frozenset(TRIGGERS),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "trafficking_type": TRAFFICKING_TYPES,
    "request_type": REQUEST_TYPES,
    "caller_type": CALLER_TYPES,
    "level": LEVELS,
    "triggers": TRIGGERS,
    "state": US_STATES,
}
CONDITION_KEYS = (*FACT_NAMES, *DERIVED, "level", "triggers", "indicators")
_DEADLINE = re.compile(r"^(\d+)\s*(m|h|d)$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
# routing.yaml's ``question_deadlines`` when it names none: an agency waiting on the
# hotline holds up its investigation, an emergency's most of all.
DEFAULT_QUESTION_DEADLINES = {
    "emergency": timedelta(hours=1),
    "urgent": timedelta(hours=24),
    "routine": timedelta(hours=24),
}


@dataclass(frozen=True)
class Rule:
    name: str
    when: dict[str, Any]
    agencies: tuple[str, ...]
    mandatory: bool
    consent: str | None
    third_party_allowed: bool
    deadline: timedelta | None
    emergency: bool
    close_as: str | None
    reason: str


@dataclass(frozen=True)
class RoutingConfig:
    rules: tuple[Rule, ...]
    consent_valid_for: timedelta
    case_deadlines: dict[str, timedelta]
    # How long the hotline has to answer an agency's question, by case priority.
    question_deadlines: dict[str, timedelta] = field(
        default_factory=lambda: dict(DEFAULT_QUESTION_DEADLINES)
    )


@dataclass(frozen=True)
class Recommendation:
    """One referral the rules call for: agency, basis, deadline, rule and reason."""

    agency: str
    mandatory: bool
    deadline: timedelta
    rule: str
    reason: str
    legal_basis: dict[str, Any]
    emergency: bool = False

    @property
    def deadline_hours(self) -> float:
        return self.deadline.total_seconds() / 3600

    def as_json(self) -> dict[str, Any]:
        """The shape the screening answer and the stored screening use."""
        return {
            "agency": self.agency,
            "mandatory": self.mandatory,
            "deadline_hours": self.deadline_hours,
            "rule": self.rule,
            "reason": self.reason,
            "legal_basis": self.legal_basis,
            "emergency": self.emergency,
        }


@dataclass(frozen=True)
class Decision:
    referrals: list[Recommendation]
    withheld: list[dict[str, Any]] = field(default_factory=list)
    close_as: str | None = None

    @property
    def emergency(self) -> bool:
        return any(r.emergency for r in self.referrals)


def parse_deadline(text: Any) -> timedelta | None:
    """``15m``, ``24h``, ``7d`` → a timedelta; anything else → None."""
    match = _DEADLINE.match(str(text).strip()) if text is not None else None
    if not match:
        return None
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def describe_deadline(delta: timedelta) -> str:
    """How a person says a deadline: ``15 min``, ``24 h``, ``7 days``."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes % (24 * 60) == 0 and minutes >= 7 * 24 * 60:
        return f"{minutes // (24 * 60)} days"
    hours = minutes / 60
    return f"{hours:g} h"


def _check_condition(
    cond: Any, where: tuple[str | int, ...], fail: Any, catalog: IndicatorCatalog | None
) -> None:
    if not isinstance(cond, dict) or not cond:
        raise fail(where, "a condition is a non-empty mapping")
    for key, value in cond.items():
        if key in ("any", "all"):
            if not isinstance(value, list) or not value:
                raise fail((*where, key), f"'{key}' takes a non-empty list of conditions")
            for i, sub in enumerate(value):
                _check_condition(sub, (*where, key, i), fail, catalog)
        elif key == "not":
            _check_condition(value, (*where, key), fail, catalog)
        elif key not in CONDITION_KEYS:
            raise fail((*where, key), f"unknown fact {key!r}")
        else:
            values = value if isinstance(value, list) else [value]
            allowed = CHOICES.get(key)
            if key == "indicators" and catalog is not None:
                allowed = tuple(catalog.indicators)
            for v in values:
                if allowed is not None and v is not None and v not in allowed:
                    raise fail((*where, key), f"{key}: unknown value {v!r}")


def requires_indication(cond: dict[str, Any]) -> bool:
    """True when every way to satisfy ``cond`` needs a sign of trafficking or danger.

    A rule that could match on nationality, age or caller alone returns False. ``not``
    is never such a sign: it holds when facts are merely absent.
    """
    for key, value in cond.items():
        if key == "any" and all(requires_indication(sub) for sub in value):
            return True
        if key == "all" and any(requires_indication(sub) for sub in value):
            return True
        if key == "indicators":
            return True
        wanted = value if isinstance(value, list) else [value]
        if key in _INDICATION_TRUE and wanted and all(v is True for v in wanted):
            return True
        if key in _INDICATION_VALUES and wanted and all(
            v in _INDICATION_VALUES[key] for v in wanted
        ):
            return True
    return False


def load_routing(path: Path, indicators: IndicatorCatalog | None = None) -> RoutingConfig:
    """Read and check config/routing.yaml; a mistake names the rule and its line."""
    data = read_yaml(path)
    node = read_yaml_nodes(path)

    def fail(where: tuple[str | int, ...], message: str) -> CatalogError:
        return CatalogError(f"{path}, line {line_of(node, *where)}: {message}")

    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise fail((), "expected a mapping with a 'rules' list")
    rules: list[Rule] = []
    for i, raw in enumerate(data["rules"]):
        where: tuple[str | int, ...] = ("rules", i)
        if not isinstance(raw, dict):
            raise fail(where, f"rule #{i + 1} must be a mapping")
        name = raw.get("name")
        label = f"rule {name!r}" if name else f"rule #{i + 1}"

        def rule_fail(
            sub: tuple[str | int, ...], message: str, _w: Any = where, _l: Any = label
        ) -> CatalogError:
            return fail((*_w, *sub), f"{_l}: {message}")

        if not isinstance(name, str) or not name.isidentifier():
            raise rule_fail(("name",), "'name' must be a lower_case identifier")
        if any(r.name == name for r in rules):
            raise rule_fail(("name",), "duplicate rule name")
        known = {"name", "when", "refer", "basis", "consent", "third_party_allowed", "deadline",
                 "emergency", "close_as", "reason"}
        if set(raw) - known:
            raise rule_fail((), f"unknown keys {sorted(set(raw) - known)}")
        _check_condition(
            raw.get("when"),
            (*where, "when"),
            lambda w, m, _l=label: fail(w, f"{_l}: {m}"),
            indicators,
        )
        agencies = raw.get("refer") or []
        if not isinstance(agencies, list) or any(
            not isinstance(a, str) or not re.fullmatch(r"[A-Z][A-Z0-9_]{1,31}", a)
            for a in agencies
        ):
            raise rule_fail(("refer",), "'refer' is a list of agency codes such as FBI")
        if not isinstance(raw.get("reason"), str) or not raw["reason"].strip():
            raise rule_fail(("reason",), "'reason' must be a sentence")
        named = sorted(LAW_ENFORCEMENT & set(agencies))
        if named and not requires_indication(raw["when"]):
            raise rule_fail(
                ("when",),
                f"refers to {', '.join(named)} on nationality, age or caller alone; a "
                "law-enforcement rule needs a sign of trafficking or imminent danger",
            )
        basis = raw.get("basis")
        consent = raw.get("consent")
        deadline = parse_deadline(raw.get("deadline"))
        if agencies:
            if basis not in ("mandatory", "consent"):
                raise rule_fail(("basis",), "basis must be mandatory or consent")
            if basis == "consent" and consent not in CONSENT_SCOPES[:2]:
                raise rule_fail(("consent",), "consent must be law_enforcement or services")
            if deadline is None:
                raise rule_fail(("deadline",), "deadline must look like 15m, 24h or 7d")
        rules.append(
            Rule(
                name=name,
                when=raw["when"],
                agencies=tuple(agencies),
                mandatory=basis == "mandatory",
                consent=consent if basis == "consent" else None,
                third_party_allowed=bool(raw.get("third_party_allowed", False)),
                deadline=deadline,
                emergency=bool(raw.get("emergency", False)),
                close_as=raw.get("close_as"),
                reason=raw["reason"].strip(),
            )
        )
    days = data.get("consent_valid_days", 365)
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise fail(("consent_valid_days",), "consent_valid_days must be a whole number of days")
    case_deadlines: dict[str, timedelta] = {}
    for priority in ("emergency", "urgent", "routine"):
        raw_deadline = (data.get("case_deadlines") or {}).get(priority, "72h")
        parsed = parse_deadline(raw_deadline)
        if parsed is None:
            raise fail(("case_deadlines", priority), f"case_deadlines.{priority}: like 24h")
        case_deadlines[priority] = parsed
    question_deadlines: dict[str, timedelta] = {}
    for priority in ("emergency", "urgent", "routine"):
        raw_deadline = (data.get("question_deadlines") or {}).get(priority)
        parsed = (
            DEFAULT_QUESTION_DEADLINES[priority] if raw_deadline is None
            else parse_deadline(raw_deadline)
        )
        if parsed is None:
            raise fail(("question_deadlines", priority), f"question_deadlines.{priority}: like 24h")
        question_deadlines[priority] = parsed
    return RoutingConfig(tuple(rules), timedelta(days=days), case_deadlines, question_deadlines)



def matches(cond: dict[str, Any], facts: dict[str, Any]) -> bool:
    """True when every condition holds for these facts."""
    for key, expected in cond.items():
        if key == "any":
            if not any(matches(sub, facts) for sub in expected):
                return False
        elif key == "all":
            if not all(matches(sub, facts) for sub in expected):
                return False
        elif key == "not":
            if matches(expected, facts):
                return False
        else:
            actual = facts.get(key)
            wanted = expected if isinstance(expected, list) else [expected]
            if isinstance(actual, list):
                if not set(actual) & set(wanted):
                    return False
            elif actual not in wanted:
                return False
    return True


def _sentence(agency: str, rule: Rule, basis: dict[str, Any]) -> str:
    kind = {
        "mandatory": "mandatory",
        "consent": "with the victim's consent",
        "third_party_tip": "third-party tip",
    }[basis["type"]]
    assert rule.deadline is not None
    return f"{agency}: {rule.reason} — {kind}, {describe_deadline(rule.deadline)}"


def route(
    config: RoutingConfig,
    assessment: Assessment,
    consent: dict[str, Any] | None,
    agencies: Collection[str],
    now: datetime,
) -> Decision:
    """Each agency the rules call for, once, with rule, reason and legal basis."""
    facts = assessment.view()
    chosen: dict[str, Recommendation] = {}
    withheld: list[dict[str, Any]] = []
    close_as = None
    for rule in config.rules:
        if not matches(rule.when, facts):
            continue
        if rule.close_as and close_as is None:
            close_as = rule.close_as
        for agency in rule.agencies:
            if agency not in agencies:
                continue  # not configured here (DOL WHD is optional)
            basis = _basis(rule, consent, facts, now)
            if basis is None:
                state = consent_state((consent or {}).get(rule.consent or ""), now)
                withheld.append({"agency": agency, "rule": rule.name, "consent": state})
                continue
            assert rule.deadline is not None
            rec = Recommendation(
                agency=agency,
                mandatory=rule.mandatory,
                deadline=rule.deadline,
                rule=rule.name,
                reason=_sentence(agency, rule, basis),
                legal_basis=basis,
                emergency=rule.emergency,
            )
            current = chosen.get(agency)
            # One referral per agency: the earliest deadline wins; on a tie, the first rule.
            if current is None or rec.deadline < current.deadline:
                chosen[agency] = rec
    referred = set(chosen)
    withheld = [w for w in withheld if w["agency"] not in referred]
    ordered = sorted(chosen.values(), key=lambda r: (r.deadline, r.agency))
    return Decision(ordered, withheld, close_as if not ordered else None)


def _basis(
    rule: Rule, consent: dict[str, Any] | None, facts: dict[str, Any], now: datetime
) -> dict[str, Any] | None:
    """Why this disclosure may be made, or None when it may not."""
    if rule.mandatory:
        return {"type": "mandatory", "rule": rule.name}
    record = (consent or {}).get(rule.consent or "")
    state = consent_state(record, now)
    if state == "given":
        assert record is not None
        return {
            "type": "consent",
            "scope": rule.consent,
            "given_by": record.get("given_by"),
            "recorded_by": record.get("recorded_by"),
            "recorded_at": record.get("recorded_at"),
            "expires_at": record.get("expires_at"),
        }
    if state == "unknown" and rule.third_party_allowed and facts.get("third_party"):
        # A third party's tip, not the victim's disclosure; the tipster is never named.
        return {
            "type": "third_party_tip",
            "rule": rule.name,
            "scope": rule.consent,
            "caller_type": facts["caller_type"],
        }
    return None


def basis_holds(
    basis: dict[str, Any] | None, consent: dict[str, Any] | None, now: datetime
) -> bool:
    """Does a referral's recorded legal basis still hold (consent not withdrawn or expired)?"""
    if not basis:
        return False
    if basis.get("type") == "mandatory":
        return True
    state = consent_state((consent or {}).get(str(basis.get("scope"))), now)
    if basis.get("type") == "third_party_tip":
        return state != "refused"
    return state == "given"
