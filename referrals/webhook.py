"""One signed POST to an agency's webhook, bounded in every way an agency could stall us.

Why by hand over ``http.client`` rather than ``requests``: a socket timeout bounds each
read, not the delivery, so a server that drips a byte every few seconds holds a worker
for ever; here a watchdog shuts the socket at the deadline, whatever is in progress
(connect, TLS, sending, headers, body). The answer is read up to a cap; redirects are
not followed; only https leaves the machine (plain http to loopback is allowed outside
production, for local agency stand-ins and tests).

The signature covers a timestamp: ``X-Hotline-Signature: sha256=<hex HMAC-SHA256 of
"<X-Hotline-Timestamp>.<raw body>">``, so a captured delivery cannot be replayed later
(agencies refuse a timestamp more than ``REPLAY_WINDOW`` old, README "Delivery").
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

USER_AGENT = "hotline-referrals/1.0"
MAX_RESPONSE_BYTES = 64 * 1024  # we need the status; an agency's essay is not read
REPLAY_WINDOW = 300  # seconds: what agencies are told to accept (README)


class WebhookFailed(Exception):
    """This POST did not get an answer; the message says why, without personal data."""


@dataclass(frozen=True)
class WebhookAnswer:
    status: int
    body: bytes  # at most MAX_RESPONSE_BYTES
    truncated: bool


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Hotline-Signature value for a body sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, allow_loopback_http: bool) -> None:
    """Refuse anything but https (or http to loopback when allowed), naming why."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and allow_loopback_http:
        if _is_loopback(parts.hostname):
            return
    raise WebhookFailed("webhook URL must be https (plain http only to loopback in development)")


def post_signed(
    url: str,
    body: bytes,
    secret: str,
    idempotency_key: str,
    *,
    deadline_seconds: float,
    allow_loopback_http: bool = False,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
    ssl_context: ssl.SSLContext | None = None,
    now: float | None = None,
) -> WebhookAnswer:
    """POST ``body`` signed with ``secret``; the whole exchange ends by the deadline.

    Raises WebhookFailed when there is no answer (refused URL, unreachable, TLS error,
    deadline passed). Any HTTP status is an answer: the caller decides what 2xx means.
    """
    check_url(url, allow_loopback_http)
    parts = urlsplit(url)
    timestamp = int(now if now is not None else time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Hotline-Timestamp": str(timestamp),
        "X-Hotline-Signature": signature(secret, timestamp, body),
        "Idempotency-Key": idempotency_key,
        "Connection": "close",
    }
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=deadline_seconds,
            context=ssl_context or ssl.create_default_context(),
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port,
                                          timeout=deadline_seconds)
    expired = threading.Event()

    def stop() -> None:
        # Shut the socket under whatever call is blocked on it (a drip-feeding server
        # resets a socket timeout with every byte; it cannot reset this).
        expired.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    watchdog = threading.Timer(deadline_seconds, stop)
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read(max_response_bytes + 1)
        if expired.is_set():
            # The shut socket reads as an early end: what we got is not an answer.
            raise TimeoutError
        return WebhookAnswer(
            response.status, data[:max_response_bytes], len(data) > max_response_bytes
        )
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set() or isinstance(exc, TimeoutError):
            reason = f"no answer within {deadline_seconds:g}s (delivery deadline)"
        elif isinstance(exc, ssl.SSLError):
            reason = f"TLS failed: {getattr(exc, 'reason', None) or type(exc).__name__}"
        else:
            reason = f"unreachable: {type(exc).__name__}"
        raise WebhookFailed(reason) from None
    finally:
        watchdog.cancel()
        conn.close()
