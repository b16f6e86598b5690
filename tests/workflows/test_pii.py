"""Personal data at rest: encrypted in the database, readable after a key rotation."""

from __future__ import annotations

import json
import subprocess
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Text, select, type_coerce

from intake.models import Signal
from tests.conftest import backend
from workflows.models import User
from workflows.pii import PiiKeyError, generate_key, keyring, lookup_hash
from workflows.threads import ReferralMessage

CANARY_NAME = "Zebulon Quixotefizz"
CANARY_PHONE = "+12025550187"
CANARY_EMAIL = "zq.canary@example.org"
CANARY_TEXT = "canary-narrative-7f3a kept in the basement"


def _store_canaries(client, operator, db_session) -> None:  # type: ignore[no-untyped-def]
    tip = client.post(
        "/api/v1/tips",
        json={
            "narrative": CANARY_TEXT,
            "location": "canary-location-7f3a",
            "anonymous": False,
            "contact": {"phone": "(202) 555-0187", "email": CANARY_EMAIL},
        },
    )
    assert tip.status_code == 201, tip.get_json()
    call = client.post(
        "/api/v1/calls",
        json={
            "caller_type": "victim",
            "narrative": CANARY_TEXT,
            "caller_name": CANARY_NAME,
            "caller_phone": CANARY_PHONE,
        },
        headers=operator.headers,
    )
    assert call.status_code == 201, call.get_json()
    passphrase = tip.get_json()["passphrase"]
    message = client.post(
        f"/api/v1/tips/{tip.get_json()['reference']}/messages",
        json={"body": f"message from {CANARY_NAME}"},
        headers={"X-Tip-Passphrase": passphrase},
    )
    assert message.status_code == 201
    user = db_session.scalar(select(User).where(User.username == operator.username))
    user.phone = CANARY_PHONE
    user.email = CANARY_EMAIL
    db_session.commit()


def _stored_narratives(db_session) -> list[str]:  # type: ignore[no-untyped-def]
    return list(db_session.scalars(select(type_coerce(Signal.narrative, Text)).order_by(Signal.id)))


@pytest.mark.skipif(backend() != "services", reason="pg_dump needs PostgreSQL (services backend)")
def test_pg_dump_of_a_database_with_a_tip_holds_no_canary(
    client, operator, db_session, settings
) -> None:
    _store_canaries(client, operator, db_session)
    url = urlsplit(settings.database_url.replace("postgresql+psycopg", "postgresql"))
    dump = subprocess.run(
        [
            "pg_dump",
            "--no-owner",
            "-h",
            url.hostname or "127.0.0.1",
            "-p",
            str(url.port or 5432),
            "-U",
            url.username or "postgres",
            url.path.lstrip("/"),
        ],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout.decode("utf-8")
    assert "signals" in dump and "enc1:" in dump  # the dump did catch the encrypted rows
    for canary in (
        CANARY_NAME,
        "Quixotefizz",
        CANARY_PHONE,
        "2025550187",
        "555-0187",
        CANARY_EMAIL,
        "canary-narrative-7f3a",
        "canary-location-7f3a",
    ):
        assert canary not in dump, f"{canary!r} is in the database dump"
    # Look-ups by number go through the keyed hash, which is in the dump instead.
    assert lookup_hash(CANARY_PHONE) in dump


def test_stored_values_are_ciphertext(client, operator, db_session) -> None:
    _store_canaries(client, operator, db_session)
    for stored in _stored_narratives(db_session):
        assert stored.startswith("enc1:") and "canary" not in stored
    raw_phone = db_session.scalar(
        select(type_coerce(User.phone, Text)).where(User.username == operator.username)
    )
    assert raw_phone.startswith("enc1:") and "555" not in raw_phone


def test_rotation_re_encrypts_everything_and_old_rows_still_read(
    client, operator, db_session, settings, make_app
) -> None:
    _store_canaries(client, operator, db_session)
    old_key = settings.pii_encryption_keys[0]
    new_key = generate_key()
    before = _stored_narratives(db_session)

    # 1. Prepend the new key and rotate (small batches, to cross batch boundaries).
    rotating = make_app(pii_encryption_keys=(new_key, old_key))
    result = rotating.test_cli_runner().invoke(args=["pii", "rotate", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "rotated 0 of" not in result.output
    db_session.expire_all()
    after = _stored_narratives(db_session)
    assert all(a != b for a, b in zip(after, before, strict=True))
    # Idempotent: a second run finds nothing left under the old key.
    again = rotating.test_cli_runner().invoke(args=["pii", "rotate"])
    assert again.exit_code == 0 and "rotated 0 of" in again.output, again.output

    # 2. Remove the old key (keeping it as the look-up key): old rows still read.
    make_app(pii_encryption_keys=(new_key,), pii_lookup_key=old_key)
    db_session.expire_all()
    signals = db_session.scalars(select(Signal).order_by(Signal.id)).all()
    assert [s.narrative for s in signals] == [CANARY_TEXT, CANARY_TEXT]
    assert signals[1].caller_name == CANARY_NAME
    assert signals[1].from_phone_hash == lookup_hash(CANARY_PHONE)
    user = db_session.scalar(select(User).where(User.username == operator.username))
    assert (user.phone, user.email) == (CANARY_PHONE, CANARY_EMAIL)
    # The API still shows it to staff.
    shown = client.get(f"/api/v1/cases/{signals[1].case_id}", headers=operator.headers)
    assert shown.get_json()["signals"][0]["caller_name"] == CANARY_NAME

    # 3. The old key alone no longer reads anything: the data really moved.
    keyring.configure((old_key,))
    db_session.expire_all()
    with pytest.raises(PiiKeyError):
        db_session.scalars(select(Signal)).all()


def test_rotation_encrypts_leftover_plaintext(db_session, runner, make_actor) -> None:
    actor = make_actor("operator")
    # As if User.phone had been a plain column before this release.
    db_session.execute(
        User.__table__.update()
        .where(User.__table__.c.username == actor.username)
        .values(phone=type_coerce("+12025550100", Text))
    )
    db_session.commit()
    result = runner.invoke(args=["pii", "rotate"])
    assert result.exit_code == 0, result.output
    db_session.expire_all()
    user = db_session.scalar(select(User).where(User.username == actor.username))
    assert user.phone == "+12025550100"


def test_new_key_prints_a_usable_key(runner) -> None:
    result = runner.invoke(args=["pii", "new-key"])
    key = result.output.strip()
    keyring_copy = type(keyring)()
    keyring_copy.configure((key,))
    assert keyring_copy.decrypt(keyring_copy.encrypt("x")) == "x"


# --- every channel's free text, JSON columns included (issue 11, item 3) -------------
SMS_CANARY = "canary-sms-location-5d1c"
DECLINE_CANARY = "canary-decline-5d1c"
OUTCOME_CANARY = "canary-outcome-notes-5d1c"
QUESTION_CANARY = "canary-agency-question-5d1c"
ANSWER_CANARY = "canary-hotline-answer-5d1c"


def _store_channel_canaries(app, client, make_actor) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """An SMS conversation and an agency's answers, each carrying a canary."""
    from werkzeug.datastructures import MultiDict

    from tests.flows import sent_referral
    from tests.intake.twilio_caller import HOTLINE, PUBLIC_BASE, new_sid, post_signed

    for body in ["HELP ME", SMS_CANARY, SMS_CANARY, SMS_CANARY, SMS_CANARY]:
        params = MultiDict({"MessageSid": new_sid("SM"), "AccountSid": "AC" + "0" * 32,
                            "From": "+12025550166", "To": HOTLINE, "Body": body})
        assert post_signed(client, PUBLIC_BASE + "/twilio/sms", params).status_code == 200
    fbi = make_actor("agency", "FBI")
    declined = sent_referral(app)
    url = f"/api/v1/agency/referrals/{declined.id}/events"
    answer = client.post(url, json={"event": "decline", "reason": DECLINE_CANARY},
                         headers=fbi.headers)
    assert answer.status_code == 200, answer.get_json()
    accepted = sent_referral(app)
    url = f"/api/v1/agency/referrals/{accepted.id}/events"
    assert client.post(url, json={"event": "accept"}, headers=fbi.headers).status_code == 200
    answer = client.post(url, json={"event": "record_outcome", "outcome": {
        "kind": "investigation", "status": "charged", "date": "2026-01-05",
        "notes": OUTCOME_CANARY}}, headers=fbi.headers)
    assert answer.status_code == 200, answer.get_json()
    # The referral's thread (issue 13): the agency's question and the hotline's answer.
    thread = f"/api/v1/agency/referrals/{accepted.id}/thread"
    asked = client.post(thread, json={"body": QUESTION_CANARY}, headers=fbi.headers)
    assert asked.status_code == 201, asked.get_json()
    staff = f"/api/v1/cases/{accepted.case_id}/referrals/{accepted.id}/thread"
    answered = client.post(staff, json={"body": ANSWER_CANARY},
                           headers=make_actor("operator").headers)
    assert answered.status_code == 201, answered.get_json()
    return declined.case_id, accepted.case_id


def _raw(db_session, column, where) -> list[str]:  # type: ignore[no-untyped-def]
    return [v for v in db_session.scalars(select(type_coerce(column, Text)).where(where)) if v]


def test_sms_answers_and_agency_answers_are_stored_encrypted(
    app, client, make_actor, db_session
) -> None:
    from workflows.models import Referral

    _store_channel_canaries(app, client, make_actor)
    answers = _raw(db_session, Signal.ivr_path, Signal.channel == "sms")
    reasons = _raw(db_session, Referral.decline_reason, Referral.decline_reason.is_not(None))
    outcomes = _raw(db_session, Referral.outcome, Referral.outcome.is_not(None))
    thread = _raw(db_session, ReferralMessage.body, ReferralMessage.id.is_not(None))
    assert answers and reasons and outcomes and len(thread) == 2
    for stored in answers + reasons + outcomes + thread:
        assert stored.startswith("enc1:") and "canary" not in stored
    # And they read back as the people wrote them.
    signal = db_session.scalar(select(Signal).where(Signal.channel == "sms"))
    assert SMS_CANARY in json.dumps(signal.ivr_path)


def test_a_purge_erases_sms_answers_and_agency_words(app, client, make_actor, db_session) -> None:
    from datetime import timedelta

    from workflows.db import transaction, utcnow
    from workflows.models import Case, Referral
    from workflows.retention import purge_case

    declined_case, accepted_case = _store_channel_canaries(app, client, make_actor)
    sms_case = db_session.scalar(select(Signal.case_id).where(Signal.channel == "sms"))
    with transaction(db_session):
        for case_id in (declined_case, accepted_case, sms_case):
            purge_case(db_session, db_session.get(Case, case_id), utcnow() + timedelta(days=1), 1)
    db_session.expire_all()
    assert _raw(db_session, Signal.ivr_path, Signal.case_id == sms_case) == []
    assert _raw(db_session, Referral.decline_reason, Referral.case_id == declined_case) == []
    assert _raw(db_session, ReferralMessage.body, ReferralMessage.case_id == accepted_case) == []
    assert db_session.scalar(select(Referral.question_due).where(
        Referral.case_id == accepted_case, Referral.question_due.is_not(None))) is None
    outcome = db_session.scalar(select(Referral.outcome).where(Referral.case_id == accepted_case,
                                                                Referral.outcome.is_not(None)))
    # codes, dates and amounts: what the relief figures count; never the notes
    assert outcome == {"outcomes": [{"kind": "investigation", "status": "charged",
                                     "date": "2026-01-05"}]}
    assert OUTCOME_CANARY not in json.dumps(outcome)


@pytest.mark.skipif(backend() != "services", reason="pg_dump needs PostgreSQL (services backend)")
def test_pg_dump_holds_no_canary_from_any_channel_nor_a_purged_case(
    app, client, operator, make_actor, db_session, settings
) -> None:
    _store_canaries(client, operator, db_session)
    _store_channel_canaries(app, client, make_actor)
    url = urlsplit(settings.database_url.replace("postgresql+psycopg", "postgresql"))
    dump = subprocess.run(
        ["pg_dump", "--no-owner", "-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432),
         "-U", url.username or "postgres", url.path.lstrip("/")],
        capture_output=True, check=True, timeout=120,
    ).stdout.decode("utf-8")
    assert "referral_packets" in dump and "enc1:" in dump
    for canary in (SMS_CANARY, DECLINE_CANARY, OUTCOME_CANARY, QUESTION_CANARY, ANSWER_CANARY,
                   "canary-narrative-7f3a",
                   "canary-location-7f3a", CANARY_NAME):
        assert canary not in dump, f"{canary!r} is in the database dump"
