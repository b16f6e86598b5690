"""encrypted JSON: the SMS answers (signals.ivr_path) and agencies' outcomes

Both become text holding a Fernet token. Values written before stay readable as plain
JSON until ``flask --app wsgi pii rotate`` encrypts them (decline reasons likewise).

Revision ID: 0011_encrypted_json
Revises: 0010_spool
Create Date: 2026-12-01 01:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import workflows.pii

revision: str = "0011_encrypted_json"
down_revision: str | None = "0010_spool"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("signals", "ivr_path"), ("referrals", "outcome"))


def upgrade() -> None:
    for table, column in COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column,
                existing_type=sa.JSON(),
                type_=workflows.pii.EncryptedJSON(),
                existing_nullable=True,
                postgresql_using=f"{column}::text",
            )


def downgrade() -> None:
    for table, column in COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column,
                existing_type=workflows.pii.EncryptedJSON(),
                type_=sa.JSON(),
                existing_nullable=True,
                postgresql_using=f"{column}::json",
            )
