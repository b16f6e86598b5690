"""WhatsApp through Twilio (issue 18): the same signed messaging webhook, the same
conversation as SMS, replies to the ``whatsapp:`` address, STOP/START, and the same
keyed hash of the number, so a texter who moves from SMS to WhatsApp finds their case."""

from __future__ import annotations

from sqlalchemy import func, select, text

from intake.models import OptOut, Signal
from intake.sms import is_opted_out, phone_key
from workflows.models import Case

from .test_sms import Texter, _case

NUMBER = "+12025550199"
WHATSAPP = "whatsapp:" + NUMBER


def test_a_whatsapp_conversation_runs_like_an_sms_one(client, db_session) -> None:
    texter = Texter(client, number=WHATSAPP)
    welcome = texter.send("Hi, my cousin works at a farm and they took her passport")
    case = _case(db_session)
    assert case.reference in welcome and "passphrase" in welcome
    assert welcome.endswith("Where is this happening? (city, address or place)")
    assert texter.send("Route 9 farm, Salinas") == "Is anyone involved under 18? Reply YES or NO."
    assert texter.send("no").startswith("Are you safe right now?")
    assert texter.send("yes").startswith("May we text you back")
    assert texter.send("yes").startswith("Optional: how did you hear")
    assert texter.send("4").startswith("Thank you.")
    case = _case(db_session)
    signal = case.signals[0]
    assert signal.channel == "whatsapp"
    assert signal.from_phone == WHATSAPP  # later replies go back to WhatsApp
    assert signal.location == "Route 9 farm, Salinas" and signal.heard_from == "tv_radio"
    raw = db_session.execute(text("SELECT from_phone FROM signals")).scalars().all()
    assert not any(NUMBER in value for value in raw)  # encrypted like every number


def test_a_texter_who_moves_from_sms_to_whatsapp_finds_their_case(client, db_session) -> None:
    Texter(client, number=NUMBER).send("There are kids selling candy at night for a man")
    moved = Texter(client, number=WHATSAPP)
    answer = moved.send("It is the Shell station on 5th")
    assert answer == "Is anyone involved under 18? Reply YES or NO."  # the next question
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).select_from(Case)) == 1
    assert db_session.scalar(select(func.count()).select_from(Signal)) == 1
    assert phone_key(WHATSAPP) == phone_key(NUMBER) == NUMBER


def test_stop_on_whatsapp_stops_texts_to_that_number_everywhere(client, db_session) -> None:
    texter = Texter(client, number=WHATSAPP)
    texter.send("hello")
    assert texter.send("STOP") is None
    db_session.expire_all()
    assert is_opted_out(db_session, NUMBER) and is_opted_out(db_session, WHATSAPP)
    assert texter.send("more news: they moved") is None  # kept, not answered
    assert texter.send("START") is None
    db_session.expire_all()
    assert not is_opted_out(db_session, WHATSAPP)
    assert db_session.scalar(select(func.count()).select_from(OptOut)) == 1
