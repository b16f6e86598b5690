"""Live web chat with an advocate (issue 18): the tipster's side of a channel like SMS.

A chat is *waiting* until an operator takes it, *active* while they talk, then *ended*
(either side) or *blocked* (an operator ended an abusive chat). Every message is stored,
encrypted, before anyone is shown it, numbered per chat so a reconnecting client asks for
what came after the last number it saw and never sees one twice. When a chat ends, its
transcript becomes a signal of a case — a new one (the tipster gets a reference and
passphrase, as a web tip does) or the tipster's earlier case when they give its
reference and passphrase — and is screened and routed like any other.

The chat's secret token is bound to that chat: random, stored only as a hash, and not
the chat's id, so holding one chat's id gives nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from intake.models import Signal
from intake.passphrase import hash_passphrase, new_passphrase
from intake.services import open_tip
from workflows.audit import record_event
from workflows.cases import open_case
from workflows.db import Base, utcnow
from workflows.errors import Conflict, InvalidInput, NotFound
from workflows.models import Case, User
from workflows.pii import EncryptedText

MAX_MESSAGE = 2000
MAX_MESSAGES = 500  # a chat longer than this is not a chat; the tipster is told to end it
OPEN_STATES = ("waiting", "active")


class Chat(Base):
    """One live conversation between a tipster and (once taken) an operator."""

    __tablename__ = "chats"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    language: Mapped[str] = mapped_column(String(8), default="en")
    # waiting | active | ended | blocked
    state: Mapped[str] = mapped_column(String(10), default="waiting", index=True)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_by: Mapped[str | None] = mapped_column(String(16))


class ChatMessage(Base):
    """One line of a chat, numbered within it (``seq``), stored encrypted."""

    __tablename__ = "chat_messages"
    __table_args__ = (UniqueConstraint("chat_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(10))  # tipster | operator | system
    body: Mapped[str] = mapped_column(EncryptedText)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True)
class NewChat:
    chat: Chat
    token: str


@dataclass(frozen=True)
class ChatEnd:
    reference: str
    passphrase: str | None  # None when the transcript joined the tipster's earlier case


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def open_chat(session: Session, language: str) -> NewChat:
    """A waiting chat and its secret token (shown once to the tipster's browser)."""
    token = secrets.token_urlsafe(32)
    chat = Chat(token_hash=_hash(token), language=language, state="waiting")
    session.add(chat)
    session.flush()
    return NewChat(chat, token)


def chat_for_token(session: Session, chat_id: int, token: str | None) -> Chat:
    """The chat, if this is its token; NotFound otherwise (no hint which part was wrong)."""
    chat = session.get(Chat, chat_id)
    if (
        chat is None
        or not token
        or len(token) > 100
        or not hmac.compare_digest(chat.token_hash, _hash(token))
    ):
        raise NotFound("no such chat")
    return chat


def _last_seq(session: Session, chat: Chat) -> int:
    """The number of the chat's last message (0 before the first)."""
    return (
        session.scalar(select(func.max(ChatMessage.seq)).where(ChatMessage.chat_id == chat.id)) or 0
    )


def message_json(message: ChatMessage) -> dict[str, object]:
    """A message as the chat API and the page's script read it."""
    return {
        "seq": message.seq,
        "sender": message.sender,
        "body": message.body,
        "created_at": message.created_at.isoformat(),
    }


def add_message(session: Session, chat: Chat, sender: str, body: str) -> ChatMessage:
    """Store one message (before anyone is shown it); numbered after the last one."""
    text = (body or "").strip()
    if not text:
        raise InvalidInput("the message is empty", field="body")
    if len(text) > MAX_MESSAGE:
        raise InvalidInput(f"a message holds at most {MAX_MESSAGE} characters", field="body")
    if chat.state not in OPEN_STATES:
        raise Conflict("this chat has ended", field="state")
    if sender == "operator" and chat.state != "active":
        raise Conflict("take the chat before writing in it", field="state")
    last = _last_seq(session, chat)
    if last >= MAX_MESSAGES:
        raise Conflict("this chat is too long; end it and start another", field="body")
    message = ChatMessage(chat_id=chat.id, seq=last + 1, sender=sender, body=text)
    session.add(message)
    session.flush()  # two messages at once: the unique (chat, seq) lets one win, one retry
    return message


def messages_after(session: Session, chat: Chat, after: int) -> list[ChatMessage]:
    """The messages numbered after ``after``, in order: what a reconnecting client lacks."""
    return list(
        session.scalars(
            select(ChatMessage)
            .where(ChatMessage.chat_id == chat.id, ChatMessage.seq > after)
            .order_by(ChatMessage.seq)
            .limit(MAX_MESSAGES)
        )
    )


def place_in_line(session: Session, chat: Chat) -> int:
    """1 for the next chat an operator will take."""
    if chat.state != "waiting":
        return 0
    ahead = session.scalar(
        select(func.count()).select_from(Chat).where(Chat.state == "waiting", Chat.id < chat.id)
    )
    return int(ahead or 0) + 1


def chats_in(session: Session, state: str, limit: int = 100) -> list[Chat]:
    """Waiting chats oldest first (the line), active ones by when they were taken."""
    order = Chat.created_at if state == "waiting" else Chat.taken_at
    return list(
        session.scalars(select(Chat).where(Chat.state == state).order_by(order).limit(limit))
    )


def take_chat(session: Session, chat: Chat, operator: User) -> Chat:
    """An operator takes a waiting chat; a second operator taking it at once loses (409)."""
    if chat.state != "waiting":
        raise Conflict("this chat is not waiting any more", field="state")
    chat.state = "active"
    chat.operator_id = operator.id
    chat.taken_at = utcnow()
    add_message_system(session, chat, "An advocate has joined the chat.")
    return chat


def add_message_system(session: Session, chat: Chat, text: str) -> None:
    """A line the hotline's software writes (joined, ended)."""
    session.add(
        ChatMessage(chat_id=chat.id, seq=_last_seq(session, chat) + 1, sender="system", body=text)
    )
    session.flush()


def transcript(session: Session, chat: Chat) -> str:
    """The whole chat as a case's narrative: who said what, in order."""
    names = {"tipster": "Tipster", "operator": "Advocate", "system": "—"}
    return "\n".join(
        f"{names.get(m.sender, m.sender)}: {m.body}" for m in messages_after(session, chat, 0)
    )


def end_chat(
    session: Session,
    chat: Chat,
    ended_by: str,
    *,
    block: bool = False,
    reference: str | None = None,
    passphrase: str | None = None,
) -> ChatEnd:
    """End the chat; its transcript becomes a signal of a case (never lost, even blocked).

    With the tipster's reference and passphrase, the transcript joins that earlier case
    (a wrong pair raises NotFound, as the follow-up page does); else a new case is opened.
    Ending twice answers the same reference and no new secret.
    """
    if chat.state not in OPEN_STATES:
        case = session.get(Case, chat.case_id) if chat.case_id else None
        if case is None or block:
            raise Conflict("this chat has already ended", field="state")
        return ChatEnd(case.reference or "", None)
    new_secret: str | None = None
    if reference and passphrase:
        case = open_tip(session, reference, passphrase)
    else:
        new_secret = new_passphrase(language=chat.language)
        case = open_case(
            session,
            actor="tipster",
            channel="chat",
            anonymous=True,
            passphrase_hash=hash_passphrase(new_secret),
        )
    chat.state = "blocked" if block else "ended"
    chat.ended_by = ended_by
    chat.ended_at = utcnow()
    add_message_system(
        session, chat, "The chat was ended by the hotline." if block else "The chat has ended."
    )
    session.add(
        Signal(
            case_id=case.id,
            channel="chat",
            language=chat.language,
            narrative=transcript(session, chat),
            anonymous=True,
        )
    )
    chat.case_id = case.id
    record_event(
        session,
        actor=ended_by,
        action="chat_blocked" if block else "chat_ended",
        case_id=case.id,
        from_state=case.state,
        to_state=case.state,
        detail={"chat_id": chat.id, "messages": len(messages_after(session, chat, 0))},
    )
    session.flush()
    return ChatEnd(case.reference or "", None if block else new_secret)
