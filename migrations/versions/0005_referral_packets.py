"""referral packets: the snapshot of each packet version disclosed to an agency

Revision ID: 0005_referral_packets
Revises: 0004_kept_forms
Create Date: 2026-11-30 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import workflows.pii

revision: str = "0005_referral_packets"
down_revision: str | None = "0004_kept_forms"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "referral_packets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", workflows.pii.EncryptedText(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"],
            name=op.f("fk_referral_packets_case_id_cases"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referrals.id"],
            name=op.f("fk_referral_packets_referral_id_referrals"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_packets")),
        sa.UniqueConstraint(
            "referral_id", "version", name=op.f("uq_referral_packets_referral_id_version")
        ),
    )
    with op.batch_alter_table("referral_packets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_referral_packets_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_referral_packets_referral_id"), ["referral_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("referral_packets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referral_packets_referral_id"))
        batch_op.drop_index(batch_op.f("ix_referral_packets_case_id"))
    op.drop_table("referral_packets")
