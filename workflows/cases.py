"""Opening cases and finding them; every new case starts in ``received``."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows import links  # noqa: F401  (registers the identifier index)
from workflows.audit import new_chain, record_event
from workflows.db import insert_object, utcnow
from workflows.deadlines import DEFAULT_CASE_DEADLINES
from workflows.errors import NotFound
from workflows.models import PRIORITY_RANK, Case, Priority

# Crockford's base32: digits and letters without I, L, O and U, so a reference read
# aloud or copied by hand is not mistaken (issue 11, item 6).
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
_NEW = re.compile(r"HT[0-9A-Z]{8}")
_OLD = re.compile(r"HT[0-9]{10}")  # HT-2026-000123: references issued before, still valid
REFERENCE_ATTEMPTS = 5


class ReferenceCollision(RuntimeError):
    """Every reference drawn for a new case was taken (at 2^40, a broken generator)."""


def new_reference() -> str:
    """A random reference such as ``HT-7K3Q-9XWD``: 8 symbols of 5 bits, 40 bits.

    Random, so nobody can walk them (sequential ones let anyone spend every tip's
    passphrase tries); short enough to say on the phone.
    """
    symbols = "".join(secrets.choice(ALPHABET) for _ in range(8))
    return f"HT-{symbols[:4]}-{symbols[4:]}"


def canonical_reference(raw: str) -> str | None:
    """The reference as stored, from what a person typed; None if it cannot be one.

    Case, spaces and hyphens do not matter; O, I and L read as 0, 1 and 1 (Crockford).
    Older sequential references (``HT-2026-000123``) are still accepted.
    """
    compact = "".join(raw.split()).replace("-", "").upper()
    if _OLD.fullmatch(compact):
        return f"HT-{compact[2:6]}-{compact[6:]}"
    if not compact.startswith("HT"):
        return None
    compact = "HT" + compact[2:].translate(_READ_AS)
    if _NEW.fullmatch(compact) and all(c in ALPHABET for c in compact[2:]):
        return f"HT-{compact[2:6]}-{compact[6:]}"
    return None


def open_case(
    session: Session,
    *,
    actor: str,
    channel: str,
    anonymous: bool = False,
    priority: Priority = Priority.ROUTINE,
    passphrase_hash: str | None = None,
    reference: str | None = None,
    detail: dict[str, object] | None = None,
) -> Case:
    """Create a case in ``received`` with its reference and its first audit event.

    ``reference`` is one the tipster was already given (a spooled tip, replayed).
    """
    # Every open case has a deadline from birth, so queues sort and "late" is one range scan.
    # The reference is part of the INSERT (no UPDATE after it). One statement: a drawn
    # reference that collides (one in 2^40 per existing case) inserts nothing
    # (ON CONFLICT DO NOTHING, no savepoint) and is drawn again. A given reference (one a
    # tipster already holds) is never swapped for another: its collision is an error.
    values = {
        "deadline": utcnow() + DEFAULT_CASE_DEADLINES[priority.value],
        "state": "received",
        "priority": priority.value,
        "priority_rank": PRIORITY_RANK[priority],
        "anonymous": anonymous,
        "passphrase_hash": passphrase_hash,
        "version": 1,  # the version_id_col the unit of work would have started
    }
    case: Case | None = None
    if reference is not None:
        case = insert_object(session, Case, {**values, "reference": reference})
    else:
        for _attempt in range(REFERENCE_ATTEMPTS):
            case = insert_object(
                session, Case, {**values, "reference": new_reference()}, unique_on="reference"
            )
            if case is not None:
                break
    if case is None:
        raise ReferenceCollision(f"no free reference in {REFERENCE_ATTEMPTS} draws")
    new_chain(session, case.id)
    record_event(
        session,
        actor=actor,
        action="open",
        case_id=case.id,
        to_state="received",
        detail={"channel": channel, **(detail or {})},
    )
    return case


MAX_MERGE_HOPS = 20


def surviving_case(session: Session, case: Case) -> Case:
    """The case a merged case lives on in (itself when it was never merged)."""
    for _ in range(MAX_MERGE_HOPS):
        if case.merged_into_id is None:
            return case
        target = session.get(Case, case.merged_into_id)
        if target is None:
            break
        case = target
    return case


def get_case(session: Session, case_id: int) -> Case:
    """The case (the survivor, if it was merged), or NotFound."""
    case = session.get(Case, case_id)
    if case is not None:
        case = surviving_case(session, case)
    if case is None or case.purged_at is not None:  # a purged case is a statistics shell
        raise NotFound(f"no case {case_id}")
    return case


def find_by_reference(session: Session, reference: str) -> Case | None:
    """The case with this reference (as a person types it: see canonical_reference)."""
    canonical = canonical_reference(reference)
    if canonical is None:
        return None
    return session.scalar(select(Case).where(Case.reference == canonical))


def find_surviving_by_reference(session: Session, reference: str) -> Case | None:
    """Staff look-ups: a merged case's reference finds the case it was merged into."""
    case = find_by_reference(session, reference)
    return surviving_case(session, case) if case is not None else None
