"""The deployed shape the benchmarks run against: a dedicated PostgreSQL database, a
Redis namespace, gunicorn serving ``wsgi:app`` (or the bare baseline app), RQ workers.

Every process gets its settings from the environment, as in production; nothing here is
imported into the service.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
PUBLIC_BASE_URL = "https://bench.hotline.test"
TWILIO_TOKEN = "bench-twilio-auth-token"  # noqa: S105 - a fixture value, not a secret


def _die_with_parent() -> None:
    """In the child: receive SIGTERM when the bench dies, even by SIGKILL (Linux prctl)."""
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # pragma: no cover - not Linux/glibc: stop_all() still cleans up
        pass


def cpu_count() -> int:
    """Cores this process may use (what the figures are per)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class BenchEnv:
    """One benchmark run's database, Redis prefix and process environment."""

    database: str
    pg_admin_url: str = PG_ADMIN_URL
    redis_url: str = REDIS_URL
    namespace: str = field(default_factory=lambda: f"bench{os.getpid()}-")
    web_workers: int = field(default_factory=lambda: 2 * cpu_count())
    pii_key: str = field(default_factory=lambda: Fernet.generate_key().decode())
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    audit_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        return self.pg_admin_url.rsplit("/", 1)[0] + f"/{self.database}"

    @property
    def psycopg_dsn(self) -> str:
        return self.database_url.replace("postgresql+psycopg://", "postgresql://")

    def environ(self, **extra: str) -> dict[str, str]:
        """The environment of every service process, as an operator would set it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENCY_", "TEST_"))}
        env.update(
            HOTLINE_ENV="production",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            REDIS_NAMESPACE=self.namespace,
            SECRET_KEY=self.secret_key,
            PII_ENCRYPTION_KEYS=self.pii_key,
            AUDIT_KEYS=self.audit_key,
            TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
            PUBLIC_BASE_URL=PUBLIC_BASE_URL,
            # The limiter would answer 429 to a load generator on one address; the bench
            # measures the service's ceiling, the limits are E's business (see BENCHMARKS.md).
            RATE_LIMITS_ENABLED="false",
            LOG_LEVEL="WARNING",
            PYTHONPATH=str(ROOT),
            FLASK_APP="wsgi",
        )
        env.update(extra)
        return env

    def create_database(self) -> None:
        """Drop and re-create the benchmark database, then migrate it."""
        admin = create_engine(self.pg_admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{self.database}"'))
        admin.dispose()
        self.flask("db", "upgrade")

    def drop_database(self) -> None:
        admin = create_engine(self.pg_admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
        admin.dispose()

    def clear_redis(self) -> None:
        """Delete this run's keys only (Redis is shared; never FLUSHDB)."""
        from redis import Redis

        redis = Redis.from_url(self.redis_url)
        for key in redis.scan_iter(match=f"{self.namespace}*", count=1000):
            redis.delete(key)
        for key in redis.scan_iter(match=f"rq:*{self.namespace}*", count=1000):
            redis.delete(key)
        redis.close()

    def flask(self, *args: str, timeout: float = 3600, app: str = "wsgi") -> str:
        """Run a ``flask --app <app>`` command against the bench database."""
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", app, *args],
            cwd=ROOT,
            env=self.environ(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def start(self, argv: list[str], **extra_env: str) -> subprocess.Popen[bytes]:
        """Start a long-running process in its own group (stopped with ``stop_all``)."""
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.environ(**extra_env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,  # called from the main thread only
        )
        self.processes.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop one process we started (its whole group), politely then firmly."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        if proc.stderr:
            proc.stderr.close()
        if proc in self.processes:
            self.processes.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.processes):
            self.stop(proc)

    @contextmanager
    def gunicorn(self, target: str = "wsgi:app", workers: int | None = None) -> Iterator[str]:
        """Serve ``target`` with the deployment's gunicorn settings; yield its base URL."""
        port = free_port()
        proc = self.start(
            [
                sys.executable, "-m", "gunicorn", target,
                "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers or self.web_workers),
                "--backlog", "2048",
                "--keep-alive", "5",
                "--log-level", "warning",
            ]
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(base + "/healthz", proc)
            yield base
        finally:
            self.stop(proc)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Wait until ``url`` answers 200, or fail with the process's stderr."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"server exited ({proc.returncode}):\n{err[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - local
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def process_rss_kib(pid: int) -> int:
    """Resident memory of one process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    """Direct children of a process (gunicorn's workers, an RQ worker's work horse)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except OSError:
        return []


def cpu_seconds(pid: int, reaped_children: bool = False) -> float:
    """User + system CPU a process has used so far (0 when it is gone); with
    ``reaped_children`` also that of its children that ended (RQ's work horses)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuMeter:
    """CPU used by a gunicorn (master + workers) and by the database's backends.

    On a shared, noisy machine wall-clock rates move with everyone else's load; the CPU
    a request costs moves far less, and cores / CPU-per-request is the ceiling.
    """

    env: BenchEnv
    master: int
    start_app: dict[int, float] = field(default_factory=dict)
    start_db: dict[int, float] = field(default_factory=dict)

    def _app_pids(self) -> list[int]:
        return [self.master, *children(self.master)]

    def _db_pids(self) -> list[int]:
        import psycopg

        with psycopg.connect(self.env.psycopg_dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.env.database,),
            ).fetchall()
        return [int(r[0]) for r in rows]

    def start(self) -> None:
        self.start_app = {p: cpu_seconds(p) for p in self._app_pids()}
        self.start_db = {p: cpu_seconds(p) for p in self._db_pids()}

    def stop(self) -> tuple[float, float]:
        """CPU seconds used since ``start`` by the app and by PostgreSQL."""
        app = sum(cpu_seconds(p) - self.start_app.get(p, 0.0) for p in self._app_pids())
        db = sum(cpu_seconds(p) - self.start_db.get(p, 0.0) for p in self._db_pids())
        return max(app, 0.0), max(db, 0.0)
