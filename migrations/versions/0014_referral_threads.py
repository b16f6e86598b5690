"""referral threads: agency questions and hotline answers; the open question's deadline

Revision ID: 0014_referral_threads
Revises: 0013_sessions
Create Date: 2026-12-01 02:45:07.893317
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import workflows.pii

revision: str = "0014_referral_threads"
down_revision: str | None = "0013_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "referral_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("body", workflows.pii.EncryptedText(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "side IN ('agency','hotline')", name=op.f("ck_referral_messages_valid_side")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_referral_messages_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referrals.id"],
            name=op.f("fk_referral_messages_referral_id_referrals"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_messages")),
        sa.UniqueConstraint(
            "referral_id", "side", "idempotency_key",
            name=op.f("uq_referral_messages_referral_id_side_idempotency_key"),
        ),
    )
    with op.batch_alter_table("referral_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_referral_messages_case_id"), ["case_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_referral_messages_referral_id"), ["referral_id"], unique=False
        )

    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("question_due", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_referrals_question_due"), ["question_due"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referrals_question_due"))
        batch_op.drop_column("question_due")

    with op.batch_alter_table("referral_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referral_messages_referral_id"))
        batch_op.drop_index(batch_op.f("ix_referral_messages_case_id"))

    op.drop_table("referral_messages")
