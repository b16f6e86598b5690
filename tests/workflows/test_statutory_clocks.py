"""The TVPRA clock: the 24-hour HHS notice for a foreign national minor runs from the
first screening that found the facts, never restarts, and stops when the notice is sent.
Each referral has ``send_by`` (ours) and ``answer_by`` (the agency's, agencies.yaml)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from workflows.db import transaction, utcnow
from workflows.deadlines import aware
from workflows.lifecycle import fire_referral_event
from workflows.models import Case, Referral

NO_CONSENT = {"law_enforcement": None, "services": None, "callback": None}
FOREIGN_CHILD_IN_LABOR = {
    "facts": {"victim_age": 15, "foreign_national": True, "trafficking_type": "labor"},
    "consent": NO_CONSENT,
}


def _time_passes(db_session: Any, case_id: int, hours: float) -> None:
    """As if ``hours`` had passed: every stored clock moves back by that much."""
    db_session.expire_all()
    delta = timedelta(hours=hours)
    with transaction(db_session):
        case = db_session.get(Case, case_id)
        case.clocks = {rule: (datetime.fromisoformat(at) - delta).isoformat()
                       for rule, at in (case.clocks or {}).items()}


def _hhs(answer: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in answer["recommended_referrals"] if r["agency"] == "HHS"), None)


def test_re_screening_never_moves_the_hhs_notice_later(
    cases, operator, supervisor, db_session, client, make_actor
) -> None:
    case_id = cases.call(operator)["id"]
    first = cases.screen(operator, case_id, FOREIGN_CHILD_IN_LABOR)
    started = datetime.fromisoformat(db_session.get(Case, case_id).clocks[
        "foreign_national_minor"])
    assert datetime.fromisoformat(_hhs(first)["send_by"]) == started + timedelta(hours=24)

    _time_passes(db_session, case_id, 10)
    again = cases.screen(operator, case_id, {**FOREIGN_CHILD_IN_LABOR, "indicators": [
        "debt_to_employer"]})
    send_by = datetime.fromisoformat(_hhs(again)["send_by"])
    assert send_by == started - timedelta(hours=10) + timedelta(hours=24)
    assert send_by <= utcnow() + timedelta(hours=14, seconds=1)

    cases.event(operator, case_id, "submit_for_approval")
    approved = cases.event(supervisor, case_id, "approve")
    hhs = next(r for r in approved["referrals"] if r["agency"] == "HHS")
    assert datetime.fromisoformat(hhs["send_by"]) == send_by
    # HHS answers urgent cases within 1440 minutes (config/agencies.yaml), from sending.
    assert datetime.fromisoformat(hhs["answer_by"]) == send_by + timedelta(minutes=1440)
    assert datetime.fromisoformat(hhs["deadline"]) == send_by

    with transaction(db_session):
        fire_referral_event(db_session, hhs["id"], "mark_sent", None,
                            catalogs=client.application.extensions["runtime"].catalogs)
    db_session.expire_all()
    sent = db_session.get(Referral, hhs["id"])
    # The statutory clock stopped at sending; the agency's answer is what is due now.
    assert aware(sent.send_by) == send_by
    assert aware(sent.answer_by) == aware(sent.sent_at) + timedelta(minutes=1440)
    assert aware(sent.deadline) == aware(sent.answer_by)

    agency = make_actor("agency", "HHS")
    shown = client.get(f"/api/v1/agency/referrals/{hhs['id']}", headers=agency.headers)
    assert shown.status_code == 200, shown.get_json()
    body = shown.get_json()
    assert datetime.fromisoformat(body["send_by"]) == send_by
    assert datetime.fromisoformat(body["answer_by"]) == aware(sent.answer_by)


def test_a_foreign_child_with_no_sign_of_trafficking_is_referred_to_nobody(
    cases, operator
) -> None:
    case_id = cases.call(operator)["id"]
    answer = cases.screen(operator, case_id, {
        "facts": {"victim_age": 12, "foreign_national": True}, "consent": NO_CONSENT})
    assert answer["recommended_referrals"] == []
    assert "foreign_national_minor" not in answer["triggers"]
    with_sign = cases.screen(operator, case_id, {
        "facts": {"victim_age": 12, "foreign_national": True}, "consent": NO_CONSENT,
        "indicators": ["debt_to_employer"]})
    assert {r["agency"] for r in with_sign["recommended_referrals"]} == {"HHS", "ICE"}


screenings = st.lists(
    st.tuples(
        st.floats(0, 30),  # hours passing before this screening
        st.booleans(),  # foreign national
        st.sampled_from([None, "labor", "sex", "unknown"]),
        st.integers(5, 17),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(screenings)
def test_the_hhs_send_by_is_never_later_than_24_hours_after_the_first_signal(
    cases, operator, db_session, steps
) -> None:
    case_id = cases.call(operator)["id"]
    first: datetime | None = None
    for hours, foreign, ttype, age in steps:
        _time_passes(db_session, case_id, hours)
        if first is not None:
            first -= timedelta(hours=hours)
        before = utcnow()
        answer = cases.screen(operator, case_id, {
            "facts": {"victim_age": age, "foreign_national": foreign, "trafficking_type": ttype},
            "consent": NO_CONSENT})
        hhs = _hhs(answer)
        if hhs is None:
            continue
        first = first or before
        assert datetime.fromisoformat(hhs["send_by"]) <= first + timedelta(hours=24, seconds=2)
        db_session.expire_all()
        deadline = aware(db_session.scalar(select(Case.deadline).where(Case.id == case_id)))
        assert deadline <= first + timedelta(hours=24, seconds=2)
