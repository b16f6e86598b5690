"""The application factory: a flat list of init_app calls and blueprint registrations."""

from __future__ import annotations

import logging
from datetime import timedelta

from apiflask import APIFlask
from werkzeug.middleware.proxy_fix import ProxyFix

from config import cli, database, errors, health, security
from config.runtime import build_runtime
from config.settings import Settings
from referrals import relay

API_TITLE = "Hotline tip intake and referral API"
API_VERSION = "1.0.0"


def create_app(settings: Settings | None = None) -> APIFlask:
    """Build the web app from explicit settings (tests pass their own)."""
    settings = settings or Settings.from_env()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = APIFlask(
        "hotline",
        title=API_TITLE,
        version=API_VERSION,
        spec_path="/api/v1/openapi.json",
        docs_path=None,
        template_folder="templates",
        static_folder="static",
        root_path=str(settings.config_dir.parent / "config"),
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SECRET_KEY_FALLBACKS=list(settings.secret_key_fallbacks),
        MAX_CONTENT_LENGTH=1024 * 1024,
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="hotline_session",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_minutes),
        JSON_SORT_KEYS=False,
        HOTLINE_SETTINGS=settings,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if settings.proxy_count:
        # Exactly as many proxies as are in front, or X-Forwarded-For spoofs rate limits.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=settings.proxy_count,
            x_proto=settings.proxy_count,
            x_host=settings.proxy_count,
        )
    runtime = build_runtime(settings)
    database.init_app(app, runtime)
    errors.init_app(app)
    security.init_app(app, settings)
    health.init_app(app)
    cli.init_app(app)
    relay.init_app(app, runtime)
    _register_blueprints(app)
    return app


def _register_blueprints(app: APIFlask) -> None:
    from intake.views import api as intake_api

    app.register_blueprint(intake_api)
    from intake.case_views import api as case_api

    app.register_blueprint(case_api)
    from referrals.views import api as referrals_api

    app.register_blueprint(referrals_api)
    from config.security_views import api as security_api

    app.register_blueprint(security_api)
    from intake.twilio import twilio  # CSRF-exempt: X-Twilio-Signature is its gate

    app.register_blueprint(twilio)
    from config import pages  # every server-rendered page, with CSRF on its forms

    pages.register(app)
