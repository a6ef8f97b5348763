"""Evidence bundles: registered recipients, and one row per export (see archive/catalog/exports.py).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_recipients",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("age_recipient", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("removed_at", sa.String(32)),
    )
    op.create_table(
        "exports",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("started_seq", sa.BigInteger, nullable=False),
        sa.Column("transfer_seq", sa.BigInteger),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("sealed", sa.LargeBinary),
        sa.Column("key_version", sa.Integer, nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("exports")
    op.drop_table("export_recipients")
