"""Victim match candidates: pairs of victim records suggested as one person, confirmed or rejected.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "victim_matches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("a_id", sa.String(24), nullable=False, index=True),
        sa.Column("b_id", sa.String(24), nullable=False, index=True),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("clues", sa.JSON, nullable=False),
        sa.Column("state", sa.String(10), nullable=False, index=True),
        sa.Column("suggested_at", sa.String(32), nullable=False),
        sa.Column("decided_at", sa.String(32)),
        sa.Column("decided_by", sa.String(64)),
        sa.UniqueConstraint("a_id", "b_id"),
    )


def downgrade() -> None:
    op.drop_table("victim_matches")
