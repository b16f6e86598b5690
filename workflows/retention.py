"""Retention: closed cases lose their personal data after a configured number of days.

Purging de-identifies rather than deletes: every encrypted column, look-up hash and
Twilio SID of the case's rows is erased (rows whose personal data is mandatory, such
as messages and notifications, are deleted), while the case stays as a shell (state,
type, priority, level, score, dates, referral rows) so statistics still add up. Each
purge writes its own audit event and erases the free text (reason, detail) of the case's
older events; the chain covers an HMAC of that text, so it still verifies. Idempotent:
a purged case has ``purged_at`` and is never looked at again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Table, delete, select, update
from sqlalchemy.orm import Session

from workflows.audit import erase_case_content, record_event
from workflows.catalog_files import CatalogError, line_of, read_yaml, read_yaml_nodes
from workflows.db import Base, is_postgres, transaction
from workflows.models import Case, Referral
from workflows.pii import EncryptedText
from workflows.threads import ReferralMessage  # noqa: F401 - a case's PII the purge finds

ACTOR = "system:retention"
# Referrals still waiting on delivery or an agency's answer hold a case back from purging.
HOLDING_REFERRAL_STATES = ("pending", "queued", "sent", "failed")
# Hash columns that are not personal data (secrets, the audit chain).
NOT_PII_HASHES = {"passphrase_hash", "token_hash", "prev_hash", "hash", "password_hash"}


@dataclass(frozen=True)
class RetentionPolicy:
    """Days a closed case keeps its personal data: by resolution code, else by case type."""

    default_days: int
    case_types: dict[str, int] = field(default_factory=dict)
    resolutions: dict[str, int] = field(default_factory=dict)

    def days_for(self, case_type: str | None, resolution_code: str | None) -> int:
        """The retention period that applies to one case."""
        if resolution_code and resolution_code in self.resolutions:
            return self.resolutions[resolution_code]
        return self.case_types.get(case_type or "unknown", self.default_days)

    @property
    def shortest(self) -> int:
        return min([self.default_days, *self.case_types.values(), *self.resolutions.values()])


def _days(path: Path, nodes: Any, value: Any, *keys: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        where = ".".join(keys)
        raise CatalogError(
            f"{path}, line {line_of(nodes, *keys)}: {where} must be a whole number of days "
            f"(1 or more), not {value!r}"
        )
    return value


def load_retention_policy(path: Path) -> RetentionPolicy:
    """Read ``retention.yaml``; a missing file means the default (730 days for all)."""
    if not path.exists():
        return RetentionPolicy(default_days=730)
    data = read_yaml(path) or {}
    nodes = read_yaml_nodes(path)
    if not isinstance(data, dict):
        raise CatalogError(f"{path}, line 1: expected a mapping")
    unknown = set(data) - {"default_days", "case_types", "resolutions"}
    if unknown:
        key = sorted(unknown)[0]
        raise CatalogError(f"{path}, line {line_of(nodes, key)}: unknown key {key!r}")
    default = _days(path, nodes, data.get("default_days", 730), "default_days")
    groups: dict[str, dict[str, int]] = {}
    for group in ("case_types", "resolutions"):
        entries = data.get(group) or {}
        if not isinstance(entries, dict):
            raise CatalogError(f"{path}, line {line_of(nodes, group)}: {group} must be a mapping")
        groups[group] = {
            str(name): _days(path, nodes, days, group, str(name)) for name, days in entries.items()
        }
    return RetentionPolicy(default, groups["case_types"], groups["resolutions"])


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every timestamp we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# Encrypted columns the purge reduces to what statistics need rather than erases.
AGGREGATED = {("referrals", "outcome")}


def _pii_columns(table: Table) -> list[Column[Any]]:
    return [
        c
        for c in table.columns
        if (isinstance(c.type, EncryptedText) and (table.name, c.name) not in AGGREGATED)
        or (c.name.endswith("_hash") and c.name not in NOT_PII_HASHES)
        or c.name.endswith("_sid")
    ]


def _tables_holding_case_pii() -> list[tuple[Table, list[Column[Any]]]]:
    """Tables with personal data tied to a case (by case_id or signal_id), dependents first."""
    found = []
    for table in reversed(Base.metadata.sorted_tables):
        if table.name in {"cases", "audit_events"}:
            continue
        if "case_id" not in table.c and "signal_id" not in table.c:
            continue
        columns = _pii_columns(table)
        if columns:
            found.append((table, columns))
    return found


def _rows_of_case(table: Table, case_id: int) -> Any:
    if "case_id" in table.c:
        return table.c.case_id == case_id
    signals = Base.metadata.tables["signals"]
    return table.c.signal_id.in_(select(signals.c.id).where(signals.c.case_id == case_id))


# What of a screening or an outcome survives a purge: yes/no facts, code values a
# statistic counts by, amounts; never free text. Lists of free text become counts.
CODE_KEYS = frozenset(
    {
        "trafficking_type",
        "request_type",
        "venue",
        "caller_type",
        "level",
        "priority",
        "investigation_status",
        "currency",
        "scope",
        "state",  # statistics by state survive a purge; county and city do not
    }
)
CODE_LIST_KEYS = frozenset({"indicators", "triggers"})
AMOUNT_KEYS = frozenset({"score", "restitution_ordered", "restitution_paid"})
COUNTED_LIST_KEYS = frozenset({"charges", "convictions"})
# A typed outcome (workflows.outcomes) keeps what the relief figures count; never notes.
OUTCOME_CODES = ("kind", "status", "date")


def _outcome_codes(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    kept: dict[str, Any] = {
        k: item[k] for k in OUTCOME_CODES if isinstance(item.get(k), str) and len(item[k]) <= 40
    }
    amount = item.get("amount")
    if isinstance(amount, int | float) and not isinstance(amount, bool):
        kept["amount"] = amount
    return kept or None


def aggregate_only(value: Any, key: str | None = None) -> Any:
    """The part of a JSON value that statistics need and that names no one (None: nothing)."""
    if isinstance(value, dict):
        kept = {k: aggregate_only(v, str(k)) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not None and v != {}} or None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and key in AMOUNT_KEYS:
        return value
    if isinstance(value, str) and key in CODE_KEYS and len(value) <= 40:
        return value
    if isinstance(value, list) and key == "outcomes":
        return [codes for item in value if (codes := _outcome_codes(item))] or None
    if isinstance(value, list) and key in COUNTED_LIST_KEYS:
        return len(value)
    if isinstance(value, list) and key in CODE_LIST_KEYS:
        return [v for v in value if isinstance(v, str) and len(v) <= 64]
    return None


def purge_case(session: Session, case: Case, now: datetime, days: int) -> dict[str, int]:
    """De-identify one closed case inside the caller's transaction; returns what was done."""
    done: dict[str, int] = {}
    for table, columns in _tables_holding_case_pii():
        where = _rows_of_case(table, case.id)
        if any(not c.nullable for c in columns):
            result = session.execute(delete(table).where(where))
            done[f"{table.name}_deleted"] = result.rowcount or 0  # type: ignore[attr-defined]
        else:
            result = session.execute(
                update(table).where(where).values({c.name: None for c in columns})
            )
            done[f"{table.name}_erased"] = result.rowcount or 0  # type: ignore[attr-defined]
    for referral in session.scalars(select(Referral).where(Referral.case_id == case.id)):
        referral.decline_reason = None
        referral.question_due = None  # its thread is deleted: nothing is owed any more
        referral.outcome = aggregate_only(referral.outcome)
    case.passphrase_hash = None
    case.screening = aggregate_only(case.screening)
    case.purged_at = now
    session.expire(case, ["signals", "messages"])
    # Reasons and details of its audit events may quote the tipster: erased too. The
    # chain covers their HMAC, not the text, so it still verifies (workflows.audit).
    done["audit_events_erased"] = erase_case_content(session, case.id)
    record_event(
        session,
        actor=ACTOR,
        action="purge",
        case_id=case.id,
        from_state=case.state,
        to_state=case.state,
        reason=f"retention: closed more than {days} days ago",
        detail={"retention_days": days, **done},
    )
    return done


def expired_case_ids(session: Session, now: datetime, policy: RetentionPolicy) -> list[int]:
    """Closed, not yet purged cases past their retention period."""
    cutoff = now - timedelta(days=policy.shortest)
    holding = select(Referral.case_id).where(Referral.state.in_(HOLDING_REFERRAL_STATES))
    rows = session.execute(
        select(Case.id, Case.case_type, Case.resolution_code, Case.closed_at)
        .where(
            Case.state == "closed",
            Case.purged_at.is_(None),
            Case.closed_at.is_not(None),
            Case.closed_at <= cutoff,
            Case.id.not_in(holding),
        )
        .order_by(Case.id)
    ).all()
    return [
        row.id
        for row in rows
        if _aware(row.closed_at) + timedelta(policy.days_for(row.case_type, row.resolution_code))
        <= now
    ]


def purge_expired(session: Session, now: datetime, policy: RetentionPolicy) -> int:
    """Purge every expired case, one transaction each; returns how many were purged.

    Safe to run twice or from two workers at once: a case is re-checked under its
    version, and a purged case is skipped.
    """
    purged = 0
    for case_id in expired_case_ids(session, now, policy):
        with transaction(session):
            stmt = select(Case).where(Case.id == case_id).execution_options(populate_existing=True)
            if is_postgres(session):
                stmt = stmt.with_for_update()  # two workers never purge one case twice
            case = session.scalars(stmt).one_or_none()
            if case is None or case.purged_at is not None or case.state != "closed":
                continue
            days = policy.days_for(case.case_type, case.resolution_code)
            purge_case(session, case, now, days)
        purged += 1
    return purged
