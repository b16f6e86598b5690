"""Who is asking: bearer tokens for the API, the login session for pages."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from apiflask import HTTPTokenAuth
from flask import abort, current_app, g, redirect, request, session, url_for

from config.database import db_session
from workflows.accounts import user_for_token
from workflows.models import User

F = TypeVar("F", bound=Callable[..., Any])

token_auth = HTTPTokenAuth(scheme="Bearer", description="A token from `flask tokens create`.")


@token_auth.verify_token
def _verify_token(token: str) -> User | None:
    if not token:
        return None
    user = user_for_token(db_session(), token)
    if user is not None:
        g.current_user = user
    return user


@token_auth.get_user_roles
def _user_roles(user: User) -> list[str]:
    return [user.role]


def current_user() -> User | None:
    """The authenticated user of this request (token or login session), if any."""
    user = g.get("current_user")
    if user is not None:
        return user  # type: ignore[no-any-return]
    user_id = session.get("user_id")
    if user_id is None:
        return None
    user = db_session().get(User, user_id)
    if user is None or not user.active:
        return None
    g.current_user = user
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
