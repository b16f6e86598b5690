"""The voice IVR, walked the way Twilio walks it: signed requests, TwiML, action URLs."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from intake.models import Signal
from workflows.models import AuditEvent, Case
from workflows.outbox import OutboxMessage

from .twilio_caller import PUBLIC_BASE, Call, new_sid, parse_twiml, post_signed, spoken


def _signal(db_session, call: Call) -> Signal:
    db_session.expire_all()
    signal = db_session.scalar(select(Signal).where(Signal.call_sid == call.call_sid))
    assert signal is not None
    return signal


def _count(db_session, model) -> int:
    return db_session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def operators_dial(app, settings):
    """The IVR connects callers by <Dial> to two advocates' numbers."""
    original = app.config["HOTLINE_SETTINGS"]
    app.config["HOTLINE_SETTINGS"] = settings.with_overrides(
        operator_numbers=("+12025550100", "+12025550101")
    )
    yield
    app.config["HOTLINE_SETTINGS"] = original


@pytest.fixture
def operators_queue(app, settings):
    """The IVR connects callers by <Enqueue> to the advocates' queue."""
    original = app.config["HOTLINE_SETTINGS"]
    app.config["HOTLINE_SETTINGS"] = settings.with_overrides(operator_queue="advocates")
    yield
    app.config["HOTLINE_SETTINGS"] = original


def test_incoming_call_opens_a_case_before_answering_and_warns_up_front(client, db_session) -> None:
    call = Call(client)
    doc = call.dial_in()
    said = spoken(doc)
    # The greeting, in both languages, says danger and minors may be reported.
    assert "under 18" in said[0][1] and "danger" in said[0][1] and said[0][0] == "en-US"
    assert "menor de 18" in said[1][1] and said[1][0] == "es-MX"
    gather = doc.find("Gather")
    assert gather is not None and gather.get("numDigits") == "1"
    assert gather.get("action", "").startswith(PUBLIC_BASE + "/twilio/voice/language")
    signal = _signal(db_session, call)
    assert signal.channel == "voice" and signal.case.state == "received"
    assert signal.from_phone == "+12025550143"
    assert signal.case.reference.startswith("HT-")


def test_english_caller_reaches_an_advocate_by_dial(client, db_session, operators_dial) -> None:
    call = Call(client)
    call.dial_in()
    menu = call.press("1")
    assert all(lang == "en-US" for lang, _ in spoken(menu))
    doc = call.press("2")
    dial = doc.find("Dial")
    assert dial is not None
    assert [n.text for n in dial.iter("Number")] == ["+12025550100", "+12025550101"]
    goodbye = call.operator_outcome("completed")
    assert goodbye.find("Hangup") is not None and goodbye.find("Record") is None
    assert _signal(db_session, call).ivr_path["steps"][-1] == {
        "step": "operator",
        "outcome": "completed",
    }


@pytest.mark.parametrize("outcome", ["busy", "no-answer", "failed", "canceled"])
def test_unanswered_dial_goes_to_voicemail(client, operators_dial, outcome) -> None:
    call = Call(client)
    call.dial_in()
    call.press("1")
    call.press("2")
    doc = call.operator_outcome(outcome)
    record = doc.find("Record")
    assert record is not None
    assert int(record.get("maxLength", "0")) <= 120
    assert record.get("transcribe") == "true"
    assert record.get("transcribeCallback") and record.get("recordingStatusCallback")


@pytest.mark.parametrize("outcome", ["queue-full", "leave", "error", "system-error", "hangup"])
def test_enqueue_without_an_advocate_goes_to_voicemail(client, operators_queue, outcome) -> None:
    call = Call(client)
    call.dial_in()
    call.press("2")
    doc = call.press("2")
    enqueue = doc.find("Enqueue")
    assert enqueue is not None and enqueue.text == "advocates"
    assert call.operator_outcome(outcome).find("Record") is not None


def test_spanish_caller_hears_spanish_and_ends_with_reference_and_passphrase(
    client, db_session
) -> None:
    call = Call(client)
    call.dial_in()
    menu = call.press("2")
    assert spoken(menu) and all(lang == "es-MX" for lang, _ in spoken(menu))
    assert "oprima" in spoken(menu)[0][1]
    doc = call.press("3")  # leave a message
    assert all(lang == "es-MX" for lang, _ in spoken(doc))
    call.record(new_sid("RE"))
    end = spoken(call.doc)
    assert all(lang == "es-MX" for lang, _ in end)
    signal = _signal(db_session, call)
    assert signal.language == "es"
    reference = signal.case.reference
    spoken_reference = ", ".join(" ".join(part) for part in reference.split("-"))
    assert any(spoken_reference in text for _, text in end)
    assert call.doc.find("Hangup") is not None


def test_the_passphrase_heard_at_the_end_opens_the_follow_up(client, db_session) -> None:
    call = Call(client)
    call.dial_in()
    call.press("1")
    call.press("3")
    call.record(new_sid("RE"))
    text = " ".join(t for _, t in spoken(call.doc))
    heard = text.split("Your passphrase is: ")[1].split(".")[0]
    words = heard.split(", ")
    passphrase = "-".join([*words[:-1], words[-1].replace(" ", "")])
    reference = _signal(db_session, call).case.reference
    answer = client.get(f"/api/v1/tips/{reference}", headers={"X-Tip-Passphrase": passphrase})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["reference"] == reference


def test_caller_who_presses_nothing_hears_the_menu_again_then_voicemail(client, db_session) -> None:
    call = Call(client)
    call.dial_in()
    again = call.stay_silent()
    assert again.find("Gather") is not None  # the language menu, once more
    voicemail = call.stay_silent()
    assert voicemail.find("Record") is not None  # not dropped: offered a message
    said = spoken(voicemail)
    assert {lang for lang, _ in said} == {"en-US", "es-MX"}  # no language chosen: both
    # Silence into the recorder too: Twilio skips the action, the <Redirect> still ends well.
    redirect = voicemail.find("Redirect")
    assert redirect is not None
    end = call._go(redirect.text or "")
    assert any("did not receive" in text for _, text in spoken(end))
    assert _count(db_session, Signal) == 1


def test_silence_at_the_main_menu_repeats_once_then_offers_voicemail(client) -> None:
    call = Call(client)
    call.dial_in()
    call.press("1")
    repeated = call.stay_silent()
    assert "did not get" in spoken(repeated)[0][1]
    assert call.stay_silent().find("Record") is not None


def test_emergency_option_says_911_pages_the_supervisor_and_marks_the_case(
    client, db_session, operators_dial
) -> None:
    call = Call(client)
    call.dial_in()
    call.press("1")
    doc = call.press("1")
    assert "9 1 1" in spoken(doc)[0][1]
    assert doc.find("Dial") is not None  # and the caller may stay on for an advocate
    case = _signal(db_session, call).case
    assert case.priority == "emergency" and case.state == "received"
    pages = db_session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "notify")).all()
    assert [p.payload for p in pages] == [
        {"kind": "emergency_page", "case_id": case.id, "referral_id": None, "message_id": None}
    ]
    # Twilio retries the step (or the caller presses 1 again): nobody is paged twice.
    call.url = call.url.replace("attempt=1", "attempt=0")
    call._go(call.url, Digits="1")
    assert _count(db_session, OutboxMessage) == 1


@pytest.mark.parametrize("transcription_first", [False, True])
def test_recording_and_transcription_attach_to_the_call_in_either_order(
    client, db_session, operators_dial, transcription_first
) -> None:
    call = Call(client)
    call.dial_in()
    call.press("1")
    call.press("2")
    call.operator_outcome("no-answer")
    recording_sid, transcription_sid = new_sid("RE"), new_sid("TR")
    recording_url = f"https://api.twilio.com/2010-04-01/Recordings/{recording_sid}"
    callbacks = call.record(recording_sid, duration=37)
    recording = {
        "RecordingSid": recording_sid,
        "RecordingUrl": recording_url,
        "RecordingStatus": "completed",
        "RecordingDuration": "37",
    }
    transcription = {
        "TranscriptionSid": transcription_sid,
        "TranscriptionText": "They took our passports at the farm on Route 9",
        "TranscriptionStatus": "completed",
        "RecordingSid": recording_sid,
        "RecordingUrl": recording_url,
    }
    steps = [("transcription", transcription), ("recording", recording)]
    if not transcription_first:
        steps.reverse()
    for _ in range(2):  # Twilio retries each callback: nothing is recorded twice
        for name, params in steps:
            assert call.callback(callbacks[name], **params).status_code == 200
    signal = _signal(db_session, call)
    assert signal.recording_sid == recording_sid and signal.recording_duration == 37
    assert signal.recording_url == recording_url
    assert signal.transcript == "They took our passports at the farm on Route 9"
    assert signal.transcription_sid == transcription_sid
    assert _count(db_session, Signal) == 1 and _count(db_session, Case) == 1
    actions = db_session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions.count("recording_attached") == 1
    assert actions.count("transcription_attached") == 1


def test_the_same_call_sid_posted_twice_makes_one_signal(client, db_session) -> None:
    call = Call(client)
    first = call.dial_in()
    call.url = ""
    second = call.dial_in()
    assert [s for _, s in spoken(first)] == [s for _, s in spoken(second)]
    assert _count(db_session, Signal) == 1 and _count(db_session, Case) == 1
    assert db_session.scalar(select(func.count()).where(AuditEvent.action == "open")) == 1


def test_status_callbacks_apply_only_forward_moves(client, db_session) -> None:
    call = Call(client)
    call.dial_in()
    status_url = PUBLIC_BASE + "/twilio/voice/status"
    for status, sequence in [("completed", "3"), ("in-progress", "1"), ("completed", "3")]:
        answer = call.callback(
            status_url, CallStatus=status, SequenceNumber=sequence, CallDuration="61"
        )
        assert answer.status_code == 200
    signal = _signal(db_session, call)
    assert signal.call_status == "completed" and signal.status_sequence == 3
    # Without SequenceNumber, a status that would move the call back is ignored too.
    call.callback(status_url, CallStatus="ringing")
    assert _signal(db_session, call).call_status == "completed"


def test_a_status_callback_that_arrives_first_still_makes_one_signal(client, db_session) -> None:
    call = Call(client)
    call.callback(PUBLIC_BASE + "/twilio/voice/status", CallStatus="ringing", SequenceNumber="0")
    call.dial_in()
    assert _count(db_session, Signal) == 1
    assert _signal(db_session, call).case.state == "received"


def test_unknown_digits_and_unknown_parameters_do_not_break_the_call(client) -> None:
    call = Call(client)
    call.dial_in()
    doc = call._go(call._only("Gather").get("action", ""), Digits="7", BrandNewParam="x")
    assert doc.find("Gather") is not None  # asked again, not a 500


def _heard_passphrase(doc) -> str | None:  # type: ignore[no-untyped-def]
    text = " ".join(t for _, t in spoken(doc))
    if "Your passphrase is: " not in text:
        return None
    words = text.split("Your passphrase is: ")[1].split(".")[0].split(", ")
    return "-".join([*words[:-1], words[-1].replace(" ", "")])


@pytest.mark.parametrize("replayed_with", ["same", "no recording", "other recording"])
def test_a_replayed_recorded_callback_issues_no_new_passphrase(
    client, db_session, replayed_with
) -> None:
    """Issue 11, item 7: signatures carry no timestamp, so a captured request replays."""
    call = Call(client)
    call.dial_in()
    call.press("1")
    call.press("3")
    recording_sid = new_sid("RE")
    call.record(recording_sid)
    first = _heard_passphrase(call.doc)
    recorded_url, first_doc = call.url, call.doc
    reference = _signal(db_session, call).case.reference
    stored = _signal(db_session, call).case.passphrase_hash
    extra = {
        "same": {"RecordingSid": recording_sid, "RecordingDuration": "42", "Digits": "#"},
        "no recording": {},
        "other recording": {"RecordingSid": new_sid("RE"), "RecordingDuration": "9"},
    }[replayed_with]

    replays = [parse_twiml(post_signed(client, recorded_url, call.params(**extra)))
               for _ in range(3)]

    assert first is not None
    for replay in replays:
        assert _heard_passphrase(replay) is None  # no secret in the answer
        said = " ".join(t for _, t in spoken(replay))
        assert "never repeated" in said and reference.split("-")[-1][-1] in said
        assert replay[-1].tag == "Hangup"
        if replayed_with == "same":
            assert [v.tag for v in replay] == [v.tag for v in first_doc]  # the same answer
    assert _signal(db_session, call).case.passphrase_hash == stored  # the first still works
    answer = client.get(f"/api/v1/tips/{reference}", headers={"X-Tip-Passphrase": first})
    assert answer.status_code == 200, answer.get_json()


def test_replayed_ivr_steps_do_not_grow_the_call_record_without_end(client, db_session) -> None:
    call = Call(client)
    call.dial_in()
    menu = call.press("1")
    action = menu.find("Gather").get("action", "")
    for _ in range(120):
        call._go(action, Digits="9")
        call.url = ""
    steps = _signal(db_session, call).ivr_path["steps"]
    assert len(steps) <= 50


def _to_the_end(client, lang_digit: str = "1") -> Call:
    """A caller who leaves a voicemail and has heard the reference and passphrase."""
    call = Call(client)
    call.dial_in()
    call.press(lang_digit)
    call.press("3")
    call.record(new_sid("RE"))
    return call


@pytest.mark.parametrize(("digit", "stored"), [
    ("1", "friend_family"), ("5", "web_search"), ("7", "other"),
])
def test_after_the_passphrase_the_caller_may_say_how_they_heard_of_us(
    client, db_session, digit, stored
) -> None:
    call = _to_the_end(client)
    gather = call.doc.find("Gather")
    assert gather is not None and gather.get("numDigits") == "1"
    assert gather.get("action", "").startswith(PUBLIC_BASE + "/twilio/voice/heard")
    asked = " ".join(t for _, t in spoken(gather))
    assert "how did you hear about this hotline" in asked and "5 for an internet search" in asked
    assert "press 0" in asked
    # The passphrase comes first: the question never delays what the caller must keep.
    said = [t for _, t in spoken(call.doc)]
    assert any("Your passphrase is" in t for t in said[:said.index(asked)])
    end = call.press(digit)
    assert [t for _, t in spoken(end)] == ["Thank you.", "Thank you for calling. Goodbye."]
    assert end[-1].tag == "Hangup"
    signal = _signal(db_session, call)
    assert signal.heard_from == stored
    assert signal.ivr_path["steps"][-1] == {"step": "heard_from", "choice": stored}


@pytest.mark.parametrize("digits", ["0", "9", "#", ""])
def test_zero_another_key_or_an_empty_answer_skips_the_heard_from_question(
    client, db_session, digits
) -> None:
    call = _to_the_end(client)
    end = call._go(call.doc.find("Gather").get("action", ""), Digits=digits)
    assert [t for _, t in spoken(end)] == ["Thank you for calling. Goodbye."]
    assert end[-1].tag == "Hangup"
    signal = _signal(db_session, call)
    assert signal.heard_from is None
    assert signal.ivr_path["steps"][-1] == {"step": "heard_from", "choice": "skipped"}


def test_silence_at_the_heard_from_question_says_goodbye_without_a_request(
    client, db_session
) -> None:
    """A <Gather> that times out goes on to the next verb: goodbye and hang up, here."""
    call = _to_the_end(client, lang_digit="2")
    verbs = list(call.doc)
    after = verbs[[v.tag for v in verbs].index("Gather") + 1:]
    assert [v.tag for v in after] == ["Say", "Hangup"]
    assert after[0].text == "Gracias por llamar. Adiós." and after[0].get("language") == "es-MX"
    asked = " ".join(t for _, t in spoken(call.doc.find("Gather")))
    assert "¿cómo supo de esta línea?" in asked and "oprima 0" in asked
    assert _signal(db_session, call).heard_from is None
