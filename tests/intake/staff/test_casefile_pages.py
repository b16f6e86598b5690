"""The case file on the pages: the call form adds victims, subjects and a location; the
case page shows, edits and links them; a returning caller is offered their open case."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from intake.models import Signal
from workflows.models import AuditEvent, Case, Note, Subject

CALL = {
    "caller_type": "community_member",
    "language": "en",
    "narrative": "Girls are driven to the Sunrise Spa every night",
    "v_age_min": "15",
    "v_age_max": "17",
    "v_minor": "yes",
    "v_language": "es",
    "subject1_kind": "phone",
    "subject1_value": "(214) 555-0134",
    "subject2_kind": "handle",
    "subject2_value": "@sunrise_girls",
    "subject2_platform": "instagram",
    "subject3_kind": "person",
    "subject3_value": "",
    "loc_address": "123 North Main Street",
    "loc_city": "Dallas",
    "loc_county": "Dallas",
    "loc_state": "TX",
    "loc_zip": "75201",
    "loc_tribal_land": "no",
}


def _case_id(answer) -> int:  # type: ignore[no-untyped-def]
    assert answer.status_code == 303, answer.get_data(as_text=True)[:3000]
    return int(answer.headers["Location"].rsplit("/", 1)[1].split("#")[0])


def test_the_call_form_fills_the_case_file_in_one_submit(logged_in, db_session) -> None:
    operator = logged_in("operator")
    case_id = _case_id(operator.submit("/operator/calls/new", "/operator/calls/new", CALL))
    case = db_session.get(Case, case_id)
    assert [(v.age_min, v.age_max, v.minor, v.language) for v in case.victims] == [
        (15, 17, True, "es")]
    assert [(s.kind, s.value, s.platform) for s in case.subjects] == [
        ("phone", "(214) 555-0134", None), ("handle", "@sunrise_girls", "instagram")]
    assert [(loc.city, loc.state, loc.tribal_land) for loc in case.locations] == [
        ("Dallas", "TX", False)]
    assert case.incident_state == "TX"
    page = operator.get(f"/cases/{case_id}").get_data(as_text=True)
    for shown in ("Case file", "(214) 555-0134", "@sunrise_girls", "123 North Main Street",
                  "Dallas"):
        assert shown in page


def test_a_bad_subject_on_the_call_form_is_shown_and_nothing_is_stored(
    logged_in, db_session
) -> None:
    operator = logged_in("operator")
    answer = operator.submit("/operator/calls/new", "/operator/calls/new",
                             {**CALL, "subject1_value": "not a phone"})
    assert answer.status_code == 422
    assert "is not a phone number" in answer.get_data(as_text=True)
    assert db_session.scalar(select(func.count()).select_from(Case)) == 0


def test_related_cases_are_links_and_a_supervisor_merges_them(
    logged_in, db_session
) -> None:
    operator = logged_in("operator")
    first = _case_id(operator.submit("/operator/calls/new", "/operator/calls/new", CALL))
    other = {**CALL, "subject1_value": "+12145550134", "subject2_value": "",
             "caller_type": "victim", "loc_address": ""}
    second = _case_id(operator.submit("/operator/calls/new", "/operator/calls/new", other))
    page = operator.get(f"/cases/{second}").get_data(as_text=True)
    reference = db_session.get(Case, first).reference
    assert f'href="/cases/{first}">{reference}</a> — shares phone' in page
    assert 'id="merge"' not in page  # operators do not merge
    supervisor = logged_in("supervisor")
    answer = supervisor.submit(f"/cases/{second}", f"/cases/{second}/merge",
                               {"into": str(first)})
    assert answer.status_code == 303 and answer.headers["Location"].endswith(f"/cases/{first}")
    db_session.expire_all()
    assert db_session.get(Case, second).merged_into_id == first
    assert db_session.scalar(select(func.count()).select_from(Signal).where(
        Signal.case_id == first)) == 2
    merged_page = supervisor.get(f"/cases/{second}")
    assert merged_page.status_code == 200 and reference in merged_page.get_data(as_text=True)


def test_edit_add_and_remove_on_the_case_page_are_audited(logged_in, db_session) -> None:
    operator = logged_in("operator")
    case_id = _case_id(operator.submit("/operator/calls/new", "/operator/calls/new", CALL))
    subject = db_session.scalars(select(Subject).where(Subject.kind == "handle")).one()
    answer = operator.submit(f"/cases/{case_id}", f"/cases/{case_id}/file/subjects/{subject.id}",
                             {"kind": "handle", "value": "@sunrise.girls2",
                              "platform": "tiktok", "description": ""})
    assert answer.status_code == 303
    note = operator.submit(f"/cases/{case_id}", f"/cases/{case_id}/file/notes",
                           {"body": "the caller will ring back at 6", "internal": "yes"})
    assert note.status_code == 303
    db_session.expire_all()
    assert db_session.get(Subject, subject.id).platform == "tiktok"
    added = db_session.scalars(select(Note)).one()
    page = operator.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "the caller will ring back at 6" in page and "@sunrise.girls2" in page
    # Operators may not remove; a supervisor may, and it is logged.
    removal = f"/cases/{case_id}/file/notes/{added.id}/delete"
    assert operator.submit(f"/cases/{case_id}", removal, {}).status_code == 403
    supervisor = logged_in("supervisor")
    assert supervisor.submit(f"/cases/{case_id}", removal, {}).status_code == 303
    actions = db_session.scalars(select(AuditEvent.action).where(
        AuditEvent.action.like("casefile_%")).order_by(AuditEvent.id)).all()
    assert actions[-3:] == ["casefile_edit", "casefile_add", "casefile_delete"]


def test_a_refused_edit_is_a_message_and_changes_nothing(logged_in, db_session) -> None:
    operator = logged_in("operator")
    case_id = _case_id(operator.submit("/operator/calls/new", "/operator/calls/new", CALL))
    subject = db_session.scalars(select(Subject).where(Subject.kind == "phone")).one()
    answer = operator.submit(f"/cases/{case_id}", f"/cases/{case_id}/file/subjects/{subject.id}",
                             {"kind": "phone", "value": "nonsense"})
    assert answer.status_code == 303
    page = operator.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "not changed" in page
    db_session.expire_all()
    assert db_session.get(Subject, subject.id).value == "(214) 555-0134"
    other = logged_in("operator")
    refused = other.submit(f"/cases/{case_id}", f"/cases/{case_id}/file/subjects/{subject.id}",
                           {"kind": "phone", "value": "+1 469 555 0100"})
    assert refused.status_code == 303
    assert "whoever entered" in other.get(f"/cases/{case_id}").get_data(as_text=True)


def test_a_returning_caller_is_offered_their_open_case(logged_in, db_session) -> None:
    operator = logged_in("operator")
    first_call = {"caller_type": "victim", "language": "en", "narrative": "first call",
                  "caller_phone": "(202) 555-0143"}
    first = _case_id(operator.submit("/operator/calls/new", "/operator/calls/new", first_call))
    again = {**first_call, "narrative": "calling again", "caller_phone": "+1 202 555 0143"}
    offer = operator.submit("/operator/calls/new", "/operator/calls/new", again)
    assert offer.status_code == 200
    page = offer.get_data(as_text=True)
    reference = db_session.get(Case, first).reference
    assert 'id="open-cases-offer"' in page and reference in page
    assert db_session.scalar(select(func.count()).select_from(Case)) == 1
    chosen = operator.submit("/operator/calls/new", "/operator/calls/new",
                             {**again, "case_reference": reference})
    assert _case_id(chosen) == first
    assert db_session.scalar(select(func.count()).select_from(Signal).where(
        Signal.case_id == first)) == 2
    fresh = operator.submit("/operator/calls/new", "/operator/calls/new",
                            {**again, "new_case": "on"})
    assert _case_id(fresh) != first


def test_an_unknown_reference_on_the_call_form_is_a_clear_error(logged_in, db_session) -> None:
    operator = logged_in("operator")
    answer = operator.submit("/operator/calls/new", "/operator/calls/new",
                             {**CALL, "case_reference": "HT-0000-NOPE"})
    assert answer.status_code == 422
    assert re.search(r"no case has this reference", answer.get_data(as_text=True))
    assert db_session.scalar(select(func.count()).select_from(Case)) == 0
