"""What every server-rendered page shares: CSRF on every form and the template helpers.

The page blueprints themselves are listed in the app factory (``config.app.BLUEPRINTS``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apiflask import APIFlask
from flask import request
from flask_wtf.csrf import CSRFError, CSRFProtect

from config.auth import current_user
from config.errors import error_answer
from config.kept_forms import keep_failed_submit
from workflows.db import utcnow
from workflows.deadlines import is_overdue, referral_overdue

csrf = CSRFProtect()

# Answered with bearer tokens or Twilio signatures, never a session cookie: a forged
# cross-site request carries neither, so these paths need no CSRF token.
CSRF_FREE_PREFIXES = ("/api/", "/twilio/")


def as_utc(value: datetime | None) -> datetime | None:
    """Stored times are UTC; SQLite hands them back without a zone."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def age(since: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the largest unit that reads well ("3 h 20 min", "2 d 4 h")."""
    if since is None:
        return "—"
    seconds = int(((now or utcnow()) - as_utc(since)).total_seconds())  # type: ignore[operator]
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{sign}{days} d {hours} h"
    if hours:
        return f"{sign}{hours} h {minutes} min"
    return f"{sign}{minutes} min"


def plain(value: Any) -> str:
    """A stored value as a person reads it: yes/no, lists joined, nothing as a dash."""
    if value is None or value == []:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return "; ".join(plain(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{str(k).replace('_', ' ')}: {plain(v)}" for k, v in value.items())
    return str(value)


def overdue(deadline: datetime | None) -> bool:
    """Past due now (workflows.deadlines' rule)."""
    return is_overdue(deadline, utcnow())


def _refused_token(error: CSRFError) -> Any:
    if request.endpoint == "public_pages.tip_submit":
        from intake.public_pages import resend_tip_form

        return resend_tip_form(error.description)
    # A staff form whose session or token ran out: keep what was typed, lead back to it.
    kept = keep_failed_submit("csrf")
    if kept is not None:
        return kept
    return error_answer(400, f"{error.description} Go back, reload the page and try again.")


def _protect_forms() -> Any:
    if request.endpoint is None:
        return  # no route (404) or not this method (405): nothing runs, routing answers
    if request.method in {"POST", "PUT", "PATCH", "DELETE"} and not request.path.startswith(
        CSRF_FREE_PREFIXES
    ):
        csrf.protect()


def init_app(app: APIFlask) -> None:
    """CSRF on every form and the template helpers."""
    # Tokens live as long as the session (30 minutes idle), not one hour from page
    # load: an operator on a long call must not lose the form.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    # With Referrer-Policy: no-referrer browsers send no Referer, which Flask-WTF's
    # strict HTTPS check demands; the token and SameSite cookies already bind the form.
    app.config.setdefault("WTF_CSRF_SSL_STRICT", False)
    # Checked in our own before_request, so the exemption is by path and does not
    # depend on the order in which blueprints are registered.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf.init_app(app)
    app.before_request(_protect_forms)
    app.register_error_handler(CSRFError, _refused_token)
    app.jinja_env.globals.update(
        current_user=current_user, now=utcnow, as_utc=as_utc, age=age, overdue=overdue,
        referral_late=lambda referral: referral_overdue(referral, utcnow()),
    )
    app.jinja_env.filters["dictsum"] = lambda values: sum(values.values())
    app.jinja_env.filters["plain"] = plain
    # Browsers ask for /favicon.ico on pages without an icon link (the error pages).
    app.add_url_rule(
        "/favicon.ico",
        "favicon",
        app.doc(hide=True)(lambda: app.send_static_file("favicon.svg")),  # not an API route
        methods=["GET"],
    )
