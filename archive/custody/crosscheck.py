"""`log verify`, second half: does the catalog say what the log says?

Why: a verified tree only proves the *log* was not rewritten. An attacker who
overwrites the copies and rewrites the catalog's hashes to match leaves the
tree intact; what gives them away is that the catalog no longer follows from
the log. So every item's commitment (recomputed from its sealed SHA-256 and
salt: this needs the catalog key, and without it the report says plainly that
commitments were not checked) must be the one the log holds, every current
replica must be a copy the log recorded for that item and role, with the same
ciphertext hash, and every item the log commits to must still be in the
catalog. Records (incidents, victims, sources, links) are held against their
commitments the same way (`archive.custody.records_check`). The log index
(`archive.custody.expected`) applies the contract's rules; a broken rule (a
second commitment, a hash changed without a source) is a problem of the log
itself and is reported with its sequence number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from archive.catalog.items import Item, Replica
from archive.custody.entry import entry_fields
from archive.custody.expected import LogIndex
from archive.db import read_only
from archive.services.errors import Locked

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from archive.context import Archive

LIVE = ("verified", "missing", "corrupt")
REPLACED = "replaced"
PAGE = 1000
MAX_MISMATCHES = 50


@dataclass(frozen=True)
class Mismatch:
    """The catalog says something about an item that does not follow from the log."""

    item: str  # an item id, or a record id (`what`: record)
    message: str
    what: str = "item"

    def __str__(self) -> str:
        return f"{self.what} {self.item}: {self.message}"


@dataclass
class CrossCheck:
    items: int = 0
    replicas: int = 0
    records: int = 0  # incidents, victims, sources, links … held against the log (archive.custody.records_check)
    commitments_checked: bool = True
    commitments_unchecked: int = 0  # items whose sealed fields this process cannot open
    mismatches: list[Mismatch] = field(default_factory=list)
    more: int = 0
    unpublished: dict[str, int] = field(default_factory=dict)  # site -> record changes not in its journal yet

    def add(self, item: str, message: str, what: str = "item") -> None:
        if len(self.mismatches) < MAX_MISMATCHES:
            self.mismatches.append(Mismatch(item, message, what))
        else:
            self.more += 1


def _entries(engine: Engine) -> Iterator[dict[str, Any]]:
    from archive.custody.audit import _event_rows

    for seq, occurred_at, actor, event_type, item_id, outcome, _leaf, objects, details in _event_rows(engine):
        try:
            objects, details = json.loads(f"[{objects},{details}]")
        except ValueError:
            continue  # the tree check reports it
        yield entry_fields(seq=seq, occurred_at=occurred_at, actor=actor, event_type=event_type, item_id=item_id,
                           objects=objects if isinstance(objects, list) else [],
                           outcome=outcome, details=details if isinstance(details, dict) else {})


def log_index(engine: Engine) -> LogIndex:
    """The index of the whole stored log (its events are checked against the tree by `audit_log`)."""
    return LogIndex.of(_entries(engine))


def _items(engine: Engine) -> Iterator[tuple[Item, list[Replica]]]:
    after = ""
    while True:
        with Session(read_only(engine)) as session:
            items = list(session.exec(select(Item).where(col(Item.id) > after).order_by(col(Item.id))
                                      .limit(PAGE)).all())
            if not items:
                return
            replicas = list(session.exec(select(Replica).where(col(Replica.item_id).in_([i.id for i in items]))
                                         ).all())
            by_item: dict[str, list[Replica]] = {}
            for replica in replicas:
                by_item.setdefault(replica.item_id, []).append(replica)
            # Yielded while the session is open: a legacy row's secret is read from its old table.
            yield from ((item, by_item.get(item.id, [])) for item in items)
        after = items[-1].id


def _commitment(archive: Archive, index: LogIndex, item: Item, result: CrossCheck) -> None:
    from archive.catalog.secrets import item_secret
    from archive.custody.commit import commitment
    from archive.keys.catalog import CatalogKeyError

    logged = index.commitment(item.id)
    if logged is None:
        result.add(item.id, "the custody log holds no commitment to this item")
        return
    if not result.commitments_checked:
        return
    try:
        secret = item_secret(archive, item)
    except Locked:
        result.commitments_unchecked += 1
        return
    except CatalogKeyError as exc:
        result.add(item.id, f"its sealed fields do not open ({exc})")
        return
    if secret.salt is None:
        result.add(item.id, "the catalog holds no salt for the log's commitment")
    elif commitment(item.id, secret.salt, secret.sha256) != logged:
        result.add(item.id, "the catalog's SHA-256 does not match the custody log's commitment")


def _replica(index: LogIndex, replica: Replica, result: CrossCheck) -> None:
    key = f"{replica.backend}:{replica.object_name}"
    found = index.copy(key)
    if found is None:
        why = ("the log names it without a hash (made before hashes were logged: `evidence fixity` records it)"
               if key in index.unhashed else "the custody log never recorded this copy")
        result.add(replica.item_id, f"{replica.role} {key}: {why}")
    elif found.item != replica.item_id or found.role != replica.role:
        result.add(replica.item_id, f"{replica.role} {key}: the log records it as the {found.role} "
                   f"of item {found.item}")
    elif found.ciphertext_sha256 != replica.ciphertext_sha256:
        result.add(replica.item_id, f"{replica.role} {key}: the catalog's ciphertext SHA-256 is not the custody log's")


def cross_check(archive: Archive, index: LogIndex) -> CrossCheck:
    """Hold the whole catalog against the log index; every mismatch named by item."""
    result = CrossCheck()
    try:
        archive.runtime.keys.catalog()
    except Locked:
        result.commitments_checked = False
    seen: set[str] = set()
    rows: set[str] = set()  # every copy the catalog has a live row for
    retired: set[str] = set()  # copies a repair replaced (history rows)
    held: set[str] = set()  # every copy with a row of any state: the sites this catalog knows
    items_with_rows: set[str] = set()
    for item, replicas in _items(archive.engine):
        result.items += 1
        seen.add(item.id)
        _commitment(archive, index, item, result)
        for replica in replicas:
            items_with_rows.add(item.id)
            key = f"{replica.backend}:{replica.object_name}"
            held.add(key)
            if replica.state == REPLACED:
                retired.add(key)
            if replica.state in LIVE:
                rows.add(key)
                result.replicas += 1
                _replica(index, replica, result)
    for item_id in sorted(set(index.commitments) - seen):
        result.add(item_id, "the custody log commits to this item, and the catalog does not hold it")
    for item_id in sorted(index.ingested - seen - set(index.commitments)):
        result.add(item_id, "the custody log records its ingestion, and the catalog does not hold it")
    # The other way round: a copy the log holds may leave only by a deletion event (or, as history, by
    # a repair that replaced it): a catalog row removed with the bytes is a copy destroyed unrecorded.
    # (A catalog rebuilt from one site knows no other site: a site it has no row on is not held against it,
    # unless the item has no row left at all.)
    # A history row counts only for a copy the log saw fail: marking a healthy copy `replaced` hides nothing.
    sites = {key.split(":", 1)[0] for key in held}
    for copy in sorted(index.copies.values(), key=lambda c: c.seq):
        if copy.deleted or copy.key in rows or copy.item not in seen:
            continue
        if copy.key in retired and (copy.role != "original" or copy.key in index.failed):
            continue  # an original found bad then replaced by a repair, or a document rewritten beside one
        if copy.key.split(":", 1)[0] in sites or copy.item not in items_with_rows:
            result.add(str(copy.item), f"copy {copy.key} the log holds was removed without a deletion event")
    from archive.custody.records_check import check_records

    check_records(archive, index, result)  # incidents, victims, sources, links and their history
    return result
