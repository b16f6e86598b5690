"""The application factory: a flat list of init_app calls and blueprint registrations."""

from __future__ import annotations

from datetime import timedelta

from apiflask import APIFlask
from werkzeug.middleware.proxy_fix import ProxyFix

from config import (
    cli,
    database,
    errors,
    health,
    i18n,
    kept_forms,
    login,
    logs,
    monitoring,
    pages,
    security,
)
from config.runtime import build_runtime
from config.settings import Settings
from intake import chat_views, public_pages, replay, sms_views, voice
from intake import views as tips_api
from intake.staff import (
    access_log_views,
    admin_pages,
    case_pages,
    case_views,
    casefile_pages,
    casefile_views,
    chat_pages,
    dashboard_pages,
    operator_pages,
    research_views,
    service_views,
    supervisor_pages,
)
from referrals import agency_pages, embedded, provider_pages
from referrals import views as agency_api

API_TITLE = "Hotline tip intake and referral API"
API_VERSION = "1.0.0"

# Placed by their user: tipsters (intake), the staff desk (intake.staff), agencies
# (referrals), and the shell's login. /api/ and /twilio/ are CSRF-exempt by path:
# bearer tokens and X-Twilio-Signature are their gates.
BLUEPRINTS = (
    # tipsters
    tips_api.api,
    public_pages.bp,
    chat_views.api,
    chat_views.bp,
    voice.bp,
    sms_views.bp,
    # the staff desk
    login.bp,
    kept_forms.bp,
    case_views.api,
    service_views.api,
    chat_pages.api,
    chat_pages.bp,
    casefile_views.api,
    access_log_views.api,
    operator_pages.bp,
    case_pages.bp,
    casefile_pages.bp,
    supervisor_pages.bp,
    dashboard_pages.bp,
    admin_pages.bp,
    # researchers: statistics and de-identified extracts, never a case
    research_views.api,
    research_views.pages,
    # agencies
    agency_api.api,
    agency_pages.bp,
    # service providers: a signed link, no account
    provider_pages.bp,
)


def create_app(settings: Settings | None = None) -> APIFlask:
    """Build the web app from explicit settings (tests pass their own)."""
    settings = settings or Settings.from_env()
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
    logs.init_app(app, settings)  # first: its request id is there for every later hook
    runtime = build_runtime(settings)
    database.init_app(app, runtime)
    errors.init_app(app)
    security.init_app(app, settings)
    health.init_app(app)
    monitoring.init_app(app, runtime)  # /metrics, and tips counted as they commit
    cli.init_app(app)
    embedded.init_app(app, runtime)
    pages.init_app(app)  # CSRF on every form, template helpers
    i18n.init_app(app)  # gettext catalogs (translations/), the tipster's language
    # Typed work survives an idle session: the script says "still here" three times
    # per idle lifetime, at most every five minutes.
    kept_forms.init_app(app, keepalive_seconds=min(300, int(settings.session_minutes * 20)))
    replay.init_app(app, runtime)
    _register_blueprints(app)
    return app


def _register_blueprints(app: APIFlask) -> None:
    """Every route of the app, grouped by who uses it (the one list of blueprints)."""
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
