"""The admin's start page: who can log in, the agencies and the routing rules in force.

Read-only: users are managed with ``flask users``/``flask tokens`` and the rules in the
YAML files under HOTLINE_CONFIG_DIR, so every change leaves a trace in version control.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template
from sqlalchemy import select

from config.auth import login_required
from config.database import db_session, runtime
from workflows.logins import is_locked
from workflows.models import User
from workflows.vocabulary import ADMIN

bp = Blueprint("admin_pages", __name__, template_folder="templates")


@bp.get("/admin/")
@login_required(ADMIN)
def start() -> Any:
    db = db_session()
    users = db.scalars(select(User).order_by(User.role, User.username)).all()
    catalogs = runtime().catalogs
    routing = catalogs.get("routing")
    return render_template(
        "admin/start.html",
        users=[(user, is_locked(db, user)) for user in users],
        agencies=list((catalogs.get("agencies") or {}).values()),
        rules=list(getattr(routing, "rules", ()) or ()),
    )
