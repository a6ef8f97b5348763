"""Rotating the catalog key: a new version, every sealed row re-sealed under it, the old versions dropped.

Why in this order, and why it survives being killed at any point:

1. A new version is added to the key file (written atomically, durable
   before any row uses it). From then on every writer seals with it and every
   reader still opens rows of the old versions.
2. Every registered table (`archive.catalog.sealing`) is walked in batches of
   rows still under an older version; each batch is opened, re-sealed and its
   keyed lookups recomputed in its own transaction. The progress is the rows
   themselves (`key_version`), so a run killed mid-way resumes where it
   stopped: a key file holding more than one version *is* a rotation under way,
   and `rotate-catalog` run again finishes it instead of starting another.
3. Once no row of any table uses an old version, those versions leave the key
   file. Pending rows (version 0, sealed with age by a locked process) use no
   catalog key and are left to settling.

One custody event at the start and one at the end, naming key version
numbers and row counts only (no key, no field, no lookup).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from archive.catalog.sealing import SealedTable
    from archive.context import Archive
    from archive.keys.catalog import CatalogKeys

# PREMIS has no event type for re-keying a catalog; this one is the archive's own.
CATALOG_KEY_ROTATION = "catalog key rotation"
BATCH = 500
# Test hook: seconds to sleep after each committed batch, so a test can kill the run mid-way.
PAUSE_ENV = "EVIDENCE_TEST_ROTATE_PAUSE"

Progress = Callable[[str, int], None]  # (table, rows re-sealed so far in it)


@dataclass
class RotationReport:
    """What a rotation did: the versions before, the one after, rows re-sealed per table."""

    previous: list[int]
    current: int
    resumed: bool
    resealed: dict[str, int] = field(default_factory=dict)
    dropped: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def store_catalog(archive: Archive, keys: CatalogKeys) -> None:
    """Write the key file (every place it is kept, atomically: `KeyRing.store_catalog`)."""
    archive.runtime.keys.store_catalog(keys)


def rotate_catalog(archive: Archive, *, batch: int = BATCH, progress: Progress | None = None) -> RotationReport:
    """Rotate the catalog key, or finish a rotation a killed run left under way (see the module docstring)."""
    from archive.catalog.sealing import catalog_keys, registered
    from archive.services.errors import ServiceError

    if batch < 1:
        raise ServiceError(f"a batch holds at least one row, not {batch}")
    keys = catalog_keys(archive, "rotating the catalog key")
    resumed = len(keys.versions) > 1
    report = RotationReport(previous=keys.versions, current=keys.current, resumed=resumed)
    _event(archive, {"phase": "started", "versions": keys.versions, "resumed": resumed})
    if not resumed:
        keys = keys.with_new_version()
        store_catalog(archive, keys)
        report.current = keys.current
    tables = registered()
    while True:  # again if a process still holding only an old version sealed a row meanwhile
        for table in tables:
            report.resealed[table.name] = report.resealed.get(table.name, 0) + _reseal(
                archive, keys, table, batch, progress)
        if not any(_older(archive, keys, table) for table in tables):
            break
    report.dropped = [n for n in keys.versions if n != keys.current]
    if report.dropped:
        keys = keys.without(set(report.dropped))
        store_catalog(archive, keys)
    _event(archive, {"phase": "finished", "version": keys.current, "dropped_versions": report.dropped,
                     "rows_resealed": report.resealed})
    return report


def _table(table: SealedTable) -> sa.TableClause:
    return sa.table(table.name, sa.column(table.key), sa.column("key_version", sa.Integer),
                    sa.column("sealed", sa.LargeBinary), *(sa.column(c) for c in table.lookup_columns))


def _stale(t: sa.TableClause, keys: CatalogKeys) -> sa.ColumnElement[bool]:
    """Rows sealed under a held version older than the current one (pending rows, 0, are not)."""
    version = t.c.key_version
    return sa.and_(version > 0, version < keys.current)


def _older(archive: Archive, keys: CatalogKeys, table: SealedTable) -> bool:
    t = _table(table)
    with archive.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(t).where(_stale(t, keys))).scalar_one() > 0


def _reseal(archive: Archive, keys: CatalogKeys, table: SealedTable, batch: int, progress: Progress | None) -> int:
    """Re-seal one table's rows under older versions, a batch per transaction; how many."""
    t = _table(table)
    key = t.c[table.key]
    pause = float(os.environ.get(PAUSE_ENV) or 0)
    done = 0
    while True:
        with archive.engine.begin() as conn:
            rows = conn.execute(
                sa.select(key, t.c.key_version, t.c.sealed).where(_stale(t, keys)).order_by(key).limit(batch)
            ).all()
            for row_id, version, blob in rows:
                fields = keys.open(table.name, row_id, version, bytes(blob))
                new_version, sealed = keys.seal(table.name, row_id, fields)
                values: dict[str, Any] = {"key_version": new_version, "sealed": sealed}
                values.update(table.lookups(keys, fields))
                # Only if untouched since read: a writer may have sealed it afresh meanwhile.
                conn.execute(sa.update(t).where(key == row_id, t.c.key_version == version).values(**values))
        if not rows:
            return done
        done += len(rows)
        if progress is not None:
            progress(table.name, done)
        if pause:
            time.sleep(pause)


def _event(archive: Archive, details: dict[str, Any]) -> None:
    from archive.custody.log import append_event
    from archive.db import transaction

    with transaction(archive.engine) as session:
        append_event(session, CATALOG_KEY_ROTATION, actor=archive.actor, details=details)
