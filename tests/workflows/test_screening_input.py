"""The screening body: exactly the documented keys and types; anything else is 422 naming
the field, and changes nothing."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"facts": {"victim_age": "16"}}, "facts.victim_age"),
        ({"facts": {"victim_age": 16.5}}, "facts.victim_age"),
        ({"facts": {"victim_age": True}}, "facts.victim_age"),
        ({"facts": {"victim_age": -1}}, "facts.victim_age"),
        ({"facts": {"imminent_danger": "yes"}}, "facts.imminent_danger"),
        ({"facts": {"commercial_sex": 1}}, "facts.commercial_sex"),
        ({"facts": {"trafficking_type": "organ"}}, "facts.trafficking_type"),
        ({"facts": {"race": "x"}}, "facts.race"),
        ({"facts": {"venue": "moon_base"}}, "facts.venue"),
        ({"facts": {"victim_age": 30, "victim_minor": True}}, "facts.victim_minor"),
        ({"indicators": ["not_free_to_leave", "no_such_code"]}, "indicators.1"),
        ({"indicators": "not_free_to_leave"}, "indicators"),
        ({"consent": {"law_enforcement": "no"}}, "consent.law_enforcement"),
        ({"consent": {"marketing": True}}, "consent.marketing"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_screening_is_422_naming_the_field_and_changes_nothing(
    cases, operator, body, field
) -> None:
    case = cases.call(operator)
    answer = cases.screen(operator, case["id"], body, status=422)
    assert answer["field"] == field
    after = cases.show(operator, case["id"])
    assert after["state"] == "received" and after["screening"] is None


def test_every_key_is_optional_and_null_means_unknown(cases, operator) -> None:
    case = cases.call(operator, caller_type="community_member")
    result = cases.screen(operator, case["id"], {"facts": {"victim_age": None}, "consent": None})
    assert result["level"] == "none" and result["priority"] == "routine"
    shown = cases.show(operator, case["id"])
    consent = shown["screening"]["consent"]["law_enforcement"]
    assert consent["given"] is None and consent["recorded_by"] == operator.username
    assert shown["screening"]["facts"]["caller_type"] == "community_member"


def test_consent_is_recorded_with_scope_who_gave_it_who_recorded_it_when_and_expiry(
    cases, operator
) -> None:
    case = cases.call(operator)
    cases.screen(operator, case["id"], {"consent": {"law_enforcement": True, "callback": False}})
    record = cases.show(operator, case["id"])["screening"]["consent"]["law_enforcement"]
    assert record["scope"] == "law_enforcement" and record["given"] is True
    assert record["given_by"] == "victim" and record["recorded_by"] == operator.username
    assert record["recorded_at"] < record["expires_at"]
    # The same answer again keeps the first record (and its time); a change is a new one.
    cases.screen(operator, case["id"], {"consent": {"law_enforcement": True}})
    again = cases.show(operator, case["id"])["screening"]["consent"]["law_enforcement"]
    assert again == record


def test_under_18_makes_a_minor_and_minor_facts_drive_level_and_priority(cases, operator) -> None:
    case = cases.call(operator)
    result = cases.screen(operator, case["id"], {"facts": {"victim_age": 17},
                                                 "indicators": ["commercial_sex_acts"]})
    assert result["triggers"] == ["minor_commercial_sex"]
    assert result["level"] == "high_indicators" and result["priority"] == "urgent"


def test_level_follows_act_means_purpose_completeness(cases, operator) -> None:
    levels = {}
    for name, indicators in {
        "all three": ["recruited_by_third_party", "not_free_to_leave", "forced_to_work"],
        "two": ["not_free_to_leave", "forced_to_work"],
        "one": ["excessive_hours"],
        "none": [],
    }.items():
        case = cases.call(operator)
        body = {"indicators": indicators, "facts": {"victim_age": 30}}
        levels[name] = cases.screen(operator, case["id"], body)["level"]
    assert levels == {"all three": "high_indicators", "two": "moderate_indicators",
                      "one": "high_risk", "none": "none"}


def test_a_case_awaiting_approval_cannot_be_rescreened(cases, operator) -> None:
    case = cases.call(operator)
    cases.screen(operator, case["id"], {"facts": {"victim_age": 16, "commercial_sex": True}})
    cases.event(operator, case["id"], "submit_for_approval")
    answer = cases.screen(operator, case["id"], {}, status=409)
    assert "reject it first" in answer["error"]
