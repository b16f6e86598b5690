"""The page a service provider answers on, without an account: ``/provider/r/<token>``.

The token is signed (itsdangerous, a salt of its own) and expires; a tampered or
expired link is a 403 page that changes nothing; answering twice changes nothing more.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, render_template, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from config.database import db_session
from config.settings import Settings
from workflows.db import transaction
from workflows.errors import DomainError
from workflows.providers import ServiceReferral, answer_as_provider, provider_packet

bp = Blueprint("provider_pages", __name__, template_folder="templates")

SALT = "provider-link-v1"
LINK_DAYS = 14
ANSWERS = {
    "acknowledge": "We have it",
    "accept": "We accept",
    "decline": "We decline",
    "report_service": "Service given",
}


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=SALT)


def provider_link(settings: Settings, referral_id: int) -> str:
    """The signed link a provider gets by e-mail (valid ``LINK_DAYS`` days)."""
    token = _serializer(settings).dumps({"r": referral_id})
    base = (settings.public_base_url or "http://127.0.0.1:5000").rstrip("/")
    return f"{base}/provider/r/{token}"


def _referral(token: str) -> ServiceReferral:
    settings: Settings = current_app.config["HOTLINE_SETTINGS"]
    try:
        data = _serializer(settings).loads(token[:500], max_age=LINK_DAYS * 86400)
    except SignatureExpired:
        abort(403, "This link has expired. Ask the hotline for a new one.")
    except BadSignature:
        abort(403, "This link is not valid.")
    referral = db_session().get(ServiceReferral, data.get("r") if isinstance(data, dict) else None)
    if referral is None:
        abort(403, "This link is not valid.")
    return referral


def _page(referral: ServiceReferral, error: str | None = None, status: int = 200) -> Any:
    return render_template(
        "provider/referral.html",
        packet=provider_packet(db_session(), referral),
        referral=referral,
        answers=ANSWERS,
        error=error,
    ), status


@bp.get("/provider/r/<path:token>")
def show(token: str) -> Any:
    return _page(_referral(token))


@bp.post("/provider/r/<path:token>")
def answer(token: str) -> Any:
    referral = _referral(token)
    session = db_session()
    try:
        with transaction(session):
            answer_as_provider(
                session,
                referral.id,
                request.form.get("answer", ""),
                (request.form.get("note") or "")[:2000] or None,
            )
    except DomainError as exc:
        session.rollback()
        return _page(referral, exc.message, exc.status)
    return _page(referral)
