"""Key rotation: re-encrypt every encrypted column under the newest PII key.

Run after prepending a new key to PII_ENCRYPTION_KEYS; once it reports nothing left
under older keys, the old key can be removed. It works table by table in primary-key
batches, one transaction per batch, and skips values already under the newest key, so
it can be stopped and run again at any time (idempotent).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import Column, ColumnElement, Table, Text, bindparam, select, type_coerce, update
from sqlalchemy.orm import Session

from workflows.db import Base
from workflows.pii import PREFIX, EncryptedText, keyring


def encrypted_columns() -> Iterator[tuple[Table, list[Column[str]]]]:
    """Every table with ``EncryptedText`` columns, and those columns (all models' tables)."""
    for table in Base.metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, EncryptedText)]
        if columns:
            yield table, columns


@dataclass
class RotationReport:
    checked: int = 0  # encrypted values looked at
    rotated: int = 0  # values re-encrypted under the newest key
    per_table: dict[str, int] = field(default_factory=dict)


def _raw(column: Column[str]) -> ColumnElement[str]:
    # The stored ciphertext, bypassing the column type's decryption.
    return type_coerce(column, Text)


def rotate_table(
    session: Session, table: Table, columns: list[Column[str]], batch_size: int
) -> tuple[int, int]:
    """Rotate one table; returns (values checked, values re-encrypted)."""
    (pk,) = table.primary_key.columns  # every table with PII has a single-column key
    checked = rotated = 0
    last = None
    while True:
        stmt = select(pk, *[_raw(c).label(c.name) for c in columns]).order_by(pk)
        if last is not None:
            stmt = stmt.where(pk > last)
        rows = session.execute(stmt.limit(batch_size)).all()
        if not rows:
            return checked, rotated
        for row in rows:
            changes: dict[str, str] = {}
            for column in columns:
                stored = row._mapping[column.name]
                if stored is None:
                    continue
                checked += 1
                if not stored.startswith(PREFIX) or not keyring.is_current(stored):
                    changes[column.name] = keyring.rotate(stored)
            if changes:
                # Bound as plain text: the values are ciphertext already.
                values = {name: bindparam(name, text, type_=Text) for name, text in changes.items()}
                session.execute(update(table).where(pk == row[0]).values(values))
                rotated += len(changes)
        last = rows[-1][0]
        session.commit()


def rotate_all(session: Session, batch_size: int = 500) -> RotationReport:
    """Re-encrypt every encrypted value that is not yet under the newest key."""
    report = RotationReport()
    for table, columns in encrypted_columns():
        checked, rotated = rotate_table(session, table, columns, batch_size)
        report.checked += checked
        report.rotated += rotated
        report.per_table[table.name] = rotated
    return report
