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

A pending row the identities at hand do not open (sealed before the access
identity was among the recipients, or damaged) is skipped and reported, and
the others are settled all the same: one such row must not stop settlement
for good. The custodian identity opens what the access identity cannot; it is
used when it is in the home (`keys/custodian.key`, the embedded default) or
handed to `evidence keys settle --identity FILE`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from pathlib import Path

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
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (table, row id, why): left pending

    @property
    def total(self) -> int:
        return sum(self.settled.values())

    def as_dict(self) -> dict[str, Any]:
        return {"settled": dict(self.settled), "merged": [list(m) for m in self.merged],
                "skipped": [{"table": t, "id": i, "reason": r} for t, i, r in self.skipped]}


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
            report = settle(archive, batch=BATCH)
            if report.skipped:
                _warn(archive, skipped_message(report.skipped))
    except Locked as exc:
        _warn(archive, f"rows written while locked are not settled yet: {exc}")
    except Exception as exc:  # noqa: BLE001 - the use case itself must go on
        log.exception("settling failed")
        _warn(archive, f"settling rows written while locked failed ({type(exc).__name__}): {exc}")


def _warn(archive: Archive, message: str) -> None:
    if message not in archive.runtime.warnings:  # a worker tries at every poll: say it once
        archive.runtime.warnings.append(message)


def settle_with(archive: Archive, identity_path: Path | None) -> SettleReport:
    """`evidence keys settle`: settle now, also with a custodian identity file (default keys/custodian.key)."""
    from archive.age import AgeError, Identity
    from archive.services.errors import ServiceError

    extra: list[Identity] = []
    if identity_path is not None:
        try:
            extra = Identity.read(identity_path)
        except (AgeError, OSError, ValueError) as exc:
            raise ServiceError(f"{identity_path}: no usable age identity ({type(exc).__name__})") from None
    return settle(archive, identities=extra)


def skipped_message(skipped: list[tuple[str, str, str]]) -> str:
    """What a warning (and `evidence status`) says of the pending rows left unsettled."""
    rows = ", ".join(f"{table} {row_id}" for table, row_id, _ in skipped[:5]) + (" …" if len(skipped) > 5 else "")
    return (f"{len(skipped)} pending row(s) do not open with the identities held here and stay pending ({rows}); "
            "the rest are settled. A custodian settles them with `evidence keys settle --identity FILE` "
            "(the custodian identity)")


def settle(archive: Archive, *, batch: int = BATCH, identities: list[Identity] | None = None) -> SettleReport:
    """Settle every pending row (items first, so merges precede their arrivals' sealing). `Locked` if unable.

    `identities` are tried besides those this process holds (the custodian's,
    for rows the access identity does not open). A row none opens is skipped,
    listed in the report's `skipped`.
    """
    from archive.catalog.sealing import registered

    keys = archive.runtime.keys.catalog()
    held = _identities(archive, identities or [])
    report = SettleReport()
    skip: set[object] = set()
    while _settle_items(archive, keys, held, report, batch, skip):
        pass
    for table in registered():
        if table.name == "items":
            continue
        skip = set()
        while _settle_rows(archive, keys, held, table, report, batch, skip):
            pass
    return report


def _identities(archive: Archive, extra: list[Identity]) -> list[Identity]:
    """The access identity, the custodian's when it is in the home, and `extra`; `Locked` when none is held."""
    from archive.age import AgeError, Identity
    from archive.catalog.secrets import access_identities
    from archive.services.errors import Locked

    held = list(extra)
    path = archive.settings.custodian_identity_path
    if path.is_file():
        try:
            held += Identity.read(path)
        except (AgeError, OSError, ValueError) as exc:
            log.debug("custodian identity not usable: %s", type(exc).__name__)
    try:
        return access_identities(archive) + held
    except Locked:
        if not held:
            raise
    return held


def _skip(report: SettleReport, skip: set[object], table: str, row_id: object, exc: Exception) -> None:
    skip.add(row_id)
    report.skipped.append((table, str(row_id), str(exc)))
    log.warning("pending %s row %s left pending: %s", table, row_id, type(exc).__name__)


def _open(identities: list[Identity], table: str, row_id: object, blob: bytes) -> dict[str, Any]:
    from archive.catalog.secrets import Opener

    return Opener(None, lambda: identities).open(table, row_id, 0, blob)


def _pending(session: Session, table: str, key: str, batch: int, skip: set[object],
             order: str | None = None) -> list[Any]:
    """The next pending rows, but those skipped in this run (they do not open), in `order` (default: the key)."""
    from sqlalchemy import bindparam

    lock = " FOR UPDATE SKIP LOCKED" if session.get_bind().dialect.name == "postgresql" else ""
    skipped = f" AND {key} NOT IN :skip" if skip else ""
    query = text(f"SELECT {key}, sealed FROM {table} WHERE key_version = 0{skipped} "
                 f"ORDER BY {order or key} LIMIT :n{lock}")
    values: dict[str, Any] = {"n": batch}
    if skip:
        query = query.bindparams(bindparam("skip", expanding=True))
        values["skip"] = list(skip)
    return list(session.execute(query, values).all())


def _settle_rows(archive: Archive, keys: CatalogKeys, identities: list[Identity], table: SealedTable,
                 report: SettleReport, batch: int, skip: set[object]) -> bool:
    """One batch of one table's pending rows; whether there may be more."""
    from archive.db import transaction
    from archive.keys.catalog import CatalogKeyError
    from archive.services.errors import Locked

    with transaction(archive.engine) as session:
        rows = _pending(session, table.name, table.key, batch, skip)
        for row_id, blob in rows:
            try:
                fields = _open(identities, table.name, row_id, bytes(blob))
            except (Locked, CatalogKeyError) as exc:
                _skip(report, skip, table.name, row_id, exc)
                continue
            version, sealed = keys.seal(table.name, row_id, fields)
            values: dict[str, Any] = {"s": sealed, "v": version, "id": row_id}
            sets = "sealed = :s, key_version = :v"
            for column, value in table.lookups(keys, fields).items():
                sets += f", {column} = :l_{column}"
                values[f"l_{column}"] = value
            session.execute(text(f"UPDATE {table.name} SET {sets} WHERE {table.key} = :id AND key_version = 0"),
                            values)
    report.settled[table.name] = report.settled.get(table.name, 0) + len(rows) - len(skip & {r[0] for r in rows})
    return len(rows) == batch


def _settle_items(archive: Archive, keys: CatalogKeys, identities: list[Identity], report: SettleReport,
                  batch: int, skip: set[object]) -> bool:
    """One batch of pending items: sealed under the catalog key, or merged into the item with their bytes.

    Oldest first (ingest time, then id): of two pending items with the same
    bytes the earlier one settles first and holds them, the later is merged.
    """
    from sqlmodel import col, select

    from archive.catalog.items import Item, ItemStatus
    from archive.catalog.secrets import ITEMS, SHA256_LOOKUP
    from archive.db import transaction
    from archive.keys.catalog import CatalogKeyError
    from archive.services.errors import Locked

    with transaction(archive.engine) as session:
        rows = _pending(session, ITEMS, "id", batch, skip, order="created_at, id")
        for item_id, blob in rows:
            try:
                fields = _open(identities, ITEMS, item_id, bytes(blob))
            except (Locked, CatalogKeyError) as exc:
                _skip(report, skip, ITEMS, item_id, exc)
                continue
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
    report.settled[ITEMS] = report.settled.get(ITEMS, 0) + len(rows) - len(skip & {r[0] for r in rows})
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
