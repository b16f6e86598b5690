"""Who is asking: bearer tokens for the API, the login session for pages."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from apiflask import HTTPTokenAuth
from flask import abort, current_app, g, redirect, request, session, url_for

from config.database import db_session
from intake.outage import DATABASE_DOWN
from intake.replay import TOKEN_MAX_AGE
from intake.spool import Spool
from workflows.accounts import token_digest, user_for_token
from workflows.models import User
from workflows.vocabulary import DESK

F = TypeVar("F", bound=Callable[..., Any])

STAFF_WHO_LOG_CALLS = DESK

# A login session ends 12 h after the login, active or not (the idle limit is
# SESSION_MINUTES, enforced by the cookie's signed timestamp).
SESSION_ABSOLUTE_SECONDS = 12 * 3600

token_auth = HTTPTokenAuth(scheme="Bearer", description="A token from `flask tokens create`.")


@token_auth.verify_token
def _verify_token(token: str) -> User | None:
    if not token:
        return None
    spool = current_app.extensions.get("spool")
    try:
        user = user_for_token(db_session(), token)
    except DATABASE_DOWN:
        if spool is None:
            raise
        user = _user_from_spool(spool, token)
    else:
        if user is not None and spool is not None:
            _remember(spool, token, user)
    if user is not None:
        g.current_user = user
    return user


_remembered: dict[str, float] = {}  # token digest -> when this process last wrote it


def _remember(spool: Spool, token: str, user: User) -> None:
    """Keep staff tokens verified against the database in the spool, for an outage.

    Written at most once an hour per token and process: one small write, off the
    path of the tips themselves.
    """
    if user.role not in STAFF_WHO_LOG_CALLS:
        return
    digest = token_digest(token)
    now = time.monotonic()
    if now - _remembered.get(digest, -3600.0) < 3600:
        return
    spool.remember_token(digest, user.id, user.username, user.role)
    _remembered[digest] = now


def _user_from_spool(spool: Spool, token: str) -> User | None:
    """The database is down: a staff token it confirmed within a day still works, for
    the one thing that can be done now (an operator's call log, spooled)."""
    known = spool.known_token(token_digest(token), TOKEN_MAX_AGE)
    if known is None:
        return None
    user_id, username, role = known
    return User(id=user_id, username=username, role=role, active=True)  # not in a session


@token_auth.get_user_roles
def _user_roles(user: User) -> list[str]:
    return [user.role]


def current_user() -> User | None:
    """The authenticated user of this request (token or login session), if any."""
    user = g.get("current_user")
    if user is not None:
        return user
    user_id = session.get("user_id")
    if user_id is None:
        return None
    login_at = session.get("login_at")
    if not isinstance(login_at, int) or time.time() - login_at > SESSION_ABSOLUTE_SECONDS:
        return None  # older than 12 h however active: log in again
    user = db_session().get(User, user_id)
    if user is None or not user.active or session.get("epoch") != (user.session_epoch or 0):
        return None  # logged out since (or deactivated): the cookie is dead
    g.current_user = user
    g.auth_by = "session"
    return user


def actor_name(user: User | None) -> str:
    """How the audit log names who acted."""
    return user.username if user is not None else "anonymous"


def login_required(roles: Iterable[str] | None = None) -> Callable[[F], F]:
    """Pages: no session → the login page; a role not in ``roles`` → 403.

    Agency users get 404 instead, as in the API: an agency never learns that a case or
    a page it may not open exists.
    """
    allowed = frozenset(roles or ())

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                # A staff form posted after the session ended: the web shell keeps it
                # (config.kept_forms registers itself here; auth cannot import it).
                keep = current_app.extensions.get("keep_failed_submit")
                kept = keep("session") if keep and request.method == "POST" else None
                if kept is not None:
                    return kept
                return redirect(url_for("login.login", next=request.full_path.rstrip("?")))
            if allowed and user.role not in allowed:
                abort(404 if user.role == "agency" else 403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator
