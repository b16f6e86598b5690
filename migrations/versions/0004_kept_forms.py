"""kept forms

Revision ID: 0004_kept_forms
Revises: 0003_research
Create Date: 2026-11-30 23:41:51.165679
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


import workflows.pii

revision: str = "0004_kept_forms"
down_revision: str | None = "0003_research"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kept_forms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("form_key", sa.String(length=200), nullable=False),
        sa.Column("back", sa.String(length=500), nullable=False),
        sa.Column("fields", workflows.pii.EncryptedText(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_kept_forms_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kept_forms")),
    )
    with op.batch_alter_table("kept_forms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kept_forms_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_kept_forms_token_hash"), ["token_hash"], unique=False)
        batch_op.create_index(
            "ix_kept_forms_user_form", ["user_id", "form_key", "kind"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("kept_forms", schema=None) as batch_op:
        batch_op.drop_index("ix_kept_forms_user_form")
        batch_op.drop_index(batch_op.f("ix_kept_forms_token_hash"))
        batch_op.drop_index(batch_op.f("ix_kept_forms_expires_at"))

    op.drop_table("kept_forms")
