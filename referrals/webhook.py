"""One signed POST to an agency's webhook, bounded in every way an agency could stall us.

Why by hand over ``http.client`` rather than ``requests``: a socket timeout bounds each
read, not the delivery, so a server that drips a byte every few seconds holds a worker
for ever; here a watchdog shuts the socket at the deadline, whatever is in progress
(connect, TLS, sending, headers, body). The answer is read up to a cap; redirects are
not followed; only https leaves the machine (plain http to loopback is allowed outside
production, for local agency stand-ins and tests).

Warm connections: an answered connection the agency keeps open (HTTP/1.1 keep-alive)
goes back to a small per-process pool by scheme, host and port, so the next delivery to
that agency skips the TCP and TLS handshakes. A pooled connection the agency has
closed meanwhile fails before any answer; the POST is then sent once more on a fresh
connection (at least once: the agency dedupes on the Idempotency-Key). The pool and the
one watchdog thread are per process id: a forked child never uses its parent's sockets.

The signature covers a timestamp: ``X-Hotline-Signature: sha256=<hex HMAC-SHA256 of
"<X-Hotline-Timestamp>.<raw body>">``, so a captured delivery cannot be replayed later
(agencies refuse a timestamp more than ``REPLAY_WINDOW`` old, README "Delivery").
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import http.client
import ipaddress
import itertools
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
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


Origin = tuple[str, str, int | None]


class _Watchdog:
    """One thread per process running deadline callbacks (a ``threading.Timer`` per
    POST would start and stop a thread for every delivery).

    A callback runs with the lock held, so once ``cancel`` returns it has either run to
    the end or never will.
    """

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.heap: list[list[Any]] = []
        self.order = itertools.count()
        self.pid = 0

    def arm(self, delay: float, callback: Callable[[], None]) -> list[Any]:
        entry = [time.monotonic() + delay, next(self.order), callback]
        with self.lock:
            if self.pid != os.getpid():  # first use, or a forked child: its own thread
                self.pid = os.getpid()
                self.heap = []
                threading.Thread(target=self._run, name="webhook-watchdog", daemon=True).start()
            earliest = not self.heap or entry[0] < self.heap[0][0]
            heapq.heappush(self.heap, entry)
            if earliest:
                self.lock.notify()
        return entry

    def cancel(self, entry: list[Any]) -> None:
        with self.lock:
            entry[2] = None  # dropped from the heap when it comes up

    def _run(self) -> None:
        pid = os.getpid()
        with self.lock:
            while self.pid == pid:
                while self.heap and self.heap[0][2] is None:
                    heapq.heappop(self.heap)
                if not self.heap:
                    self.lock.wait()
                    continue
                wait = self.heap[0][0] - time.monotonic()
                if wait > 0:
                    self.lock.wait(wait)
                    continue
                callback = heapq.heappop(self.heap)[2]
                if callback is not None:
                    callback()


class _Pool:
    """Idle keep-alive connections by origin, for this process only."""

    IDLE_SECONDS = 15.0  # older ones are closed rather than tried (servers drop them)
    PER_ORIGIN = 4

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: dict[Origin, list[tuple[float, http.client.HTTPConnection]]] = {}
        self.pid = os.getpid()

    def take(self, origin: Origin) -> http.client.HTTPConnection | None:
        with self.lock:
            if self.pid != os.getpid():
                # A forked child: the parent's sockets are not ours to use (nor to shut).
                self.idle, self.pid = {}, os.getpid()
            stack = self.idle.get(origin, [])
            while stack:
                since, conn = stack.pop()
                if time.monotonic() - since < self.IDLE_SECONDS:
                    return conn
                conn.close()
        return None

    def give(self, origin: Origin, conn: http.client.HTTPConnection) -> None:
        with self.lock:
            if self.pid != os.getpid():
                return
            stack = self.idle.setdefault(origin, [])
            if len(stack) < self.PER_ORIGIN:
                stack.append((time.monotonic(), conn))
                return
        conn.close()


_watchdog = _Watchdog()
_pool = _Pool()


def _after_fork_in_child() -> None:
    """A forked child starts empty: a lock the parent held at the fork would never be
    let go here, and the parent's sockets are not the child's to use."""
    global _watchdog, _pool
    _watchdog = _Watchdog()
    _pool = _Pool()


os.register_at_fork(after_in_child=_after_fork_in_child)


@lru_cache(maxsize=1)
def _default_context() -> ssl.SSLContext:
    # Loading the CA store costs milliseconds: once per process, not per delivery.
    return ssl.create_default_context()


def _connect(origin: Origin, deadline_seconds: float,
             ssl_context: ssl.SSLContext | None) -> http.client.HTTPConnection:
    scheme, host, port = origin
    if scheme == "https":
        return http.client.HTTPSConnection(
            host, port, timeout=deadline_seconds, context=ssl_context or _default_context(),
        )
    return http.client.HTTPConnection(host, port, timeout=deadline_seconds)


# What a kept-alive connection the agency closed meanwhile raises before any answer.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
          ConnectionAbortedError)


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
    }
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    origin: Origin = (parts.scheme, parts.hostname or "", parts.port)
    # A caller's own TLS context (tests, pinned certificates) gets a connection of its own.
    pooled = ssl_context is None
    conn = _pool.take(origin) if pooled else None
    reused = conn is not None
    if conn is None:
        conn = _connect(origin, deadline_seconds, ssl_context)
    ends = time.monotonic() + deadline_seconds
    expired = threading.Event()
    current = [conn]

    def stop() -> None:
        # Shut the socket under whatever call is blocked on it (a drip-feeding server
        # resets a socket timeout with every byte; it cannot reset this).
        expired.set()
        sock = current[0].sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    watchdog = _watchdog.arm(deadline_seconds, stop)
    keep = False
    try:
        while True:
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                break
            except _STALE:
                if not reused or expired.is_set() or time.monotonic() >= ends:
                    raise
                # The agency closed the idle connection: once more on a fresh one.
                conn.close()
                conn = current[0] = _connect(origin, ends - time.monotonic(), ssl_context)
                reused = False
        data = response.read(max_response_bytes + 1)
        _watchdog.cancel(watchdog)
        if expired.is_set():
            # The shut socket reads as an early end: what we got is not an answer.
            raise TimeoutError
        keep = pooled and response.isclosed() and not response.will_close
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
        _watchdog.cancel(watchdog)
        if keep:
            _pool.give(origin, conn)
        else:
            conn.close()
