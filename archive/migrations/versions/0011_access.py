"""Accounts (a user's role), API tokens (stored as their SHA-256 only) and restricted cases.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("user_id", sa.String(18), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("disabled_at", sa.String(32)),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("user_id", sa.String(18), nullable=False, index=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32)),
        sa.Column("revoked_at", sa.String(32)),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("sealed", sa.LargeBinary, nullable=False),  # {"name": ...}
        sa.Column("key_version", sa.Integer, nullable=False, index=True),
        sa.Column("lookup", sa.String(64), index=True),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "case_members",
        sa.Column("case_id", sa.String(24), primary_key=True),
        sa.Column("user_id", sa.String(18), primary_key=True, index=True),
        sa.Column("added_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "case_incidents",
        sa.Column("case_id", sa.String(24), primary_key=True),
        sa.Column("incident_id", sa.String(24), primary_key=True, index=True),
        sa.Column("added_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    for table in ("case_incidents", "case_members", "cases", "tokens", "accounts"):
        op.drop_table(table)
