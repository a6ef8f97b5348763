"""Sealing the metadata and fingerprints of items analysed before the catalog was sealed.

Migration 0008 moved their plaintext, untouched, into `legacy_item_metadata`
and `legacy_fingerprints` (a migration holds no key). This run, made once the
archive is unlocked, seals each row under the catalog key, fills the clear
columns (capture day, location cell) and deletes the plaintext, a batch per
transaction: killed half-way, it resumes where it stopped, and no row is ever
both sealed and lost. The emptied tables are dropped; the caller vacuums
(`archive.services.legacy`), so no old plaintext survives in free pages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from archive.keys.catalog import CatalogKeys

LEGACY_METADATA = "legacy_item_metadata"
LEGACY_FINGERPRINTS = "legacy_fingerprints"
BATCH = 500

_meta = sa.MetaData()
_legacy_metadata = sa.Table(
    LEGACY_METADATA, _meta,
    sa.Column("item_id", sa.String, primary_key=True),
    *(sa.Column(name, kind) for name, kind in (
        ("captured_at", sa.String), ("latitude", sa.Float), ("longitude", sa.Float), ("altitude", sa.Float),
        ("make", sa.String), ("model", sa.String), ("orientation", sa.Integer), ("width", sa.Integer),
        ("height", sa.Integer), ("duration", sa.Float), ("declared_type", sa.String), ("type_mismatch", sa.Text),
        ("raw", sa.JSON), ("c2pa", sa.JSON), ("errors", sa.JSON), ("parsers", sa.JSON), ("extracted_at", sa.String),
    )),
)
_legacy_fingerprints = sa.Table(
    LEGACY_FINGERPRINTS, _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("item_id", sa.String),
    sa.Column("kind", sa.String),
    sa.Column("variant", sa.String),
    sa.Column("offset_ms", sa.Integer),
    sa.Column("value", sa.BigInteger),
)


LEGACY_TABLES = (LEGACY_METADATA, LEGACY_FINGERPRINTS)
# Rewritten after sealing on PostgreSQL (`archive.services.legacy.compact`): their dropped columns held plaintext.
REWRITTEN = ("item_metadata",)


def seal_legacy_analysis(engine: Engine, keys: CatalogKeys, *, batch: int = BATCH) -> int:
    """Seal every legacy metadata and fingerprint row; the number of items sealed (0: nothing left)."""
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    done = 0
    if LEGACY_METADATA in tables:
        done += _seal_metadata(engine, keys, batch)
    if LEGACY_FINGERPRINTS in tables:
        done += _seal_fingerprints(engine, keys, batch)
    return done


def _seal_metadata(engine: Engine, keys: CatalogKeys, batch: int) -> int:
    from sqlmodel import Session

    from archive.catalog.metadata import SEALED_FIELDS, ItemMetadata, new_metadata
    from archive.catalog.sealing import Sealer

    sealer = Sealer(keys)
    done = 0
    while True:
        with Session(engine) as session, session.begin():
            rows = session.execute(sa.select(_legacy_metadata).limit(batch)).mappings().all()
            for old in rows:
                fields: dict[str, Any] = {name: old[name] for name in SEALED_FIELDS}
                row = session.get(ItemMetadata, old["item_id"])
                if row is not None:
                    fresh = new_metadata(sealer, row.item_id, {**fields, "media_type": row.media_type},
                                         detected_type=row.detected_type)
                    for column in ("captured_day", "location_cell", "complete", "key_version", "sealed"):
                        setattr(row, column, getattr(fresh, column))
                    session.add(row)
                session.execute(sa.delete(_legacy_metadata).where(_legacy_metadata.c.item_id == old["item_id"]))
            done += len(rows)
            if not rows:
                _legacy_metadata.drop(session.connection())
                return done


def _seal_fingerprints(engine: Engine, keys: CatalogKeys, batch: int) -> int:
    from sqlmodel import Session

    from archive.catalog.fingerprints import replace_hashes
    from archive.catalog.sealing import Sealer
    from ingest.fingerprints.common import Hash, to_unsigned

    sealer = Sealer(keys)
    table = _legacy_fingerprints
    done = 0
    while True:
        with Session(engine) as session, session.begin():
            items = [r[0] for r in session.execute(sa.select(table.c.item_id).distinct().limit(batch))]
            for item_id in items:
                rows = session.execute(sa.select(table).where(table.c.item_id == item_id).order_by(table.c.id))
                hashes = [Hash(r.kind, r.variant, to_unsigned(r.value), r.offset_ms) for r in rows]
                replace_hashes(session, sealer, item_id, hashes)
                session.execute(sa.delete(table).where(table.c.item_id == item_id))
            done += len(items)
            if not items:
                table.drop(session.connection())
                return done
