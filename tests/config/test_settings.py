"""Settings are read once, strictly, and the factory honours them."""

from __future__ import annotations

import pytest

from config.app import create_app
from config.settings import Settings, SettingsError, sqlalchemy_url
from tests.conftest import backend
from workflows.db import make_engine


def test_defaults_need_no_servers(tmp_path) -> None:
    settings = Settings.from_env({"HOTLINE_CONFIG_DIR": "config"})
    assert settings.database_url.startswith("sqlite:///")
    assert settings.redis_url is None and not settings.uses_redis


@pytest.mark.parametrize(
    ("name", "value"),
    [("SMTP_PORT", "yes"), ("SESSION_COOKIE_SECURE", "maybe"), ("HOTLINE_ENV", "staging"),
     ("DELIVERY_MAX_ATTEMPTS", "0"), ("HOTLINE_CONFIG_DIR", "/nonexistent/dir")],
)
def test_nonsense_is_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize(
    "missing", ["SECRET_KEY", "TWILIO_AUTH_TOKEN", "PII_ENCRYPTION_KEYS", "AUDIT_KEYS"]
)
def test_production_refuses_to_start_without_its_secrets(missing: str) -> None:
    env = {
        "HOTLINE_ENV": "production",
        "SECRET_KEY": "s" * 40,
        "TWILIO_AUTH_TOKEN": "t" * 32,
        "PII_ENCRYPTION_KEYS": "k",
        "AUDIT_KEYS": "a" * 40,
    }
    del env[missing]
    with pytest.raises(SettingsError, match=missing):
        Settings.from_env(env)


def test_agency_endpoints_come_from_the_environment() -> None:
    settings = Settings.from_env({"AGENCY_FBI_WEBHOOK_URL": "https://fbi.example/hook"})
    assert settings.agency_env("fbi", "webhook_url") == "https://fbi.example/hook"
    assert settings.agency_env("ICE", "WEBHOOK_URL") is None


def test_factory_builds_an_app_from_explicit_settings(settings: Settings) -> None:
    app = create_app(settings.with_overrides(session_minutes=5))
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    assert app.permanent_session_lifetime.total_seconds() == 300
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.test_client().get("/healthz").get_json() == {"status": "ok"}


def test_readyz_reports_database_and_queue(client) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.get_json()["checks"]["database"] == "ok"


# --- issue 11, item 8: unsafe defaults ------------------------------------------------


def test_the_data_key_is_never_derived_from_secret_key(tmp_path) -> None:
    import base64
    import hashlib

    from cryptography.fernet import Fernet

    env = {"SECRET_KEY": "one secret for sessions", "HOTLINE_INSTANCE_DIR": str(tmp_path)}
    first = Settings.from_env(env)
    # A key of its own, kept in the instance directory and shared by every process.
    assert first.pii_encryption_keys == ((tmp_path / "pii_key").read_text().strip(),)
    assert Settings.from_env(env).pii_encryption_keys == first.pii_encryption_keys
    Fernet(first.pii_encryption_keys[0].encode())  # a real Fernet key
    derived = base64.urlsafe_b64encode(
        hashlib.sha256(b"dev-pii:" + env["SECRET_KEY"].encode()).digest()
    ).decode()
    assert derived not in first.pii_encryption_keys
    # Another SECRET_KEY (rotated sessions) keeps the same data key.
    other = Settings.from_env({**env, "SECRET_KEY": "a rotated session secret"})
    assert other.pii_encryption_keys == first.pii_encryption_keys


def test_an_app_without_pii_keys_refuses_to_start(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="PII_ENCRYPTION_KEYS"):
        create_app(settings.with_overrides(pii_encryption_keys=()))


def test_instance_key_files_are_born_private(tmp_path, monkeypatch) -> None:
    """0600 from the first byte: created with O_CREAT|O_EXCL and mode 0600, never chmod-ed
    afterwards (a file made 0644 and then chmod-ed is readable in between)."""
    import os
    import stat
    from pathlib import Path

    opened: list[tuple[str, int, int]] = []
    real_open = os.open

    def recording_open(path, flags, mode=0o777, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append((str(path), flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    def no_chmod(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a key file was chmod-ed after it was created")

    monkeypatch.setattr(os, "open", recording_open)
    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(Path, "chmod", no_chmod)
    old_umask = os.umask(0)  # a permissive umask must not widen the files
    try:
        Settings.from_env({"HOTLINE_INSTANCE_DIR": str(tmp_path / "instance")})
    finally:
        os.umask(old_umask)
    for name in ("secret_key", "pii_key", "audit_key"):
        path = tmp_path / "instance" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    writes = [(p, f, m) for p, f, m in opened if f & os.O_CREAT]
    assert len(writes) == 3  # secret_key, pii_key, audit_key
    assert all(f & os.O_EXCL and m == 0o600 for _p, f, m in writes), writes
    assert stat.S_IMODE((tmp_path / "instance").stat().st_mode) == 0o700


def test_processes_starting_together_agree_on_one_key(tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from config.settings import instance_secret

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda i: instance_secret(tmp_path, "k", lambda: str(i)), range(32)))
    assert keys == {(tmp_path / "k").read_text()}
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # no temporary file left behind


@pytest.mark.parametrize(
    ("environment_set", "bind", "warned"),
    [
        (False, ("0.0.0.0:5000",), True),
        (False, ("[::]:8000",), True),
        (False, ("hotline.example.org:80",), True),
        (False, ("127.0.0.1:5000",), False),
        (False, ("localhost:5000", "[::1]:5000", "unix:/run/hotline.sock"), False),
        (True, ("0.0.0.0:5000",), False),
    ],
)
def test_hotline_env_unset_on_a_reachable_address_warns_loudly(
    settings: Settings, make_app, caplog, environment_set, bind, warned
) -> None:
    with caplog.at_level("WARNING"):
        make_app(environment_set=environment_set, bind=bind)
    messages = [r.getMessage() for r in caplog.records if "HOTLINE_ENV IS UNSET" in r.getMessage()]
    assert bool(messages) is warned, messages
    if warned:
        assert bind[0] in messages[0]


def test_make_run_tells_the_app_its_bind() -> None:
    from config.settings import ROOT

    settings = Settings.from_env({"HOTLINE_BIND": "0.0.0.0:5000"})
    assert settings.bind == ("0.0.0.0:5000",) and settings.environment_set is False
    assert "HOTLINE_BIND=$${HOST:-127.0.0.1}:$${PORT:-5000}" in (ROOT / "Makefile").read_text()


@pytest.mark.slow
def test_gunicorn_on_every_address_without_hotline_env_warns(tmp_path) -> None:
    """The real gunicorn, reading the project's gunicorn.conf.py, with ``-b 0.0.0.0``."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    from config.settings import ROOT

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOTLINE_INSTANCE_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    gunicorn = Path(sys.executable).parent / "gunicorn"
    proc = subprocess.Popen(
        [str(gunicorn), "-w", "1", "-b", f"0.0.0.0:{port}", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "HOTLINE_ENV IS UNSET" in line:
                break
    finally:
        proc.send_signal(signal.SIGINT)  # quick shutdown (SIGTERM waits for workers)
        try:
            proc.wait(timeout=15)
        finally:
            proc.kill()
            assert proc.stdout is not None
            proc.stdout.close()
    assert any("HOTLINE_ENV IS UNSET" in line and f"0.0.0.0:{port}" in line for line in lines), (
        "".join(lines)
    )


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u:p%40ss@db:5432/hotline", "postgresql+psycopg://u:p%40ss@db:5432/hotline"),
        ("postgres://u@db/hotline?sslmode=require", "postgresql+psycopg://u@db/hotline?sslmode=require"),
        ("postgresql+psycopg://u@db/hotline", "postgresql+psycopg://u@db/hotline"),
        ("sqlite:///instance/x.sqlite3", "sqlite:///instance/x.sqlite3"),
    ],
)
def test_a_bare_postgresql_url_uses_the_installed_psycopg_3(given: str, used: str) -> None:
    settings = Settings.from_env({"DATABASE_URL": given})
    assert settings.database_url == used == sqlalchemy_url(used)
    engine = make_engine(settings.database_url)  # psycopg2 is not installed: this would raise
    try:
        assert engine.dialect.driver in {"psycopg", "pysqlite"}
    finally:
        engine.dispose()


@pytest.mark.services
@pytest.mark.skipif(backend() != "services", reason="needs PostgreSQL (services backend)")
def test_the_url_a_platform_hands_out_connects(settings: Settings) -> None:
    bare = settings.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    engine = make_engine(Settings.from_env({"DATABASE_URL": bare}).database_url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("select 1").scalar() == 1
    finally:
        engine.dispose()
