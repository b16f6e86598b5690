"""SMS intake: the conversation, STOP/START/HELP and Twilio's retries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from werkzeug.datastructures import MultiDict

from intake.models import OptOut, Signal, SmsConversation, TipMessage
from intake.sms import is_opted_out
from workflows.models import Case
from workflows.outbox import OutboxMessage

from .twilio_caller import HOTLINE, PUBLIC_BASE, new_sid, parse_twiml, post_signed

SMS_URL = PUBLIC_BASE + "/twilio/sms"


@dataclass
class Texter:
    """Someone texting the hotline; ``send`` returns the reply text, or None for none."""

    client: object
    number: str = "+12025550177"
    sids: list[str] = field(default_factory=list)

    def send(self, body: str, message_sid: str | None = None) -> str | None:
        sid = message_sid or new_sid("SM")
        self.sids.append(sid)
        params = MultiDict(
            {
                "MessageSid": sid,
                "SmsSid": sid,
                "AccountSid": "AC" + "0" * 32,
                "MessagingServiceSid": "MG" + "0" * 32,
                "From": self.number,
                "To": HOTLINE,
                "Body": body,
                "NumMedia": "0",
                "NumSegments": "1",
                "FromState": "DC",
            }
        )
        root = parse_twiml(post_signed(self.client, SMS_URL, params))
        messages = [m.text or "" for m in root.iter("Message")]
        assert len(messages) <= 1
        return messages[0] if messages else None


def _count(db_session, model) -> int:
    db_session.expire_all()
    return db_session.scalar(select(func.count()).select_from(model))


def _case(db_session) -> Case:
    db_session.expire_all()
    return db_session.scalars(select(Case)).one()


def _passphrase(reply: str) -> str:
    return reply.split("passphrase is ")[1].split(";")[0]


def test_a_whole_english_conversation(client, db_session) -> None:
    texter = Texter(client)
    welcome = texter.send("Hi, I think my neighbours are being kept in a house")
    case = _case(db_session)
    assert case.state == "received" and case.reference in welcome
    assert "under 18" in welcome and "STOP" in welcome
    assert welcome.endswith("Where is this happening? (city, address or place)")
    assert texter.send("14 Elm Street, Springfield") == (
        "Is anyone involved under 18? Reply YES or NO."
    )
    assert texter.send("yes, a girl maybe 15").startswith("Are you safe right now?")
    assert texter.send("Yes").startswith("May we text you back")
    heard = texter.send("no")
    assert heard.startswith("Optional: how did you hear about us?")
    assert "2 social media" in heard and "SKIP" in heard
    done = texter.send("2")
    assert done == f"Thank you. An advocate will review your report {case.reference}."
    later = texter.send("They moved them last night")
    assert later == f"Received and added to your report {case.reference}."

    case = _case(db_session)
    signal = case.signals[0]
    assert signal.channel == "sms" and signal.location == "14 Elm Street, Springfield"
    assert signal.ivr_path["answers"] == {
        "location": "14 Elm Street, Springfield",
        "minor": True,
        "safe_now": True,
        "callback": False,
        "heard_from": "social_media",
    }
    assert signal.heard_from == "social_media"  # the same column the web form fills
    callback = case.screening["consent"]["callback"]
    assert callback["given"] is False and callback["recorded_by"] == "sms"
    assert callback["recorded_at"] and callback["scope"] == "callback"
    bodies = [m.body for m in case.messages]
    assert bodies[0] == "Hi, I think my neighbours are being kept in a house"
    assert bodies[-1] == "They moved them last night" and len(bodies) == 7
    assert case.priority == "routine" and _count(db_session, OutboxMessage) == 0
    # Stored encrypted: the raw column holds no plaintext.
    raw = db_session.execute(text("SELECT body FROM tip_messages")).scalars().all()
    assert all(value.startswith("enc1:") for value in raw)
    assert not any("Elm Street" in value for value in raw)
    # The passphrase of the first reply opens the follow-up.
    answer = client.get(
        f"/api/v1/tips/{case.reference}", headers={"X-Tip-Passphrase": _passphrase(welcome)}
    )
    assert answer.status_code == 200


def test_a_spanish_texter_is_answered_in_spanish(client, db_session) -> None:
    texter = Texter(client)
    welcome = texter.send("Hola, necesito ayuda")
    assert "contraseña" in welcome and welcome.endswith("(ciudad, dirección o lugar)")
    assert texter.send("Calle 5, Houston") == "¿Hay alguien menor de 18 años? Responda SI o NO."
    assert texter.send("no").startswith("¿Está usted a salvo")
    assert texter.send("sí").startswith("¿Podemos escribirle")
    heard = texter.send("SI")
    assert heard.startswith("Opcional: ¿cómo supo de nosotros?") and "OMITIR" in heard
    assert texter.send("omitir").startswith("Gracias.")  # skipped: nothing stored
    case = _case(db_session)
    assert case.signals[0].language == "es"
    assert case.signals[0].heard_from is None
    assert case.signals[0].ivr_path["answers"]["heard_from"] is None
    assert case.screening["consent"]["callback"]["given"] is True


def test_language_can_be_switched_by_one_word(client) -> None:
    texter = Texter(client)
    texter.send("hello")
    assert texter.send("ESPAÑOL") == "¿Dónde está pasando esto? (ciudad, dirección o lugar)"
    assert texter.send("English") == "Where is this happening? (city, address or place)"


def test_not_safe_now_pages_the_supervisor_at_once(client, db_session) -> None:
    texter = Texter(client)
    texter.send("help")  # HELP alone is the keyword: help text, no conversation yet
    assert _count(db_session, SmsConversation) == 0
    texter.send("please help me")
    texter.send("motel on route 9")
    texter.send("no")
    reply = texter.send("NO")
    assert reply.startswith("If you are in immediate danger, call 911 now.")
    case = _case(db_session)
    assert case.priority == "emergency"
    page = db_session.scalars(select(OutboxMessage)).one()
    assert page.kind == "notify"
    assert page.payload == {
        "kind": "emergency_page",
        "case_id": case.id,
        "referral_id": None,
        "message_id": None,
    }


@pytest.mark.parametrize(
    "word", ["STOP", "stop", "Stop.", "STOPALL", "UNSUBSCRIBE", "cancel", "END", "quit"]
)
def test_stop_records_an_opt_out_and_sends_nothing(client, db_session, word) -> None:
    texter = Texter(client)
    texter.send("hello")
    assert texter.send(word) is None  # the carrier already confirmed; we add nothing
    assert is_opted_out(db_session, texter.number)
    assert db_session.scalars(select(OptOut)).one().phone_hash != texter.number
    # Whatever comes next is kept, and still nothing is sent back, HELP included.
    assert texter.send("they took my phone") is None
    assert texter.send("HELP") is None
    assert [m.body for m in _case(db_session).messages] == ["hello", "they took my phone"]


@pytest.mark.parametrize("word", ["START", "unstop", "YES"])
def test_start_clears_the_opt_out(client, db_session, word) -> None:
    texter = Texter(client)
    assert texter.send("STOP") is None
    assert is_opted_out(db_session, texter.number)
    assert texter.send(word) is None  # the carrier confirms START itself
    db_session.expire_all()
    assert not is_opted_out(db_session, texter.number)
    assert "reference" in (texter.send("hello again") or "")


def test_opt_out_is_per_number(client, db_session) -> None:
    Texter(client, number="+12025550111").send("STOP")
    other = Texter(client, number="+12025550112")
    assert other.send("hi") is not None
    assert is_opted_out(db_session, "+12025550111")
    assert not is_opted_out(db_session, "+12025550112")
    assert is_opted_out(db_session, "+1 (202) 555-0111")  # any spelling of the number


@pytest.mark.parametrize("word", ["HELP", "info"])
def test_help_answers_with_the_hotline_number(client, db_session, word) -> None:
    reply = Texter(client).send(word)
    assert "1-888-373-7888" in reply and "911" in reply
    assert _count(db_session, TipMessage) == 0


def test_the_same_message_sid_twice_makes_one_message_and_one_signal(client, db_session) -> None:
    texter = Texter(client)
    first = texter.send("there are workers sleeping in the warehouse")
    assert first is not None
    assert texter.send("there are workers sleeping in the warehouse", texter.sids[0]) is None
    assert _count(db_session, TipMessage) == 1
    assert _count(db_session, Signal) == 1 and _count(db_session, Case) == 1
    reply = texter.send("Main St")
    assert reply.startswith("Is anyone involved under 18")  # the conversation moved on once
    assert texter.send("Main St", texter.sids[-1]) is None
    assert _count(db_session, TipMessage) == 2


def test_a_second_sender_gets_a_separate_case(client, db_session) -> None:
    Texter(client, number="+12025550121").send("one")
    Texter(client, number="+12025550122").send("two")
    assert _count(db_session, Case) == 2 and _count(db_session, SmsConversation) == 2


def test_missing_message_sid_is_a_clear_400_and_stores_nothing(client, db_session) -> None:
    params = MultiDict({"From": "+12025550177", "Body": "hi"})
    answer = post_signed(client, SMS_URL, params)
    assert answer.status_code == 400 and "MessageSid" in answer.get_json()["error"]
    assert _count(db_session, Case) == 0


def test_a_text_after_a_long_silence_starts_a_new_conversation(client, db_session) -> None:
    texter = Texter(client)
    texter.send("first report")
    conversation = db_session.scalars(select(SmsConversation)).one()
    conversation.updated_at = datetime.now(UTC) - timedelta(hours=25)  # the catalog says 24
    db_session.commit()
    welcome = texter.send("a new thing happened")
    assert "passphrase" in welcome
    assert _count(db_session, Case) == 2 and _count(db_session, SmsConversation) == 2


def test_a_text_within_the_window_continues_the_same_case(client, db_session) -> None:
    texter = Texter(client)
    texter.send("first report")
    conversation = db_session.scalars(select(SmsConversation)).one()
    conversation.updated_at = datetime.now(UTC) - timedelta(hours=23)
    db_session.commit()
    assert texter.send("Elm St").startswith("Is anyone involved under 18")
    assert _count(db_session, Case) == 1


def test_a_photo_without_words_is_kept_and_the_question_asked_again(client, db_session) -> None:
    texter = Texter(client)
    texter.send("look at this")
    assert texter.send("") == "Where is this happening? (city, address or place)"
    assert _count(db_session, TipMessage) == 2


@pytest.mark.parametrize(("answer", "stored"), [
    ("5", "web_search"),
    ("7.", "other"),
    ("3 a billboard on the highway", "poster_billboard"),
    ("tv_radio", "tv_radio"),
    ("SKIP", None),
    ("9", None),
    ("my aunt told me", None),
])
def test_the_heard_from_question_takes_a_number_and_anything_else_skips_it(
    client, db_session, answer, stored
) -> None:
    texter = Texter(client)
    texter.send("There is a house where men sleep in the garage")
    for reply in ("Main street", "no", "yes", "no"):
        texter.send(reply)
    assert texter.send(answer).startswith("Thank you. An advocate will review")
    signal = _case(db_session).signals[0]
    assert signal.heard_from == stored
    assert signal.ivr_path["answers"]["heard_from"] == stored
