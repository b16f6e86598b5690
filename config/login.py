"""Login and logout for the pages, and each role's start page.

Sessions are Flask's signed cookies (Secure, HttpOnly, SameSite=Lax, short lifetime:
config/app.py); the password check and the lock-out live in ``workflows.logins``.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import Blueprint, g, redirect, render_template, request, session, url_for

from config.auth import current_user, login_required
from config.database import db_session
from workflows.audit import record_event
from workflows.db import transaction
from workflows.logins import LoginFailed, authenticate, end_sessions

bp = Blueprint("login", __name__)

MAX_NEXT = 2000
MAX_DECODING_ROUNDS = 4

# Where each role lands after logging in.
START_PAGES = {
    "operator": "operator_pages.start",
    "supervisor": "supervisor_pages.queues",
    "agency": "agency_pages.inbox",
    "admin": "admin_pages.start",
    "researcher": "research_pages.start",
}


def _is_local_path(text: str) -> bool:
    if not text.startswith("/") or text.startswith("//") or len(text) > MAX_NEXT:
        return False
    # Browsers drop tabs and newlines inside URLs and read ``\\`` as ``/``: ``/\t/evil``
    # and ``/\\evil`` both become ``//evil``, another host (issue 11, item 5).
    if "\\" in text or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text):
        return False
    parts = urlsplit(text)
    return not parts.scheme and not parts.netloc


def safe_next(target: str | None) -> str | None:
    """Only a path on this site, never another host (an open redirect); else None.

    Checked as given and after each round of percent-decoding (``/%09/evil.example``,
    ``/%252F%252Fevil``), so no encoding smuggles a host past the check.
    """
    if not target:
        return None
    text = target
    for _ in range(MAX_DECODING_ROUNDS):
        if not _is_local_path(text):
            return None
        decoded = unquote(text)
        if decoded == text:
            return target
        text = decoded
    return None  # still changing after that many rounds: nobody writes a link like this


def start_url(role: str) -> str:
    """The start page of a role."""
    return url_for(START_PAGES.get(role, "public_pages.home"))


@bp.get("/login")
def login() -> Any:
    user = current_user()
    if user is not None:
        return redirect(start_url(user.role))
    target = safe_next(request.args.get("next")) or ""
    return render_template("login/login.html", error=None, next=target)


@bp.post("/login")
def login_submit() -> Any:
    username = request.form.get("username", "")[:64]
    password = request.form.get("password", "")[:1024]
    target = safe_next(request.form.get("next"))
    db = db_session()
    with transaction(db):  # commits a counted failure too
        try:
            user = authenticate(db, username, password, request.remote_addr or "-")
        except LoginFailed:
            user = None
    if user is None:
        return (
            render_template("login/login.html", error=LoginFailed.message, next=target or ""),
            401,
        )
    # A fresh session on login: nothing from before it (fixation) survives.
    session.clear()
    session["user_id"] = user.id
    session["epoch"] = user.session_epoch or 0
    session["login_at"] = int(time.time())  # the absolute lifetime counts from here
    session.permanent = True
    return redirect(target or start_url(user.role))


@bp.post("/logout")
def logout() -> Any:
    user = current_user()
    if user is not None and g.get("auth_by") == "session":
        # Server-side: the cookie is signed and would stay valid until it expires, so the
        # user's epoch moves on and every cookie issued before (this one included) dies.
        db = db_session()
        with transaction(db):
            end_sessions(user)
            record_event(db, actor=user.username, action="logout")
    session.clear()
    return redirect(url_for("login.login"))


@bp.get("/start")
@login_required()
def start() -> Any:
    user = current_user()
    assert user is not None
    return redirect(start_url(user.role))
