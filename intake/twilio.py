"""Twilio webhooks' shared parts: the signature gate and TwiML helpers.

The voice (``intake.voice``) and SMS (``intake.sms_views``) blueprints live under
``/twilio``; every route on them is wrapped in ``twilio_signed``. That prefix is what the
CSRF protection exempts (the signature is its gate) and the rate limiter leaves alone
(all of Twilio's requests come from Twilio's addresses).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from flask import Response, abort, current_app, request, url_for
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from twilio.request_validator import RequestValidator
from twilio.twiml import TwiML

from config.database import db_session
from config.settings import Settings
from intake.outage import commit_or_spool
from intake.spool import Spool

log = logging.getLogger(__name__)

T = TypeVar("T")


def settings() -> Settings:
    """The app's settings."""
    return current_app.config["HOTLINE_SETTINGS"]  # type: ignore[no-any-return]


def _raw_target() -> str:
    """The path and query exactly as the client sent them (still percent-encoded).

    Werkzeug's ``request.url`` decodes ``%27`` to ``'``, which no longer matches what
    Twilio signed; gunicorn and Werkzeug keep the raw request target in RAW_URI or
    REQUEST_URI. WSGI hands it over as latin-1 text of the original bytes.
    """
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw:
        if not raw.startswith("/"):  # absolute-form target: keep path and query only
            parts = urlsplit(raw)
            raw = parts.path + (f"?{parts.query}" if parts.query else "")
        return raw.encode("latin-1").decode("utf-8", "replace")
    query = request.query_string.decode("latin-1")
    path = request.environ.get("SCRIPT_NAME", "") + request.environ.get("PATH_INFO", "")
    return path.encode("latin-1").decode("utf-8", "replace") + (f"?{query}" if query else "")


def signed_url() -> str:
    """The URL Twilio called: PUBLIC_BASE_URL (behind a TLS proxy) + raw path + raw query."""
    base = settings().public_base_url or request.host_url.rstrip("/")
    return base + _raw_target()


def _signature_params() -> str | Any | None:
    """What Twilio signed besides the URL; None when it cannot be what Twilio sent."""
    query = parse_qs(urlsplit(_raw_target()).query)
    if "bodySHA256" in query:
        # JSON-bodied webhook: the SDK checks the body hash only when given the raw
        # body as ``str`` ({} or the form would accept any body; bytes would raise).
        try:
            return request.get_data(cache=True).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return request.form  # a MultiDict: repeated keys are signed value by value


def request_is_from_twilio() -> bool:
    """Check X-Twilio-Signature against our auth token, before anything else is read."""
    token = settings().twilio_auth_token
    signature = request.headers.get("X-Twilio-Signature")
    if not token or not signature:
        return False
    params = _signature_params()
    if params is None:
        return False
    return bool(RequestValidator(token).validate(signed_url(), params, signature))


def twilio_signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse (403, nothing stored, one log line) any request Twilio did not sign."""

    @wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if not request_is_from_twilio():
            # Only the method and path: the parameters hold callers' numbers and words.
            log.warning("twilio: refused an unsigned or forged %s %s", request.method, request.path)
            abort(403, "the request is not signed by Twilio")
        return view(*args, **kwargs)

    return checked


def callback_url(endpoint: str, **values: Any) -> str:
    """An absolute URL for TwiML to call back, on the public base URL when one is set."""
    base = settings().public_base_url
    if base:
        return base + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def twiml(response: TwiML) -> Response:
    """A TwiML document as Twilio expects it."""
    return Response(response.to_xml(), status=200, mimetype="text/xml")


def param(name: str, limit: int = 64) -> str | None:
    """A form parameter Twilio sent, trimmed and bounded; None when absent or blank."""
    value = request.form.get(name)
    if value is None:
        return None
    value = value.strip()[:limit]
    return value or None


def in_transaction(
    work: Callable[[Session], T], spool_it: Callable[[Spool], T] | None = None
) -> T:
    """Run one unit of work and commit it; on a race with a Twilio retry, run it once more.

    The unique SIDs are the guard against duplicates: when two deliveries of one
    callback race, the loser's insert fails, and the second run finds the winner's row.
    With the database unreachable, ``spool_it`` keeps the request in the local spool and
    answers from it (``intake.outage``).
    """
    session = db_session()
    try:
        return commit_or_spool(session, work, spool_it)
    except (IntegrityError, StaleDataError):
        log.info("twilio: retried a unit of work after a concurrent duplicate on %s", request.path)
    return commit_or_spool(session, work, spool_it)

