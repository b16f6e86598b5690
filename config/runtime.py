"""What a process needs to do work: settings, database and the loaded YAML catalogs.

Built once by the web app factory and once by each worker, so both see the same
configuration and neither reads the environment on its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from workflows.db import make_engine, make_session_factory
from workflows.pii import development_key, keyring


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    catalogs: dict[str, Any] = field(default_factory=dict)

    def session(self) -> Session:
        """A new session; the caller closes it."""
        return self.session_factory()


_current: Runtime | None = None


def build_runtime(settings: Settings) -> Runtime:
    """Connect (lazily) to the database, set the PII keys and load config catalogs."""
    global _current
    keys = settings.pii_encryption_keys or (development_key(settings.secret_key),)
    if not settings.pii_encryption_keys:
        logging.getLogger(__name__).warning(
            "PII_ENCRYPTION_KEYS is unset: using a key derived from SECRET_KEY (development only)"
        )
    keyring.configure(keys, settings.pii_lookup_key)
    engine = make_engine(settings.database_url)
    runtime = Runtime(settings, engine, make_session_factory(engine))
    runtime.catalogs = load_catalogs(settings)
    _current = runtime
    return runtime


def load_catalogs(settings: Settings) -> dict[str, Any]:
    """Load every YAML catalog the domain needs; a broken file fails start-up."""
    from config import catalogs

    return catalogs.load_all(settings.config_dir, settings)


def current_runtime() -> Runtime:
    """The runtime this process built (workers and jobs use it)."""
    if _current is None:
        raise RuntimeError("build_runtime() has not been called in this process")
    return _current
