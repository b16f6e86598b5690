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

from config import catalogs
from config.settings import Settings, SettingsError, exposure_warning
from workflows.audit import audit_keys
from workflows.db import make_engine, make_session_factory
from workflows.pii import keyring


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
    if not settings.pii_encryption_keys:
        # Never derived from SECRET_KEY (Settings.from_env makes an instance key file
        # outside production): one leaked secret must not open sessions and data both.
        raise SettingsError("PII_ENCRYPTION_KEYS is empty: no key to encrypt personal data")
    warning = exposure_warning(settings.environment_set, settings.bind)
    if warning:
        logging.getLogger(__name__).warning(warning)
    keyring.configure(settings.pii_encryption_keys, settings.pii_lookup_key)
    if not settings.audit_keys:
        raise SettingsError("AUDIT_KEYS is empty: no key to sign the audit chain")
    audit_keys.configure(settings.audit_keys)
    engine = make_engine(settings.database_url)
    runtime = Runtime(settings, engine, make_session_factory(engine))
    runtime.catalogs = load_catalogs(settings)
    _current = runtime
    return runtime


def load_catalogs(settings: Settings) -> dict[str, Any]:
    """Load every YAML catalog the domain needs; a broken file fails start-up."""
    return catalogs.load_all(settings.config_dir, settings)


def current_runtime() -> Runtime:
    """The runtime this process built (workers and jobs use it)."""
    if _current is None:
        raise RuntimeError("build_runtime() has not been called in this process")
    return _current
