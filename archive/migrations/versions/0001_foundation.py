"""Foundation: items, replicas, provenance, custody events.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("media_type", sa.String(255)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_items_sha256", "items", ["sha256"], unique=True)
    op.create_table(
        "replicas",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.String(36), sa.ForeignKey("items.id"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("object_name", sa.String(255), nullable=False),
        sa.Column("version_id", sa.String(255)),
        sa.Column("ciphertext_sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("recipients", sa.JSON, nullable=False),
        sa.Column("checksum_detail", sa.JSON),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("verified_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_replicas_item_id", "replicas", ["item_id"])
    op.create_index("ix_replicas_backend", "replicas", ["backend"])
    op.create_table(
        "provenance",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.String(36), sa.ForeignKey("items.id"), nullable=False),
        sa.Column("source", sa.Text),
        sa.Column("note", sa.Text),
        sa.Column("original_name", sa.Text),
        sa.Column("declared_type", sa.String(255)),
        sa.Column("received_at", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
    )
    op.create_index("ix_provenance_item_id", "provenance", ["item_id"])
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("occurred_at", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("item_id", sa.String(36)),
        sa.Column("objects", sa.JSON, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_events_item_id", "events", ["item_id"])
    op.create_index("ix_events_event_type", "events", ["event_type"])
    log_head = op.create_table(
        "log_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(log_head, [{"id": 1, "size": 0}])


def downgrade() -> None:
    for table in ("log_head", "events", "provenance", "replicas", "items"):
        op.drop_table(table)
