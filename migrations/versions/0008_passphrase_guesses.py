"""passphrase guesses: counted per (reference, client) with a backoff

References become random (HT-7K3Q-9XWD); existing rows keep theirs, so nothing else
changes in the schema.

Revision ID: 0008_passphrase_guesses
Revises: 0007_chats
Create Date: 2026-12-01 00:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_passphrase_guesses"
down_revision: str | None = "0007_chats"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "passphrase_guesses",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_passphrase_guesses")),
    )


def downgrade() -> None:
    op.drop_table("passphrase_guesses")
