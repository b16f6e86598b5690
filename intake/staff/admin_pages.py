"""The admin's pages: who can log in, the agencies and the routing rules in force
(read-only), and the service directory, whose entries admins add and edit here.

Users are managed with ``flask users``/``flask tokens`` and the rules in the YAML files
under HOTLINE_CONFIG_DIR, so every change leaves a trace in version control. Directory
entries live in the database (an HSDS import, or these pages); every change is on the
audit log (``workflows.provider_admin``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from config.auth import current_user, login_required
from config.database import db_session, runtime
from workflows.db import transaction
from workflows.errors import InvalidInput
from workflows.jurisdiction import US_STATES
from workflows.logins import is_locked
from workflows.models import User
from workflows.provider_admin import add_provider, edit_provider
from workflows.providers import SERVICE_TYPES, ServiceProvider
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


@bp.get("/admin/providers")
@login_required(ADMIN)
def providers() -> Any:
    entries = db_session().scalars(
        select(ServiceProvider).order_by(ServiceProvider.name, ServiceProvider.id)
    ).all()
    return render_template("admin/providers.html", providers=entries)


def provider_values(form: Any) -> dict[str, Any]:
    """The form as ``workflows.provider_admin`` takes it (lists from checkboxes and a
    comma-separated language field)."""
    values: dict[str, Any] = {
        name: form.get(name, "")
        for name in ("name", "organization", "description", "address", "city", "state",
                     "latitude", "longitude", "phone", "email", "webhook_url")
    }
    values["service_types"] = form.getlist("service_types")
    values["languages"] = (form.get("languages") or "").split(",")
    return values


def _form(provider: ServiceProvider | None, values: dict[str, Any] | None = None,
          error: InvalidInput | None = None) -> Any:
    if values is None and provider is not None:
        values = {name: getattr(provider, name) for name in (
            "name", "organization", "description", "service_types", "languages", "address",
            "city", "state", "latitude", "longitude", "phone", "email", "webhook_url")}
    values = values or {"service_types": [], "languages": ["en"]}
    page = render_template(
        "admin/provider_form.html", provider=provider, values=values, error=error,
        service_types=SERVICE_TYPES, us_states=US_STATES,
    )
    return (page, 422) if error is not None else page


def _admin_name() -> str:
    user = current_user()
    assert user is not None  # login_required guarantees it
    return user.username


@bp.get("/admin/providers/new")
@login_required(ADMIN)
def new_provider() -> Any:
    return _form(None)


@bp.post("/admin/providers/new")
@login_required(ADMIN)
def create_provider() -> Any:
    values = provider_values(request.form)
    session = db_session()
    try:
        with transaction(session):
            provider = add_provider(session, _admin_name(), values)
    except InvalidInput as exc:
        return _form(None, values, exc)
    flash(_("Added %(name)s.", name=provider.name), "ok")
    return redirect(url_for("admin_pages.providers"), 303)


def _provider(provider_id: int) -> ServiceProvider:
    provider = db_session().get(ServiceProvider, provider_id)
    if provider is None:
        abort(404)
    return provider


@bp.get("/admin/providers/<int:provider_id>")
@login_required(ADMIN)
def edit_provider_page(provider_id: int) -> Any:
    return _form(_provider(provider_id))


@bp.post("/admin/providers/<int:provider_id>")
@login_required(ADMIN)
def update_provider(provider_id: int) -> Any:
    provider = _provider(provider_id)
    values = provider_values(request.form)
    session = db_session()
    try:
        with transaction(session):
            edit_provider(session, _admin_name(), provider_id, values)
    except InvalidInput as exc:
        return _form(provider, values, exc)
    flash(_("Saved %(name)s.", name=provider.name), "ok")
    return redirect(url_for("admin_pages.providers"), 303)
