"""packet updates: when each packet version reached its agency; a staff "not now"

Revision ID: 0017_packet_updates
Revises: 0016_safe_hours
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_packet_updates"
down_revision: str | None = "0016_safe_hours"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("referral_packets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("update_dismissed_digest", sa.String(length=64), nullable=True)
        )
    # Versions delivered before this revision: the referral's own sending time says when.
    op.execute(
        "UPDATE referral_packets SET sent_at = (SELECT referrals.sent_at FROM referrals "
        "WHERE referrals.id = referral_packets.referral_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_column("update_dismissed_digest")
    with op.batch_alter_table("referral_packets", schema=None) as batch_op:
        batch_op.drop_column("sent_at")
