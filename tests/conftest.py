"""Shared fixtures: settings, app, client, runner, db_session, users with tokens.

Backends: ``TEST_BACKEND=embedded`` (SQLite file, in-process queue) is the default for
a local run; ``TEST_BACKEND=services`` uses the real PostgreSQL and Redis of
``TEST_DATABASE_URL``/``TEST_REDIS_URL`` (defaults: 127.0.0.1). With ``CI=true`` the
services backend must be reachable: a test session that cannot reach them fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from config.app import create_app
from config.cli import upgrade_database
from config.settings import ROOT, Settings
from tests import factories
from workflows.accounts import create_token, create_user
from workflows.db import Base
from workflows.pii import generate_key

# The page fixtures serve tests in several packages (staff desk, public pages, shell).
pytest_plugins = ("tests.page_clients",)

PG_ADMIN_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_BASE_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
TEST_OUTPUT = ROOT / "test-output"


def backend() -> str:
    """Which backend this test session runs on."""
    chosen = os.environ.get("TEST_BACKEND")
    if chosen:
        return chosen
    return "services" if os.environ.get("CI", "").lower() == "true" else "embedded"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that run real RQ worker processes take turns on one xdist worker.

    Run side by side on two xdist workers they starved each other of this machine's two
    cores (each worker process is a relay, a scheduler and a work-horse) and missed
    their deadlines in CI; in one group they take about two minutes in all.
    """
    for item in items:
        if "start_worker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("real-worker"))


def pytest_report_header(config: pytest.Config) -> str:
    return f"hotline test backend: {backend()}"


def _run_id(worker_id: str) -> str:
    # Unique per test run and xdist worker, so runs side by side never share data.
    return f"{os.getpid()}_{worker_id}"


def _postgres_database(worker_id: str) -> str:
    name = f"hotline_test_{_run_id(worker_id)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - name the cause, then fail the session
        pytest.exit(f"PostgreSQL at {PG_ADMIN_URL} is unreachable: {exc}", returncode=3)
    finally:
        admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _redis_url() -> str:
    from redis import Redis

    url = f"{REDIS_BASE_URL}/1"
    try:
        Redis.from_url(url, socket_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        pytest.exit(f"Redis at {url} is unreachable: {exc}", returncode=3)
    return url


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """argon2id at a test cost: production's ~200 ms CPU per hash would dominate the
    hundreds of logins and users the suite makes; the algorithm and code are the same."""
    import workflows.accounts as accounts

    production = accounts.password_hasher
    accounts.password_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    accounts.password_hasher = production


@pytest.fixture(scope="session")
def worker_id_safe(request: pytest.FixtureRequest) -> str:
    """The xdist worker id ("master" without xdist)."""
    return getattr(request.config, "workerinput", {}).get("workerid", "master")


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, worker_id_safe: str) -> Settings:
    """Settings for this test session, on a freshly migrated database."""
    if backend() == "services":
        database_url = _postgres_database(worker_id_safe)
        redis_url: str | None = _redis_url()
    else:
        database_url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        redis_url = None
    upgrade_database(database_url)
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_namespace=f"t{_run_id(worker_id_safe)}-",
        secret_key="test-secret-key-not-for-production",
        environment="test",
        twilio_auth_token="test-twilio-auth-token",
        pii_encryption_keys=(generate_key(),),
        audit_keys=("test-audit-key-" + os.urandom(16).hex(),),
        session_cookie_secure=False,
        embedded_worker=False,
        rate_limits_enabled=False,
        public_base_url="https://hotline.example.org",
        spool_path=tmp_path_factory.mktemp("spool"),
    )


@pytest.fixture(scope="session")
def app(settings: Settings):  # type: ignore[no-untyped-def]
    """The app under test, built once per session from the test settings."""
    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["runtime"].engine.dispose()
    if settings.database_url.startswith("postgresql"):
        name = settings.database_url.rsplit("/", 1)[1]
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _truncate_all(session: Session) -> None:
    tables = list(reversed(Base.metadata.sorted_tables))
    if session.get_bind().dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for table in tables:
            session.execute(table.delete())
    session.commit()


@pytest.fixture(autouse=True)
def _process_keys_restored(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, this process encrypts and signs with the session's keys again.

    A test that configures keys of its own (the spool's, a private cluster's) left them
    in place: rows written afterwards were sealed with a key the worker processes of later
    tests did not hold, so their deliveries and texts failed, and audit checks named the
    wrong key, depending on which tests an xdist worker had run before.
    """
    from workflows.audit import audit_keys
    from workflows.pii import keyring

    settings = request.getfixturevalue("settings")
    yield
    keyring.configure(settings.pii_encryption_keys, settings.pii_lookup_key)
    audit_keys.configure(settings.audit_keys)


@pytest.fixture(autouse=True)
def _clean_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts from empty tables (only when it used the database)."""
    uses_db = "settings" in request.fixturenames
    application = request.getfixturevalue("app") if uses_db else None
    yield
    if application is not None:
        with application.extensions["runtime"].session() as session:
            _truncate_all(session)


@pytest.fixture
def make_app(app, settings: Settings) -> Iterator[Callable[..., object]]:  # type: ignore[no-untyped-def]
    """Another app on the test database with some settings changed (``make_app(x=1)``).

    Building an app sets the process's PII keys and current runtime; both are put back
    to the session app's afterwards, so later tests in this process are unaffected.
    """
    import config.runtime
    from workflows.audit import audit_keys
    from workflows.pii import keyring

    built = []

    def _make(**overrides: object):  # type: ignore[no-untyped-def]
        other = create_app(settings.with_overrides(**overrides))
        other.config["TESTING"] = True
        built.append(other)
        return other

    yield _make
    for other in built:
        other.extensions["runtime"].engine.dispose()
    keyring.configure(settings.pii_encryption_keys, settings.pii_lookup_key)
    audit_keys.configure(settings.audit_keys)
    config.runtime._current = app.extensions["runtime"]


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    """A test client for the app."""
    return app.test_client()


@pytest.fixture
def runner(app):  # type: ignore[no-untyped-def]
    """A CLI runner for ``flask`` commands."""
    return app.test_cli_runner()


@pytest.fixture
def catalogs(app) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The app's loaded YAML catalogs (the domain takes them as an argument)."""
    return app.extensions["runtime"].catalogs  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _seeded_factories() -> None:
    """Each test gets the same fake data whatever ran before it (tests/factories.py)."""
    factories.reseed()


@pytest.fixture
def db_session(app) -> Iterator[Session]:  # type: ignore[no-untyped-def]
    """A session on the test database, closed after the test; the factories
    (tests/factories.py) create their rows in it."""
    session = app.extensions["runtime"].session()
    with factories.bound_to(session):
        yield session
    session.close()


@dataclass
class Actor:
    username: str
    role: str
    token: str
    agency: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def make_actor(app) -> Callable[..., Actor]:  # type: ignore[no-untyped-def]
    """Create a user with a token: ``make_actor("operator")``, ``make_actor("agency", "FBI")``."""
    counter = {"n": 0}

    def _make(role: str, agency: str | None = None, password: str | None = None) -> Actor:
        counter["n"] += 1
        name = f"{role}{counter['n']}" + (f"-{agency.lower()}" if agency else "")
        with app.extensions["runtime"].session() as session:
            create_user(session, name, role, agency, password)
            token = create_token(session, name)
            session.commit()
        return Actor(name, role, token, agency)

    return _make


@pytest.fixture
def operator(make_actor) -> Actor:  # type: ignore[no-untyped-def]
    """An operator with a token."""
    return make_actor("operator")


@pytest.fixture
def supervisor(make_actor) -> Actor:  # type: ignore[no-untyped-def]
    """A supervisor with a token."""
    return make_actor("supervisor")


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Where tests leave screenshots and reports (git ignores it)."""
    TEST_OUTPUT.mkdir(exist_ok=True)
    return TEST_OUTPUT
