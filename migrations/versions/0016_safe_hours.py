"""safe hours: a tipster reply's message, hold time and announce-only on its notification

Revision ID: 0016_safe_hours
Revises: 0015_provider_contact
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_safe_hours"
down_revision: str | None = "0015_provider_contact"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("held_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("announced_only", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("announced_only")
        batch_op.drop_column("held_until")
        batch_op.drop_column("message_id")
