"""Sealed metadata and fingerprints: precise places, devices, owners, signers and hashes leave the clear.

A migration cannot see the catalog key, so it only reshapes: `item_metadata`
keeps `media_type` and `detected_type` and gains the clear `captured_day`,
`location_cell` and `complete`, with `sealed` and `key_version`; its other
columns go. Per-hash `fingerprints` rows give way to `item_fingerprints`, one
sealed row per item. The plaintext of rows that already exist is moved,
untouched, into `legacy_item_metadata` and `legacy_fingerprints`, which
`archive.services.legacy_analysis` seals at the first unlocked open and then
drops. An empty catalog gets no legacy tables.

Revision ID: 0008
Revises: 0002, 0004, 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = ("0002", "0004", "0007")  # the tables it reshapes come from 0002 and 0004
branch_labels = None
depends_on = None

_SEALED = (
    "captured_at", "latitude", "longitude", "altitude", "make", "model", "orientation", "width", "height",
    "duration", "declared_type", "type_mismatch", "raw", "c2pa", "errors", "parsers", "extracted_at",
)


def upgrade() -> None:
    bind = op.get_bind()
    metadata_held = bind.execute(sa.text("SELECT count(*) FROM item_metadata")).scalar_one() > 0
    fingerprints_held = bind.execute(sa.text("SELECT count(*) FROM fingerprints")).scalar_one() > 0

    if metadata_held:
        op.create_table(
            "legacy_item_metadata",
            sa.Column("item_id", sa.String(36), primary_key=True),
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
            sa.Column("declared_type", sa.String(255)),
            sa.Column("type_mismatch", sa.Text),
            sa.Column("raw", sa.JSON),
            sa.Column("c2pa", sa.JSON),
            sa.Column("errors", sa.JSON),
            sa.Column("parsers", sa.JSON),
            sa.Column("extracted_at", sa.String(32)),
        )
        columns = ", ".join(_SEALED)
        bind.execute(sa.text(
            f"INSERT INTO legacy_item_metadata (item_id, {columns}) SELECT item_id, {columns} FROM item_metadata"  # noqa: S608
        ))
    op.add_column("item_metadata", sa.Column("captured_day", sa.String(10)))
    op.add_column("item_metadata", sa.Column("location_cell", sa.String(16)))
    op.add_column("item_metadata", sa.Column("complete", sa.Boolean, nullable=False, server_default=sa.true()))
    op.add_column("item_metadata", sa.Column("key_version", sa.Integer, nullable=False, server_default="0"))
    op.add_column("item_metadata", sa.Column("sealed", sa.LargeBinary))
    op.create_index("ix_item_metadata_captured_day", "item_metadata", ["captured_day"])
    op.create_index("ix_item_metadata_location_cell", "item_metadata", ["location_cell"])
    op.create_index("ix_item_metadata_key_version", "item_metadata", ["key_version"])
    op.drop_index("ix_item_metadata_captured_at", table_name="item_metadata")
    for column in _SEALED:
        op.execute(f"ALTER TABLE item_metadata DROP COLUMN {column}")

    if fingerprints_held:
        op.rename_table("fingerprints", "legacy_fingerprints")
    else:
        op.drop_table("fingerprints")
    op.create_table(
        "item_fingerprints",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.String(36), sa.ForeignKey("items.id"), nullable=False, unique=True),
        sa.Column("key_version", sa.Integer, nullable=False),
        sa.Column("sealed", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_item_fingerprints_key_version", "item_fingerprints", ["key_version"])


def downgrade() -> None:
    raise NotImplementedError("sealed rows cannot be unsealed by a migration (it holds no key)")
