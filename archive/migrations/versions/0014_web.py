"""The web interface: sign-in credentials, browser sessions, encrypted previews (archive/catalog/web.py).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_credentials",
        sa.Column("user_id", sa.String(18), primary_key=True),
        sa.Column("password_hash", sa.String(256)),
        sa.Column("sealed", sa.LargeBinary),
        sa.Column("key_version", sa.Integer, nullable=False, index=True),
        sa.Column("totp_last_counter", sa.BigInteger),
        sa.Column("enrolled_at", sa.String(32)),
        sa.Column("setup_digest", sa.String(64)),
        sa.Column("setup_expires_at", sa.String(32)),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("locked_until", sa.String(32)),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", sa.String(18), nullable=False, index=True),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("seen_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("ended_at", sa.String(32)),
    )
    op.create_table(
        "previews",
        sa.Column("item_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("media_type", sa.String(32), nullable=False),
        sa.Column("sealed", sa.LargeBinary, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("previews")
    op.drop_table("web_sessions")
    op.drop_table("web_credentials")
