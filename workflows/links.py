"""Links between tips: the identifier index, related cases, search by identifier.

Every row that names identifiers (a subject, a location, a signal's numbers and text, a
tipster's message) declares ``identifier_source``, ``identifier_fields`` and
``identifiers()``; after each flush the index rows of whatever changed are rewritten
here, so no way in (IVR, SMS, web, call form, API edit, merge) can forget it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any

from sqlalchemy import Table, and_, delete, insert, inspect, select
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, aliased

from workflows.db import is_postgres, utcnow
from workflows.identifiers import identifier_hash, normalise
from workflows.models import Case, CaseIdentifier, Referral

RELATED_LIMIT = 50


def _index_table() -> Table:
    """The index's Core table: declarative types ``__table__`` as any FromClause, but a
    model declared with columns (as this one is) is mapped to a Table."""
    table = CaseIdentifier.__table__
    assert isinstance(table, Table)
    return table


def _indexed(obj: Any) -> bool:
    return getattr(type(obj), "identifier_source", None) is not None


def _changed(obj: Any) -> bool:
    state = inspect(obj)
    return any(state.attrs[f].history.has_changes() for f in type(obj).identifier_fields)


@sa_event.listens_for(Session, "after_flush")
def _index_identifiers(session: Session, _flush_context: Any) -> None:
    """Rewrite the index rows of every identifier-bearing row this flush touched."""
    table = _index_table()
    stale: list[tuple[str, int]] = []
    fresh: list[dict[str, Any]] = []
    # A row inserted by this flush has no index rows yet where ids are never reused
    # (PostgreSQL sequences): a DELETE for it would be a round trip that finds nothing.
    # SQLite may hand a deleted row's id out again, so there it is cleared all the same.
    reused_ids = not is_postgres(session)
    for obj in session.deleted:
        if _indexed(obj):
            stale.append((type(obj).identifier_source, obj.id))
    for obj in chain(session.new, session.dirty):
        if not _indexed(obj) or (obj not in session.new and not _changed(obj)):
            continue
        source = type(obj).identifier_source
        if reused_ids or obj not in session.new:
            stale.append((source, obj.id))
        now = utcnow()
        for kind, normal in dict.fromkeys(obj.identifiers()):
            fresh.append(
                {
                    "case_id": obj.case_id,
                    "kind": kind,
                    "value_hash": identifier_hash(kind, normal),
                    "source": source,
                    "source_id": obj.id,
                    "created_at": now,
                }
            )
    if not stale and not fresh:
        return
    connection = session.connection()
    for source, source_id in stale:
        connection.execute(
            delete(table).where(table.c.source == source, table.c.source_id == source_id)
        )
    if fresh:
        connection.execute(insert(table), fresh)


@dataclass(frozen=True)
class RelatedCase:
    id: int
    reference: str | None
    shared: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "reference": self.reference, "shared": self.shared}


def _sharing(case_id: int) -> Any:
    """(other case, kind) pairs sharing a hash with this case: a probe of the
    (value_hash, case_id) index per identifier of the case."""
    mine = aliased(CaseIdentifier)
    other = aliased(CaseIdentifier)
    return (
        select(other.case_id, other.kind)
        .join(mine, and_(mine.value_hash == other.value_hash, mine.case_id != other.case_id))
        .where(mine.case_id == case_id)
    )


def related_cases(session: Session, case_id: int) -> list[RelatedCase]:
    """The other cases naming any identifier this one names, with the kinds shared."""
    pairs = _sharing(case_id).subquery()
    rows = session.execute(
        select(Case.id, Case.reference, pairs.c.kind)
        .join(pairs, pairs.c.case_id == Case.id)
        .where(Case.purged_at.is_(None), Case.merged_into_id.is_(None))
        .distinct()
        .order_by(Case.id.desc())
    ).all()
    found: dict[int, RelatedCase] = {}
    for row in rows:
        item = found.get(row.id)
        if item is None:
            if len(found) >= RELATED_LIMIT:
                continue
            item = found[row.id] = RelatedCase(row.id, row.reference, [])
        if row.kind not in item.shared:
            item.shared.append(row.kind)
    for item in found.values():
        item.shared.sort()
    return list(found.values())


def cases_naming(session: Session, kind: str, raw: str) -> list[Case]:
    """Cases naming this identifier, newest first, found by its hash alone."""
    value_hash = identifier_hash(kind, normalise(kind, raw))
    ids = select(CaseIdentifier.case_id).where(CaseIdentifier.value_hash == value_hash)
    return list(
        session.scalars(
            select(Case)
            .where(Case.id.in_(ids), Case.purged_at.is_(None), Case.merged_into_id.is_(None))
            .order_by(Case.id.desc())
            .limit(RELATED_LIMIT)
        )
    )


def earlier_referrals_sharing(session: Session, referral: Referral) -> dict[str, Any]:
    """How many referrals sent earlier to this referral's agency share an identifier with
    its case, and their case references: that agency's own referrals, never another's."""
    pairs = _sharing(referral.case_id).subquery()
    rows = session.execute(
        select(Referral.id, Case.reference)
        .join(Case, Case.id == Referral.case_id)
        .where(
            Referral.case_id.in_(select(pairs.c.case_id)),
            Referral.agency_code == referral.agency_code,
            Referral.id != referral.id,
            Referral.sent_at.is_not(None),
            Case.purged_at.is_(None),
        )
        .order_by(Referral.id)
    ).all()
    references = sorted({row.reference for row in rows if row.reference})
    return {"count": len(rows), "references": references}


def indexed_models() -> list[type[Any]]:
    """Every mapped class that names identifiers (found by its declaration, not imported)."""
    from workflows.db import Base

    return [
        m.class_ for m in Base.registry.mappers
        if getattr(m.class_, "identifier_source", None) is not None
    ]


def reindex_identifiers(session: Session, batch_size: int = 500) -> int:
    """Rebuild the whole index from the rows (after an upgrade from 0001, or after
    ``PII_LOOKUP_KEY`` changed: every hash is recomputed under the current key).
    One transaction per batch, so it can be stopped and run again; returns rows indexed."""
    table = _index_table()
    done = 0
    for model in indexed_models():
        last_id = 0
        while True:
            rows = session.scalars(
                select(model).where(model.id > last_id).order_by(model.id).limit(batch_size)
            ).all()
            if not rows:
                break
            ids = [row.id for row in rows]
            session.execute(
                delete(table).where(table.c.source == model.identifier_source,
                                    table.c.source_id.in_(ids))
            )
            now = utcnow()
            fresh = [
                {"case_id": row.case_id, "kind": kind,
                 "value_hash": identifier_hash(kind, normal),
                 "source": model.identifier_source, "source_id": row.id, "created_at": now}
                for row in rows
                for kind, normal in dict.fromkeys(row.identifiers())
            ]
            if fresh:
                session.execute(insert(table), fresh)
            session.commit()
            session.expunge_all()
            done += len(rows)
            last_id = ids[-1]
    return done
