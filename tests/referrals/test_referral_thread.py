"""The agency loop (issue 13): an agency's question opens a task for the hotline, staff
answer in the referral's thread (case page or API), the agency reads the answer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Text, func, select, type_coerce

from tests.flows import screened_case, sent_referral
from workflows.db import transaction
from workflows.deadlines import aware
from workflows.models import AuditEvent, Case, Referral, User
from workflows.outbox import OutboxMessage
from workflows.threads import ReferralMessage

QUESTION = "Which address was the girl seen at last?"
ANSWER = "The motel on Route 9, room 12, on Tuesday night."


def _agency_url(referral_id: int) -> str:
    return f"/api/v1/agency/referrals/{referral_id}/thread"


def _staff_url(referral: Referral) -> str:
    return f"/api/v1/cases/{referral.case_id}/referrals/{referral.id}/thread"


def _ask(client, fbi, referral_id: int, body: str = QUESTION, **headers: str):  # type: ignore[no-untyped-def]
    return client.post(_agency_url(referral_id), json={"body": body},
                       headers={**fbi.headers, **headers})


def _referral(db_session, referral_id: int) -> Referral:  # type: ignore[no-untyped-def]
    db_session.expire_all()
    return db_session.get(Referral, referral_id)


def _messages(db_session) -> int:  # type: ignore[no-untyped-def]
    return db_session.scalar(select(func.count()).select_from(ReferralMessage))


def _assign(app, case_id: int, username: str) -> None:  # type: ignore[no-untyped-def]
    with app.extensions["runtime"].session() as session, transaction(session):
        case = session.get(Case, case_id)
        case.assignee_id = session.scalar(select(User.id).where(User.username == username))


def test_an_agency_question_opens_a_task_due_by_the_configured_window(
    app, client, make_actor, db_session, catalogs
) -> None:
    referral = sent_referral(app)
    fbi = make_actor("agency", "FBI")

    asked = _ask(client, fbi, referral.id)

    assert asked.status_code == 201, asked.get_json()
    body = asked.get_json()
    assert [(m["side"], m["author"], m["body"]) for m in body["messages"]] == [
        ("agency", fbi.username, QUESTION)
    ]
    stored = _referral(db_session, referral.id)
    case = stored.case
    window = catalogs["routing"].question_deadlines[case.priority]
    assert window == timedelta(hours=24)  # routing.yaml: an urgent case's question
    message = db_session.scalar(select(ReferralMessage))
    assert aware(stored.question_due) == aware(message.created_at) + window
    # Counted like any deadline: the case's next one due is now the question's.
    assert aware(case.deadline) <= aware(stored.question_due)
    # Audited as the request_info event, with who asked; the hotline is notified.
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "agency_request_info"))
    assert event.actor == fbi.username and event.reason == QUESTION
    notify = [m.payload for m in db_session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "notify"))]
    assert {"kind": "agency_question", "case_id": case.id, "referral_id": referral.id,
            "message_id": None} in notify


def test_an_emergency_question_is_due_sooner(app, catalogs) -> None:
    limits = catalogs["routing"].question_deadlines
    assert limits["emergency"] < limits["urgent"] <= limits["routine"]


def test_staff_answer_through_the_api_closes_the_task_and_the_agency_reads_it(
    app, client, make_actor, operator, db_session
) -> None:
    referral = sent_referral(app)
    fbi = make_actor("agency", "FBI")
    assert _ask(client, fbi, referral.id).status_code == 201

    staff_view = client.get(_staff_url(referral), headers=operator.headers)
    answered = client.post(_staff_url(referral), json={"body": ANSWER}, headers=operator.headers)

    assert staff_view.status_code == 200
    assert [m["body"] for m in staff_view.get_json()["messages"]] == [QUESTION]
    assert answered.status_code == 201, answered.get_json()
    assert answered.get_json()["question_due"] is None
    assert answered.get_json()["messages"][-1]["author"] == operator.username
    assert _referral(db_session, referral.id).question_due is None
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "answer_agency"))
    assert event.actor == operator.username and event.reason == ANSWER
    assert db_session.scalar(
        select(OutboxMessage).where(OutboxMessage.kind == "notify_agency")
    ).ref_id == answered.get_json()["messages"][-1]["id"]

    listed = client.get("/api/v1/agency/referrals", headers=fbi.headers).get_json()["items"]
    assert [(r["id"], r["new_answer"], r["question_due"]) for r in listed] == [
        (referral.id, True, None)
    ]
    read = client.get(_agency_url(referral.id), headers=fbi.headers)
    assert read.status_code == 200
    assert [(m["side"], m["author"], m["body"]) for m in read.get_json()["messages"]] == [
        ("agency", fbi.username, QUESTION), ("hotline", None, ANSWER),  # no staff names
    ]

    shown = client.get(f"/api/v1/agency/referrals/{referral.id}", headers=fbi.headers)
    assert shown.get_json()["new_answer"] is False  # read through the thread

    # The agency writes again: a new task opens.
    again = _ask(client, fbi, referral.id, "And who rents the room?")
    assert again.status_code == 201 and again.get_json()["question_due"] is not None


def test_another_agency_and_a_referral_not_yet_queued_are_not_found(
    app, client, make_actor, db_session
) -> None:
    referral = sent_referral(app)
    fbi, ice = make_actor("agency", "FBI"), make_actor("agency", "ICE")
    pending_case = screened_case(app, "not yet submitted")
    from tests.flows import _user
    from workflows.lifecycle import fire_case_event

    with app.extensions["runtime"].session() as session, transaction(session):
        fire_case_event(session, pending_case, "submit_for_approval", _user(session, "operator"),
                        version=None, catalogs=app.extensions["runtime"].catalogs)
    pending = db_session.scalar(select(Referral).where(Referral.case_id == pending_case))
    assert pending.state == "pending" and pending.agency_code == "FBI"

    for who, referral_id in ((ice, referral.id), (fbi, pending.id), (fbi, 999999)):
        assert client.get(_agency_url(referral_id), headers=who.headers).status_code == 404
        assert _ask(client, who, referral_id).status_code == 404
    assert _messages(db_session) == 0


@pytest.mark.parametrize("body", ["", "   \n ", "x" * 5001, None, 7])
def test_an_empty_or_oversize_body_is_refused_and_nothing_is_stored(
    app, client, make_actor, operator, db_session, body
) -> None:
    referral = sent_referral(app)
    fbi = make_actor("agency", "FBI")
    assert _ask(client, fbi, referral.id).status_code == 201

    by_agency = client.post(_agency_url(referral.id), json={"body": body}, headers=fbi.headers)
    by_staff = client.post(_staff_url(referral), json={"body": body}, headers=operator.headers)

    for answer in (by_agency, by_staff):
        assert answer.status_code == 422, answer.get_json()
        assert "body" in str(answer.get_json())
    assert _messages(db_session) == 1


def test_a_replayed_post_with_the_same_idempotency_key_writes_once(
    app, client, make_actor, operator, db_session
) -> None:
    referral = sent_referral(app)
    fbi = make_actor("agency", "FBI")

    first = _ask(client, fbi, referral.id, **{"Idempotency-Key": "q-1"})
    replay = _ask(client, fbi, referral.id, **{"Idempotency-Key": "q-1"})
    staff = [
        client.post(_staff_url(referral), json={"body": ANSWER},
                    headers={**operator.headers, "Idempotency-Key": "a-1"})
        for _ in range(2)
    ]

    assert first.status_code == replay.status_code == 201
    assert first.get_json()["messages"] == replay.get_json()["messages"]
    assert [s.status_code for s in staff] == [201, 201]
    assert _messages(db_session) == 2
    assert db_session.scalar(
        select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action.in_(("agency_request_info", "answer_agency")))
    ) == 2


def test_staff_cannot_answer_what_was_never_asked_and_agencies_cannot_answer(
    app, client, make_actor, operator, db_session
) -> None:
    referral = sent_referral(app)
    fbi = make_actor("agency", "FBI")

    unasked = client.post(_staff_url(referral), json={"body": ANSWER}, headers=operator.headers)
    as_agency = client.post(_staff_url(referral), json={"body": ANSWER}, headers=fbi.headers)

    assert unasked.status_code == 409 and unasked.get_json()["field"] == "body"
    assert as_agency.status_code == 404
    assert _messages(db_session) == 0


def test_messages_are_stored_encrypted(app, client, make_actor, operator, db_session) -> None:
    referral = sent_referral(app)
    fbi = make_actor("agency", "FBI")
    _ask(client, fbi, referral.id)
    client.post(_staff_url(referral), json={"body": ANSWER}, headers=operator.headers)

    raw = list(db_session.scalars(select(type_coerce(ReferralMessage.body, Text))))

    assert len(raw) == 2
    for stored in raw:
        assert stored.startswith("enc1:") and "motel" not in stored and "address" not in stored


def test_the_agency_webhook_receives_the_answer_signed_once(
    app, client, make_actor, operator, agency, delivery_runtime
) -> None:
    from referrals.embedded import run_embedded_once
    from tests.referrals.conftest import agency_env

    referral = sent_referral(app)
    fbi = make_actor("agency", "FBI")
    _ask(client, fbi, referral.id)
    answered = client.post(_staff_url(referral), json={"body": ANSWER}, headers=operator.headers)
    message_id = answered.get_json()["messages"][-1]["id"]

    runtime = delivery_runtime(env=agency_env(agency.url))
    run_embedded_once(runtime, check_deadlines=False)
    run_embedded_once(runtime, check_deadlines=False)  # nothing is sent twice

    key = f"thread-answer-{message_id}"
    assert [r["key"] for r in agency.requests] == [key]
    assert all(r["valid"] for r in agency.requests)  # X-Hotline-Signature checked
    packet = agency.packets[key]
    assert packet["type"] == "thread_answer" and packet["referral_id"] == referral.id
    assert packet["message"]["body"] == ANSWER and "author" not in packet["message"]


def test_the_question_is_sent_to_the_case_assignee(
    app, client, make_actor, operator, db_session, delivery_runtime
) -> None:
    from referrals.embedded import run_embedded_once
    from referrals.models import Notification

    referral = sent_referral(app)
    _assign(app, referral.case_id, operator.username)
    with transaction(db_session):
        person = db_session.scalar(select(User).where(User.username == operator.username))
        person.email = "assignee@hotline.example.org"
    _ask(client, make_actor("agency", "FBI"), referral.id)

    run_embedded_once(delivery_runtime(), check_deadlines=False)

    sent = db_session.scalars(select(Notification).where(Notification.kind == "agency_question"))
    rows = [(n.channel, n.recipient) for n in sent]
    assert rows == [("email", "assignee@hotline.example.org")]
    body = db_session.scalar(
        select(Notification.body).where(Notification.kind == "agency_question")
    )
    assert "FBI asked a question" in body and QUESTION not in body


# --- the pages: the task in the queues, the answer on the case page, the agency's inbox ---


def _late_questions(page: str) -> str:
    import re

    found = re.search(r'id="late-questions">(\d+)<', page)
    assert found, "no late-questions count on the page"
    return found.group(1)


def test_the_task_shows_in_the_supervisor_queue_and_on_the_assignees_start_page(
    app, client, make_actor, logged_in, db_session
) -> None:
    referral = sent_referral(app)
    other = sent_referral(app, "another case")
    supervisor, operator = logged_in("supervisor"), logged_in("operator")
    _assign(app, referral.case_id, operator.actor.username)
    fbi = make_actor("agency", "FBI")
    _ask(client, fbi, referral.id)
    _ask(client, fbi, other.id)  # on nobody's case: the supervisor assigns it
    due = _referral(db_session, referral.id).question_due.strftime("%Y-%m-%d %H:%M")
    reference = _referral(db_session, referral.id).case.reference
    other_reference = _referral(db_session, other.id).case.reference

    queue = supervisor.get("/supervisor/").get_data(as_text=True)
    start = operator.get("/operator/").get_data(as_text=True)

    questions = queue.split('id="questions"')[1].split("<h2>")[0]
    assert reference in questions and due in questions and operator.actor.username in questions
    assert other_reference in questions and "nobody: assign the case" in questions
    assert _late_questions(queue) == "0"
    mine = start.split('id="questions"')[1].split("<h2>")[0]
    assert reference in mine and due in mine and other_reference not in mine

    # Past its deadline it is counted late, on its own and in the case's deadline.
    with transaction(db_session):
        stored = db_session.get(Referral, referral.id)
        stored.question_due = stored.question_due - timedelta(days=2)
        from workflows.deadlines import refresh_case_deadline

        refresh_case_deadline(stored.case)
    queue = supervisor.get("/supervisor/").get_data(as_text=True)
    assert _late_questions(queue) == "1"
    assert f'{reference}</a> <span class="badge">late</span>' in queue


def test_staff_answer_on_the_case_page_and_the_agency_reads_it_in_its_inbox(
    app, client, make_actor, logged_in, db_session
) -> None:
    referral = sent_referral(app)
    operator, agency = logged_in("operator"), logged_in("agency", "FBI")
    asked = agency.submit(f"/agency/referrals/{referral.id}",
                          f"/agency/referrals/{referral.id}/thread", {"body": QUESTION})
    assert asked.status_code == 303
    assert _referral(db_session, referral.id).question_due is not None

    case_url = f"/cases/{referral.case_id}"
    page = operator.get(case_url).get_data(as_text=True)
    section = page.split(f'id="thread-{referral.id}"')[1].split("</section>")[0]
    assert QUESTION in section and "data-draft" in section
    assert f'name="_form_key" value="agency-thread:{referral.id}"' in section  # kept_form_fields

    sent = operator.submit(case_url, f"/referrals/{referral.id}/thread", {"body": ANSWER})

    assert sent.status_code == 303
    assert _referral(db_session, referral.id).question_due is None  # the task is closed
    assert "Nothing waiting." in operator.get("/operator/").get_data(as_text=True)
    inbox = agency.get("/agency/").get_data(as_text=True)
    assert "new answer" in inbox
    shown = agency.get(f"/agency/referrals/{referral.id}").get_data(as_text=True)
    assert ANSWER in shown and "new answer" in shown and operator.actor.username not in shown
    assert "new answer" not in agency.get("/agency/").get_data(as_text=True)  # now read

    # The agency replies from its page: a new task opens.
    again = agency.submit(f"/agency/referrals/{referral.id}",
                          f"/agency/referrals/{referral.id}/thread", {"body": "Thanks; who else?"})
    assert again.status_code == 303
    assert _referral(db_session, referral.id).question_due is not None


def test_page_posts_without_the_csrf_token_are_refused_and_store_nothing(
    app, client, make_actor, logged_in, db_session
) -> None:
    referral = sent_referral(app)
    _ask(client, make_actor("agency", "FBI"), referral.id)
    operator, agency = logged_in("operator"), logged_in("agency", "FBI")

    staff = operator.client.post(f"/referrals/{referral.id}/thread", data={"body": ANSWER})
    asked = agency.client.post(f"/agency/referrals/{referral.id}/thread", data={"body": "x"})

    assert staff.status_code == asked.status_code == 400
    assert _messages(db_session) == 1
    assert _referral(db_session, referral.id).question_due is not None


def test_a_blank_page_answer_is_refused_with_a_message(
    app, client, make_actor, logged_in, db_session
) -> None:
    referral = sent_referral(app)
    _ask(client, make_actor("agency", "FBI"), referral.id)
    operator = logged_in("operator")
    case_url = f"/cases/{referral.case_id}"

    sent = operator.submit(case_url, f"/referrals/{referral.id}/thread", {"body": "  "})

    assert sent.status_code == 303
    assert "Answer not sent" in operator.get(case_url).get_data(as_text=True)
    assert _messages(db_session) == 1


def test_an_unanswered_question_past_due_is_notified_once_as_a_breach(
    app, client, make_actor, db_session
) -> None:
    from referrals.notifications import check_deadlines
    from workflows.db import utcnow

    referral = sent_referral(app)
    _ask(client, make_actor("agency", "FBI"), referral.id)
    due = aware(_referral(db_session, referral.id).question_due)

    assert check_deadlines(db_session, due - timedelta(minutes=1)) == 0
    later = max(due, utcnow()) + timedelta(minutes=1)
    first = check_deadlines(db_session, later)
    again = check_deadlines(db_session, later + timedelta(minutes=5))

    payloads = [m.payload for m in db_session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "notify"))]
    breaches = [p for p in payloads if p["kind"] == "deadline_breach" and p.get("question")]
    assert breaches == [{"kind": "deadline_breach", "case_id": referral.case_id,
                         "referral_id": referral.id, "message_id": None, "question": True}]
    assert first >= 1 and again == 0


def test_an_answer_posted_with_a_stale_token_is_kept_and_given_back(
    app, client, make_actor, logged_in, db_session
) -> None:
    import re

    referral = sent_referral(app)
    _ask(client, make_actor("agency", "FBI"), referral.id)
    operator = logged_in("operator")
    case_url = f"/cases/{referral.case_id}"
    page = operator.get(case_url).get_data(as_text=True)
    section = page.split(f'id="thread-{referral.id}"')[1].split("</section>")[0]
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', section))

    answer = operator.client.post(f"/referrals/{referral.id}/thread",
                                  data={**fields, "csrf_token": "stale", "body": ANSWER})

    assert answer.status_code == 303 and answer.headers["Location"].endswith("?restore=1")
    assert _messages(db_session) == 1  # nothing answered yet
    restored = operator.get(answer.headers["Location"]).get_data(as_text=True)
    textarea = restored.split(f'id="agency-answer-{referral.id}"')[1].split("</textarea>")[0]
    assert ANSWER in textarea


def test_the_staff_case_api_shows_the_open_question_on_its_referral(
    app, client, make_actor, operator
) -> None:
    referral = sent_referral(app)
    _ask(client, make_actor("agency", "FBI"), referral.id)

    case = client.get(f"/api/v1/cases/{referral.case_id}", headers=operator.headers).get_json()
    client.post(_staff_url(referral), json={"body": ANSWER}, headers=operator.headers)
    after = client.get(f"/api/v1/cases/{referral.case_id}", headers=operator.headers).get_json()

    assert case["referrals"][0]["question_due"] is not None
    assert after["referrals"][0]["question_due"] is None
