"""audit log: per-case chains keyed with HMAC, chain heads and anchors

Events already written keep their unkeyed SHA-256 (key_id ``legacy-sha256``): a
migration has no audit key, and re-signing would vouch for rows nobody checked.
``audit verify`` checks them as the old global chain and says they are not keyed;
each case's chain continues from its last legacy event.

Revision ID: 0002_audit_keyed
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_audit_keyed"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("content_mac", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE audit_events SET chain = COALESCE(case_id, 0), "
               "key_id = 'legacy-sha256', content_mac = ''")
    op.execute(
        "UPDATE audit_events SET seq = (SELECT COUNT(*) FROM audit_events AS earlier "
        "WHERE earlier.chain = audit_events.chain AND earlier.id <= audit_events.id)"
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("chain", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("key_id", existing_type=sa.String(length=16), nullable=False)
        batch_op.alter_column("content_mac", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_audit_events_chain_seq"), ["chain", "seq"]
        )

    op.create_table(
        "audit_chain_heads",
        sa.Column("chain", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_audit_chain_heads")),
    )
    op.execute(
        "INSERT INTO audit_chain_heads (chain, last_seq, last_hash, last_event_id) "
        "SELECT chain, seq, hash, id FROM audit_events AS e WHERE seq = "
        "(SELECT MAX(seq) FROM audit_events AS later WHERE later.chain = e.chain)"
    )
    op.create_table(
        "audit_anchors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entries", sa.JSON(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("prev_mac", sa.String(length=64), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_anchors")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_anchors_seq")),
    )
    op.create_table(
        "audit_anchored",
        sa.Column("chain", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_audit_anchored")),
    )
    op.drop_table("audit_head")


def downgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.drop_table("audit_anchored")
    op.drop_table("audit_anchors")
    op.drop_table("audit_chain_heads")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_events_chain_seq"), type_="unique")
        batch_op.drop_column("erased_at")
        batch_op.drop_column("content_mac")
        batch_op.drop_column("key_id")
        batch_op.drop_column("seq")
        batch_op.drop_column("chain")
