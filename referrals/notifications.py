"""Notifications: pages, breaches, declined or failed referrals, replies to tipsters.

Each ``notify`` outbox message becomes one ``Notification`` row per recipient and
channel, written before anything is sent, so a retried job sends only what is still
unsent. Supervisors get at least once (a page must arrive); a tipster gets at most once
(a second text to a victim's phone is a risk), and only with call-back consent, a number
that has not opted out and no "not safe to text" on record. A text to a tipster waits for
their safe hours (the message is handed back to the outbox, due at the window's next
opening: no worker waits), and a tipster who asked for it gets only an announcement,
never the reply itself (workflows.safe_hours).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from config.i18n import N_, text_in
from config.metrics import count_breaches
from config.runtime import Runtime
from intake.models import TipMessage
from intake.sms import (
    is_opted_out,
    phone_key,
    set_opt_out,
    whatsapp_window_open,
)
from referrals import messaging
from referrals.channels import Message, channel_for
from referrals.models import DeadlineBreach, Notification
from workflows.db import transaction, utcnow
from workflows.deadlines import aware, open_case_late, question_late, referral_late
from workflows.emergency import REPAGES, due_repages
from workflows.models import Case, Referral, Role, User
from workflows.outbox import EMERGENCY_RANK, OutboxMessage, add_notification
from workflows.packets import consent_given
from workflows.pii import lookup_hash
from workflows.safe_hours import TipsterSafety, tipster_safety
from workflows.vocabulary import LANGUAGES

log = logging.getLogger(__name__)

SUPERVISOR_KINDS = (
    "emergency_page", "emergency_repage", "deadline_breach", "referral_declined",
    "referral_failed", "spool_drained",
)
# An agency's question goes to the case's assignee (to the supervisors when nobody holds
# the case: they assign it).
KINDS = (*SUPERVISOR_KINDS, "tipster_reply", "service_referral", "agency_question")
CASELESS_KINDS = frozenset({"spool_drained"})  # about the service, not one case


class NotifyFailed(Exception):
    """Some recipients could not be reached yet; the job retries the unsent ones."""


class NotifyHeld(Exception):
    """A tipster's text waits for their safe hours: run the message again at ``until``."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"held until {until.isoformat()} (safe hours)")
        self.until = until


@dataclass(frozen=True)
class Recipient:
    channel: str  # a name in referrals.channels (sms: a whatsapp: address is WhatsApp)
    address: str


def record_opt_out(session: Session, e164: str) -> None:
    """Twilio said 21610 (unsubscribed): suppress the number as if it had texted STOP."""
    set_opt_out(session, lookup_hash(phone_key(e164)), True)


def _supervisors(session: Session, runtime: Runtime, everyone: bool = False) -> list[Recipient]:
    """The on-call supervisor's phone (else every supervisor's), or with ``everyone``
    the on-call phone and every supervisor's; e-mail to the desk list and supervisors."""
    settings = runtime.settings
    people = session.scalars(
        select(User).where(User.role == Role.SUPERVISOR.value, User.active.is_(True))
    ).all()
    oncall = [settings.oncall_supervisor_phone] if settings.oncall_supervisor_phone else []
    all_phones = [p.phone for p in people if p.phone]
    phones = oncall + all_phones if everyone else oncall or all_phones
    emails = list(settings.supervisor_emails) + [p.email for p in people if p.email]
    found = [Recipient("sms", p) for p in phones] + [Recipient("email", e) for e in emails]
    return list(dict.fromkeys(found))


def _tipster_phone(case: Case) -> str | None:
    """The number the tipster can be called back on, unless a signal says not safe."""
    phone = None
    for signal in case.signals:
        if signal.safe_contact:
            try:
                safe = json.loads(signal.safe_contact)
            except ValueError:
                safe = {}
            if safe.get("safe_to_text") is False:
                return None
        phone = phone or signal.contact_phone or signal.from_phone
    return phone


def _assignee(case: Case) -> list[Recipient]:
    """The phone and e-mail of the person who holds the case, if they can be reached."""
    person = case.assignee
    if person is None or not person.active:
        return []
    found = [Recipient("sms", person.phone)] if person.phone else []
    return found + ([Recipient("email", person.email)] if person.email else [])


def _tipster(session: Session, case: Case) -> list[Recipient]:
    if not consent_given(case.screening, "callback"):
        log.info("case %s: no call-back consent, tipster not contacted", case.id)
        return []
    phone = _tipster_phone(case)
    if phone is None:
        return []
    if is_opted_out(session, phone):
        log.info("case %s: tipster number opted out, not texted", case.id)
        return []
    return [Recipient("sms", phone)]


# What a text to a tipster adds around the hotline's words, in the tipster's language.
# The announcement names neither the case nor the reference: whoever else reads the
# phone learns nothing but that a message exists.
TIPSTER_WORDS = {  # English msgids; translated by text_in() into the tipster's language
    "replied": N_("The hotline has replied to your tip."),
    "footer": N_("(Ref {ref}. Reply STOP to stop texts.)"),
    "announce": N_("You have a message from the hotline. Use your reference to read it."),
    "announce_footer": N_("(Reply STOP to stop texts.)"),
}


def tipster_language(case: Case) -> str:
    """The language the tipster chose (their latest signal's), English if unknown."""
    for signal in reversed(case.signals):
        if signal.language in LANGUAGES:
            return str(signal.language)
    return "en"


def _text(
    session: Session, kind: str, case: Case | None, payload: dict[str, Any]
) -> tuple[str, str]:
    """Subject and body; supervisors' texts carry references, never the tip itself."""
    if kind == "spool_drained":
        return (
            "Intake spool drained",
            f"The database was unreachable from {payload.get('spooled_since')}: "
            f"{payload.get('items')} call, text and tip record(s) were spooled and are now "
            "in the case queues.",
        )
    assert case is not None
    referral = session.get(Referral, payload["referral_id"]) if payload.get("referral_id") else None
    agency = referral.agency_code if referral else "the agency"
    ref = case.reference
    if kind == "emergency_page":
        return f"EMERGENCY case {ref}", f"EMERGENCY: case {ref} reports imminent danger. Act now."
    if kind == "emergency_repage":
        minutes = 5 * int(payload.get("level") or 1)
        return (
            f"EMERGENCY unacknowledged {ref}",
            f"EMERGENCY, no one has acknowledged for {minutes} min: case {ref} reports "
            "imminent danger. Acknowledge it on the case page now.",
        )
    if kind == "deadline_breach":
        what = f"referral to {agency} ({referral.state})" if referral else f"case ({case.state})"
        if payload.get("question"):
            what = f"{agency}'s question is not answered yet"
        return f"Deadline passed: {ref}", f"Deadline passed for case {ref}: {what}."
    if kind == "referral_declined":
        return (
            f"{agency} declined {ref}",
            f"{agency} declined the referral for case {ref}. Re-route or close it.",
        )
    if kind == "agency_question":
        # The question itself may quote the case: it is read on the case page only.
        return (
            f"{agency} asks about {ref}",
            f"{agency} asked a question on its referral for case {ref}. Answer it on the "
            "case page.",
        )
    if kind == "referral_failed":
        return (
            f"Delivery failed: {ref}",
            f"Delivery to {agency} failed for case {ref} after every retry. Retry or re-route.",
        )
    return "Hotline reply", tipster_text(session, case, payload, tipster_safety(case.signals))


def tipster_text(
    session: Session, case: Case, payload: dict[str, Any], safety: TipsterSafety
) -> str:
    """The text to the tipster's phone: the reply, or with announce-only just the news
    that there is one, in the tipster's language."""
    lang = tipster_language(case)
    words = {key: text_in(lang, msgid) for key, msgid in TIPSTER_WORDS.items()}
    if safety.announce_only:
        return f"{words['announce']}\n{words['announce_footer']}"
    message_id = payload.get("message_id")
    message = session.get(TipMessage, message_id) if message_id else None
    body = message.body if message is not None else words["replied"]
    return f"{body}\n" + words["footer"].format(ref=case.reference)


def _provider(
    session: Session, runtime: Runtime, case: Case, payload: dict[str, Any]
) -> tuple[list[Recipient], tuple[str, str]]:
    """A service provider's e-mail: the signed link, never the case's story."""
    from referrals.provider_pages import LINK_DAYS, provider_link
    from workflows.providers import ServiceReferral

    referral = session.get(ServiceReferral, payload.get("service_referral_id"))
    if referral is None or not referral.provider.email:
        return [], ("", "")
    link = provider_link(runtime.settings, referral.id)
    return [Recipient("email", referral.provider.email)], (
        f"Referral from the hotline: {case.reference}",
        f"The hotline refers someone to {referral.provider.name}.\n"
        f"Open this link to see what is needed and to answer (valid {LINK_DAYS} days):\n{link}",
    )


def _plan(session: Session, runtime: Runtime, message: OutboxMessage) -> list[Notification]:
    """Write (or find) the Notification rows of this message before anything is sent."""
    payload = message.payload or {}
    kind = payload.get("kind")
    case = session.get(Case, payload.get("case_id")) if payload.get("case_id") else None
    if kind not in KINDS or (case is None and kind not in CASELESS_KINDS):
        log.warning("outbox %s: notify of kind %r for case %r dropped", message.id, kind, case)
        return []
    existing = {
        (n.channel, n.recipient_hash): n
        for n in session.scalars(select(Notification).where(Notification.outbox_id == message.id))
    }
    if kind == "service_referral" and case is not None:  # both about one case (checked above)
        recipients, (subject, body) = _provider(session, runtime, case, payload)
    else:
        if kind == "tipster_reply" and case is not None:
            recipients = _tipster(session, case)
        elif kind == "agency_question" and case is not None and _assignee(case):
            recipients = _assignee(case)
        else:
            recipients = _supervisors(
                session, runtime,
                everyone=kind == "emergency_repage" and payload.get("level") == 2,
            )
        subject, body = _text(session, kind, case, payload)
    announced = (kind == "tipster_reply" and case is not None
                 and tipster_safety(case.signals).announce_only)
    rows = []
    for recipient in recipients:
        key = (recipient.channel, lookup_hash(recipient.address))
        row = existing.pop(key, None)
        has_subject = channel_for(recipient.channel, recipient.address).has_subject
        text = f"{subject}\n\n{body}" if has_subject else body
        if row is None:
            row = Notification(
                outbox_id=message.id,
                kind=kind,
                channel=recipient.channel,
                recipient=recipient.address,
                recipient_hash=key[1],
                body=text,
                case_id=case.id if case is not None else None,
                referral_id=payload.get("referral_id"),
                message_id=payload.get("message_id") if kind == "tipster_reply" else None,
                announced_only=announced,
            )
            session.add(row)
        elif kind == "tipster_reply" and row.state in UNSENT:
            # Held for hours, the tipster may have asked for announce-only meanwhile: a
            # text not yet sent always says what their latest choice allows.
            row.body, row.announced_only = text, announced
        rows.append(row)
    for row in existing.values():
        if row.kind == "tipster_reply" and row.state in UNSENT:
            # No longer consented, safe or reachable: the held text never goes.
            row.state, row.error = "skipped", "tipster no longer to be texted"
    session.flush()
    return rows


UNSENT = frozenset({"pending", "held", "failed"})


def _send_one(session: Session, runtime: Runtime, row: Notification) -> str | None:
    """Send one row; returns an error text when it should be retried."""
    try:
        channel = channel_for(row.channel, row.recipient)
        if channel.opt_out and is_opted_out(session, row.recipient):
            row.state = "opted_out"
            return None
        subject, text = "", row.body
        if channel.has_subject:  # stored as "subject, blank line, body" (_plan)
            subject, _, text = row.body.partition("\n\n")
        closed = channel.templates and not whatsapp_window_open(session, row.recipient)
        message = Message(text=text, subject=subject, template_only=closed)
        row.provider_id = channel.send(runtime.settings, row.recipient, message).provider_id
        row.state, row.sent_at, row.error = "sent", utcnow(), None
    except messaging.RecipientOptedOut:
        row.state, row.error = "opted_out", "unsubscribed (twilio 21610)"
        record_opt_out(session, row.recipient)
    except messaging.ChannelNotConfigured as exc:
        row.state, row.error = "skipped", str(exc)
        log.warning("notification %s skipped: %s", row.id, exc)
    except messaging.SendFailed as exc:
        row.state, row.error = "failed", str(exc)
        return str(exc)
    return None


def send_notifications(session: Session, message: OutboxMessage, runtime: Runtime) -> int:
    """Send what this ``notify`` message still owes; raises NotifyFailed to be retried,
    NotifyHeld when a tipster's text must wait for their safe hours."""
    with transaction(session):
        rows = _plan(session, runtime, message)
    errors, sent = [], 0
    held: list[datetime] = []
    for row in rows:
        if row.state in {"sent", "opted_out", "skipped", "unknown"}:
            continue
        if row.kind == "tipster_reply":
            if row.state == "sending":
                # An earlier try may have sent it; at most once to a tipster's phone.
                with transaction(session):
                    row.state = "unknown"
                continue
            case = session.get(Case, row.case_id)
            until = tipster_safety(case.signals).hold_until(utcnow()) if case else None
            with transaction(session):
                if until is not None:
                    row.state, row.held_until, row.error = "held", until, None
                else:
                    row.state = "sending"
            if until is not None:
                held.append(until)
                continue
        with transaction(session):
            error = _send_one(session, runtime, row)
        if error:
            errors.append(error)
        elif row.state == "sent":
            sent += 1
    if errors:
        raise NotifyFailed("; ".join(sorted(set(errors))))
    if held:
        raise NotifyHeld(min(held))
    return sent


def _unrecorded_breaches(
    session: Session, subject: str, row_id: Any, case_id: Any, due: Any,
    late: ColumnElement[bool],
) -> list[Any]:
    """(id, case id, deadline) of the rows ``late`` finds whose breach (keyed on
    subject, id and that deadline) is not yet recorded."""
    return list(
        session.execute(
            select(row_id, case_id, due)
            .outerjoin(
                DeadlineBreach,
                and_(
                    DeadlineBreach.subject == subject,
                    DeadlineBreach.subject_id == row_id,
                    DeadlineBreach.deadline == due,
                ),
            )
            .where(late, DeadlineBreach.id.is_(None))
        ).all()
    )


def check_deadlines(session: Session, now: datetime | None = None) -> int:
    """Record each newly passed deadline once and queue one notification for it."""
    now = now or utcnow()
    found: dict[str, int] = {}
    with transaction(session):
        late_referrals = _unrecorded_breaches(
            session, "referral", Referral.id, Referral.case_id, Referral.deadline,
            referral_late(now),
        )
        late_cases = _unrecorded_breaches(
            session, "case", Case.id, Case.id, Case.deadline, open_case_late(now)
        )
        late_questions = _unrecorded_breaches(
            session, "question", Referral.id, Referral.case_id, Referral.question_due,
            and_(question_late(now), Referral.case.has(Case.purged_at.is_(None))),
        )
        for subject, rows in (("referral", late_referrals), ("case", late_cases),
                              ("question", late_questions)):
            for subject_id, case_id, deadline in rows:
                if _record_breach(session, subject, subject_id, case_id, deadline):
                    add_notification(
                        session, "deadline_breach", case_id=case_id,
                        referral_id=subject_id if subject != "case" else None,
                        **({"question": True} if subject == "question" else {}),
                    )
                    found[subject] = found.get(subject, 0) + 1
        _repage_emergencies(session, now, found)
    count_breaches(found)  # committed: each breach is counted once, as it is notified once
    return sum(found.values())


def _repage_emergencies(session: Session, now: datetime, found: dict[str, int]) -> None:
    """Re-page each unacknowledged emergency at 5 min (on-call) and 10 min (everyone).

    Each re-page is a breach row keyed on (level, case): an emergency starts once per
    case, so a watcher that runs twice, or two watchers at once, page once per level.
    """
    first_due = now - REPAGES[0][1]
    rows = session.execute(
        select(Case.id, Case.emergency_at, Case.created_at).where(
            Case.emergency_at.is_not(None),
            Case.emergency_at <= first_due,
            Case.emergency_acknowledged_at.is_(None),
            Case.priority == "emergency",
            Case.state != "closed",
            Case.purged_at.is_(None),
        )
    ).all()
    for case_id, emergency_at, created_at in rows:
        for level, _due in due_repages(aware(emergency_at), now):  # type: ignore[arg-type]
            # The unique key needs a time: the case's creation, which never moves.
            if _record_breach(session, f"emergency_{level}", case_id, case_id, created_at):
                add_notification(session, "emergency_repage", case_id=case_id, level=level,
                                 priority_rank=EMERGENCY_RANK)
                found[f"emergency_{level}"] = found.get(f"emergency_{level}", 0) + 1


def _record_breach(
    session: Session, subject: str, subject_id: int, case_id: int, deadline: datetime
) -> bool:
    """Insert the breach unless another watcher already did (unique key, no error)."""
    dialect = session.get_bind().dialect.name
    # Both dialects spell "insert unless the key exists" as on_conflict_do_nothing.
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(DeadlineBreach)
        .values(
            subject=subject,
            subject_id=subject_id,
            case_id=case_id,
            deadline=deadline,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(DeadlineBreach.id)
    )
    # RETURNING, not rowcount: a row comes back only when this watcher inserted it.
    return session.execute(stmt).scalar() is not None


def reply_deliveries(session: Session, case: Case) -> dict[int, str]:
    """What became of each hotline reply's text, by message id, as staff read it:
    "held until 18:00 America/Chicago (safe hours)", "announced only", "texted", …"""
    safety = tipster_safety(case.signals)
    zone = safety.window.zone if safety.window else UTC
    found: dict[int, str] = {}
    rows = session.scalars(
        select(Notification)
        .where(Notification.case_id == case.id, Notification.kind == "tipster_reply",
               Notification.message_id.is_not(None))
        .order_by(Notification.id)
    )
    for row in rows:
        if row.state == "held" and row.held_until is not None:
            local = aware(row.held_until).astimezone(zone)  # type: ignore[union-attr]
            note = f"held until {local:%H:%M} {zone} (safe hours)"
            if local.date() != utcnow().astimezone(zone).date():
                note = f"held until {local:%Y-%m-%d %H:%M} {zone} (safe hours)"
        else:
            note = DELIVERY_WORDS.get(row.state, row.state)
        if row.announced_only:
            note = "announced only" if row.state == "sent" else f"{note}; announced only"
        found[row.message_id] = note  # type: ignore[index]
    return found


DELIVERY_WORDS = {
    "pending": "text queued",
    "sending": "text being sent",
    "sent": "texted",
    "failed": "text failed, retrying",
    "opted_out": "not texted: the number opted out",
    "skipped": "not texted",
    "unknown": "text may have gone (not repeated)",
}
