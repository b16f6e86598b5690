"""Plays Twilio against the app: signed webhooks, and a caller who follows the TwiML.

Requests are signed with the SDK's own ``RequestValidator.compute_signature`` over the
public URL (the test settings' PUBLIC_BASE_URL), the way Twilio signs them, and each
next step is the ``action``/``Redirect`` URL the previous TwiML named.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

AUTH_TOKEN = "test-twilio-auth-token"  # the conftest settings' TWILIO_AUTH_TOKEN
PUBLIC_BASE = "https://hotline.example.org"  # the conftest settings' PUBLIC_BASE_URL
CALLER = "+12025550143"
HOTLINE = "+18883737888"

_sids = itertools.count(1)


def new_sid(prefix: str) -> str:
    """A Twilio-looking SID, unique within the test run."""
    return f"{prefix}{next(_sids):032x}"


def sign(url: str, params: Any, token: str = AUTH_TOKEN) -> str:
    """The X-Twilio-Signature Twilio would send for this URL and these parameters."""
    return RequestValidator(token).compute_signature(url, params)


def post_signed(client: Any, url: str, params: Any, **kwargs: Any) -> Any:
    """POST form parameters to an absolute public URL, signed like Twilio signs them."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"X-Twilio-Signature": sign(url, params), **kwargs.pop("headers", {})}
    return client.post(target, data=params, headers=headers, **kwargs)


def parse_twiml(answer: Any) -> ET.Element:
    """The <Response> element of a TwiML answer (checks it is one)."""
    assert answer.status_code == 200, (answer.status_code, answer.get_data(as_text=True))
    assert answer.mimetype == "text/xml"
    root = ET.fromstring(answer.get_data())  # noqa: S314 - the app's own output
    assert root.tag == "Response"
    return root


def spoken(root: ET.Element) -> list[tuple[str, str]]:
    """Every <Say> in document order, as (language, text)."""
    return [(say.get("language", ""), say.text or "") for say in root.iter("Say")]


@dataclass
class Call:
    """One phone call into the IVR, walked step by step as Twilio would."""

    client: Any
    call_sid: str = field(default_factory=lambda: new_sid("CA"))
    caller: str = CALLER
    url: str = ""
    doc: ET.Element | None = None
    requests: int = 0

    def params(self, **extra: str) -> MultiDict[str, str]:
        base = {
            "AccountSid": "AC" + "0" * 32,
            "ApiVersion": "2010-04-01",
            "CallSid": self.call_sid,
            "CallStatus": "in-progress",
            "Direction": "inbound",
            "From": self.caller,
            "To": HOTLINE,
            "Caller": self.caller,
            "Called": HOTLINE,
            "FromCountry": "US",
            "StirVerstat": "TN-Validation-Passed-A",  # Twilio adds parameters unannounced
        }
        return MultiDict({**base, **extra})

    def _go(self, url: str, **extra: str) -> ET.Element:
        self.url = urljoin(self.url or PUBLIC_BASE, url)
        self.requests += 1
        self.doc = parse_twiml(post_signed(self.client, self.url, self.params(**extra)))
        return self.doc

    def dial_in(self) -> ET.Element:
        """Twilio's first request when the call comes in."""
        return self._go("/twilio/voice", CallStatus="ringing")

    def _only(self, tag: str) -> ET.Element:
        assert self.doc is not None
        found = list(self.doc.iter(tag))
        assert len(found) == 1, f"expected one <{tag}> in {ET.tostring(self.doc)!r}"
        return found[0]

    def press(self, digits: str) -> ET.Element:
        """The caller presses keys during the <Gather>: Twilio posts them to its action."""
        return self._go(self._only("Gather").get("action", ""), Digits=digits)

    def stay_silent(self) -> ET.Element:
        """No input: <Gather> falls through to the next verb, which must be a <Redirect>."""
        assert self.doc is not None
        verbs = list(self.doc)
        gather_at = [v.tag for v in verbs].index("Gather")
        following = verbs[gather_at + 1 :]
        assert following and following[0].tag == "Redirect", "no fallback after <Gather>"
        return self._go(following[0].text or "")

    def operator_outcome(self, outcome: str) -> ET.Element:
        """<Dial> or <Enqueue> ended: Twilio reports how to its action."""
        assert self.doc is not None
        dial = next(iter(self.doc.iter("Dial")), None)
        if dial is not None:
            return self._go(dial.get("action", ""), DialCallStatus=outcome)
        enqueue = self._only("Enqueue")
        return self._go(enqueue.get("action", ""), QueueResult=outcome)

    def record(self, recording_sid: str, duration: int = 42) -> dict[str, str]:
        """The caller leaves a voicemail; returns the callback URLs the <Record> named."""
        record = self._only("Record")
        callbacks = {
            "recording": urljoin(self.url, record.get("recordingStatusCallback", "")),
            "transcription": urljoin(self.url, record.get("transcribeCallback", "")),
        }
        self._go(
            record.get("action", ""),
            RecordingSid=recording_sid,
            RecordingUrl=f"https://api.twilio.com/2010-04-01/Recordings/{recording_sid}",
            RecordingDuration=str(duration),
            Digits="#",
        )
        return callbacks

    def callback(self, url: str, **params: str) -> Any:
        """A callback Twilio sends on its own (status, recording, transcription)."""
        return post_signed(self.client, url, self.params(**params))
