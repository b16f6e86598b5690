"""Settings are read once, strictly, and the factory honours them."""

from __future__ import annotations

import pytest

from config.app import create_app
from config.settings import Settings, SettingsError


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


@pytest.mark.parametrize("missing", ["SECRET_KEY", "TWILIO_AUTH_TOKEN", "PII_ENCRYPTION_KEYS"])
def test_production_refuses_to_start_without_its_secrets(missing: str) -> None:
    env = {
        "HOTLINE_ENV": "production",
        "SECRET_KEY": "s" * 40,
        "TWILIO_AUTH_TOKEN": "t" * 32,
        "PII_ENCRYPTION_KEYS": "k",
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
