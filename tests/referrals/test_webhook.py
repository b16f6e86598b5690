"""The agency POST (issue 11 item 12): https only, a total deadline, a capped answer,
no transaction held while it runs, and a signature over a timestamp (no replays)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from config.settings import ROOT, Settings, SettingsError
from referrals.delivery import DeliveryFailed, deliver_referral
from referrals.models import DeliveryAttempt
from referrals.webhook import MAX_RESPONSE_BYTES, WebhookFailed, check_url, post_signed
from tests.referrals.casework import screen_and_approve, submit_tip
from tests.referrals.conftest import AGENCY_SECRET, agency_env
from workflows.models import Referral

SECRET = "agency-secret"


class Recorder(BaseHTTPRequestHandler):
    """Answers 200 and keeps what it was sent; ``on_post`` runs before answering."""

    seen: list[tuple[dict[str, str], bytes]]
    on_post: Callable[[], None] | None = None
    answer_bytes: int = 2
    written: list[int]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append((dict(self.headers.items()), body))
        if type(self).on_post is not None:
            type(self).on_post()  # type: ignore[misc]
        size = type(self).answer_bytes
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        sent = 0
        try:
            while sent < size:
                chunk = b"x" * min(65536, size - sent)
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the client stopped reading: what we measure
        type(self).written.append(sent)

    def log_message(self, *_: Any) -> None:
        return None


@pytest.fixture
def recorder() -> Iterator[tuple[str, type[Recorder]]]:
    """A local agency endpoint on loopback http."""
    handler = type("Handler", (Recorder,), {"seen": [], "written": [], "on_post": None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/in", handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("url", "allow_loopback_http", "ok"),
    [
        ("https://fbi.example.gov/in", False, True),
        ("http://fbi.example.gov/in", True, False),
        ("http://fbi.example.gov/in", False, False),
        ("http://127.0.0.1:8080/in", True, True),  # development and tests
        ("http://127.0.0.1:8080/in", False, False),  # production: never plain http
        ("http://localhost/in", True, True),
        ("http://10.0.0.5/in", True, False),
        ("ftp://fbi.example.gov/in", True, False),
        ("file:///etc/passwd", True, False),
        ("https:///no-host", True, False),
    ],
)
def test_only_https_leaves_the_machine(url: str, allow_loopback_http: bool, ok: bool) -> None:
    if ok:
        check_url(url, allow_loopback_http)
    else:
        with pytest.raises(WebhookFailed, match="must be https"):
            check_url(url, allow_loopback_http)


def test_production_refuses_a_plain_http_agency_and_records_why(
    app, client, operator, supervisor, delivery_runtime, db_session, recorder
) -> None:
    url, handler = recorder
    runtime = delivery_runtime(env=agency_env(url), environment="production")
    case_id = submit_tip(client)
    [referral_id] = screen_and_approve(app, case_id, operator, supervisor)
    with pytest.raises(DeliveryFailed, match="must be https"):
        deliver_referral(db_session, db_session.get(Referral, referral_id), runtime)
    assert handler.seen == []  # nothing was sent
    attempt = db_session.scalar(select(DeliveryAttempt))
    assert attempt is not None and "must be https" in attempt.error


def test_a_drip_feeding_agency_is_cut_off_at_the_total_deadline() -> None:
    """A socket timeout restarts with every byte; the deadline does not."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                while not stop.is_set():  # one header byte at a time, for ever
                    conn.sendall(b"X")
                    time.sleep(0.1)
            except OSError:
                pass

    threading.Thread(target=drip, daemon=True).start()
    started = time.monotonic()
    try:
        with pytest.raises(WebhookFailed, match="delivery deadline"):
            post_signed(f"http://127.0.0.1:{listener.getsockname()[1]}/", b"{}", SECRET, "k",
                        deadline_seconds=1, allow_loopback_http=True)
    finally:
        stop.set()
        listener.close()
    # Generous bound (no timing test): with a per-read timeout this would never end.
    assert time.monotonic() - started < 20


def test_the_answer_is_read_only_up_to_the_cap(recorder) -> None:
    url, handler = recorder
    handler.answer_bytes = 20 * 1024 * 1024
    answer = post_signed(url, b"{}", SECRET, "k", deadline_seconds=10, allow_loopback_http=True)
    assert answer.status == 200 and answer.truncated
    assert len(answer.body) == MAX_RESPONSE_BYTES
    # The agency could not push its 20 MB: we closed after the cap.
    deadline = time.monotonic() + 10
    while not handler.written and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handler.written and handler.written[0] < handler.answer_bytes


def test_no_transaction_is_open_while_the_agency_is_called(
    app, client, operator, supervisor, delivery_runtime, db_session, recorder
) -> None:
    """A slow agency must not hold a database connection or the referral's row lock."""
    url, handler = recorder
    runtime = delivery_runtime(env=agency_env(url))
    case_id = submit_tip(client)
    [referral_id] = screen_and_approve(app, case_id, operator, supervisor)
    delivering = runtime.session()
    observed: dict[str, Any] = {}

    def during_post() -> None:
        observed["in_transaction"] = delivering.in_transaction()
        other = runtime.session()
        try:
            if other.get_bind().dialect.name == "postgresql":
                # Another writer can take the referral's row at once.
                other.execute(text("SET lock_timeout = '1s'"))
            other.execute(text("UPDATE referrals SET updated_at = updated_at WHERE id = :i"),
                          {"i": referral_id})
            other.commit()
            observed["other_writer"] = "ok"
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            observed["other_writer"] = repr(exc)
            other.rollback()
        finally:
            other.close()

    handler.on_post = during_post
    handler.seen = []
    # The agency's endpoint must check signatures the new way; this one only records.
    try:
        assert deliver_referral(delivering, delivering.get(Referral, referral_id), runtime)
    finally:
        delivering.close()
    assert observed == {"in_transaction": False, "other_writer": "ok"}
    assert db_session.get(Referral, referral_id).state == "sent"


def _readme_verifier() -> Callable[..., bool]:
    """The snippet README gives agencies, run as written."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    [snippet] = [b for b in blocks if "def verify_hotline_delivery" in b]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # noqa: S102 - our own README, tested as documentation
    return namespace["verify_hotline_delivery"]  # type: ignore[no-any-return]


def test_a_captured_delivery_cannot_be_replayed(recorder) -> None:
    url, handler = recorder
    post_signed(url, b'{"referral_id":1}', SECRET, "key-1", deadline_seconds=5,
                allow_loopback_http=True)
    [(headers, body)] = handler.seen
    verify = _readme_verifier()
    assert verify(headers, body, SECRET)
    # Replayed as captured, six minutes later: stale.
    assert not verify(headers, body, SECRET, now=time.time() + 360)
    # Replayed with a fresh timestamp: the signature covers the timestamp.
    fresh = {**headers, "X-Hotline-Timestamp": str(int(time.time()) + 360)}
    assert not verify(fresh, body, SECRET, now=time.time() + 360)
    # A changed body, or the wrong secret.
    assert not verify(headers, body + b" ", SECRET)
    assert not verify(headers, body, "another secret")
    assert not verify({k: v for k, v in headers.items() if k != "X-Hotline-Timestamp"},
                      body, SECRET)


def test_the_test_agency_checks_signatures_the_documented_way(agency) -> None:
    post_signed(agency.url, b'{"referral_id": 7}', AGENCY_SECRET, "key-7", deadline_seconds=5,
                allow_loopback_http=True)
    post_signed(agency.url, b'{"referral_id": 8}', AGENCY_SECRET, "key-8", deadline_seconds=5,
                allow_loopback_http=True, now=time.time() - 600)
    assert [r["valid"] for r in agency.requests] == [True, False]


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agency.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


def test_https_checks_the_agency_certificate(tmp_path) -> None:
    cert, key = _self_signed(tmp_path)
    handler = type("Handler", (Recorder,), {"seen": [], "written": [], "on_post": None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/in"
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        answer = post_signed(url, b"{}", SECRET, "k", deadline_seconds=5, ssl_context=trusted)
        assert answer.status == 200 and len(handler.seen) == 1
        with pytest.raises(WebhookFailed, match="TLS failed"):
            post_signed(url, b"{}", SECRET, "k", deadline_seconds=5)  # system CAs only
    finally:
        server.shutdown()
        server.server_close()


def test_the_deadline_must_end_before_the_lease() -> None:
    with pytest.raises(SettingsError, match="DELIVERY_TIMEOUT_SECONDS must be shorter"):
        Settings.from_env({"DELIVERY_TIMEOUT_SECONDS": "60", "DELIVERY_LEASE_SECONDS": "60"})


class KeepAlive(BaseHTTPRequestHandler):
    """An HTTP/1.1 agency answering 200; notes each request's client port. With
    ``hang_up`` it closes every connection after answering, without saying so (as a
    server does with a connection left idle too long)."""

    protocol_version = "HTTP/1.1"
    ports: list[int]
    hang_up = False

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).ports.append(self.client_address[1])
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
        self.close_connection = type(self).hang_up

    def log_message(self, *_: Any) -> None:
        return None


@pytest.fixture
def keepalive() -> Iterator[tuple[str, type[KeepAlive]]]:
    handler = type("Handler", (KeepAlive,), {"ports": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/in", handler
    server.shutdown()
    server.server_close()


def test_deliveries_to_one_agency_reuse_a_kept_alive_connection(keepalive) -> None:
    url, handler = keepalive
    for n in range(3):
        answer = post_signed(url, b"{}", SECRET, f"k{n}", deadline_seconds=5,
                             allow_loopback_http=True)
        assert answer.status == 200
    assert len(handler.ports) == 3 and len(set(handler.ports)) == 1  # one connection


def test_a_kept_alive_connection_the_agency_closed_is_replaced_not_a_failure(
    keepalive,
) -> None:
    url, handler = keepalive
    handler.hang_up = True
    for n in range(3):
        answer = post_signed(url, b"{}", SECRET, f"k{n}", deadline_seconds=5,
                             allow_loopback_http=True)
        assert answer.status == 200
    # Each POST arrived once (the stale connection failed before the agency read it),
    # each on a fresh connection.
    assert len(handler.ports) == 3 and len(set(handler.ports)) == 3
