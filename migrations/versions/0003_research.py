"""research: the researcher role, how callers heard of the hotline, published statistics

Revision ID: 0003_research
Revises: 0002_audit_keyed
Create Date: 2026-11-30 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_research"
down_revision: str | None = "0002_audit_keyed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES_BEFORE = "role IN ('operator','supervisor','agency','admin')"
ROLES_AFTER = "role IN ('operator','supervisor','agency','admin','researcher')"


def _roles(condition: str) -> None:
    # SQLite cannot alter a constraint: batch mode copies the table.
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("ck_users_valid_role"), type_="check")
        batch.create_check_constraint(op.f("ck_users_valid_role"), condition)


def upgrade() -> None:
    _roles(ROLES_AFTER)
    with op.batch_alter_table("signals") as batch:
        batch.add_column(sa.Column("heard_from", sa.String(length=24), nullable=True))
    op.create_table(
        "published_statistics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_published_statistics")),
        sa.UniqueConstraint("period", name=op.f("uq_published_statistics_period")),
    )


def downgrade() -> None:
    op.drop_table("published_statistics")
    with op.batch_alter_table("signals") as batch:
        batch.drop_column("heard_from")
    op.execute("DELETE FROM users WHERE role = 'researcher'")
    _roles(ROLES_BEFORE)
