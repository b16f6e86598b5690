"""CSRF on every form: a post without the session's token is refused and changes nothing;
the bearer-token API and Twilio's signed webhooks are the only exemptions."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.flows import screened_case, sent_referral
from workflows.models import AuditEvent, Case, LoginFailure


def _count(db_session, model) -> int:
    db_session.expire_all()
    return db_session.scalar(select(func.count()).select_from(model))


def test_a_tip_refused_for_its_token_comes_back_with_the_text_kept(pages, db_session) -> None:
    pages.get("/tip")
    answer = pages.client.post("/tip", data={"narrative": "Workers locked in", "lang": "es"})
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    assert 'id="form-error"' in page and "Pulse Enviar otra vez" in page
    assert "Workers locked in" in page and 'name="csrf_token"' in page
    assert _count(db_session, Case) == 0


@pytest.mark.parametrize(
    "url, data",
    [
        ("/follow-up", {"reference": "HT-2026-000001", "passphrase": "x"}),
        ("/follow-up/messages", {"reference": "HT-2026-000001", "passphrase": "x", "body": "b"}),
        ("/login", {"username": "someone", "password": "x"}),
    ],
)
def test_public_forms_refuse_a_post_without_the_token(pages, db_session, url, data) -> None:
    before = (_count(db_session, Case), _count(db_session, AuditEvent))
    pages.get("/tip")  # a session exists; only the token is missing
    answer = pages.client.post(url, data=data)
    assert answer.status_code == 400
    assert "CSRF" in answer.get_data(as_text=True)
    assert (_count(db_session, Case), _count(db_session, AuditEvent)) == before


def test_a_token_from_another_session_is_refused(pages, logged_in, db_session) -> None:
    victim = logged_in("supervisor")
    case_id = screened_case(victim.client.application)
    attacker_page = pages.get("/tip").get_data(as_text=True)
    from tests.page_clients import csrf_token

    token = csrf_token(attacker_page)
    answer = victim.client.post(
        f"/cases/{case_id}/events", data={"event": "escalate", "csrf_token": token, "reason": "x"}
    )
    assert answer.status_code == 400
    db_session.expire_all()
    assert db_session.get(Case, case_id).state == "screening"


def test_staff_forms_refuse_a_post_without_the_token(app, logged_in, db_session) -> None:
    supervisor = logged_in("supervisor")
    referral = sent_referral(app)
    case_id = referral.case_id
    posts = [
        (f"/cases/{case_id}/events", {"event": "close", "resolution_code": "duplicate"}),
        (f"/cases/{case_id}/assign", {"assignee": supervisor.actor.username}),
        (f"/cases/{case_id}/reply", {"body": "hello"}),
        (f"/referrals/{referral.id}/events", {"event": "withdraw", "reason": "x"}),
        ("/operator/calls/new", {"caller_type": "victim", "narrative": "n"}),
        ("/logout", {}),
    ]
    before = (_count(db_session, Case), _count(db_session, AuditEvent))
    for url, data in posts:
        answer = supervisor.client.post(url, data=data)
        assert answer.status_code == 400, url
    assert (_count(db_session, Case), _count(db_session, AuditEvent)) == before
    assert supervisor.get("/supervisor/").status_code == 200  # logout did not happen


def test_agency_answers_refuse_a_post_without_the_token(app, logged_in, db_session) -> None:
    referral = sent_referral(app)
    fbi = logged_in("agency", "FBI")
    answer = fbi.client.post(f"/agency/referrals/{referral.id}/events", data={"event": "accept"})
    assert answer.status_code == 400
    db_session.expire_all()
    assert db_session.get(type(referral), referral.id).state == "sent"


def test_the_json_api_needs_no_csrf_token(client, operator) -> None:
    # Bearer tokens are not sent by browsers on their own: no cross-site forgery.
    assert client.post("/api/v1/tips", json={"narrative": "x"}).status_code == 201
    answer = client.post(
        "/api/v1/calls", json={"caller_type": "victim", "narrative": "n"}, headers=operator.headers
    )
    assert answer.status_code == 201


def test_twilio_webhooks_are_not_held_to_csrf(client) -> None:
    # Unsigned: refused by the signature check (403), not by CSRF (400).
    answer = client.post("/twilio/sms", data={"From": "+12025550143", "Body": "hi"})
    assert answer.status_code == 403


def test_a_session_cookie_does_not_authenticate_the_api(logged_in) -> None:
    supervisor = logged_in("supervisor")
    answer = supervisor.client.post(
        "/api/v1/calls", json={"caller_type": "victim", "narrative": "n"}
    )
    assert answer.status_code == 401


def test_users_table_unchanged_by_refused_login(pages, db_session, person) -> None:
    actor = person("operator")
    pages.get("/login")
    pages.client.post("/login", data={"username": actor.username, "password": "wrong"})
    db_session.expire_all()
    # Refused before the password was even looked at: no failure counted.
    assert db_session.scalars(
        select(LoginFailure).where(LoginFailure.username == actor.username)
    ).all() == []
