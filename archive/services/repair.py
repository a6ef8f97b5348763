"""Repair and back-fill: make the copies the policy asks for, from a verified one.

A repair copies the *ciphertext* of a verified original to each policy backend
that lacks a verified copy (streaming, a new random object name: names are
never reused), and the backend verifies what it stored against the catalog's
ciphertext SHA-256, so a bad source can never produce a "verified" copy. Each
new original gets its encrypted manifest too, rebuilt from the catalog (the
manifest holds no secret the catalog lacks, and no private key is needed).

Everything is idempotent: the work to do is recomputed from the catalog each
time, and the catalog rows are written in one transaction that first checks
whether another worker finished the same copy meanwhile. A copy written but
not committed (a crash in between) is an unreferenced object, never a wrong
catalog entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from archive.catalog.items import Item, ItemStatus, Provenance, Replica, ReplicaState
from archive.config import RuntimeConfig
from archive.custody.expected import LogIndex, read_item_index
from archive.custody.log import REPLICATION, append_event, utc_now
from archive.objects import (
    Role,
    arrival_document,
    arrival_name,
    is_beside,
    manifest_document,
    manifest_name,
    new_object_name,
    provenance_fields,
    seal,
)
from archive.services.errors import Locked, NotFound
from storage.base import CHUNK, StorageError

if TYPE_CHECKING:
    from archive.context import Archive
    from storage.base import Backend, StoredObject

ORIGINAL = Role.ORIGINAL
MANIFEST = Role.MANIFEST
ARRIVAL = Role.ARRIVAL
VERIFIED = ReplicaState.VERIFIED
MISSING = ReplicaState.MISSING
CORRUPT = ReplicaState.CORRUPT
# A missing or corrupt copy that a repair has replaced: kept as history, no longer checked.
REPLACED = ReplicaState.REPLACED
LIVE_STATES = (VERIFIED, MISSING, CORRUPT)


@dataclass
class RepairResult:
    """What one repair did; `complete` is False when a wanted copy could not be made."""

    item_id: str
    status: str
    written: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    arrivals: list[str] = field(default_factory=list)  # backends that got addenda (later arrivals)
    failures: dict[str, str] = field(default_factory=dict)
    complete: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "item": self.item_id,
            "status": self.status,
            "written": self.written,
            "manifests": self.manifests,
            "arrivals": self.arrivals,
            "failures": self.failures,
            "complete": self.complete,
        }


class RepairIncomplete(Exception):
    """Some wanted copies could not be made yet (a backend is down); retry later."""


def _config(source: Archive | RuntimeConfig) -> RuntimeConfig:
    return source if isinstance(source, RuntimeConfig) else source.config


def policy_names(source: Archive | RuntimeConfig) -> list[str]:
    """The sites the policy writes to (every site when it names none)."""
    return _config(source).policy_names()


def verified_backends(replicas: list[Replica], role: str = ORIGINAL) -> set[str]:
    return {r.backend for r in replicas if r.role == role and r.state == VERIFIED}


def status_for(source: Archive | RuntimeConfig, replicas: list[Replica]) -> str:
    """preserved when the policy's target of verified originals (on its sites) is met."""
    config = _config(source)
    count = len(verified_backends(replicas) & set(config.policy_names()))
    return ItemStatus.PRESERVED if count >= config.policy.copies else ItemStatus.DEGRADED


def live_replicas(session: Session, item_id: str) -> list[Replica]:
    return list(
        session.exec(
            select(Replica)
            .where(Replica.item_id == item_id, col(Replica.state).in_(LIVE_STATES))
            .order_by(col(Replica.id))
        ).all()
    )


def refresh_status(session: Session, archive: Archive, item: Item) -> str:
    """Recompute an item's status from its replica rows (inside the caller's transaction).

    A merged item keeps its status: its copies went to the item holding the same bytes.
    """
    from archive.catalog.items import ItemStatus

    if item.status == ItemStatus.MERGED:
        return item.status
    status = status_for(archive, live_replicas(session, item.id))
    if item.status != status:
        item.status = status
        session.add(item)
    return status


def _beside(original: Replica, replicas: list[Replica], role: str) -> list[Replica]:
    return [r for r in replicas if r.role == role and r.state == VERIFIED and r.backend == original.backend
            and is_beside(original.object_name, r.object_name)]


def manifest_of(original: Replica, replicas: list[Replica]) -> Replica | None:
    """The verified manifest written for this original object, if any."""
    found = _beside(original, replicas, MANIFEST)
    return found[0] if found else None


def arrivals_of(original: Replica, replicas: list[Replica]) -> list[Replica]:
    """The verified addenda (later arrivals) beside this original object."""
    return _beside(original, replicas, ARRIVAL)


def sidecars_short(original: Replica, replicas: list[Replica], later_arrivals: int) -> bool:
    """Whether a verified original lacks its manifest or an addendum for some later arrival."""
    return manifest_of(original, replicas) is None or len(arrivals_of(original, replicas)) < later_arrivals


def stale_manifests(index: LogIndex, item_id: str, replicas: list[Replica]) -> set[str]:
    """Manifests written before the item's commitment was added (an item ingested before commitments).

    They lack the commitment's salt, so a catalog rebuilt from them could not
    check the item against the log: each is written again (a fresh name) and
    retired. The log tells which: a manifest named before hashes were logged,
    or recorded before the commitment.
    """
    first = index.commitments.get(item_id)
    if first is None:
        return set()
    stale = set()
    for row in replicas:
        if row.role != MANIFEST or row.state != VERIFIED:
            continue
        key = f"{row.backend}:{row.object_name}"
        copy = index.copy(key)
        if key in index.unhashed or (copy is not None and copy.seq < first[1]):
            stale.add(row.object_name)
    return stale


def later_arrivals(session: Session, item_id: str) -> int:
    """How many arrivals after the first the catalog records (each needs an addendum beside every original)."""
    from sqlalchemy import func

    count = session.exec(select(func.count()).select_from(Provenance).where(Provenance.item_id == item_id)).one()
    return max(0, int(count) - 1)


def retire_replaced(session: Session, current: list[Replica], backend: str) -> list[str]:
    """Mark the bad originals on `backend`, and the objects beside them, replaced by a new verified copy."""
    retired = []
    for old in current:
        if old.role == ORIGINAL and old.backend == backend and old.state in (MISSING, CORRUPT):
            old.state = REPLACED
            session.add(old)
            retired.append(old.object_name)
            for described in current:  # its manifest and addenda describe the bad copy: retire them too
                if described.backend == backend and is_beside(old.object_name, described.object_name):
                    described.state = REPLACED
                    session.add(described)
    return retired


def first_provenance(session: Session, item_id: str) -> Provenance | None:
    return session.exec(
        select(Provenance).where(Provenance.item_id == item_id).order_by(col(Provenance.id)).limit(1)
    ).first()


def all_provenance(session: Session, item_id: str) -> list[Provenance]:
    return list(session.exec(select(Provenance).where(Provenance.item_id == item_id).order_by(col(Provenance.id))))


def _sealed_provenance(archive: Archive, p: Provenance) -> dict[str, Any]:
    from archive.catalog.secrets import provenance_fields as opened

    return opened(archive, p)


def manifest_bytes(archive: Archive, item: Item, original: Replica, first: Provenance | None) -> bytes:
    """The encrypted manifest for `original`, rebuilt from the catalog in the ingest's format.

    Its item fields (SHA-256, size, salt) are sealed in the catalog: writing
    one needs the catalog key (`Locked` otherwise; the repair waits).
    """
    from archive.catalog.secrets import item_secret

    secret = item_secret(archive, item)
    provenance = _sealed_provenance(archive, first) if first is not None else provenance_fields(
        source=None, note=None, original_name="unnamed", declared_type=None, received_at=item.created_at, actor="")
    document = manifest_document(
        item_id=item.id, sha256=secret.sha256, size=secret.size, salt=secret.salt, media_type=item.media_type,
        object_name=original.object_name, ciphertext_sha256=original.ciphertext_sha256,
        ciphertext_size=None, recipients=list(original.recipients), provenance=provenance,
    )
    return seal(document, list(original.recipients))


def write_arrivals(archive: Archive, target: Backend, item: Item, original: Replica,
                   later: list[Provenance]) -> list[StoredObject]:
    """A fresh set of addenda beside `original`, one per later arrival, sealed from the catalog."""
    from archive.catalog.secrets import item_secret

    written = []
    sha256 = item_secret(archive, item).sha256 if later else ""
    for arrival in later:
        document = arrival_document(item_id=item.id, sha256=sha256, object_name=original.object_name,
                                    provenance=_sealed_provenance(archive, arrival))
        written.append(target.put_bytes(arrival_name(original.object_name), seal(document, list(original.recipients))))
    return written


def site_problem(archive: Archive, name: str, seen: dict[str, str | None]) -> str | None:
    """Why site `name` must be neither read nor written now (not configured, not answering, marker
    missing or foreign), else None; asked once per repair and kept in `seen`.

    An unmounted disk or a wrong bucket is unavailable, never empty: nothing is
    copied onto it and no row of it is retired, and the repair stays incomplete
    so the worker tries again later.
    """
    if name not in seen:
        backend = archive.backends.get(name)
        seen[name] = "backend not configured" if backend is None else backend.health()
    return seen[name]


def copy_object(source: Backend, replica: Replica, target: Backend, expected_sha256: str) -> StoredObject:
    """Stream one stored object to a new name on `target`; the target verifies it against `expected_sha256`.

    The expected hash is the log's (`logged_hash`), not the catalog's: a
    catalog row rewritten to match substituted bytes cannot make them spread.
    """
    info = source.stat(replica.object_name, replica.version_id)
    writer = target.open_writer(new_object_name(), info.size if info is not None else None)
    try:
        with source.open_reader(replica.object_name, replica.version_id) as stream:
            while chunk := stream.read(CHUNK):
                writer.write(chunk)
        stored = writer.commit(expected_sha256)
    except BaseException:
        writer.abort()
        raise
    if stored.sha256 != expected_sha256:
        raise StorageError(f"{target.name}: copy of {replica.object_name} holds other bytes than the log records")
    return stored


def logged_hash(index: LogIndex, replica: Replica) -> str | None:
    """The ciphertext hash the log holds for a copy; the catalog's only for a copy from before hashes were logged."""
    key = f"{replica.backend}:{replica.object_name}"
    found = index.copy(key)
    if found is not None:
        return found.ciphertext_sha256 if found.item == replica.item_id else None
    return replica.ciphertext_sha256 if key in index.unhashed else None


def write_manifest(target: Backend, data: bytes, original_name: str, *, fresh_original: bool) -> StoredObject:
    """Put a manifest beside `original_name`.

    Beside a copy written just now it takes the usual `<object>.manifest`; beside
    an older copy it gets a new random suffix, because that name was used once
    (object names are never reused, even for an object since lost).
    """
    return target.put_bytes(manifest_name(original_name, fresh=fresh_original), data)


def _replica_row(item_id: str, stored: StoredObject, role: str, recipients: list[str]) -> Replica:
    return Replica(
        item_id=item_id,
        role=str(role),
        backend=stored.backend,
        object_name=stored.name,
        version_id=stored.version_id,
        ciphertext_sha256=stored.sha256,
        recipients=list(recipients),
        checksum_detail=stored.checksum_detail,
        state=VERIFIED,
        verified_at=utc_now(),
    )


def repair_item(
    archive: Archive, item_id: str, *, targets: list[str] | None = None, reason: str = "repair"
) -> RepairResult:
    """Bring one item's copies up to the policy (or onto `targets`, for a back-fill).

    Complete when every target backend holds a verified original and manifest;
    without explicit targets also when the policy's copy count is met and only
    surplus backends are unreachable.
    """
    from archive.db import transaction

    _ = archive.actor  # resolved before any transaction: a first use writes its users row
    # Read what is needed and let go of the catalog before any byte moves: on SQLite
    # an open session holds the write lock, and a copy can take minutes.
    with Session(archive.engine) as session:
        item = session.get(Item, item_id)
        if item is None:
            raise NotFound(f"no item {item_id!r}")
        replicas = live_replicas(session, item_id)
        arrivals = all_provenance(session, item_id)
    first, later = (arrivals[0] if arrivals else None), arrivals[1:]
    index = read_item_index(archive, item_id)
    policy = set(policy_names(archive))
    # A back-fill target dropped from the policy since the job was queued is no longer wanted.
    wanted = [name for name in targets if name in policy] if targets else policy_names(archive)
    originals = [r for r in replicas if r.role == ORIGINAL and r.state == VERIFIED]
    present = verified_backends(replicas)
    stale = stale_manifests(index, item_id, replicas)
    described = [r for r in replicas if r.object_name not in stale]  # what the side-object plan counts
    missing = [name for name in wanted if name not in present]
    # Sources: verified originals, policy backends first.
    sources = sorted(originals, key=lambda r: (r.backend not in policy, r.id or 0))
    result = RepairResult(item_id=item_id, status=item.status)
    new_originals: list[tuple[StoredObject, Replica]] = []
    seen: dict[str, str | None] = {}
    for name in missing:
        target = archive.backends.get(name)
        problem = site_problem(archive, name, seen)
        if target is None or problem is not None:
            result.failures[name] = problem or "backend not configured"
            continue
        if not sources:
            result.failures[name] = "no verified copy to repair from"
            continue
        errors = []
        for source_replica in sources:
            source = archive.backends.get(source_replica.backend)
            if source is None or site_problem(archive, source_replica.backend, seen) is not None:
                continue
            expected = logged_hash(index, source_replica)
            if expected is None:
                errors.append(f"from {source_replica.backend}: the log records no hash for that copy")
                continue
            try:
                new_originals.append((copy_object(source, source_replica, target, expected), source_replica))
                break
            except (StorageError, OSError) as exc:
                errors.append(f"from {source_replica.backend}: {exc}")
        else:
            result.failures[name] = "; ".join(errors) or "no readable source"
    # Side objects: every verified original (old or new) on a wanted backend needs its
    # manifest and one addendum per later arrival, sealed again from the catalog.
    new_manifests: list[tuple[StoredObject, str]] = []  # (manifest, the original it describes)
    new_arrivals: list[tuple[StoredObject, str]] = []
    for stored, source_replica in new_originals:
        row = _replica_row(item_id, stored, ORIGINAL, list(source_replica.recipients))
        target = archive.backends[stored.backend]
        try:
            sealed = manifest_bytes(archive, item, row, first)
            new_manifests.append((write_manifest(target, sealed, stored.name, fresh_original=True), stored.name))
            new_arrivals += [(a, stored.name) for a in write_arrivals(archive, target, item, row, later)]
        except (StorageError, OSError, Locked) as exc:
            result.failures[stored.backend] = f"manifest: {exc}"
    for original in originals:
        if original.backend not in wanted and original.backend not in policy:
            continue
        problem = site_problem(archive, original.backend, seen)
        if problem is not None:  # nothing is written beside copies on a site that is not there
            if manifest_of(original, described) is None:
                result.failures[original.backend] = f"manifest: {problem}"
            continue
        backend = archive.backends.get(original.backend)
        if backend is None or not sidecars_short(original, described, len(later)):
            continue
        try:
            if manifest_of(original, described) is None:
                sealed = manifest_bytes(archive, item, original, first)
                written = write_manifest(backend, sealed, original.object_name, fresh_original=False)
                new_manifests.append((written, original.object_name))
            if len(arrivals_of(original, replicas)) < len(later):
                # Which arrival an addendum holds is sealed inside it: write the whole set again.
                new_arrivals += [(a, original.object_name)
                                 for a in write_arrivals(archive, backend, item, original, later)]
        except (StorageError, OSError, Locked) as exc:
            result.failures[original.backend] = f"manifest: {exc}"

    with transaction(archive.engine) as session:
        item = session.get(Item, item_id)
        assert item is not None
        current = live_replicas(session, item_id)
        present = verified_backends(current)
        discarded: set[str] = set()
        for stored, source_replica in new_originals:
            if stored.backend in present:  # another worker repaired it meanwhile
                _discard(archive, stored)
                discarded.add(stored.name)
                continue
            retire_replaced(session, current, stored.backend)
            session.add(_replica_row(item_id, stored, ORIGINAL, list(source_replica.recipients)))
            present.add(stored.backend)
            result.written.append(stored.backend)
            append_event(
                session,
                REPLICATION,
                actor=archive.actor,
                item_id=item_id,
                objects=[f"{stored.backend}:{stored.name}"],
                details={"backend": stored.backend, "role": str(ORIGINAL), "ciphertext_sha256": stored.sha256,
                         "from": source_replica.backend,
                         "from_object": f"{source_replica.backend}:{source_replica.object_name}",
                         "from_ciphertext_sha256": stored.sha256, "verified": "sha256", "reason": reason},
            )
        for role, written_beside in ((MANIFEST, new_manifests), (ARRIVAL, new_arrivals)):
            for stored, original_name in written_beside:
                if original_name in discarded:
                    _discard(archive, stored)
                    continue
                for old in current:  # what the new side objects stand in for, beside the same original
                    if (old.role == role and old.backend == stored.backend and is_beside(original_name, old.object_name)
                            and (old.state != VERIFIED or role == ARRIVAL or old.object_name in stale)):
                        old.state = REPLACED
                        session.add(old)
                session.add(_replica_row(item_id, stored, role, []))
                (result.manifests if role == MANIFEST else result.arrivals).append(stored.backend)
                append_event(
                    session,
                    REPLICATION,
                    actor=archive.actor,
                    item_id=item_id,
                    objects=[f"{stored.backend}:{stored.name}"],
                    details={"backend": stored.backend, "role": str(role), "ciphertext_sha256": stored.sha256,
                             "verified": "sha256", "reason": reason},
                )
        for name, why in result.failures.items():
            append_event(session, REPLICATION, actor=archive.actor, item_id=item_id, outcome="failure",
                         details={"backend": name, "reason": why[:500], "purpose": reason})
        session.flush()
        result.status = refresh_status(session, archive, item)
    still_missing = [name for name in wanted if name not in present]
    if targets:
        result.complete = not still_missing and not result.failures
    else:
        result.complete = result.status == "preserved" and not any(
            why.startswith("manifest:") for why in result.failures.values()
        )
    return result


def _discard(archive: Archive, stored: StoredObject) -> None:
    """Remove a surplus copy that was never entered in the catalog (not evidence yet)."""
    try:
        archive.backends[stored.backend].delete(stored.name, stored.version_id)
    except (StorageError, OSError):
        pass
