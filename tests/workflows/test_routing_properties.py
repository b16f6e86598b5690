"""Invariants of screening and routing over random screening facts (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import DEFAULT_CONFIG_DIR
from workflows.routing import DEFAULT_AGENCIES, load_routing, route
from workflows.screening import (
    REQUEST_TYPES,
    TRAFFICKING_TYPES,
    assess,
    consent_records,
    load_indicators,
)
from workflows.vocabulary import CALLER_TYPES

INDICATORS = load_indicators(DEFAULT_CONFIG_DIR / "indicators.yaml")
ROUTING = load_routing(DEFAULT_CONFIG_DIR / "routing.yaml", INDICATORS)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
maybe = st.none() | st.booleans()

facts_strategy = st.fixed_dictionaries(
    {},
    optional={
        "trafficking_type": st.none() | st.sampled_from(TRAFFICKING_TYPES),
        "victim_age": st.none() | st.integers(0, 99),
        "victim_minor": maybe,
        "foreign_national": maybe,
        "imminent_danger": maybe,
        "cross_border": maybe,
        "documents_confiscated": maybe,
        "force_fraud_coercion": maybe,
        "commercial_sex": maybe,
        "wage_violations": maybe,
        "request_type": st.none() | st.sampled_from(REQUEST_TYPES),
        "venue": st.none() | st.sampled_from(sorted(INDICATORS.venues)),
        "caller_type": st.none() | st.sampled_from(CALLER_TYPES),
    },
).filter(lambda f: not ((f.get("victim_age") or 0) >= 18 and f.get("victim_minor") is True))
indicators_strategy = st.lists(st.sampled_from(sorted(INDICATORS.indicators)), max_size=6)
consent_strategy = st.fixed_dictionaries(
    {"law_enforcement": maybe, "services": maybe, "callback": maybe}
)


def _route(facts, indicators, consent):  # type: ignore[no-untyped-def]
    assessment = assess(INDICATORS, facts, indicators)
    records = consent_records(consent, None, given_by=facts.get("caller_type") or "caller",
                              recorded_by="op", now=NOW, valid_for=timedelta(days=365))
    return assessment, route(ROUTING, assessment, records, DEFAULT_AGENCIES, NOW)


@settings(max_examples=200, deadline=None)
@given(facts_strategy, indicators_strategy, consent_strategy)
def test_an_adult_victims_no_to_law_enforcement_is_only_overridden_by_mandatory_rules(
    facts, indicators, consent
) -> None:
    consent = {**consent, "law_enforcement": False}
    assessment, decision = _route(facts, indicators, consent)
    if assessment.facts["adult"]:
        for referral in decision.referrals:
            if referral.agency in ("FBI", "ICE"):
                assert referral.mandatory, referral


@settings(max_examples=150, deadline=None)
@given(facts_strategy, indicators_strategy, consent_strategy)
def test_a_minor_in_commercial_sex_always_gets_fbi(facts, indicators, consent) -> None:
    facts = {**facts, "victim_minor": True, "commercial_sex": True}
    facts.pop("victim_age", None)
    _, decision = _route(facts, indicators, consent)
    fbi = [r for r in decision.referrals if r.agency == "FBI"]
    assert fbi and fbi[0].mandatory and fbi[0].deadline <= timedelta(hours=24)


@settings(max_examples=150, deadline=None)
@given(facts_strategy, indicators_strategy, consent_strategy, st.integers(0, 17))
def test_a_foreign_national_minor_with_any_trafficking_gets_hhs_within_24_hours(
    facts, indicators, consent, age
) -> None:
    facts = {**facts, "victim_age": age, "foreign_national": True}
    assessment, decision = _route(facts, indicators, consent)
    hhs = [r for r in decision.referrals if r.agency == "HHS"]
    if assessment.facts["trafficking_indicated"]:
        assert hhs and hhs[0].mandatory and hhs[0].deadline <= timedelta(hours=24)
    else:
        assert "foreign_national_minor" not in assessment.triggers


@settings(max_examples=300, deadline=None)
@given(facts_strategy, indicators_strategy, consent_strategy)
def test_no_ice_or_fbi_referral_without_a_trafficking_indication_or_imminent_danger(
    facts, indicators, consent
) -> None:
    assessment, decision = _route(facts, indicators, consent)
    law_enforcement = [r for r in decision.referrals if r.agency in ("ICE", "FBI")]
    if law_enforcement:
        assert assessment.facts["trafficking_indicated"] or (
            assessment.facts["imminent_danger"] is True
        ), (law_enforcement, assessment)


@settings(max_examples=150, deadline=None)
@given(facts_strategy, consent_strategy, st.integers(0, 17))
def test_a_foreign_child_with_no_sign_of_trafficking_gets_no_law_enforcement(
    facts, consent, age
) -> None:
    facts = {**facts, "victim_age": age, "foreign_national": True, "victim_minor": None,
             "trafficking_type": None, "commercial_sex": None, "cross_border": None,
             "documents_confiscated": None, "force_fraud_coercion": None,
             "imminent_danger": None}
    assessment, decision = _route(facts, [], consent)
    assert not assessment.facts["trafficking_indicated"]
    assert [r for r in decision.referrals if r.agency in ("ICE", "FBI")] == []


@settings(max_examples=100, deadline=None)
@given(consent_strategy, st.none() | st.sampled_from(CALLER_TYPES))
def test_zero_indicators_and_no_facts_refer_nobody(consent, caller_type) -> None:
    assessment, decision = _route({"caller_type": caller_type}, [], consent)
    assert decision.referrals == []
    assert assessment.level == "none" and decision.close_as == "information_only"


@settings(max_examples=150, deadline=None)
@given(facts_strategy, indicators_strategy, consent_strategy)
def test_one_referral_per_agency_each_with_rule_reason_and_basis(
    facts, indicators, consent
) -> None:
    _, decision = _route(facts, indicators, consent)
    agencies = [r.agency for r in decision.referrals]
    assert len(agencies) == len(set(agencies))
    for r in decision.referrals:
        assert r.rule and r.reason.startswith(f"{r.agency}: ")
        assert r.legal_basis["type"] in ("mandatory", "consent", "third_party_tip")
        assert ("mandatory" in r.reason) == r.mandatory
