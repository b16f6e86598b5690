"""Live chat, the tipster's side: the JSON API (``X-Chat-Token``) and the ``/chat`` page.

The page works with script off (form posts and a refresh); ``chat.js`` only polls
``GET …/messages?after=n`` every few seconds, so an open chat ties up no worker between
polls (no long-lived connection: README, "Live chat"). Staff read and write the same
messages with their bearer token (``intake.staff.chat_pages`` lists and takes chats).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Integer, List, Nested, String
from apiflask.validators import OneOf, Range
from flask import Blueprint, abort, current_app, g, redirect, render_template, request, url_for
from flask_babel import LazyString, force_locale
from flask_babel import lazy_gettext as _l

from config.database import db_session
from config.i18n import pin_locale
from intake import chat as chats
from intake.public_text import HOTLINE_PHONE, HOTLINE_TEXT, TEXT, pick_language
from intake.schemas import StrictSchema, Text
from workflows.accounts import user_for_token
from workflows.db import transaction, utcnow
from workflows.errors import NotFound
from workflows.vocabulary import DESK, LANGUAGES

api = APIBlueprint("chat_api", __name__, url_prefix="/api/v1", tag="chat")
bp = Blueprint("chat_pages", __name__, template_folder="templates")

COOKIE = "hotline_chat"
POLL_SECONDS = 3
# The chat pages' words: English msgids, Spanish in translations/ (config/i18n.py).
CHAT_TEXT: dict[str, LazyString] = {
    "title": _l("Chat with an advocate"),
    "intro": _l("Write to a trained advocate now. You do not have to give your name."),
    "first": _l("Your message"),
    "start": _l("Start the chat"),
    "waiting": _l("You are number {place} in line. An advocate will join as soon as one is free."),
    "active": _l("An advocate is with you."),
    "over": _l("This chat has ended."),
    "send": _l("Send"),
    "message": _l("Message"),
    "end": _l("End the chat"),
    "refresh": _l("See new messages"),
    "offer": _l(
        "No advocate is free yet. End the chat to "
        "leave your messages as a tip, or call {phone}."
    ),
    "you": _l("You"),
    "advocate": _l("Advocate"),
    "ended_title": _l("Your chat is saved"),
}


class ChatIn(StrictSchema):
    language = String(load_default="en", validate=OneOf(LANGUAGES))


class ChatCreated(Schema):
    id = Integer(required=True)
    token = String(required=True, metadata={"description": "Secret; send as X-Chat-Token."})


class ChatToken(Schema):
    x_chat_token = String(data_key="X-Chat-Token", load_default=None)


class ChatMessageIn(StrictSchema):
    body = Text(chats.MAX_MESSAGE, required=True)


class ChatMessageOut(Schema):
    seq = Integer()
    sender = String()
    body = String()
    created_at = String()


class ChatMessagesOut(Schema):
    state = String()
    place_in_line = Integer()
    waited_seconds = Integer()
    offer_message = String(allow_none=True)
    messages = List(Nested(ChatMessageOut))


class AfterQuery(Schema):
    after = Integer(load_default=0, validate=Range(min=0, max=10**6))


class ChatEndIn(StrictSchema):
    reference = Text(40, allow_none=True)
    passphrase = Text(200, allow_none=True)


class ChatEndOut(Schema):
    reference = String()
    passphrase = String(allow_none=True)


def wait_limit() -> timedelta:
    """How long a tipster waits unseen before being offered another way."""
    return timedelta(seconds=current_app.config["HOTLINE_SETTINGS"].chat_wait_seconds)


def _staff() -> Any:
    """The staff user of a bearer token, if the request carries one (401 for a bad one,
    404 for a user who is not on the desk: agencies never learn a chat exists)."""
    if "chat_staff" in g:
        return g.chat_staff
    header = request.headers.get("Authorization", "")
    user = None
    if header:
        scheme, _, token = header.partition(" ")
        user = user_for_token(db_session(), token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            abort(401)
        if user.role not in DESK:
            abort(404)
    g.chat_staff = user
    return user


def _chat(chat_id: int, token: str | None) -> Any:
    """The chat for its tipster (token) or for staff (bearer); 404 otherwise."""
    session = db_session()
    if _staff() is not None:
        chat = session.get(chats.Chat, chat_id)
        if chat is None:
            raise NotFound("no such chat")
        return chat
    return chats.chat_for_token(session, chat_id, token)


def _status(chat: Any, after: int) -> dict[str, Any]:
    session = db_session()
    created = chat.created_at
    waited = int((utcnow() - created).total_seconds()) if chat.state == "waiting" else 0
    offer = None
    if chat.state == "waiting" and timedelta(seconds=waited) >= wait_limit():
        with force_locale(pick_language(chat.language)):  # the poll carries no lang
            offer = str(CHAT_TEXT["offer"]).format(phone=HOTLINE_PHONE)
    return {
        "state": chat.state,
        "place_in_line": chats.place_in_line(session, chat),
        "waited_seconds": waited,
        "offer_message": offer,
        "messages": [chats.message_json(m) for m in chats.messages_after(session, chat, after)],
    }


@api.post("/chats")
@api.input(ChatIn, arg_name="data")
@api.output(ChatCreated, status_code=201)
@api.doc(summary="Open a live chat with an advocate", responses=[201, 422, 429])
def open_chat(data: dict[str, Any]) -> Any:
    session = db_session()
    with transaction(session):
        new = chats.open_chat(session, data["language"])
    return {"id": new.chat.id, "token": new.token}


@api.post("/chats/<int:chat_id>/messages")
@api.input(ChatToken, location="headers", arg_name="headers")
@api.input(ChatMessageIn, arg_name="data")
@api.output(ChatMessageOut, status_code=201)
@api.doc(
    summary="Write in a chat (X-Chat-Token, or a staff bearer token)",
    responses=[201, 404, 409, 422, 429],
)
def post_message(chat_id: int, headers: dict[str, Any], data: dict[str, Any]) -> Any:
    session = db_session()
    with transaction(session):
        chat = _chat(chat_id, headers.get("x_chat_token"))
        staff = _staff()
        if (
            staff is not None
            and chat.operator_id not in (None, staff.id)
            and staff.role != "supervisor"
        ):
            abort(404)
        message = chats.add_message(
            session, chat, "operator" if staff is not None else "tipster", data["body"]
        )
    # Stored and committed before anyone is shown it.
    return chats.message_json(message)


@api.get("/chats/<int:chat_id>/messages")
@api.input(ChatToken, location="headers", arg_name="headers")
@api.input(AfterQuery, location="query", arg_name="query")
@api.output(ChatMessagesOut)
@api.doc(
    summary="Messages after number n, the chat's state and place in line", responses=[200, 404, 422]
)
def get_messages(chat_id: int, headers: dict[str, Any], query: dict[str, Any]) -> Any:
    chat = _chat(chat_id, headers.get("x_chat_token"))
    return _status(chat, query["after"])


@api.post("/chats/<int:chat_id>/end")
@api.input(ChatToken, location="headers", arg_name="headers")
@api.input(ChatEndIn, arg_name="data", location="json")
@api.output(ChatEndOut)
@api.doc(
    summary="End a chat: its transcript becomes a case; the tipster gets a reference",
    responses=[200, 404, 409, 422, 429],
)
def end_chat(chat_id: int, headers: dict[str, Any], data: dict[str, Any]) -> Any:
    session = db_session()
    with transaction(session):
        chat = _chat(chat_id, headers.get("x_chat_token"))
        staff = _staff()
        ended = chats.end_chat(
            session,
            chat,
            staff.username if staff is not None else "tipster",
            reference=data.get("reference"),
            passphrase=data.get("passphrase"),
        )
    if staff is not None:
        return {"reference": ended.reference, "passphrase": None}  # the secret is the tipster's
    return {"reference": ended.reference, "passphrase": ended.passphrase}


# --- the page, which works without script --------------------------------------------


def _page_chat(chat_id: int) -> Any:
    try:
        return chats.chat_for_token(db_session(), chat_id, request.cookies.get(COOKIE))
    except NotFound:
        abort(404)


def _context(lang: str) -> dict[str, Any]:
    pin_locale(lang)  # the chat's own language, chosen when it opened
    return {
        "lang": lang,
        "t": TEXT,
        "c": CHAT_TEXT,
        "other_lang": "es" if lang == "en" else "en",
        "hotline_phone": HOTLINE_PHONE,
        "hotline_text": HOTLINE_TEXT,
        "poll_seconds": POLL_SECONDS,
        "public": True,
    }


@bp.get("/chat")
def chat_start() -> Any:
    lang = pick_language(request.args.get("lang"))
    return render_template("public/chat_start.html", **_context(lang))


@bp.post("/chat")
def chat_open() -> Any:
    lang = pick_language(request.form.get("lang"))
    session = db_session()
    with transaction(session):
        new = chats.open_chat(session, lang)
        first = (request.form.get("body") or "").strip()
        if first:
            chats.add_message(session, new.chat, "tipster", first[: chats.MAX_MESSAGE])
    answer = redirect(url_for("chat_pages.chat_room", chat_id=new.chat.id), 303)
    # The token lives in this browser only (HttpOnly): the chat's id alone opens nothing.
    answer.set_cookie(
        COOKIE, new.token, httponly=True, samesite="Strict", secure=request.is_secure, path="/chat"
    )
    return answer


@bp.get("/chat/<int:chat_id>")
def chat_room(chat_id: int) -> Any:
    chat = _page_chat(chat_id)
    lang = pick_language(chat.language)
    return render_template(
        "public/chat_room.html", chat=chat, status=_status(chat, 0), **_context(lang)
    )


@bp.get("/chat/<int:chat_id>/messages")
def chat_poll(chat_id: int) -> Any:
    """What chat.js polls: messages after ``after`` (the browser's cookie is the token)."""
    chat = _page_chat(chat_id)
    raw = request.args.get("after", "0")
    after = int(raw) if raw.isdigit() and len(raw) < 8 else 0
    return _status(chat, after)


@bp.post("/chat/<int:chat_id>/send")
def chat_send(chat_id: int) -> Any:
    chat = _page_chat(chat_id)
    session = db_session()
    body = (request.form.get("body") or "")[: chats.MAX_MESSAGE]
    if body.strip() and chat.state in chats.OPEN_STATES:
        with transaction(session):
            chats.add_message(session, chat, "tipster", body)
    return redirect(url_for("chat_pages.chat_room", chat_id=chat_id) + "#latest", 303)


@bp.post("/chat/<int:chat_id>/end")
def chat_end(chat_id: int) -> Any:
    chat = _page_chat(chat_id)
    lang = pick_language(chat.language)
    session = db_session()
    with transaction(session):
        ended = chats.end_chat(session, chat, "tipster")
    return render_template(
        "public/chat_ended.html",
        reference=ended.reference,
        passphrase=ended.passphrase,
        **_context(lang),
    )
