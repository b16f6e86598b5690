"""Who consented: victim, guardian or third party (issue 10). A third party may consent
to a report of what they know; the victim's details need the victim's own consent; a
third party's yes never overrides the victim's no."""

from __future__ import annotations

from typing import Any

from tests.factories import SignalFactory
from workflows.db import transaction
from workflows.models import Case

ADULT_SEX_TRAFFICKING = {"victim_age": 28, "trafficking_type": "sex",
                         "force_fraud_coercion": True}
VICTIM_PHONE = "+12025550191"
CALLER_PHONE = "+12025550192"


def _case_with_victim_signal(cases: Any, operator: Any, db_session: Any) -> int:
    """A neighbour's call, and the victim's own earlier call on the same case."""
    case_id = cases.call(operator, caller_type="community_member",
                         caller_name="Neighbour", caller_phone=CALLER_PHONE)["id"]
    with transaction(db_session):
        SignalFactory(case=db_session.get(Case, case_id), operator=True, caller_type="victim",
                      caller_name="Maria V.", contact_phone=VICTIM_PHONE,
                      narrative="I cannot leave the house.")
    return case_id


def _packet(client: Any, make_actor: Any, referral_id: int) -> dict[str, Any]:
    fbi = make_actor("agency", "FBI")
    answer = client.get(f"/api/v1/agency/referrals/{referral_id}", headers=fbi.headers)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["packet"]  # type: ignore[no-any-return]


def _refer(cases: Any, operator: Any, supervisor: Any, case_id: int,
           consent: dict[str, Any]) -> dict[str, Any]:
    cases.screen(operator, case_id, {"facts": ADULT_SEX_TRAFFICKING, "consent": consent})
    cases.event(operator, case_id, "submit_for_approval")
    [fbi] = cases.event(supervisor, case_id, "approve")["referrals"]
    return fbi  # type: ignore[no-any-return]


def test_a_third_partys_consent_reports_what_they_know_without_the_victims_details(
    client, cases, operator, supervisor, make_actor, db_session
) -> None:
    case_id = _case_with_victim_signal(cases, operator, db_session)
    fbi = _refer(cases, operator, supervisor, case_id,
                 {"law_enforcement": True, "given_by": "third_party"})
    assert fbi["legal_basis"]["given_by"] == "third_party"
    packet = _packet(client, make_actor, fbi["id"])
    assert packet["consent_given_by"] == "third_party"
    assert packet["people"]["consent_given_by"] == "third_party"
    phones = {c["phone"] for c in packet["people"]["contacts"]}
    assert VICTIM_PHONE not in phones and "Maria" not in str(packet["people"])
    assert CALLER_PHONE in phones  # the caller's own details, theirs to give


def test_the_victims_own_consent_shares_the_victims_details(
    client, cases, operator, supervisor, make_actor, db_session
) -> None:
    case_id = _case_with_victim_signal(cases, operator, db_session)
    fbi = _refer(cases, operator, supervisor, case_id,
                 {"law_enforcement": True, "given_by": "victim"})
    packet = _packet(client, make_actor, fbi["id"])
    assert packet["consent_given_by"] == "victim"
    assert VICTIM_PHONE in {c["phone"] for c in packet["people"]["contacts"]}


def test_a_third_partys_yes_never_overrides_the_victims_no(cases, operator) -> None:
    case_id = cases.call(operator, caller_type="victim")["id"]
    first = cases.screen(operator, case_id, {
        "facts": ADULT_SEX_TRAFFICKING,
        "consent": {"law_enforcement": False, "given_by": "victim"}})
    assert first["recommended_referrals"] == []
    again = cases.screen(operator, case_id, {
        "facts": ADULT_SEX_TRAFFICKING,
        "consent": {"law_enforcement": True, "given_by": "third_party"}})
    assert again["recommended_referrals"] == []
    assert again["withheld_referrals"][0]["consent"] == "refused"
    record = cases.show(operator, case_id)["screening"]["consent"]["law_enforcement"]
    assert record["given"] is False and record["given_by"] == "victim"
    # The victim may change their own mind.
    changed = cases.screen(operator, case_id, {
        "facts": ADULT_SEX_TRAFFICKING,
        "consent": {"law_enforcement": True, "given_by": "victim"}})
    assert [r["agency"] for r in changed["recommended_referrals"]] == ["FBI"]


def test_consent_defaults_to_the_victim_only_on_the_victims_own_call(
    cases, operator
) -> None:
    own = cases.call(operator, caller_type="victim")["id"]
    other = cases.call(operator, caller_type="community_member")["id"]
    for case_id, expected in ((own, "victim"), (other, "third_party")):
        cases.screen(operator, case_id, {"facts": ADULT_SEX_TRAFFICKING,
                                         "consent": {"law_enforcement": True}})
        record = cases.show(operator, case_id)["screening"]["consent"]["law_enforcement"]
        assert record["given_by"] == expected


def test_an_unknown_giver_is_refused(cases, operator) -> None:
    case_id = cases.call(operator)["id"]
    answer = cases.screen(operator, case_id, {
        "facts": {}, "consent": {"law_enforcement": True, "given_by": "neighbour"}},
        status=422)
    assert "given_by" in str(answer)
