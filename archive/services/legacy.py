"""Sealing the rows of an archive made before the catalog was sealed.

Migration 0007 cannot see the catalog key, so it set the plaintext of
existing items (SHA-256, size) and arrivals (source, note, original name,
declared type) aside in `legacy_items` and `legacy_provenance`. The first
unlocked open seals them here, in batches (each its own transaction, so an
interrupted run continues where it stopped): each item gets its lookup, a
commitment in the log if it has none (`archive.custody.commit.add_commitment`,
whose salt is sealed with it), and each arrival's operator name becomes a
user id. Then the legacy tables are dropped and the file compacted: on
SQLite `VACUUM` rewrites the file and the WAL is truncated; on PostgreSQL
dropped columns and dead tuples keep old values on disk until the tables are
rewritten, so `VACUUM FULL` runs on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, text

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

    from archive.context import Archive
    from archive.keys.catalog import CatalogKeys

BATCH = 200
LEGACY_TABLES = ("legacy_items", "legacy_provenance")
# Those of metadata and fingerprints (migration 0008), sealed by `archive.services.legacy_analysis`.
ANALYSIS_TABLES = ("legacy_item_metadata", "legacy_fingerprints")
# Rewritten after sealing on PostgreSQL: the tables whose old tuples or dropped columns held plaintext.
REWRITTEN = ("items", "provenance", "replicas", "users", "item_metadata", "item_fingerprints")


@dataclass
class LegacyReport:
    items: int = 0
    arrivals: int = 0
    commitments: int = 0
    analysed: int = 0  # items whose metadata and fingerprints were sealed
    compacted: bool = False


def legacy_waiting(engine: Engine) -> bool:
    """Whether a legacy plaintext table is still there (a fresh catalog never has one)."""
    from archive.db import read_only

    with read_only(engine).connect() as conn:
        found = inspect(conn)
        return any(found.has_table(name) for name in (*LEGACY_TABLES, *ANALYSIS_TABLES))


def seal_legacy(archive: Archive, *, batch: int = BATCH) -> LegacyReport:
    """Seal every legacy row, drop the legacy tables, compact the catalog. `Locked` without the key."""
    from archive.db import transaction

    keys = archive.runtime.keys.catalog()
    report = LegacyReport()
    while True:
        with transaction(archive.engine) as session:
            if not _has(session, "legacy_items"):
                break
            done = _items(session, keys, batch, report)
        if done < batch:
            break
    while True:
        with transaction(archive.engine) as session:
            if not _has(session, "legacy_provenance"):
                break
            done = _arrivals(session, keys, batch, report)
        if done < batch:
            break
    with transaction(archive.engine) as session:
        for name in LEGACY_TABLES:
            if _has(session, name):
                session.execute(text(f"DROP TABLE {name}"))
    from archive.services.legacy_analysis import seal_legacy_analysis

    report.analysed = seal_legacy_analysis(archive.engine, keys, batch=batch)
    compact(archive.engine)
    report.compacted = True
    return report


def _has(session: Session, table: str) -> bool:
    return inspect(session.connection()).has_table(table)


def _items(session: Session, keys: CatalogKeys, batch: int, report: LegacyReport) -> int:
    from archive.catalog.secrets import ITEMS, SHA256_LOOKUP
    from archive.custody.commit import add_commitment
    from archive.custody.expected import logged_commitment

    rows = session.execute(text("SELECT id, sha256, size FROM legacy_items ORDER BY id LIMIT :n"),
                           {"n": batch}).all()
    for item_id, sha256, size in rows:
        salt = None
        if logged_commitment(session, item_id) is None:
            salt = add_commitment(session, "archive", item_id, sha256)
            report.commitments += 1
        version, sealed = keys.seal(ITEMS, item_id, {"sha256": sha256, "size": int(size), "salt": salt})
        session.execute(text("UPDATE items SET sealed = :s, key_version = :v, lookup = :l WHERE id = :id"),
                        {"s": sealed, "v": version, "l": keys.lookup(SHA256_LOOKUP, sha256), "id": item_id})
        session.execute(text("DELETE FROM legacy_items WHERE id = :id"), {"id": item_id})
    report.items += len(rows)
    return len(rows)


def _arrivals(session: Session, keys: CatalogKeys, batch: int, report: LegacyReport) -> int:
    from archive.catalog.secrets import PROVENANCE
    from archive.catalog.users import is_user_id, resolve
    from archive.custody.log import utc_now

    rows = session.execute(text(
        "SELECT l.id, l.source, l.note, l.original_name, l.declared_type, p.actor "
        "FROM legacy_provenance l JOIN provenance p ON p.id = l.id ORDER BY l.id LIMIT :n"
    ), {"n": batch}).all()
    names: dict[str, str] = {}
    for row_id, source, note, original_name, declared_type, actor in rows:
        fields: dict[str, Any] = {"source": source, "note": note, "original_name": original_name,
                                  "declared_type": declared_type}
        version, sealed = keys.seal(PROVENANCE, row_id, fields)
        if not is_user_id(actor):
            if actor not in names:
                names[actor] = resolve(session, keys, actor, utc_now())
            actor = names[actor]
        session.execute(text("UPDATE provenance SET sealed = :s, key_version = :v, actor = :a WHERE id = :id"),
                        {"s": sealed, "v": version, "a": actor, "id": row_id})
        session.execute(text("DELETE FROM legacy_provenance WHERE id = :id"), {"id": row_id})
    if len(rows) < batch:  # arrivals whose item row is gone have nothing to seal: let none stay in clear
        session.execute(text("DELETE FROM legacy_provenance WHERE id NOT IN (SELECT id FROM provenance)"))
    report.arrivals += len(rows)
    return len(rows)


def compact(engine: Engine) -> None:
    """Leave no old plaintext in the catalog's files: SQLite rewritten, PostgreSQL tables rewritten."""
    raw: Any = engine.raw_connection()  # outside any transaction: VACUUM refuses to run inside one
    try:
        if engine.dialect.name == "sqlite":
            statements = ["VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"]
        else:
            raw.driver_connection.autocommit = True
            statements = [f"VACUUM FULL {', '.join(REWRITTEN)}"]
        cursor = raw.cursor()
        for statement in statements:
            cursor.execute(statement)
        cursor.close()
    finally:
        if engine.dialect.name != "sqlite":
            raw.driver_connection.autocommit = False
        raw.close()
