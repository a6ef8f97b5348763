"""Item metadata: normalized fields, raw metadata, C2PA, analysis failures.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "item_metadata",
        sa.Column("item_id", sa.String(36), sa.ForeignKey("items.id"), primary_key=True),
        sa.Column("media_type", sa.String(255)),
        sa.Column("captured_at", sa.String(40)),
        sa.Column("latitude", sa.Float),
        sa.Column("longitude", sa.Float),
        sa.Column("altitude", sa.Float),
        sa.Column("make", sa.String(255)),
        sa.Column("model", sa.String(255)),
        sa.Column("orientation", sa.Integer),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("duration", sa.Float),
        sa.Column("detected_type", sa.String(64)),
        sa.Column("declared_type", sa.String(255)),
        sa.Column("type_mismatch", sa.Text),
        sa.Column("raw", sa.JSON, nullable=False),
        sa.Column("c2pa", sa.JSON),
        sa.Column("errors", sa.JSON, nullable=False),
        sa.Column("parsers", sa.JSON, nullable=False),
        sa.Column("extracted_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_item_metadata_captured_at", "item_metadata", ["captured_at"])


def downgrade() -> None:
    op.drop_table("item_metadata")
