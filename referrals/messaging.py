"""Sending one SMS or WhatsApp message (the twilio SDK) or one e-mail (SMTP): the
transports behind referrals.channels; nothing here logs a body or number.

The SDK's ``TwilioHttpClient`` has no timeout by default, so one hung call would pin a
worker (ENGINEERING.md, Twilio REST): we always pass one. ``twilio_api_base_url`` points
the real SDK at a local server in tests, so it builds and parses real requests.
"""

from __future__ import annotations

import logging
import secrets
import smtplib
from email.message import EmailMessage

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from config.settings import Settings

# Twilio: "Attempt to send to unsubscribed recipient" - final, never retry.
TWILIO_UNSUBSCRIBED = 21610

# The SDK logs request headers and parameters at INFO; keep them out of our logs.
_sdk_log = logging.getLogger("referrals.twilio_sdk")
_sdk_log.setLevel(logging.WARNING)


class SendFailed(Exception):
    """A send did not go through and may succeed later (the job retries)."""


class RecipientOptedOut(Exception):
    """The carrier says this number unsubscribed: never text it again."""


class ChannelNotConfigured(Exception):
    """No SMTP server or Twilio credentials: this channel cannot send here."""


def twilio_client(settings: Settings) -> Client:
    """A twilio SDK client with a timeout, aimed at ``twilio_api_base_url`` when set."""
    if not settings.twilio_auth_token:
        raise ChannelNotConfigured("TWILIO_AUTH_TOKEN is not set")
    client = Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        http_client=TwilioHttpClient(timeout=settings.twilio_timeout_seconds, logger=_sdk_log),
        environment={},  # settings only: the SDK must not read os.environ itself
    )
    if settings.twilio_api_base_url:
        # The Api domain joins base_url and the resource path; with no region or edge set
        # the client leaves the host as given.
        client.api.base_url = settings.twilio_api_base_url.rstrip("/")
    return client


def send_sms(settings: Settings, to: str, body: str) -> str:
    """Send one SMS; returns Twilio's SID."""
    return _send_twilio(settings, to, settings.twilio_from_number, {"body": body})


def send_whatsapp(settings: Settings, to: str, body: str, *, template_only: bool = False) -> str:
    """Send one WhatsApp message to a ``whatsapp:`` address; returns Twilio's SID.

    ``template_only``: WhatsApp's 24-hour window is closed, so only the configured
    template ("you have a reply, use your reference") may go, never the body.
    """
    sender = "whatsapp:" + (settings.twilio_whatsapp_from or settings.twilio_from_number)
    content = {"body": body}
    if template_only:
        if not settings.twilio_whatsapp_template_sid:
            raise ChannelNotConfigured(
                "outside WhatsApp's 24-hour window and TWILIO_WHATSAPP_TEMPLATE_SID is not set"
            )
        content = {"content_sid": settings.twilio_whatsapp_template_sid}
    return _send_twilio(settings, to, sender, content)


def _send_twilio(settings: Settings, to: str, sender: str, content: dict[str, str]) -> str:
    """One message through Twilio's messaging API, its errors sorted for the caller."""
    client = twilio_client(settings)
    try:
        message = client.messages.create(to=to, from_=sender, **content)
    except TwilioRestException as exc:
        if exc.code == TWILIO_UNSUBSCRIBED:
            raise RecipientOptedOut(f"twilio error {exc.code}") from None
        raise SendFailed(f"twilio error {exc.code or exc.status}") from None
    except Exception as exc:  # noqa: BLE001 - timeouts and connection errors: retry later
        raise SendFailed(f"twilio unreachable: {type(exc).__name__}") from None
    return str(message.sid)


def send_email(settings: Settings, to: str, subject: str, body: str) -> str:
    """Send one e-mail through SMTP; returns the Message-ID."""
    if not settings.smtp_host:
        raise ChannelNotConfigured("SMTP_HOST is not set")
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message_id = f"<{secrets.token_hex(12)}@{settings.smtp_from.split('@')[-1]}>"
    message["Message-ID"] = message_id
    message.set_content(body)
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.delivery_timeout_seconds
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user and settings.smtp_password:
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise SendFailed(f"smtp: {type(exc).__name__}") from None
    return message_id
