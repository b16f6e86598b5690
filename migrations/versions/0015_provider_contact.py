"""provider contact: a directory entry's street address, phone and webhook (admin-edited)

Revision ID: 0015_provider_contact
Revises: 0014_referral_threads
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_provider_contact"
down_revision: str | None = "0014_referral_threads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("service_providers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("address", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("phone", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("webhook_url", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("service_providers", schema=None) as batch_op:
        batch_op.drop_column("webhook_url")
        batch_op.drop_column("phone")
        batch_op.drop_column("address")
