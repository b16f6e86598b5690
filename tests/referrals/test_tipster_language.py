"""A Spanish-speaking tipster gets a Spanish passphrase (BIP-39's Spanish list, the same
entropy) and every reply in Spanish, the SMS footer included (issue 10)."""

from __future__ import annotations

import math
import unicodedata

from mnemonic import Mnemonic
from sqlalchemy import select

from intake.passphrase import new_passphrase, normalise
from referrals.embedded import run_embedded_once
from tests.intake.test_sms import Texter
from tests.referrals.conftest import ONCALL_PHONE
from workflows.models import Case

SPANISH = {unicodedata.normalize("NFC", w) for w in Mnemonic("spanish").wordlist}
ENGLISH = set(Mnemonic("english").wordlist)
PHONE = "+12025550166"


def _words(passphrase: str) -> list[str]:
    *words, digits = passphrase.split("-")
    assert len(digits) == 3 and digits.isdigit()
    return words


def test_a_spanish_passphrase_keeps_the_entropy_of_an_english_one() -> None:
    for language, wordlist in (("en", ENGLISH), ("es", SPANISH)):
        words = _words(new_passphrase(language=language))
        assert len(words) == 5 and set(words) <= wordlist
        bits = 5 * math.log2(len(wordlist)) + math.log2(1000)
        assert bits > 64  # 5 words of 2,048 and three digits: ~64.97 bits either way


def test_a_spanish_web_tip_gets_spanish_words_that_work_typed_without_accents(
    client,
) -> None:
    answer = client.post("/api/v1/tips", json={"narrative": "Trabajan sin paga en el rancho.",
                                               "language": "es"})
    assert answer.status_code == 201, answer.get_json()
    reference, passphrase = answer.get_json()["reference"], answer.get_json()["passphrase"]
    assert set(_words(passphrase)) <= SPANISH
    plain = normalise(passphrase)
    typed = plain.replace("-", " ").upper()  # no accents, spaces, capitals
    shown = client.get(f"/api/v1/tips/{reference}", headers={"X-Tip-Passphrase": typed})
    assert shown.status_code == 200, shown.get_json()
    # As given, accents and all, it travels in the header too (Latin-1, composed letters):
    # before, the decomposed tilde could not be sent at all (Schemathesis found it).
    assert all(word.encode("latin-1") for word in SPANISH)  # every word, not just these
    as_given = passphrase.encode("latin-1").decode("latin-1")
    assert client.get(f"/api/v1/tips/{reference}",
                      headers={"X-Tip-Passphrase": as_given}).status_code == 200
    english = client.post("/api/v1/tips", json={"narrative": "They work unpaid."}).get_json()
    assert set(_words(english["passphrase"])) <= ENGLISH


def test_a_spanish_texter_gets_a_spanish_passphrase(client) -> None:
    welcome = Texter(client, number="+12025550167").send("Hola, necesito ayuda")
    assert welcome is not None and "contraseña es " in welcome
    passphrase = welcome.split("contraseña es ", 1)[1].split(";", 1)[0]
    assert set(_words(passphrase)) <= SPANISH


def test_a_reply_to_a_spanish_tipster_is_texted_with_a_spanish_footer(
    app, client, operator, twilio_api, delivery_runtime, db_session
) -> None:
    answer = client.post("/api/v1/tips", json={
        "narrative": "Trabajan sin paga.", "language": "es", "anonymous": False,
        "contact": {"phone": PHONE}})
    assert answer.status_code == 201
    case_id = db_session.scalar(select(Case.id).where(
        Case.reference == answer.get_json()["reference"]))
    screened = client.put(f"/api/v1/cases/{case_id}/screening", headers=operator.headers,
                          json={"facts": {}, "consent": {"callback": True}})
    assert screened.status_code == 200, screened.get_json()
    sent = client.post(f"/api/v1/cases/{case_id}/messages", headers=operator.headers,
                       json={"body": "¿Está a salvo para hablar?"})
    assert sent.status_code == 201, sent.get_json()
    run_embedded_once(delivery_runtime(twilio_api_base_url=twilio_api.url,
                                       oncall_supervisor_phone=ONCALL_PHONE))
    [text] = [m["Body"] for m in twilio_api.sent if m["To"] == PHONE]
    assert text.startswith("¿Está a salvo para hablar?")
    assert "Responda STOP para no recibir más mensajes." in text
    assert "Reply STOP" not in text


def test_a_spanish_caller_hears_a_spanish_passphrase(client) -> None:
    from tests.intake.twilio_caller import Call, new_sid, spoken

    call = Call(client)
    call.dial_in()
    call.press("2")  # español
    call.press("3")  # dejar un mensaje
    call.record(new_sid("RE"))
    said = [text for language, text in spoken(call.doc) if language == "es-MX"]
    heard = next(t for t in said if t.startswith("Su contraseña es: "))
    words = heard.removeprefix("Su contraseña es: ").split(", ")[:5]
    assert set(words) <= SPANISH, words
