"""Looking at everything the database holds, for "nothing stored" and "never stored" checks."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workflows.db import Base


def rows_everywhere(session: Session) -> int:
    """Rows in every table: a refused request must leave this at zero."""
    session.expire_all()
    return sum(
        session.scalar(select(func.count()).select_from(table)) or 0
        for table in Base.metadata.sorted_tables
    )


def every_value(session: Session) -> Iterator[tuple[str, str, str]]:
    """(table, column, value as text) for every non-empty value of every table.

    Selecting through the tables' own column types decrypts encrypted columns, so a
    search sees what the row really holds, not its ciphertext.
    """
    session.expire_all()
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)).mappings():
            for column, value in row.items():
                if value is not None:
                    yield table.name, column, str(value)
