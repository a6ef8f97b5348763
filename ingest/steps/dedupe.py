"""Deduplicate: the same bytes are kept once; a second arrival is more provenance,
and, when the item's copies are lost or damaged, the bytes that restore it.

A duplicate's staged copies are normally discarded. But when the item is short
of its policy (verified originals on too few policy backends, or rows that
fixity found missing or corrupt), the newly received bytes are the same
original (same SHA-256, freshly encrypted) and may be the only good ones left:
their staged copies on the backends that lack a verified original are kept,
and `Replicate` verifies and publishes them. A quick `stat` re-checks the rows
that still say verified, so a deleted copy is noticed before the next audit; a
backend that does not answer is never taken for an empty one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from archive.catalog.items import Item, Provenance
from archive.catalog.secrets import ItemSecret, find_item_by_sha256, item_secret, provenance_fields
from archive.db import read_only
from archive.objects import Role
from ingest.pipeline import Ingestion, Step
from storage.base import StorageError

if TYPE_CHECKING:
    from archive.catalog.items import Replica
    from archive.context import Archive
    from archive.custody.expected import LogIndex


@dataclass(frozen=True)
class KeptCopy:
    """A verified original the item still has (it gets this arrival's addendum)."""

    backend: str
    object_name: str


@dataclass
class DuplicateArrival:
    """What Deduplicate found for bytes the archive already holds."""

    item_id: str
    sha256: str
    size: int
    media_type: str | None
    arrivals: list[dict[str, Any]]  # the provenance already recorded, first arrival first
    salt: str | None = None  # the item's commitment salt (sealed in the catalog, needed by its addenda)
    kept: list[KeptCopy] = field(default_factory=list)
    # Sites that could not say whether they hold their copy (down, or marker missing): their copies
    # count as kept, nothing is written to them now, and a repair job adds the addendum later.
    unanswered: list[str] = field(default_factory=list)
    restore: list[str] = field(default_factory=list)  # backends whose new copy restores the item
    # Replica rows saying verified whose object is gone ("missing") or holds other bytes ("corrupt").
    vanished: dict[int, str] = field(default_factory=dict)
    # Backends whose staged copy of this arrival was dropped unpublished (nothing of it was ever acknowledged).
    discarded: list[str] = field(default_factory=list)


def _answers(archive: Archive, name: str, health: dict[str, str | None]) -> bool:
    """Whether a site answers and carries this archive's marker (asked once per ingest)."""
    backend = archive.backends.get(name)
    if backend is None:
        return False
    if name not in health:
        health[name] = backend.health()
    return health[name] is None


# Copies up to this size are re-hashed when the same file arrives again (a corruption no fixity
# pass has found yet must not cost the only good bytes); larger ones are only looked for.
RECHECK_BYTES = 64 * 1024 * 1024


def _present(archive: Archive, replica: Replica, health: dict[str, str | None], size: int,
             index: LogIndex | None) -> str | None:
    """What a copy's site says of it: "verified", "missing" or "corrupt"; None when it cannot tell.

    `size` is what the copy holds, about: the catalog keeps no exact object size (it would name the file).
    The bytes are held against the custody log's hash for the copy (`index`), not the catalog's: a copy
    the log never recorded is no good copy (None: the item's events did not verify, the catalog's then).
    """
    from archive.services.repair import logged_hash
    from storage.base import ObjectMissing

    if not _answers(archive, replica.backend, health):
        return None
    backend = archive.backends[replica.backend]
    try:
        if size > RECHECK_BYTES:
            return "verified" if backend.stat(replica.object_name, replica.version_id) is not None else "missing"
        digest, _ = backend.sha256_of(replica.object_name, replica.version_id)
    except ObjectMissing:
        return "missing"
    except (StorageError, OSError):
        return None
    expected = replica.ciphertext_sha256 if index is None else logged_hash(index, replica)
    return "verified" if digest == expected else "corrupt"


def examine(archive: Archive, item: Item, secret: ItemSecret, replicas: list[Replica],
            arrivals: list[dict[str, Any]]) -> DuplicateArrival:
    """Which copies the item still has, and which backends the new bytes should restore."""
    from archive.custody.expected import LogNotGenuine, read_item_index
    from archive.services.repair import CORRUPT, MISSING, VERIFIED, policy_names, status_for

    found = DuplicateArrival(
        item_id=item.id, sha256=secret.sha256, size=secret.size, media_type=item.media_type, arrivals=arrivals,
        salt=secret.salt,
    )
    health: dict[str, str | None] = {}
    try:
        index: LogIndex | None = read_item_index(archive, item.id)
    except LogNotGenuine:
        index = None
    originals = [r for r in replicas if r.role == Role.ORIGINAL]
    good = []
    for replica in originals:
        if replica.state != VERIFIED:
            continue
        answer = _present(archive, replica, health, secret.size, index)
        if answer in (MISSING, CORRUPT):
            assert replica.id is not None
            found.vanished[replica.id] = str(answer)
            continue
        good.append(replica)
        if answer:
            found.kept.append(KeptCopy(replica.backend, replica.object_name))
        else:
            found.unanswered.append(replica.backend)
    for side in replicas:  # the sealed documents beside the originals: small, so always re-hashed
        if side.role != Role.ORIGINAL and side.state == VERIFIED:
            answer = _present(archive, side, health, 0, index)
            if answer in (MISSING, CORRUPT):
                assert side.id is not None
                found.vanished[side.id] = str(answer)
    bad_rows = bool(found.vanished) or any(r.state in (MISSING, CORRUPT) for r in originals)
    if status_for(archive, good) == "preserved" and not bad_rows:
        return found
    present = {r.backend for r in good}
    # Never onto a site that cannot answer for itself (an unmounted disk is not an empty one).
    found.restore = [name for name in policy_names(archive) if name not in present and _answers(archive, name, health)]
    return found


class Deduplicate(Step):
    name = "deduplicate"
    runs_on_duplicates = True

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        from archive.services.errors import Locked
        from archive.services.repair import live_replicas

        if ingestion.item_id is not None:
            return
        assert ingestion.sha256 is not None
        try:
            keys = archive.runtime.keys.catalog()
        except Locked:
            # No key, no keyed hash: the item is kept as new, and settlement merges it into
            # the item holding the same bytes, if any, once unlocked (archive.services.settle).
            ingestion.item_id = str(uuid.uuid4())
            return
        with Session(read_only(archive.engine)) as session:
            existing = find_item_by_sha256(session, keys, ingestion.sha256)
            if existing is None:
                ingestion.item_id = str(uuid.uuid4())  # random: an id says nothing about the file
                return
            replicas = live_replicas(session, existing.id)
            provenance = session.exec(
                select(Provenance).where(Provenance.item_id == existing.id).order_by(col(Provenance.id))
            ).all()
            arrivals = [provenance_fields(keys, p) for p in provenance]
            secret = item_secret(keys, existing)
        found = examine(archive, existing, secret, replicas, arrivals)
        ingestion.item_id = existing.id
        ingestion.duplicate = True
        ingestion.status = existing.status
        ingestion.media_type = existing.media_type
        ingestion.results[self.name] = found
        keep = []
        for entry in ingestion.staged:
            if entry.backend in found.restore:
                keep.append(entry)
            else:
                entry.writer.abort()  # never published, so nothing acknowledged is touched
                found.discarded.append(entry.backend)
        ingestion.staged[:] = keep
