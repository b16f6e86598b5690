"""The case file on the case page: add, edit and remove victims, subjects, locations and
notes; merge a case into another. Each form goes through the API's own schema and the
same domain functions (``workflows.casefile``, ``workflows.merging``); a refusal comes
back as a message on the case page and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from flask_babel import gettext as _

from config.auth import current_user, login_required
from config.database import db_session
from intake.forms import FormErrors, load, text_or_none, tri_state
from intake.staff.casefile_schemas import ITEM_SCHEMAS, MergeIn
from workflows.casefile import SINGULAR, add_item, delete_item, edit_item
from workflows.db import transaction
from workflows.errors import DomainError
from workflows.merging import merge_cases
from workflows.models import User
from workflows.vocabulary import DESK, SUPERVISOR

bp = Blueprint("casefile_pages", __name__)

WHOLE_NUMBERS = frozenset({"age", "age_min", "age_max"})
YES_NO = frozenset({"minor", "tribal_land", "internal"})


def _me() -> User:
    user = current_user()
    assert user is not None  # login_required guarantees it
    return user


def form_values(item: str, form: Mapping[str, str], prefix: str = "") -> dict[str, Any]:
    """A case file form as the JSON the API takes: blanks are unknown, numbers are numbers."""
    schema = ITEM_SCHEMAS[item][0]
    values: dict[str, Any] = {}
    for name in schema().fields:
        key = prefix + name
        if key not in form:
            continue
        if name in YES_NO:
            values[name] = tri_state(form, key)
        elif name in WHOLE_NUMBERS:
            raw = (form.get(key) or "").strip()
            values[name] = int(raw) if raw.isdigit() else (raw or None)
        else:
            values[name] = text_or_none(form, key)
    if item == "notes" and values.get("internal") is None:
        values.pop("internal", None)
    return {k: v for k, v in values.items() if v is not None or item != "subjects"}


def _back(case_id: int) -> Any:
    return redirect(url_for("case_pages.show", case_id=case_id, _anchor="case-file"), 303)


def _refused(case_id: int, message: str) -> Any:
    flash(message, "error")
    return _back(case_id)


@bp.post("/cases/<int:case_id>/file/<any(victims,subjects,locations,notes):item>")
@login_required(DESK)
def add(case_id: int, item: str) -> Any:
    session = db_session()
    try:
        data = load(ITEM_SCHEMAS[item][0](), form_values(item, request.form))
        with transaction(session):
            add_item(session, case_id, _me(), item, data)
    except FormErrors as exc:
        return _refused(case_id, f"{SINGULAR[item].capitalize()} not added: {exc}")
    except DomainError as exc:
        return _refused(case_id, f"{SINGULAR[item].capitalize()} not added: {exc.message}")
    flash(f"{SINGULAR[item].capitalize()} added.", "ok")
    return _back(case_id)


@bp.post("/cases/<int:case_id>/file/<any(victims,subjects,locations,notes):item>/<int:item_id>")
@login_required(DESK)
def edit(case_id: int, item: str, item_id: int) -> Any:
    session = db_session()
    try:
        data = load(ITEM_SCHEMAS[item][1](partial=True), form_values(item, request.form))
        with transaction(session):
            edit_item(session, case_id, _me(), item, item_id, data)
    except FormErrors as exc:
        return _refused(case_id, f"{SINGULAR[item].capitalize()} not changed: {exc}")
    except DomainError as exc:
        return _refused(case_id, f"{SINGULAR[item].capitalize()} not changed: {exc.message}")
    flash(f"{SINGULAR[item].capitalize()} saved.", "ok")
    return _back(case_id)


@bp.post(
    "/cases/<int:case_id>/file/<any(victims,subjects,locations,notes):item>/<int:item_id>/delete"
)
@login_required(SUPERVISOR)
def remove(case_id: int, item: str, item_id: int) -> Any:
    session = db_session()
    try:
        with transaction(session):
            delete_item(session, case_id, _me(), item, item_id)
    except DomainError as exc:
        return _refused(case_id, exc.message)
    flash(f"{SINGULAR[item].capitalize()} removed.", "ok")
    return _back(case_id)


@bp.post("/cases/<int:case_id>/merge")
@login_required(SUPERVISOR)
def merge(case_id: int) -> Any:
    session = db_session()
    raw = (request.form.get("into") or "").strip()
    try:
        data = load(MergeIn(), {"into": int(raw) if raw.isdigit() else raw})
        with transaction(session):
            target = merge_cases(session, case_id, _me(), data["into"])
    except FormErrors as exc:
        return _refused(case_id, f"Not merged: {exc}")
    except DomainError as exc:
        return _refused(case_id, f"Not merged: {exc.message}")
    flash(_("Merged into %(reference)s.", reference=target.reference), "ok")
    return redirect(url_for("case_pages.show", case_id=target.id), 303)
