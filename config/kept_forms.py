"""Staff forms never lose typed work (issue 19): drafts as the person types, a session
kept alive while they are active, and a submit kept when the session or its CSRF token
has run out, given back after logging in again — with script or without.

Every staff form carries ``kept_form_fields(key)``: the CSRF token, the form's key, the
path of the page that holds it and the id of the user it was rendered for. A submit
that fails for want of a session or a valid token is stored encrypted, bound to that
user *and* to this browser (a random token in a short-lived cookie), and the person
lands back on the form, filled in, once logged in as the same user.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    flash,
    g,
    redirect,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from markupsafe import Markup, escape
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as WerkzeugResponse

from config.auth import current_user
from config.database import db_session
from config.login import safe_next
from workflows.db import transaction
from workflows.drafts import (
    KEPT_SUBMIT_LIFETIME,
    KeptForm,
    claim_submit,
    discard_draft,
    find_draft,
    forget_submits,
    keep_submit,
    purge_expired_forms,
    save_draft,
)
from workflows.models import User

log = logging.getLogger(__name__)

bp = Blueprint("kept_forms", __name__)

COOKIE = "hotline_kept_form"
FORM_KEY, BACK, USER = "_form_key", "_back", "_desk_user"


def kept_form_fields(form_key: str) -> Markup:
    """The hidden fields every staff form carries (token, key, way back, its user)."""
    from flask_wtf.csrf import generate_csrf

    user = current_user()
    back = request.full_path.rstrip("?") if request.method == "GET" else request.path
    fields = {
        "csrf_token": generate_csrf(),
        FORM_KEY: form_key,
        BACK: _without_restore(back),
        USER: str(user.id) if user is not None else "",
    }
    return Markup("").join(
        Markup('<input type="hidden" name="{}" value="{}">').format(name, value)
        for name, value in fields.items()
    )


def _without_restore(path: str) -> str:
    base, _sep, query = path.partition("?")
    kept = [p for p in query.split("&") if p and not p.startswith(("restore=", "draft="))]
    return base + ("?" + "&".join(kept) if kept else "")


def _with_flag(path: str, flag: str) -> str:
    return path + ("&" if "?" in path else "?") + flag


def _form_user(form: Any) -> User | None:
    raw = form.get(USER, "")
    if not raw.isdigit() or len(raw) > 10:
        return None
    user = db_session().get(User, int(raw))
    return user if user is not None and user.active and user.role != "tipster" else None


def keep_failed_submit(reason: str) -> WerkzeugResponse | None:
    """Keep a staff form whose submit cannot be taken now; the answer that leads the
    person back to it, or None when the request is not a staff form (another handler
    answers)."""
    form = request.form
    back = safe_next(form.get(BACK))
    key = form.get(FORM_KEY, "")
    if request.method != "POST" or not back or not key or request.blueprint == bp.name:
        return None  # a draft or a keep-alive that failed is not a submit to keep
    owner = _form_user(form)
    if owner is None:
        return None
    me = current_user()
    if me is not None and me.id != owner.id:
        return None  # another person's form in this browser: nothing to give back here
    db = db_session()
    with transaction(db):
        purge_expired_forms(db)
        token = keep_submit(db, owner.id, key, back, form.items(multi=True))
    log.info("kept a staff form submit (%s) for user %s", reason, owner.id)
    g.kept_form_redirect = True  # not a success: the after-request hook keeps it
    target = _with_flag(back, "restore=1")
    if me is None:
        flash(_("Your session had ended. Everything you typed was kept: log in to go on."), "info")
        answer = redirect(url_for("login.login", next=target), 303)
    else:
        flash(_("The form had expired. Everything you typed is back: check it and save."), "info")
        answer = redirect(target, 303)
    answer.set_cookie(
        COOKIE,
        token,
        max_age=int(KEPT_SUBMIT_LIFETIME.total_seconds()),
        httponly=True,
        samesite="Lax",
        secure=request.is_secure,
        path="/",
    )
    return answer


def restored_form(form_key: str) -> MultiDict[str, str] | None:
    """The fields to put back in this form: a kept submit (``?restore=1``) or the
    person's draft (``?draft=1``); None when there is nothing to restore."""
    cache = g.setdefault("restored_forms", {})
    if form_key not in cache:
        cache[form_key] = _restored_form(form_key)
    return cache[form_key]  # type: ignore[no-any-return]


def kept(form_key: str, name: str, default: str = "") -> str:
    """A field's restored value for a template (``value="{{ kept('reply:7', 'body') }}"``)."""
    restored = restored_form(form_key)
    return restored.get(name, default) if restored is not None else default


def _restored_form(form_key: str) -> MultiDict[str, str] | None:
    me = current_user()
    if me is None:
        return None
    kept: KeptForm | None = None
    if request.args.get("restore"):
        kept = claim_submit(db_session(), me.id, request.cookies.get(COOKIE, ""))
        if kept is not None and kept.form_key != form_key:
            kept = None
    elif request.args.get("draft"):
        kept = find_draft(db_session(), me.id, form_key)
    return MultiDict(kept.pairs) if kept is not None else None


def draft_offer(form_key: str) -> KeptForm | None:
    """The person's draft of this form, to offer when they open it again."""
    me = current_user()
    if me is None or request.args.get("restore") or request.args.get("draft"):
        return None
    return find_draft(db_session(), me.id, form_key)


@bp.post("/desk/drafts")
def save() -> Any:
    """Save the draft of the form posted (the script sends the whole form as typed)."""
    me = current_user()
    if me is None:
        return {"error": "the session has ended; log in again (your form is kept on submit)"}, 401
    form = request.form
    key = form.get(FORM_KEY, "")
    back = safe_next(form.get(BACK))
    if not key or not back or form.get(USER) != str(me.id):
        return {"error": "not a staff form", "field": FORM_KEY}, 400
    db = db_session()
    try:
        with transaction(db):
            draft = save_draft(db, me.id, key, back, form.items(multi=True))
    except (StaleDataError, IntegrityError):
        # The form was submitted (its draft dropped) while this save was on its way.
        return {"error": "the form changed meanwhile; nothing to save"}, 409
    return {"saved_at": draft.updated_at.isoformat()}


@bp.post("/desk/drafts/discard")
def discard() -> Any:
    """Throw a draft away (the person chose not to restore it)."""
    me = current_user()
    back = safe_next(request.form.get(BACK)) or "/start"
    if me is not None and request.form.get(FORM_KEY):
        db = db_session()
        with transaction(db):
            discard_draft(db, me.id, request.form[FORM_KEY])
    return redirect(back, 303)


@bp.post("/desk/alive")
def alive() -> Any:
    """The person is typing: keep the session alive (within its absolute lifetime)."""
    if current_user() is None:
        return {"error": "the session has ended"}, 401
    session.modified = True  # re-issues the cookie: the idle clock starts again
    return Response(status=204)


def _forget_after_success(response: Response) -> Response:
    # A staff form that went through (a redirect after POST) needs no draft any more.
    if (
        request.method == "POST"
        and response.status_code in (302, 303)
        and request.form.get(FORM_KEY)
        and request.endpoint not in {"kept_forms.save", "kept_forms.discard"}
        and not getattr(g, "kept_form_redirect", False)
    ):
        me = current_user()
        if me is not None and request.form.get(USER) == str(me.id):
            db = db_session()
            with transaction(db):
                discard_draft(db, me.id, request.form[FORM_KEY])
                forget_submits(db, me.id, request.form[FORM_KEY])
            if request.cookies.get(COOKIE):
                response.delete_cookie(COOKIE, path="/")
    return response


def draft_banner(form_key: str) -> Markup:
    """The offer of a saved draft, as a small form (restore link, discard button)."""
    draft = draft_offer(form_key)
    if draft is None:
        return Markup("")
    back = _without_restore(request.full_path.rstrip("?"))
    return Markup(
        '<div class="draft-offer" role="status" id="draft-offer"><p>You have an unsaved '
        'draft of this form from {when} UTC. <a id="restore-draft" href="{restore}">'
        'Restore the draft</a></p><form method="post" action="{discard}">{fields}'
        '<button type="submit" class="secondary">Discard it</button></form></div>'
    ).format(
        when=draft.updated_at.strftime("%Y-%m-%d %H:%M"),
        restore=escape(_with_flag(back, "draft=1")),
        discard=url_for("kept_forms.discard"),
        fields=kept_form_fields(form_key),  # the same token, key and way back as the form
    )


def init_app(app: Flask, keepalive_seconds: int) -> None:
    """Template helpers, the success hook, and how often the script says "still here"."""
    app.after_request(_forget_after_success)
    app.extensions["keep_failed_submit"] = keep_failed_submit
    app.jinja_env.globals.update(
        kept_form_fields=kept_form_fields,
        draft_banner=draft_banner,
        kept=kept,
        keepalive_seconds=keepalive_seconds,
    )
