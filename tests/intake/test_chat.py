"""Live chat through the API (issue 18): open, wait in line, an operator takes it, both
write, a reconnect sees nothing twice, ending makes a case with the transcript, and the
token is a secret bound to its chat."""

from __future__ import annotations

from sqlalchemy import func, select, text

from intake.chat import Chat, ChatMessage
from intake.models import Signal
from workflows.models import Case


def _open(client, language: str = "en") -> tuple[int, dict[str, str]]:
    answer = client.post("/api/v1/chats", json={"language": language})
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    return body["id"], {"X-Chat-Token": body["token"]}


def _say(client, chat_id: int, headers: dict[str, str], words: str):
    return client.post(f"/api/v1/chats/{chat_id}/messages", json={"body": words}, headers=headers)


def test_a_chat_from_line_to_case(client, operator, db_session) -> None:
    first, first_token = _open(client)
    chat_id, token = _open(client, "es")
    assert _say(client, chat_id, token, "Hola, mi jefe tiene mi pasaporte").status_code == 201
    state = client.get(f"/api/v1/chats/{chat_id}/messages", headers=token).get_json()
    assert state["state"] == "waiting" and state["place_in_line"] == 2

    line = client.get("/api/v1/chats?state=waiting", headers=operator.headers).get_json()
    assert [c["id"] for c in line["chats"]] == [first, chat_id]  # oldest first
    taken = client.post(f"/api/v1/chats/{chat_id}/take", headers=operator.headers)
    assert taken.status_code == 200 and taken.get_json()["state"] == "active"
    again = client.post(f"/api/v1/chats/{chat_id}/take", headers=operator.headers)
    assert again.status_code == 409  # two operators cannot both take it

    assert _say(client, chat_id, operator.headers, "¿Está a salvo ahora?").status_code == 201
    assert _say(client, chat_id, token, "Sí, estoy en el trabajo").status_code == 201
    seen = client.get(f"/api/v1/chats/{chat_id}/messages?after=0", headers=token).get_json()
    numbers = [m["seq"] for m in seen["messages"]]
    assert numbers == sorted(numbers) and len(numbers) == 4  # joined line included
    last = numbers[-2]
    # A reconnect asks for what came after the last number it saw: nothing twice.
    rest = client.get(f"/api/v1/chats/{chat_id}/messages?after={last}", headers=token).get_json()
    assert [m["body"] for m in rest["messages"]] == ["Sí, estoy en el trabajo"]

    ended = client.post(f"/api/v1/chats/{chat_id}/end", json={}, headers=token)
    assert ended.status_code == 200
    reference, passphrase = ended.get_json()["reference"], ended.get_json()["passphrase"]
    assert reference and passphrase
    twice = client.post(f"/api/v1/chats/{chat_id}/end", json={}, headers=token).get_json()
    assert twice == {"reference": reference, "passphrase": None}  # no second secret
    assert _say(client, chat_id, token, "one more").status_code == 409

    # The passphrase opens the follow-up exactly as a web tip's does.
    follow = client.get(f"/api/v1/tips/{reference}", headers={"X-Tip-Passphrase": passphrase})
    assert follow.status_code == 200
    db_session.expire_all()
    case = db_session.scalar(select(Case).where(Case.reference == reference))
    [signal] = case.signals
    assert signal.channel == "chat" and signal.language == "es"
    assert "Tipster: Hola, mi jefe tiene mi pasaporte" in signal.narrative
    assert "Advocate: ¿Está a salvo ahora?" in signal.narrative
    raw = db_session.execute(text("SELECT body FROM chat_messages")).scalars().all()
    assert raw and not any("pasaporte" in value for value in raw)  # encrypted at rest
    assert client.get(f"/api/v1/chats/{first}/messages", headers=first_token).status_code == 200


def test_a_returning_tipster_adds_the_chat_to_their_case(client, db_session) -> None:
    tip = client.post("/api/v1/tips", json={"narrative": "Workers locked in at night"}).get_json()
    chat_id, token = _open(client)
    _say(client, chat_id, token, "I wrote before: now there are children too")
    wrong = client.post(
        f"/api/v1/chats/{chat_id}/end",
        json={"reference": tip["reference"], "passphrase": "wrong-words-000"},
        headers=token,
    )
    assert wrong.status_code == 404
    ended = client.post(
        f"/api/v1/chats/{chat_id}/end",
        json={"reference": tip["reference"], "passphrase": tip["passphrase"]},
        headers=token,
    ).get_json()
    assert ended == {"reference": tip["reference"], "passphrase": None}
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).select_from(Case)) == 1
    channels = sorted(s.channel for s in db_session.scalars(select(Signal)))
    assert channels == ["chat", "web"]


def test_the_token_is_bound_to_its_chat(client, operator, make_actor) -> None:
    mine, my_token = _open(client)
    other, other_token = _open(client)
    _say(client, mine, my_token, "private words")
    assert client.get(f"/api/v1/chats/{mine}/messages", headers=other_token).status_code == 404
    assert client.get(f"/api/v1/chats/{mine}/messages").status_code == 404
    assert _say(client, mine, {"X-Chat-Token": "x" * 5000}, "hi").status_code in (404, 422)
    assert client.post(f"/api/v1/chats/{mine}/end", json={}, headers=other_token).status_code == 404
    agency = make_actor("agency", "FBI")
    assert client.get(f"/api/v1/chats/{mine}/messages", headers=agency.headers).status_code == 404
    assert client.get("/api/v1/chats", headers=agency.headers).status_code == 403
    bad = {"Authorization": "Bearer nonsense"}
    assert client.get(f"/api/v1/chats/{mine}/messages", headers=bad).status_code == 401
    assert client.get(f"/api/v1/chats/{other}/messages", headers=other_token).status_code == 200


def test_bad_input_changes_nothing(client, db_session) -> None:
    assert client.post("/api/v1/chats", json={"language": "fr"}).status_code == 422
    assert client.post("/api/v1/chats", json={"language": "en", "x": 1}).status_code == 422
    chat_id, token = _open(client)
    assert _say(client, chat_id, token, "a" * 2001).status_code == 422
    assert _say(client, chat_id, token, "bad \x00 byte").status_code == 422
    assert _say(client, chat_id, token, "").status_code == 422
    assert (
        client.get(f"/api/v1/chats/{chat_id}/messages?after=-1", headers=token).status_code == 422
    )
    assert client.post("/api/v1/chats/99999/take").status_code == 401
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).select_from(ChatMessage)) == 0
    assert db_session.scalar(select(func.count()).select_from(Chat)) == 1


def test_an_operator_can_end_and_block_an_abusive_chat_keeping_its_transcript(
    app, client, logged_in, db_session
) -> None:
    chat_id, token = _open(client)
    _say(client, chat_id, token, "abusive words here")
    desk = logged_in("operator")
    assert desk.submit("/operator/chats/", f"/operator/chats/{chat_id}/take", {}).status_code == 303
    page = desk.get(f"/operator/chats/{chat_id}").get_data(as_text=True)
    assert "abusive words here" in page
    blocked = desk.submit(
        f"/operator/chats/{chat_id}", f"/operator/chats/{chat_id}/end", {"block": "1"}
    )
    assert blocked.status_code == 303 and "/cases/" in blocked.headers["Location"]
    assert _say(client, chat_id, token, "more abuse").status_code == 409
    db_session.expire_all()
    chat = db_session.get(Chat, chat_id)
    assert chat.state == "blocked"
    assert "abusive words here" in db_session.get(Case, chat.case_id).signals[0].narrative


def test_a_waiting_tipster_is_offered_another_way_after_the_wait_limit(
    make_app, client, db_session
) -> None:
    from datetime import timedelta

    from workflows.db import transaction, utcnow

    chat_id, token = _open(client)
    state = client.get(f"/api/v1/chats/{chat_id}/messages", headers=token).get_json()
    assert state["offer_message"] is None
    with transaction(db_session):
        db_session.get(Chat, chat_id).created_at = utcnow() - timedelta(minutes=10)
    state = client.get(f"/api/v1/chats/{chat_id}/messages", headers=token).get_json()
    assert "call" in state["offer_message"] and state["waited_seconds"] >= 600


def test_operators_see_the_waiting_count_on_their_start_page(client, logged_in) -> None:
    _open(client)
    _open(client)
    page = logged_in("operator").get("/operator/").get_data(as_text=True)
    assert "<title>(2) Calls" in page and 'id="chats-waiting">2<' in page
