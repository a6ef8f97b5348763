"""Fingerprints and near-duplicate candidates.

Revision ID: 0004
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fingerprints",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.String(36), sa.ForeignKey("items.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("variant", sa.String(16), nullable=False),
        sa.Column("offset_ms", sa.Integer, nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_fingerprints_item_id", "fingerprints", ["item_id"])
    op.create_table(
        "candidates",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.String(36), sa.ForeignKey("items.id"), nullable=False),
        sa.Column("other_id", sa.String(36), sa.ForeignKey("items.id"), nullable=False),
        sa.Column("distance", sa.Integer, nullable=False),
        sa.Column("frame_match_share", sa.Float),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_candidates_item_id", "candidates", ["item_id"])
    op.create_index("ix_candidates_other_id", "candidates", ["other_id"])


def downgrade() -> None:
    op.drop_table("candidates")
    op.drop_table("fingerprints")
