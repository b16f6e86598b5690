"""The channels the hotline reaches people and agencies by, one class each, looked up by name.

Referral delivery (``referrals.delivery``), an agency's thread answers
(``referrals.thread_delivery``) and notifications (``referrals.notifications``) all send
through ``channel_for(name, address)``: none of them chooses a transport with if/else.
Each channel says what a caller needs to know about it:

- ``at_most_once``: the far end cannot tell a repeat (no idempotency key), so a try whose
  outcome is unknown, sent again, may reach the person twice (a text, an e-mail). A
  webhook carries an ``Idempotency-Key`` the agency dedupes on.
- ``templates``: outside a conversation window only a pre-approved template may go
  (WhatsApp's 24 hours); ``Message.template_only`` asks for it.
- ``has_subject``: the message has a subject line (e-mail).
- ``opt_out``: the recipient can text STOP, so the opt-out list is checked first.
- ``agency_setting``: ``AGENCY_<CODE>_<setting>`` is where it reaches an agency (None:
  agencies cannot list it in agencies.yaml); ``signed``: it also needs the agency's
  ``WEBHOOK_SECRET``.

A send raises ``messaging.SendFailed`` (retry later), ``messaging.RecipientOptedOut``
(never again) or ``messaging.ChannelNotConfigured`` (this deployment cannot send it).

Adding a channel is one class and one line. Slack, say::

    class SlackChannel(Channel):
        name = "slack"
        agency_setting = "SLACK_URL"  # AGENCY_<CODE>_SLACK_URL, an incoming-webhook URL

        def send(self, settings: Settings, to: str, message: Message) -> Receipt:
            ...  # POST {"text": message.text} to ``to`` within delivery_timeout_seconds
            return Receipt()

    REGISTRY = _registry(WebhookChannel(), ..., SlackChannel())  # the one line

after which an agency may list ``slack`` in its channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from config.settings import Settings
from intake.sms import is_whatsapp
from referrals import messaging
from referrals.webhook import WebhookFailed, post_signed


@dataclass(frozen=True)
class Message:
    """What one send carries; each channel reads the parts it has a use for."""

    text: str = ""  # the words (a text's body, an e-mail's body, a notice)
    subject: str = ""  # channels with a subject line
    body: bytes = b""  # a webhook's encoded JSON
    idempotency_key: str = ""  # a webhook's, stable across tries
    secret: str = field(default="", repr=False)  # a signed channel's signing key
    template_only: bool = False  # a template channel's window is closed


@dataclass(frozen=True)
class Receipt:
    """What the far end answered: the provider's id for the message, an HTTP status."""

    provider_id: str | None = None
    status: int | None = None


class Channel:
    """One way to reach someone; subclasses set the attributes and ``send``."""

    name: ClassVar[str]
    at_most_once: ClassVar[bool] = True
    templates: ClassVar[bool] = False
    has_subject: ClassVar[bool] = False
    opt_out: ClassVar[bool] = False
    agency_setting: ClassVar[str | None] = None
    signed: ClassVar[bool] = False

    def send(self, settings: Settings, to: str, message: Message) -> Receipt:
        """Send ``message`` to ``to``; raises one of messaging's errors when it did not go."""
        raise NotImplementedError


class SmsChannel(Channel):
    """A text through Twilio's messaging API."""

    name = "sms"
    opt_out = True
    agency_setting = "SMS"

    def send(self, settings: Settings, to: str, message: Message) -> Receipt:
        return Receipt(provider_id=messaging.send_sms(settings, to, message.text))


class WhatsAppChannel(Channel):
    """WhatsApp through Twilio: a ``whatsapp:+1…`` address, a template when the window
    is closed. Reached as ``sms`` to such an address (``channel_for``)."""

    name = "whatsapp"
    opt_out = True
    templates = True

    def send(self, settings: Settings, to: str, message: Message) -> Receipt:
        return Receipt(provider_id=messaging.send_whatsapp(
            settings, to, message.text, template_only=message.template_only
        ))


class EmailChannel(Channel):
    """An e-mail through SMTP; the provider id is its Message-ID."""

    name = "email"
    has_subject = True
    agency_setting = "EMAIL"

    def send(self, settings: Settings, to: str, message: Message) -> Receipt:
        return Receipt(
            provider_id=messaging.send_email(settings, to, message.subject, message.text)
        )


class WebhookChannel(Channel):
    """A signed POST to an agency's https endpoint (``referrals.webhook``); only a 2xx
    answer counts as delivered."""

    name = "webhook"
    at_most_once = False  # the agency dedupes on the Idempotency-Key
    agency_setting = "WEBHOOK_URL"
    signed = True

    def send(self, settings: Settings, to: str, message: Message) -> Receipt:
        try:
            answer = post_signed(
                to, message.body, message.secret, message.idempotency_key,
                deadline_seconds=settings.delivery_timeout_seconds,
                allow_loopback_http=not settings.is_production,
            )
        except WebhookFailed as exc:
            raise messaging.SendFailed(str(exc)) from None
        if not 200 <= answer.status < 300:
            raise messaging.SendFailed(f"answered {answer.status}")
        return Receipt(status=answer.status)


def _registry(*channels: Channel) -> dict[str, Channel]:
    return {channel.name: channel for channel in channels}


REGISTRY = _registry(WebhookChannel(), EmailChannel(), SmsChannel(), WhatsAppChannel())



def agency_channels() -> tuple[str, ...]:
    """What agencies.yaml may list: the channels with an agency setting, in order."""
    return tuple(name for name, c in REGISTRY.items() if c.agency_setting)


def channel_for(name: str, address: str = "") -> Channel:
    """The channel called ``name``; an ``sms`` to a ``whatsapp:`` address is WhatsApp
    (Twilio sends both through one API, and a number's rows keep the name ``sms``)."""
    if name == SmsChannel.name and is_whatsapp(address):
        name = WhatsAppChannel.name
    try:
        return REGISTRY[name]
    except KeyError:
        raise messaging.ChannelNotConfigured(f"no channel called {name!r}") from None
