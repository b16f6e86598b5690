"""Work typed into a staff form that is not saved yet: drafts and kept submits.

An advocate's account of a call is as precious as a tip (issue 19): a *draft* is saved
as the person types, bound to that user and that form; a *kept submit* is a form that
arrived after the session expired or without a valid CSRF token, held until the same
person logs in again on the same browser. Both are encrypted like every personal value
and short-lived: a draft goes on submit or after a day, a kept submit after two hours.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from workflows.db import Base, utcnow
from workflows.pii import EncryptedText

DRAFT_LIFETIME = timedelta(days=1)
KEPT_SUBMIT_LIFETIME = timedelta(hours=2)
MAX_FORM_KEY = 200
MAX_FIELDS = 400
MAX_VALUE = 50_000

# A form's pairs: the browser's field order, repeated names (checkbox lists) kept.
FormPairs = list[tuple[str, str]]


class KeptForm(Base):
    """A draft (``kind='draft'``) or a kept submit (``kind='submit'``) of one staff form."""

    __tablename__ = "kept_forms"
    __table_args__ = (Index("ix_kept_forms_user_form", "user_id", "form_key", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    form_key: Mapped[str] = mapped_column(String(MAX_FORM_KEY))
    # Where the form lives (a path on this site), to land back on it after logging in.
    back: Mapped[str] = mapped_column(String(500))
    fields: Mapped[str] = mapped_column(EncryptedText)
    # A kept submit's browser token, hashed: the cookie alone is not enough to read it,
    # nor is the user id alone; both must match.
    token_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    @property
    def pairs(self) -> FormPairs:
        """The form's fields as (name, value) pairs."""
        return [(str(k), str(v)) for k, v in json.loads(self.fields)]


def clean_pairs(pairs: Any) -> FormPairs:
    """Bounded pairs of text: what a real form can hold, nothing bigger (hostile input)."""
    out: FormPairs = []
    for name, value in list(pairs)[:MAX_FIELDS]:
        name, value = str(name)[:100], str(value)[:MAX_VALUE]
        if name in {"csrf_token", "_desk_user"} or not name:
            continue  # never keep a secret, nor the binding that is stored apart
        out.append((name, value))
    return out


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def purge_expired_forms(session: Session, now: datetime | None = None) -> int:
    """Delete drafts and kept submits past their time (called on use and by the purge)."""
    result = session.execute(delete(KeptForm).where(KeptForm.expires_at < (now or utcnow())))
    return int(getattr(result, "rowcount", 0) or 0)


def save_draft(session: Session, user_id: int, form_key: str, back: str, pairs: Any) -> KeptForm:
    """Keep (or replace) this user's draft of this form for a day."""
    now = utcnow()
    key = form_key[:MAX_FORM_KEY]
    draft = find_draft(session, user_id, key)
    if draft is None:
        draft = KeptForm(kind="draft", user_id=user_id, form_key=key)
        session.add(draft)
    draft.back = back[:500]
    draft.fields = json.dumps(clean_pairs(pairs))
    draft.updated_at = now
    draft.expires_at = now + DRAFT_LIFETIME
    return draft


def find_draft(session: Session, user_id: int, form_key: str) -> KeptForm | None:
    """This user's live draft of this form, if any."""
    return session.scalars(
        select(KeptForm)
        .where(
            KeptForm.kind == "draft",
            KeptForm.user_id == user_id,
            KeptForm.form_key == form_key[:MAX_FORM_KEY],
            KeptForm.expires_at >= utcnow(),
        )
        .order_by(KeptForm.updated_at.desc())
        .limit(1)
    ).first()


def discard_draft(session: Session, user_id: int, form_key: str) -> None:
    """The form was submitted (or the person threw the draft away): the draft goes."""
    session.execute(
        delete(KeptForm).where(
            KeptForm.kind == "draft",
            KeptForm.user_id == user_id,
            KeptForm.form_key == form_key[:MAX_FORM_KEY],
        )
    )


def keep_submit(session: Session, user_id: int, form_key: str, back: str, pairs: Any) -> str:
    """Hold a submit that could not be taken (session gone, token stale); returns the
    browser token that, with the same user logged in again, gets it back."""
    token = secrets.token_urlsafe(24)
    now = utcnow()
    session.add(
        KeptForm(
            kind="submit",
            user_id=user_id,
            form_key=form_key[:MAX_FORM_KEY],
            back=back[:500],
            fields=json.dumps(clean_pairs(pairs)),
            token_hash=_hash_token(token),
            updated_at=now,
            expires_at=now + KEPT_SUBMIT_LIFETIME,
        )
    )
    return token


def claim_submit(session: Session, user_id: int, token: str) -> KeptForm | None:
    """The kept submit of this browser token, if it belongs to this user and is live.

    It stays until the form is submitted (so a reload restores it again) or expires.
    """
    if not token or len(token) > 100:
        return None
    return session.scalars(
        select(KeptForm).where(
            KeptForm.kind == "submit",
            KeptForm.token_hash == _hash_token(token),
            KeptForm.user_id == user_id,
            KeptForm.expires_at >= utcnow(),
        )
    ).first()


def forget_submits(session: Session, user_id: int, form_key: str) -> None:
    """The form went through: any kept submit of it is done with."""
    session.execute(
        delete(KeptForm).where(
            KeptForm.kind == "submit",
            KeptForm.user_id == user_id,
            KeptForm.form_key == form_key[:MAX_FORM_KEY],
        )
    )
