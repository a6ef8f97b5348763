"""Uploads in progress (tus, WebDAV): who began them, how far they got, and how each ended.

Nothing identifying in clear: the contributor's metadata and the outcome are
sealed under a key derived from the upload's secret (which only the client
holds), the receipt under the catalog key (a registered sealed table); the
row keeps only the secret's SHA-256, and its length and offset only while the
upload is open.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(18), nullable=False, index=True),
        sa.Column("token_id", sa.String(24), nullable=False, index=True),
        sa.Column("secret_digest", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("length", sa.BigInteger),
        sa.Column("offset", sa.BigInteger),
        sa.Column("fields", sa.LargeBinary, nullable=False),
        sa.Column("result", sa.LargeBinary),
        sa.Column("refusal", sa.String(32)),
        sa.Column("item_id", sa.String(36)),
        sa.Column("event_seq", sa.BigInteger),
        sa.Column("claim", sa.String(32)),
        sa.Column("sealed", sa.LargeBinary, nullable=False),
        sa.Column("key_version", sa.Integer, nullable=False, index=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False, index=True),
        sa.Column("completed_at", sa.String(32)),
    )


def downgrade() -> None:
    op.drop_table("uploads")
