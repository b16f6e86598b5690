"""Operator, supervisor and agency pages over the lifecycle: log a call with indicators,
submit, approve, answer as the agency; queues, re-routing, retries and refusals."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from tests.flows import screened_case, sent_referral
from workflows.db import transaction, utcnow
from workflows.lifecycle import fire_referral_event
from workflows.models import Case, Referral
from workflows.outbox import OutboxMessage

CALL = {
    "caller_type": "community_member",
    "language": "en",
    "location": "Motel 6, Exit 12",
    "narrative": "A girl of 16 is advertised online; an older man drives her to the motel",
    "victim_age": "16",
    "trafficking_type": "sex",
    "commercial_sex": "yes",
    "indicators": ["under_18_commercial_sex", "advertised_online"],
    "consent_law_enforcement": "",
    "safe_to_call": "no",
    "safe_notes": "Call only after 6 pm",
}


def _case_id(answer) -> int:
    assert answer.status_code == 303, answer.get_data(as_text=True)[:3000]
    return int(answer.headers["Location"].rsplit("/", 1)[1])


def _event(client, case_id: int, event: str, **fields: str):
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    return client.submit(
        f"/cases/{case_id}", f"/cases/{case_id}/events",
        {"event": event, "version": version, **fields},
    )


def test_call_log_to_agency_acceptance(app, logged_in, db_session, catalogs) -> None:
    operator = logged_in("operator")
    case_id = _case_id(operator.submit("/operator/calls/new", "/operator/calls/new", CALL))
    page = operator.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "high indicators" in page and "FBI" in page
    assert "mandatory" in page and "minor in commercial sex" in page.lower()
    assert "Call only after 6 pm" in page

    assert _event(operator, case_id, "submit_for_approval").status_code == 303
    supervisor = logged_in("supervisor")
    queue = supervisor.get("/supervisor/?state=pending_approval").get_data(as_text=True)
    assert f"/cases/{case_id}" in queue
    assert _event(supervisor, case_id, "approve").status_code == 303
    db_session.expire_all()
    case = db_session.get(Case, case_id)
    assert case.state == "referred"
    referral = next(r for r in case.referrals if r.agency_code == "FBI")
    assert referral.state == "queued"
    with transaction(db_session):  # the delivery worker's part
        fire_referral_event(db_session, referral.id, "mark_sent", None, catalogs=catalogs)

    fbi = logged_in("agency", "FBI")
    inbox = fbi.get("/agency/").get_data(as_text=True)
    assert f"/agency/referrals/{referral.id}" in inbox
    shown = fbi.get(f"/agency/referrals/{referral.id}").get_data(as_text=True)
    assert "advertised online" in shown
    for event in ("acknowledge", "accept"):
        answer = fbi.submit(
            f"/agency/referrals/{referral.id}", f"/agency/referrals/{referral.id}/events",
            {"event": event},
        )
        assert answer.status_code == 303
    outcome = fbi.submit(
        f"/agency/referrals/{referral.id}", f"/agency/referrals/{referral.id}/events",
        {"event": "record_outcome", "kind": "restitution", "status": "ordered",
         "date": "2026-03-04", "amount": "5000"},
    )
    assert outcome.status_code == 303
    db_session.expire_all()
    referral = db_session.get(Referral, referral.id)
    assert referral.state == "accepted"
    [recorded] = referral.outcome["outcomes"]
    assert (recorded["kind"], recorded["status"], recorded["amount"]) == (
        "restitution", "ordered", 5000)
    story = supervisor.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "accepted" in story and "record outcome" in story


def test_an_agency_cannot_open_another_agencys_referral(app, logged_in, db_session) -> None:
    referral = sent_referral(app)
    ice = logged_in("agency", "ICE")
    assert ice.get(f"/agency/referrals/{referral.id}").status_code == 404
    assert ice.get("/agency/referrals/999999").status_code == 404
    assert f"/agency/referrals/{referral.id}" not in ice.get("/agency/").get_data(as_text=True)
    # Posting an answer is the same 404, and changes nothing.
    fbi_page = logged_in("agency", "FBI")
    token_page = fbi_page.get(f"/agency/referrals/{referral.id}").get_data(as_text=True)
    assert "A girl of 16" in token_page
    answer = ice.submit("/agency/", f"/agency/referrals/{referral.id}/events", {"event": "accept"})
    assert answer.status_code == 404
    db_session.expire_all()
    assert db_session.get(Referral, referral.id).state == "sent"


def test_a_script_in_a_narrative_is_shown_as_text(app, logged_in) -> None:
    case_id = screened_case(app, narrative='<script>alert("x")</script><b>bold</b>')
    supervisor = logged_in("supervisor")
    page = supervisor.get(f"/cases/{case_id}").get_data(as_text=True)
    assert '<script>alert("x")</script>' not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in page


def test_viewing_a_case_is_written_to_the_audit_log(app, logged_in) -> None:
    case_id = screened_case(app)
    supervisor = logged_in("supervisor")
    supervisor.get(f"/cases/{case_id}")
    page = supervisor.get(f"/cases/{case_id}").get_data(as_text=True)
    assert f"<td>{supervisor.actor.username}</td><td>view pii</td>" in page


def test_the_queue_puts_late_cases_first_and_counts_them(app, logged_in, db_session) -> None:
    fresh = screened_case(app)
    late = screened_case(app)
    db_session.get(Case, late).deadline = utcnow() - timedelta(hours=2)
    db_session.commit()
    page = logged_in("supervisor").get("/supervisor/").get_data(as_text=True)
    assert re.search(r'id="late-cases">1<', page)
    assert page.index(f"/cases/{late}\"") < page.index(f"/cases/{fresh}\"")
    only_late = logged_in("supervisor").get("/supervisor/?overdue=on").get_data(as_text=True)
    assert f"/cases/{late}\"" in only_late and f"/cases/{fresh}\"" not in only_late


def test_a_stale_version_is_refused_with_a_message(app, logged_in, db_session) -> None:
    case_id = screened_case(app)
    operator = logged_in("operator")
    page = operator.get(f"/cases/{case_id}").get_data(as_text=True)
    stale = re.search(r'name="version" value="(\d+)"', page).group(1)
    assert _event(operator, case_id, "submit_for_approval").status_code == 303
    answer = operator.submit(
        f"/cases/{case_id}", f"/cases/{case_id}/events",
        {"event": "request_info", "version": stale, "reason": "who?"},
    )
    assert answer.status_code == 303
    shown = operator.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'class="flash flash-error"' in shown
    db_session.expire_all()
    assert db_session.get(Case, case_id).state == "pending_approval"


def test_operators_cannot_approve(app, logged_in, db_session) -> None:
    case_id = screened_case(app)
    operator = logged_in("operator")
    _event(operator, case_id, "submit_for_approval")
    page = operator.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="event-approve"' not in page
    _event(operator, case_id, "approve")
    db_session.expire_all()
    assert db_session.get(Case, case_id).state == "pending_approval"


def test_a_declined_referral_is_rerouted_by_the_supervisor(app, logged_in, db_session) -> None:
    referral = sent_referral(app)
    fbi = logged_in("agency", "FBI")
    declined = fbi.submit(
        f"/agency/referrals/{referral.id}", f"/agency/referrals/{referral.id}/events",
        {"event": "decline", "reason": "outside our area"},
    )
    assert declined.status_code == 303
    supervisor = logged_in("supervisor")
    page = supervisor.get(f"/cases/{referral.case_id}").get_data(as_text=True)
    assert "outside our area" in page and f'id="reroute-{referral.id}"' in page
    answer = supervisor.submit(
        f"/cases/{referral.case_id}", f"/referrals/{referral.id}/events",
        {"event": "reroute", "agency": "ICE"},
    )
    assert answer.status_code == 303
    # A minor in commercial sex, not foreign: no rule names ICE, so the page says why.
    shown = supervisor.get(f"/cases/{referral.case_id}").get_data(as_text=True)
    assert "no routing rule refers this case to ICE" in shown
    db_session.expire_all()
    agencies = {r.agency_code: r.state for r in db_session.get(Case, referral.case_id).referrals}
    assert agencies == {"FBI": "declined"}


def test_failed_deliveries_are_listed_and_retried(app, logged_in, db_session, catalogs) -> None:
    referral = sent_referral(app)
    row = db_session.get(Referral, referral.id)
    with transaction(db_session):
        row.state = "queued"  # as if the first delivery was still running
    with transaction(db_session):
        fire_referral_event(
            db_session, referral.id, "fail", None, reason="HTTP 500", catalogs=catalogs
        )
    supervisor = logged_in("supervisor")
    page = supervisor.get("/supervisor/failed").get_data(as_text=True)
    assert f'id="retry-{referral.id}"' in page
    assert re.search(r'id="failed-count">1<', supervisor.get("/supervisor/").get_data(as_text=True))
    answer = supervisor.submit(
        "/supervisor/failed", f"/referrals/{referral.id}/events",
        {"event": "retry", "back": "failed"},
    )
    assert answer.status_code == 303 and answer.headers["Location"] == "/supervisor/failed"
    db_session.expire_all()
    assert db_session.get(Referral, referral.id).state == "queued"
    kinds = db_session.scalars(
        select(OutboxMessage.kind).where(OutboxMessage.ref_id == referral.id)
    ).all()
    assert kinds.count("deliver_referral") >= 2


def test_an_emergency_is_escalated_from_the_case_page(app, logged_in, db_session) -> None:
    operator = logged_in("operator")
    call = {**CALL, "imminent_danger": "yes"}
    case_id = _case_id(operator.submit("/operator/calls/new", "/operator/calls/new", call))
    page = operator.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "badge-emergency" in page and 'id="event-escalate"' in page
    answer = _event(operator, case_id, "escalate", reason="he is on his way")
    assert answer.status_code == 303
    db_session.expire_all()
    case = db_session.get(Case, case_id)
    assert case.state == "referred"
    assert all(r.state == "queued" for r in case.referrals)


def test_the_call_form_reports_each_bad_field_and_stores_nothing(logged_in, db_session) -> None:
    operator = logged_in("operator")
    answer = operator.submit(
        "/operator/calls/new", "/operator/calls/new",
        {**CALL, "caller_type": "alien", "caller_phone": "123"},
    )
    assert answer.status_code == 422
    page = answer.get_data(as_text=True)
    assert 'id="caller_type-error"' in page and 'id="caller_phone-error"' in page
    assert "A girl of 16" in page  # what was typed is kept
    assert db_session.scalar(select(Case.id)) is None


def test_an_unknown_indicator_is_refused_and_stores_nothing(logged_in, db_session) -> None:
    operator = logged_in("operator")
    answer = operator.submit(
        "/operator/calls/new", "/operator/calls/new", {**CALL, "indicators": ["made_up"]}
    )
    assert answer.status_code == 422
    assert "made_up" in answer.get_data(as_text=True)
    assert db_session.scalar(select(Case.id)) is None


def test_assigning_a_case_from_its_page(app, logged_in, db_session) -> None:
    case_id = screened_case(app)
    supervisor = logged_in("supervisor")
    operator = logged_in("operator")
    answer = supervisor.submit(
        f"/cases/{case_id}", f"/cases/{case_id}/assign",
        {"assignee": operator.actor.username},
    )
    assert answer.status_code == 303
    assert f"/cases/{case_id}" in operator.get("/operator/").get_data(as_text=True)


def test_screening_again_changes_the_recommendation(app, logged_in, db_session) -> None:
    operator = logged_in("operator")
    adult = {**CALL, "victim_age": "30", "indicators": ["advertised_online"],
             "consent_law_enforcement": "no"}
    case_id = _case_id(operator.submit("/operator/calls/new", "/operator/calls/new", adult))
    form = operator.get(f"/cases/{case_id}/screening").get_data(as_text=True)
    assert 'id="ind-advertised_online" name="indicators" value="advertised_online" checked' in form
    assert '<option value="no" selected>' in form  # the consent recorded before
    answer = operator.submit(
        f"/cases/{case_id}/screening", f"/cases/{case_id}/screening",
        {**adult, "victim_age": "16", "indicators": ["under_18_commercial_sex"]},
    )
    assert answer.status_code == 303
    db_session.expire_all()
    screening = db_session.get(Case, case_id).screening
    assert screening["facts"]["victim_age"] == 16
    assert [r["agency"] for r in screening["recommended_referrals"]] == ["FBI"]


def test_a_case_awaiting_approval_cannot_be_screened_again(app, logged_in) -> None:
    case_id = screened_case(app)
    operator = logged_in("operator")
    _event(operator, case_id, "submit_for_approval")
    assert 'id="screen-again"' not in operator.get(f"/cases/{case_id}").get_data(as_text=True)
    answer = operator.submit(
        f"/cases/{case_id}/screening", f"/cases/{case_id}/screening", {"victim_age": "12"}
    )
    assert answer.status_code == 409
    assert "reject it first" in answer.get_data(as_text=True)


def test_an_emergency_leads_the_supervisor_page_and_is_acknowledged_by_its_button(
    app, client, logged_in, db_session
) -> None:
    from tests.intake.twilio_caller import Call

    routine = screened_case(app)
    with transaction(db_session):
        db_session.get(Case, routine).deadline = utcnow() - timedelta(hours=5)
    call = Call(client)
    call.dial_in()
    call.press("1")
    call.press("1")
    db_session.expire_all()
    emergency = db_session.scalars(select(Case).order_by(Case.id.desc())).first().id

    supervisor = logged_in("supervisor")
    queue = supervisor.get("/supervisor/").get_data(as_text=True)
    assert queue.index(f'/cases/{emergency}"') < queue.index(f'/cases/{routine}"')
    assert re.search(r'id="late-cases">1<', queue)
    operator_page = logged_in("operator").get(f"/cases/{emergency}").get_data(as_text=True)
    assert 'id="event-acknowledge_emergency"' not in operator_page
    page = supervisor.get(f"/cases/{emergency}").get_data(as_text=True)
    assert 'id="event-acknowledge_emergency"' in page and "not yet acknowledged" in page
    assert _event(supervisor, emergency, "acknowledge_emergency").status_code == 303
    db_session.expire_all()
    assert db_session.get(Case, emergency).emergency_acknowledged_by == supervisor.actor.username
    after = supervisor.get(f"/cases/{emergency}").get_data(as_text=True)
    assert "Page acknowledged by" in after and 'id="event-acknowledge_emergency"' not in after


def test_the_case_page_shows_send_by_and_answer_by_and_the_1367_suggestion(
    app, logged_in, db_session
) -> None:
    referral = sent_referral(app, narrative="She has a U visa application. He took her passport.")
    page = logged_in("supervisor").get(f"/cases/{referral.case_id}").get_data(as_text=True)
    assert 'class="send-by"><time' in page and 'class="answer-by"><time' in page
    assert "U VISA" in page and 'id="immigration-relief-toggle"' in page
