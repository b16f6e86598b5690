"""Live chat, the desk's side: the chat line (waiting and active chats, how long each has
waited), taking a chat, talking, ending and blocking — as pages and as the staff API.

Messages themselves go through the tipsters' chat API (``intake.chat_views``), which
accepts a staff bearer token as well as the chat's own token.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import DateTime, Integer, List, Nested, String
from apiflask.validators import OneOf
from flask import Blueprint, abort, redirect, render_template, request, url_for

from config.auth import current_user, login_required, token_auth
from config.database import db_session
from intake import chat as chats
from workflows.db import transaction, utcnow
from workflows.errors import NotFound
from workflows.models import User
from workflows.vocabulary import DESK, role_list

api = APIBlueprint("chat_staff_api", __name__, url_prefix="/api/v1", tag="chat")
bp = Blueprint("chat_desk", __name__, template_folder="templates")



class ChatLineQuery(Schema):
    state = String(load_default="waiting", validate=OneOf(("waiting", "active")))


class ChatSummary(Schema):
    id = Integer()
    state = String()
    language = String()
    created_at = DateTime()
    taken_at = DateTime(allow_none=True)
    waited_seconds = Integer()
    operator = String(allow_none=True)


class ChatLine(Schema):
    chats = List(Nested(ChatSummary))


def _summary(chat: chats.Chat) -> dict[str, Any]:
    until = chat.taken_at or utcnow()
    operator = db_session().get(User, chat.operator_id) if chat.operator_id else None
    return {
        "id": chat.id,
        "state": chat.state,
        "language": chat.language,
        "created_at": chat.created_at,
        "taken_at": chat.taken_at,
        "waited_seconds": int((until - chat.created_at).total_seconds()),
        "operator": operator.username if operator else None,
    }


def _desk_user() -> User:
    user = current_user()
    assert user is not None  # auth_required / login_required guarantee it
    return user


def _open_chat(chat_id: int) -> chats.Chat:
    chat = db_session().get(chats.Chat, chat_id)
    if chat is None:
        raise NotFound("no such chat")
    return chat


@api.get("/chats")
@api.auth_required(token_auth, roles=role_list(DESK))
@api.input(ChatLineQuery, location="query", arg_name="query")
@api.output(ChatLine)
@api.doc(
    summary="The chat line: waiting chats (oldest first) or active ones",
    responses=[200, 401, 403, 422],
)
def chat_line(query: dict[str, Any]) -> Any:
    return {"chats": [_summary(c) for c in chats.chats_in(db_session(), query["state"])]}


@api.post("/chats/<int:chat_id>/take")
@api.auth_required(token_auth, roles=role_list(DESK))
@api.output(ChatSummary)
@api.doc(
    summary="Take a waiting chat (409 when someone else took it first)",
    responses=[200, 401, 403, 404, 409],
)
def take(chat_id: int) -> Any:
    session = db_session()
    with transaction(session):
        chat = chats.take_chat(session, _open_chat(chat_id), _desk_user())
    return _summary(chat)


# --- pages -----------------------------------------------------------------------------


@bp.get("/operator/chats/")
@login_required(DESK)
def line() -> Any:
    session = db_session()
    return render_template(
        "chat/line.html",
        waiting=[_summary(c) for c in chats.chats_in(session, "waiting")],
        active=[_summary(c) for c in chats.chats_in(session, "active")],
    )


@bp.post("/operator/chats/<int:chat_id>/take")
@login_required(DESK)
def take_page(chat_id: int) -> Any:
    session = db_session()
    with transaction(session):
        chats.take_chat(session, _open_chat(chat_id), _desk_user())
    return redirect(url_for("chat_desk.room", chat_id=chat_id), 303)


@bp.get("/operator/chats/<int:chat_id>")
@login_required(DESK)
def room(chat_id: int) -> Any:
    session = db_session()
    chat = _open_chat(chat_id)
    return render_template(
        "chat/room.html",
        chat=chat,
        summary=_summary(chat),
        messages=chats.messages_after(session, chat, 0),
    )


@bp.post("/operator/chats/<int:chat_id>/send")
@login_required(DESK)
def send(chat_id: int) -> Any:
    session = db_session()
    chat = _open_chat(chat_id)
    me = _desk_user()
    if chat.operator_id not in (None, me.id) and me.role != "supervisor":
        abort(403)
    with transaction(session):
        chats.add_message(session, chat, "operator", (request.form.get("body") or "")[:2000])
    return redirect(url_for("chat_desk.room", chat_id=chat_id) + "#latest", 303)


@bp.post("/operator/chats/<int:chat_id>/end")
@login_required(DESK)
def end(chat_id: int) -> Any:
    """End (or, with ``block``, end and block) a chat; its transcript lands on a case."""
    session = db_session()
    chat = _open_chat(chat_id)
    with transaction(session):
        chats.end_chat(session, chat, _desk_user().username, block=bool(request.form.get("block")))
    if chat.case_id:
        return redirect(url_for("case_pages.show", case_id=chat.case_id), 303)
    return redirect(url_for("chat_desk.line"), 303)
