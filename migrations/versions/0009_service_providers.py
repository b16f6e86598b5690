"""service providers

Revision ID: 0009_service_providers
Revises: 0008_passphrase_guesses
Create Date: 2026-12-01 00:52:50.252228
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


import workflows.pii

revision: str = "0009_service_providers"
down_revision: str | None = "0008_passphrase_guesses"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "service_providers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hsds_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("organization", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("service_types", sa.JSON(), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("state", sa.String(length=2), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_providers")),
        sa.UniqueConstraint("hsds_id", name=op.f("uq_service_providers_hsds_id")),
    )
    with op.batch_alter_table("service_providers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_providers_state"), ["state"], unique=False)

    op.create_table(
        "service_referrals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", workflows.pii.EncryptedText(), nullable=False),
        sa.Column("legal_basis", sa.JSON(), nullable=True),
        sa.Column("answer_note", workflows.pii.EncryptedText(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service_given_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_service_referrals_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["service_providers.id"],
            name=op.f("fk_service_referrals_provider_id_service_providers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_referrals")),
    )
    with op.batch_alter_table("service_referrals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_referrals_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("service_referrals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_referrals_case_id"))

    op.drop_table("service_referrals")
    with op.batch_alter_table("service_providers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_providers_state"))

    op.drop_table("service_providers")
