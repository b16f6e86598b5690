"""Response headers, body limits and rate limits: what every answer and public route gets.

Headers are set by hand in one ``after_request`` (errors pass through it too). Rate
limits use Flask-Limiter, one limiter per app so that test apps with different settings
never share state; storage is Redis when ``REDIS_URL`` is set (one budget across every
gunicorn worker and machine), memory on the embedded default.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, request
from flask_limiter import Limit, Limiter
from flask_limiter.util import get_remote_address
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import IntegerConverter

from config.settings import Settings
from workflows.db import MAX_ID
from workflows.models import Case

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; frame-ancestors 'none'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'"
)
HSTS = "max-age=63072000; includeSubDomains"

# Public routes, limited per client address: (endpoint, method) -> limit.
# Twilio's routes are deliberately absent: all their requests come from Twilio's
# addresses, and the signature is their gate (ENGINEERING.md, Flask security).
PUBLIC_LIMITS: dict[tuple[str, str], str] = {
    ("intake_api.submit_tip", "POST"): "10 per minute;100 per hour",
    ("intake_api.read_tip", "GET"): "30 per minute",
    ("intake_api.add_tip_message", "POST"): "20 per minute",
    ("public_pages.tip_submit", "POST"): "10 per minute;100 per hour",
    ("public_pages.follow_up_open", "POST"): "30 per minute",
    ("public_pages.follow_up_add", "POST"): "20 per minute",
    ("login.login_submit", "POST"): "10 per minute;50 per hour",
    # Live chat: opening one is rare for a person, cheap to abuse; messages are capped too.
    ("chat_api.open_chat", "POST"): "5 per minute;30 per hour",
    ("chat_pages.chat_open", "POST"): "5 per minute;30 per hour",
    ("chat_api.post_message", "POST"): "60 per minute",
    ("chat_pages.chat_send", "POST"): "60 per minute",
    ("chat_api.get_messages", "GET"): "120 per minute",
    ("chat_pages.chat_poll", "GET"): "120 per minute",
    # Published snapshots are cheap reads, but a crawler need not have them all at once.
    ("public_pages.statistics", "GET"): "60 per minute",
    ("public_pages.statistics_csv", "GET"): "60 per minute",
}

def _public_limit() -> str:
    # An empty string means "no limit" to Flask-Limiter: every other route is exempt.
    return PUBLIC_LIMITS.get((request.endpoint or "", request.method), "")


def _storage_uri(settings: Settings) -> str:
    return settings.redis_url or "memory://"


def _storage_options(settings: Settings) -> dict[str, Any]:
    # Every Redis key starts with the namespace, so test runs side by side never meet.
    if settings.redis_url:
        return {"key_prefix": f"{settings.redis_namespace}limits"}
    return {}


def open_tip_throttled(session: Session, reference: str, passphrase: str) -> Case:
    """``intake.services.open_tip`` behind the per-(reference, client) guess count."""
    from intake.services import open_tip
    from intake.throttle import claim_try, clear_tries

    if not current_app.extensions["passphrase_throttle"]:
        return open_tip(session, reference, passphrase)
    key = claim_try(session, reference, get_remote_address())
    case = open_tip(session, reference, passphrase)  # NotFound leaves the try counted
    clear_tries(session, key)
    return case


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if request.endpoint != "static":
        # Case pages and API answers hold personal data: no shared or disk caches.
        headers.setdefault("Cache-Control", "no-store")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def _refuse_oversized_bodies() -> None:
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise RequestEntityTooLarge("the request body is larger than 1 MB")
    if length is None and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        # A chunked body has no length to check up front. Werkzeug wraps it in a stream
        # capped at MAX_CONTENT_LENGTH, but reading it *all* stops quietly at the cap, so
        # a parser would see a truncated body (a 400, or worse a shortened tip). Read it
        # once (cached for the view), then one byte more: past the cap that raises 413.
        request.get_data(cache=True)
        request.stream.read(1)


class DatabaseIntegerConverter(IntegerConverter):
    """``<int:…>`` ids past what the database holds (PostgreSQL ``integer``, 32 bits) name
    no row: they become 0, which no row has, so the view answers its own 404 instead of
    the database failing (a 500).

    Refusing them in the converter instead (werkzeug's ``max``) is wrong: werkzeug then
    skips this rule but has already seen the same path on a rule for another method, and
    answers 405 to a DELETE or GET that is allowed.
    """

    def to_python(self, value: str) -> int:
        number = int(super().to_python(value))
        return number if number <= MAX_ID else 0


def init_app(app: Flask, settings: Settings) -> None:
    app.url_map.converters["int"] = DatabaseIntegerConverter
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.before_request(_refuse_oversized_bodies)
    app.after_request(_security_headers)
    limiter = Limiter(
        get_remote_address,
        default_limits=[
            Limit(
                _public_limit,
                per_method=True,
                error_message="too many requests from this address",
            )
        ],
        storage_uri=_storage_uri(settings),
        storage_options=_storage_options(settings),
        strategy="moving-window",
        # No X-RateLimit-*/Retry-After on every answer: a refused request's Retry-After is
        # set by config.errors from the same window as its body says (they must agree).
        headers_enabled=False,
        # Redis down must not turn a tip into a 500: limits fall back to this process's
        # memory, and a storage error lets the request through (logged by the limiter).
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        key_prefix="hotline",
        enabled=settings.rate_limits_enabled,
    )
    limiter.init_app(app)
    app.extensions["hotline_limiter"] = limiter
    app.extensions["passphrase_throttle"] = settings.rate_limits_enabled
