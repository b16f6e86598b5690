"""Real parts for delivery tests: an agency's HTTP server, Twilio's REST API, an SMTP
server, a private redis-server, and ``flask --app wsgi worker`` as a subprocess."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from config.runtime import Runtime, load_catalogs
from config.settings import ROOT, Settings
from tests.conftest import backend

AGENCY_SECRET = "agency-webhook-secret-for-tests"
ONCALL_PHONE = "+12025550100"
SUPERVISOR_EMAIL = "supervisor@hotline.example.org"


def free_port() -> int:
    """A port nobody listens on right now (for servers that cannot take port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll until ``check()`` is truthy; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- the agency ---------------------------------------------------------------------


@dataclass
class AgencyServer:
    """An agency endpoint: checks X-Hotline-Signature and dedupes on Idempotency-Key."""

    secret: str = AGENCY_SECRET
    mode: str = "ok"  # ok | error | slow | hold_first
    slow_seconds: float = 5.0
    packets: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    arrivals: dict[str, float] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def handle(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        # As README "Delivery to agencies" tells agencies: HMAC of "<timestamp>.<body>",
        # and a timestamp within five minutes of now.
        timestamp = headers.get("X-Hotline-Timestamp", "")
        signed = timestamp.encode() + b"." + body
        expected = "sha256=" + hmac.new(self.secret.encode(), signed, hashlib.sha256).hexdigest()
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= 300
        valid = fresh and hmac.compare_digest(headers.get("X-Hotline-Signature", ""), expected)
        key = headers.get("Idempotency-Key", "")
        with self.lock:
            first = not self.requests
            self.requests.append({"key": key, "valid": valid, "at": time.time()})
        if not valid:
            return 401, {"error": "bad signature"}
        if self.mode == "error":
            return 500, {"error": "agency system down"}
        if self.mode == "slow":
            time.sleep(self.slow_seconds)
        packet = json.loads(body)
        with self.lock:
            duplicate = key in self.packets
            if not duplicate:
                self.packets[key] = packet
                self.arrivals[key] = time.time()
        if self.mode == "hold_first" and first:
            self.release.wait(60)  # the worker is killed while we hold its request
        return 200, {"received": True, "duplicate": duplicate}

    def start(self) -> ThreadingHTTPServer:
        agency = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = agency.handle(self.headers, body)
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the worker went away while we held it

            def log_message(self, *_: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.url = f"http://127.0.0.1:{server.server_address[1]}/referrals"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@pytest.fixture
def agency() -> Iterator[AgencyServer]:
    """A running agency endpoint for FBI."""
    server_state = AgencyServer()
    server = server_state.start()
    yield server_state
    server_state.release.set()
    server.shutdown()
    server.server_close()


# --- Twilio's REST API ----------------------------------------------------------------


@dataclass
class TwilioServer:
    """Twilio's Messages endpoint, enough for the real SDK to send and parse."""

    account_sid: str = "AC00000000000000000000000000000000"
    unsubscribed: set[str] = field(default_factory=set)
    sent: list[dict[str, str]] = field(default_factory=list)
    sent_times: list[float] = field(default_factory=list)  # time.time() of each, in order
    url: str = ""

    def start(self) -> ThreadingHTTPServer:
        twilio = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                path_ok = self.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
                if not path_ok or not self.headers.get("Authorization", "").startswith("Basic "):
                    return self._answer(404, {"code": 20404, "message": "not found"})
                if form.get("To") in twilio.unsubscribed:
                    return self._answer(
                        400,
                        {"code": 21610, "message": "Attempt to send to unsubscribed recipient",
                         "more_info": "https://www.twilio.com/docs/errors/21610", "status": 400},
                    )
                sid = f"SM{len(twilio.sent):032d}"
                twilio.sent.append(form)
                twilio.sent_times.append(time.time())
                return self._answer(
                    201,
                    {"sid": sid, "account_sid": twilio.account_sid, "to": form.get("To"),
                     "from": form.get("From"), "body": form.get("Body"), "status": "queued",
                     "num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01",
                     "uri": f"/2010-04-01/Accounts/{twilio.account_sid}/Messages/{sid}.json"},
                )

            def _answer(self, status: int, answer: dict[str, Any]) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@pytest.fixture
def twilio_api() -> Iterator[TwilioServer]:
    """A local stand-in for api.twilio.com."""
    state = TwilioServer()
    server = state.start()
    yield state
    server.shutdown()
    server.server_close()


# --- SMTP -----------------------------------------------------------------------------


@dataclass
class Mailbox:
    host: str
    port: int
    messages: list[dict[str, Any]] = field(default_factory=list)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(
            {"to": list(envelope.rcpt_tos), "data": envelope.content.decode("utf-8", "replace")}
        )
        return "250 Message accepted for delivery"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) collecting what is sent."""
    from aiosmtpd.controller import Controller

    box = Mailbox("127.0.0.1", free_port())
    controller = Controller(box, hostname=box.host, port=box.port)
    controller.start()
    yield box
    controller.stop()


# --- Redis ----------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of our own, so a test may stop it without harming anyone else."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        from redis import Redis

        client = Redis.from_url(self.url, socket_timeout=1)
        wait_until(lambda: _pings(client), 10, "redis-server to start")
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A private redis-server on a free port (stopped and restarted by outage tests)."""
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("redis-server is needed for the delivery worker tests")
        pytest.skip("redis-server is not installed")
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def worker_redis_url(settings: Settings, request: pytest.FixtureRequest) -> str:
    """The shared Redis on the services backend (namespaced), a private one otherwise."""
    if backend() == "services" and settings.redis_url:
        return settings.redis_url
    return str(request.getfixturevalue("private_redis").url)


# --- the worker -----------------------------------------------------------------------


def delivery_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment variables that give a worker process these test settings."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(ROOT)),
        "HOTLINE_ENV": "test",
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": settings.secret_key,
        "PII_ENCRYPTION_KEYS": ",".join(settings.pii_encryption_keys),
        "AUDIT_KEYS": ",".join(settings.audit_keys),
        "TWILIO_AUTH_TOKEN": settings.twilio_auth_token or "",
        "ONCALL_SUPERVISOR_PHONE": ONCALL_PHONE,
        "SUPERVISOR_EMAILS": SUPERVISOR_EMAIL,
        "DELIVERY_LEASE_SECONDS": "5",
        "DELIVERY_TIMEOUT_SECONDS": "2",
        "DELIVERY_MAX_ATTEMPTS": "3",
        "DELIVERY_BACKOFF_SECONDS": "1",
        "RELAY_POLL_MS": "100",
        "SESSION_COOKIE_SECURE": "false",
        "RATE_LIMITS_ENABLED": "false",
        "LOG_LEVEL": "INFO",
        # Never the real api.twilio.com: with no network its DNS look-up and retries held
        # the only worker for minutes whenever a test happened to page someone (a closed
        # local port fails at once). Tests that check texts give their own server.
        "TWILIO_API_BASE_URL": "http://127.0.0.1:9",
    }
    env.update(extra)
    return env


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class WorkerProcess:
    """``flask --app wsgi worker`` in its own process group (so SIGKILL takes it all)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    def start(self) -> WorkerProcess:
        self._log_file = log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "worker"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the worker, its work-horse, scheduler and relay: a crashed machine.

        RQ's work-horse calls setsid(), so it leaves our process group: find every
        descendant first, then kill them all at once.
        """
        if self.process is not None and self.process.poll() is None:
            family = [self.process.pid, *_descendants(self.process.pid)]
            for pid in family:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait(10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def start_worker(
    settings: Settings, tmp_path: Path, worker_redis_url: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start delivery workers against the test database; all are stopped afterwards."""
    started: list[WorkerProcess] = []
    namespace = f"{settings.redis_namespace}{request.node.name[-20:]}-".replace("[", "_")
    namespace = "".join(c if c.isalnum() or c in "_-" else "_" for c in namespace)

    def _start(redis_url: str | None = None, **extra: str) -> WorkerProcess:
        env = delivery_env(
            settings, REDIS_URL=redis_url or worker_redis_url, REDIS_NAMESPACE=namespace, **extra
        )
        worker = WorkerProcess(env, tmp_path / f"worker{len(started)}.log").start()
        started.append(worker)
        return worker

    yield _start
    for worker in started:
        worker.stop()
    # Shown by pytest only when the test failed: what each worker said.
    for worker in started:
        if worker.log_path.exists():
            print(f"--- {worker.log_path.name} (last 4 KB)")
            print(worker.log_path.read_bytes()[-4096:].decode(errors="replace"))
    _forget_namespace(worker_redis_url, namespace)


def _forget_namespace(url: str, namespace: str) -> None:
    """Delete this test's keys (never FLUSHDB: Redis is shared)."""
    from redis import Redis

    try:
        client = Redis.from_url(url, socket_timeout=2)
        for key in client.scan_iter(f"*{namespace}*"):
            client.delete(key)
        client.close()
    except Exception:  # noqa: BLE001, S110 - a private redis may be gone already
        pass


@pytest.fixture
def delivery_runtime(app: Any, settings: Settings) -> Callable[..., Runtime]:
    """A runtime like a worker's, on the test database, with agency endpoints set."""

    def _make(**overrides: Any) -> Runtime:
        env = dict(overrides.pop("env", {}))
        # Never the real api.twilio.com: a closed local port unless a test gives its server.
        overrides.setdefault("twilio_api_base_url", "http://127.0.0.1:9")
        base = app.extensions["runtime"]
        changed = settings.with_overrides(env=env, **overrides)
        return Runtime(changed, base.engine, base.session_factory, load_catalogs(changed))

    return _make


def agency_env(agency_url: str, code: str = "FBI") -> dict[str, str]:
    """AGENCY_<CODE>_* variables pointing an agency at a local server."""
    return {
        f"AGENCY_{code}_WEBHOOK_URL": agency_url,
        f"AGENCY_{code}_WEBHOOK_SECRET": AGENCY_SECRET,
    }
