"""8 U.S.C. 1367: a structured flag set by staff, suggested (never decided) by a word
search in English and Spanish, never sent to an agency nor shown to one."""

from __future__ import annotations

from sqlalchemy import select

from workflows.db import transaction
from workflows.immigration import suggest_protected
from workflows.lifecycle import fire_referral_event
from workflows.models import AuditEvent

NO_CONSENT = {"law_enforcement": None, "services": None, "callback": None}


def test_the_suggestion_finds_english_and_spanish_forms() -> None:
    assert suggest_protected(["She applied for a T visa last year."]) == ["T VISA"]
    assert suggest_protected(["Tiene la visa U y su hermano la visa T."]) == [
        "VISA U", "VISA T"]
    assert suggest_protected(["status T-1, form I-914"]) == ["T-1", "I-914"]
    assert suggest_protected(["pidió presencia continuada", "a VAWA self-petition"]) == [
        "PRESENCIA CONTINUADA", "VAWA", "SELF-PETITION"]
    assert suggest_protected(["The visa office", "a tuna visit", None, ""]) == []


def test_the_suggestion_is_linear_on_hostile_text() -> None:
    hostile = "visa " * 20000 + "t"  # 100,000 characters, one sentence, no punctuation
    assert suggest_protected([hostile]) == ["VISA T"]


def test_staff_set_the_flag_it_is_audited_and_never_reaches_an_agency(
    app, client, cases, operator, supervisor, make_actor, db_session
) -> None:
    case_id = cases.call(operator, narrative="Ella espera su visa T. He keeps her papers.")[
        "id"]
    shown = cases.show(operator, case_id)
    assert shown["immigration_relief"]["protected"] is False  # a suggestion decides nothing
    assert shown["immigration_relief"]["suggested"] == ["VISA T"]

    version = shown["version"]
    stale = client.put(f"/api/v1/cases/{case_id}/immigration-relief", headers=operator.headers,
                       json={"protected": True, "version": version + 5})
    assert stale.status_code == 409
    agency_user = make_actor("agency", "FBI")
    hidden = client.put(f"/api/v1/cases/{case_id}/immigration-relief",
                        headers=agency_user.headers, json={"protected": True, "version": 1})
    assert hidden.status_code == 404
    bad = client.put(f"/api/v1/cases/{case_id}/immigration-relief", headers=operator.headers,
                     json={"protected": "yes", "version": version})
    assert bad.status_code == 422
    answer = client.put(f"/api/v1/cases/{case_id}/immigration-relief",
                        headers=operator.headers, json={"protected": True, "version": version})
    assert answer.status_code == 200, answer.get_json()
    relief = answer.get_json()["immigration_relief"]
    assert relief["protected"] is True and relief["set_by"] == operator.username
    audited = db_session.scalars(select(AuditEvent.action).where(
        AuditEvent.case_id == case_id, AuditEvent.action == "protect_immigration")).all()
    assert audited == ["protect_immigration"]

    cases.screen(operator, case_id, {"facts": {"victim_age": 16, "commercial_sex": True},
                                     "consent": NO_CONSENT})
    cases.event(operator, case_id, "submit_for_approval")
    [fbi] = cases.event(supervisor, case_id, "approve")["referrals"]
    with transaction(db_session):
        fire_referral_event(db_session, fbi["id"], "mark_sent", None,
                            catalogs=app.extensions["runtime"].catalogs)
    seen: list[str] = []
    api = client.get(f"/api/v1/agency/referrals/{fbi['id']}", headers=agency_user.headers)
    assert api.status_code == 200
    seen.append(api.get_data(as_text=True))
    seen.append(client.get("/api/v1/agency/referrals", headers=agency_user.headers)
                .get_data(as_text=True))
    for text in seen:
        lowered = text.lower()
        assert "immigration_relief" not in lowered and "protected_immigration" not in lowered
        assert "visa t" not in lowered and "set_by" not in lowered
