"""The web/JSON tip channel and its anonymous follow-up."""

from __future__ import annotations

from sqlalchemy import func, select

from intake.models import Signal
from workflows.models import Case


def test_tip_is_stored_and_answers_reference_and_passphrase(client, db_session) -> None:
    answer = client.post(
        "/api/v1/tips", json={"narrative": "Workers locked in at night", "location": "Elm St"}
    )
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["reference"].startswith("HT-")
    assert len(body["passphrase"].split("-")) == 6
    case = db_session.scalar(select(Case).where(Case.reference == body["reference"]))
    assert case is not None and case.state == "received"
    assert case.signals[0].narrative == "Workers locked in at night"
    assert case.signals[0].channel == "web"


def test_follow_up_reads_replies_with_the_passphrase(client) -> None:
    tip = client.post("/api/v1/tips", json={"narrative": "x"}).get_json()
    headers = {"X-Tip-Passphrase": tip["passphrase"]}
    added = client.post(
        f"/api/v1/tips/{tip['reference']}/messages", json={"body": "more"}, headers=headers
    )
    assert added.status_code == 201
    thread = client.get(f"/api/v1/tips/{tip['reference']}", headers=headers).get_json()
    assert [m["body"] for m in thread["messages"]] == ["more"]


def test_wrong_passphrase_and_unknown_reference_answer_alike(client) -> None:
    tip = client.post("/api/v1/tips", json={"narrative": "x"}).get_json()
    wrong = client.get(f"/api/v1/tips/{tip['reference']}", headers={"X-Tip-Passphrase": "nope"})
    unknown = client.get("/api/v1/tips/HT-2026-999999", headers={"X-Tip-Passphrase": "nope"})
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.get_json() == unknown.get_json()


def test_missing_narrative_is_422_naming_the_field_and_stores_nothing(client, db_session) -> None:
    answer = client.post("/api/v1/tips", json={"location": "x"})
    assert answer.status_code == 422
    assert answer.get_json()["field"] == "narrative"
    assert db_session.scalar(select(func.count()).select_from(Signal)) == 0


def test_call_log_opens_a_case_in_received(client, operator) -> None:
    answer = client.post(
        "/api/v1/calls",
        json={
            "caller_type": "victim",
            "language": "es",
            "location": "Austin",
            "narrative": "n",
            "caller_phone": "(202) 555-0143",
        },
        headers=operator.headers,
    )
    assert answer.status_code == 201, answer.get_json()
    case = answer.get_json()
    assert case["state"] == "received" and isinstance(case["version"], int)
    shown = client.get(f"/api/v1/cases/{case['id']}", headers=operator.headers).get_json()
    assert shown["signals"][0]["from_phone"] == "+12025550143"


def test_how_the_tipster_heard_of_the_hotline_is_kept_as_a_code(client, db_session) -> None:
    from sqlalchemy import select

    from intake.models import Signal

    answer = client.post("/api/v1/tips", json={"narrative": "x", "heard_from": "social_media"})
    assert answer.status_code == 201
    assert db_session.scalar(select(Signal.heard_from)) == "social_media"
    for bad in ("a billboard on I-35 near my cousin's house", "SOCIAL", 7, ""):
        refused = client.post("/api/v1/tips", json={"narrative": "x", "heard_from": bad})
        assert refused.status_code == 422 and refused.get_json()["field"] == "heard_from"
