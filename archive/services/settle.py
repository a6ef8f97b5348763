"""Settling what a locked process wrote: pending rows sealed properly, deferred deduplication done.

A server that was never unlocked keeps ingesting: its rows are *pending*
(key version 0, sealed with age to the archive's recipients, lookups empty;
see `archive.catalog.secrets`). Once a process holds the catalog key and the
access identity, each pending row is opened, sealed again under the catalog
key and given its lookups. An item whose bytes turn out to be another item's
(deduplication could not run without the keyed hash) is *merged*: its
arrivals and its copies move to the item that holds the same bytes, each copy
with a custody event naming where it came from (the copy event contract's
merge rule), and nothing is deleted; the merged row stays, status `merged`.

Runs at the start of every unlocked use case (one cheap query when nothing
waits: `settle_on_open`) and in the worker loop, in batches, each its own
transaction, so an interrupted run simply continues.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

    from archive.age import Identity
    from archive.catalog.items import Item
    from archive.catalog.sealing import SealedTable
    from archive.context import Archive
    from archive.keys.catalog import CatalogKeys

BATCH = 200
# The sealed tables a quick check looks at; the registry (archive.catalog.sealing) is the full list,
# read only when something waits (importing it loads the ORM, which `evidence list` never needs).
QUICK_TABLES = ("items", "provenance", "users", "item_metadata", "item_fingerprints")
MERGED_REASON = "settlement"

log = logging.getLogger(__name__)


@dataclass
class SettleReport:
    """What one settlement did."""

    settled: dict[str, int] = field(default_factory=dict)  # table -> rows sealed under the catalog key
    merged: list[tuple[str, str]] = field(default_factory=list)  # (pending item, the item it joined)

    @property
    def total(self) -> int:
        return sum(self.settled.values())


def pending_waiting(engine: Engine) -> bool:
    """Whether any sealed table holds a pending row (one indexed query per table)."""
    from archive.db import read_only

    with read_only(engine).connect() as conn:
        for table in QUICK_TABLES:
            try:
                if conn.execute(text(f"SELECT 1 FROM {table} WHERE key_version = 0 LIMIT 1")).first():
                    return True
            except DBAPIError:  # a table (or its key_version column) that a later migration adds
                conn.rollback()
    return False


def settle_on_open(archive: Archive) -> None:
    """At a use case's start: settle pending rows and seal legacy ones, when this process can.

    Quiet when locked (nothing can be done) and quick when nothing waits; a
    failure is a warning for whoever runs the process, never the use case's end.
    """
    from archive.services.errors import Locked
    from archive.services.legacy import legacy_waiting, seal_legacy

    try:
        archive.runtime.keys.catalog()
    except Locked:
        return
    except Exception as exc:  # noqa: BLE001 - an unreadable key file is reported by the commands that need it
        log.debug("no catalog key: %s", type(exc).__name__)
        return
    try:
        engine = archive.runtime.engine
        if legacy_waiting(engine):
            seal_legacy(archive)
        if pending_waiting(engine):
            settle(archive, batch=BATCH)
    except Locked as exc:
        _warn(archive, f"rows written while locked are not settled yet: {exc}")
    except Exception as exc:  # noqa: BLE001 - the use case itself must go on
        log.exception("settling failed")
        _warn(archive, f"settling rows written while locked failed ({type(exc).__name__}): {exc}")


def _warn(archive: Archive, message: str) -> None:
    if message not in archive.runtime.warnings:  # a worker tries at every poll: say it once
        archive.runtime.warnings.append(message)


def settle(archive: Archive, *, batch: int = BATCH) -> SettleReport:
    """Settle every pending row (items first, so merges precede their arrivals' sealing). `Locked` if unable."""
    from archive.catalog.sealing import registered
    from archive.catalog.secrets import access_identities

    keys = archive.runtime.keys.catalog()
    identities = access_identities(archive)
    report = SettleReport()
    while _settle_items(archive, keys, identities, report, batch):
        pass
    for table in registered():
        if table.name == "items":
            continue
        while _settle_rows(archive, keys, identities, table, report, batch):
            pass
    return report


def _open(identities: list[Identity], table: str, row_id: object, blob: bytes) -> dict[str, Any]:
    from archive.catalog.secrets import Opener

    return Opener(None, lambda: identities).open(table, row_id, 0, blob)


def _pending(session: Session, table: str, key: str, batch: int) -> list[Any]:
    lock = " FOR UPDATE SKIP LOCKED" if session.get_bind().dialect.name == "postgresql" else ""
    query = f"SELECT {key}, sealed FROM {table} WHERE key_version = 0 ORDER BY {key} LIMIT :n{lock}"
    return list(session.execute(text(query), {"n": batch}).all())


def _settle_rows(archive: Archive, keys: CatalogKeys, identities: list[Identity], table: SealedTable,
                 report: SettleReport, batch: int) -> bool:
    """One batch of one table's pending rows; whether there may be more."""
    from archive.db import transaction

    with transaction(archive.engine) as session:
        rows = _pending(session, table.name, table.key, batch)
        for row_id, blob in rows:
            fields = _open(identities, table.name, row_id, bytes(blob))
            version, sealed = keys.seal(table.name, row_id, fields)
            values: dict[str, Any] = {"s": sealed, "v": version, "id": row_id}
            sets = "sealed = :s, key_version = :v"
            for column, value in table.lookups(keys, fields).items():
                sets += f", {column} = :l_{column}"
                values[f"l_{column}"] = value
            session.execute(text(f"UPDATE {table.name} SET {sets} WHERE {table.key} = :id AND key_version = 0"),
                            values)
    report.settled[table.name] = report.settled.get(table.name, 0) + len(rows)
    return len(rows) == batch


def _settle_items(archive: Archive, keys: CatalogKeys, identities: list[Identity], report: SettleReport,
                  batch: int) -> bool:
    """One batch of pending items: sealed under the catalog key, or merged into the item with their bytes."""
    from sqlmodel import col, select

    from archive.catalog.items import Item, ItemStatus
    from archive.catalog.secrets import ITEMS, SHA256_LOOKUP
    from archive.db import transaction

    with transaction(archive.engine) as session:
        rows = _pending(session, ITEMS, "id", batch)
        for item_id, blob in rows:
            fields = _open(identities, ITEMS, item_id, bytes(blob))
            item = session.get(Item, item_id)
            assert item is not None
            holder = session.exec(select(Item).where(
                col(Item.lookup).in_(keys.lookups(SHA256_LOOKUP, str(fields["sha256"]))), col(Item.id) != item_id,
            )).first()
            if holder is None:
                item.key_version, item.sealed = keys.seal(ITEMS, item_id, fields)
                item.lookup = keys.lookup(SHA256_LOOKUP, str(fields["sha256"]))
                session.add(item)
            else:  # its lookup stays empty (the holder's finds the bytes), and rotation keeps it so
                item.key_version, item.sealed = keys.seal(ITEMS, item_id, {**fields, "merged_into": holder.id})
                item.status = ItemStatus.MERGED
                session.add(item)
                merge(session, archive, item, holder)
                report.merged.append((item_id, holder.id))
            session.flush()  # the next pending item of this batch finds this one
    report.settled[ITEMS] = report.settled.get(ITEMS, 0) + len(rows)
    return len(rows) == batch


def merge(session: Session, archive: Archive, pending: Item, holder: Item) -> None:
    """Move a pending item's arrivals and copies to the item holding the same bytes, with custody events.

    A copy keeps its name and bytes; the `replication` event on the holder
    names the item it came from and its unchanged hash (the copy event
    contract's merge rule), so the log accounts for every copy the holder now
    has. Queued jobs of the merged item (its repair, its analysis) are done:
    the holder has its own, and its fingerprints too (the same bytes).
    """
    from sqlmodel import col, select

    from archive.catalog.items import Provenance
    from archive.catalog.jobs import DONE, QUEUED, Job, stamp
    from archive.custody.log import REPLICATION, append_event
    from archive.services.repair import live_replicas, refresh_status, retire_replaced

    arrivals = list(session.exec(select(Provenance).where(Provenance.item_id == pending.id)
                                 .order_by(col(Provenance.id))).all())
    for arrival in arrivals:
        arrival.item_id = holder.id
        session.add(arrival)
    first = arrivals[0].id if arrivals else None
    current = live_replicas(session, holder.id)
    moved = live_replicas(session, pending.id)
    for copy in moved:
        if copy.role == "original" and copy.state == "verified":
            retire_replaced(session, current, copy.backend)  # a bad copy of the holder's is replaced by it
    for copy in moved:
        copy.item_id = holder.id
        session.add(copy)
        key = f"{copy.backend}:{copy.object_name}"
        append_event(session, REPLICATION, actor="archive", item_id=holder.id, objects=[key], details={
            "backend": copy.backend, "role": copy.role, "ciphertext_sha256": copy.ciphertext_sha256,
            "merged_from": pending.id, "from_object": key, "from_ciphertext_sha256": copy.ciphertext_sha256,
            "arrival": first, "reason": MERGED_REASON,
        })
    # Its fingerprints are the holder's (the same bytes): left in, the near-duplicate index would offer
    # the merged row as a perfect match of the holder. Derived data, not evidence: the bytes stay.
    session.execute(text("DELETE FROM item_fingerprints WHERE item_id = :id"), {"id": pending.id})
    now = stamp(archive.runtime.clock())
    for job in session.exec(select(Job).where(Job.item_id == pending.id, Job.state == QUEUED)).all():
        job.state, job.last_error, job.updated_at = DONE, f"merged into item {holder.id}", now
        session.add(job)
    session.flush()
    refresh_status(session, archive, holder)
