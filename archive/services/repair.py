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

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from archive.catalog.items import Item, Provenance, Replica
from archive.custody.log import REPLICATION, append_event, utc_now
from archive.services.errors import NotFound
from storage.base import CHUNK, StorageError

if TYPE_CHECKING:
    from archive.context import Archive
    from storage.base import Backend, StoredObject

ORIGINAL = "original"
MANIFEST = "manifest"
VERIFIED = "verified"
MISSING = "missing"
CORRUPT = "corrupt"
# A missing or corrupt copy that a repair has replaced: kept as history, no longer checked.
REPLACED = "replaced"
LIVE_STATES = (VERIFIED, MISSING, CORRUPT)


@dataclass
class RepairResult:
    """What one repair did; `complete` is False when a wanted copy could not be made."""

    item_id: str
    status: str
    written: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    complete: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "item": self.item_id,
            "status": self.status,
            "written": self.written,
            "manifests": self.manifests,
            "failures": self.failures,
            "complete": self.complete,
        }


class RepairIncomplete(Exception):
    """Some wanted copies could not be made yet (a backend is down); retry later."""


def policy_names(archive: Archive) -> list[str]:
    """The backends the policy writes to (all configured ones when it names none)."""
    settings = archive.settings
    return list(settings.policy.backends) or [spec.name for spec in settings.storage]


def verified_backends(replicas: list[Replica], role: str = ORIGINAL) -> set[str]:
    return {r.backend for r in replicas if r.role == role and r.state == VERIFIED}


def status_for(archive: Archive, replicas: list[Replica]) -> str:
    """preserved when the policy's target of verified originals (on its backends) is met."""
    wanted = set(policy_names(archive))
    count = len(verified_backends(replicas) & wanted)
    return "preserved" if count >= archive.settings.policy.copies else "degraded"


def live_replicas(session: Session, item_id: str) -> list[Replica]:
    return list(
        session.exec(
            select(Replica)
            .where(Replica.item_id == item_id, col(Replica.state).in_(LIVE_STATES))
            .order_by(col(Replica.id))
        ).all()
    )


def refresh_status(session: Session, archive: Archive, item: Item) -> str:
    """Recompute an item's status from its replica rows (inside the caller's transaction)."""
    status = status_for(archive, live_replicas(session, item.id))
    if item.status != status:
        item.status = status
        session.add(item)
    return status


def manifest_of(original: Replica, replicas: list[Replica]) -> Replica | None:
    """The verified manifest written for this original object, if any."""
    for r in replicas:
        if (
            r.role == MANIFEST
            and r.state == VERIFIED
            and r.backend == original.backend
            and r.object_name.startswith(original.object_name + ".")
            and r.object_name.endswith(".manifest")
        ):
            return r
    return None


def first_provenance(session: Session, item_id: str) -> Provenance | None:
    return session.exec(
        select(Provenance).where(Provenance.item_id == item_id).order_by(col(Provenance.id)).limit(1)
    ).first()


def manifest_bytes(item: Item, original: Replica, first: Provenance | None) -> bytes:
    """The encrypted manifest for `original`, rebuilt from the catalog in the ingest's format."""
    from archive.age import Recipient, encrypt_bytes
    from ingest.pipeline import Incoming, Ingestion
    from ingest.steps.manifest import manifest_document

    ingestion = Ingestion(
        incoming=Incoming(
            path=Path("."),
            original_name=(first.original_name if first else None) or "unnamed",
            source=first.source if first else None,
            note=first.note if first else None,
            declared_type=first.declared_type if first else None,
        ),
        actor=first.actor if first else "",
        item_id=item.id,
        sha256=item.sha256,
        size=item.size,
        media_type=item.media_type,
        recipients=list(original.recipients),
        ciphertext_sha256=original.ciphertext_sha256,
        ciphertext_size=original.size,
        results={"received_at": first.received_at if first else item.created_at},
    )
    document = manifest_document(ingestion, original.object_name)
    recipients = [Recipient.parse(r) for r in original.recipients]
    return encrypt_bytes(json.dumps(document, sort_keys=True).encode(), recipients)


def new_object_name() -> str:
    from ingest.steps.receive import new_object_name as name

    return name()


def copy_object(source: Backend, replica: Replica, target: Backend) -> StoredObject:
    """Stream one stored object to a new name on `target`; the target verifies it."""
    writer = target.open_writer(new_object_name(), replica.size)
    try:
        with source.open_reader(replica.object_name, replica.version_id) as stream:
            while chunk := stream.read(CHUNK):
                writer.write(chunk)
        stored = writer.commit(replica.ciphertext_sha256)
    except BaseException:
        writer.abort()
        raise
    if stored.size != replica.size:
        raise StorageError(f"{target.name}: copy of {replica.object_name} has {stored.size} bytes, not {replica.size}")
    return stored


def write_manifest(target: Backend, data: bytes, original_name: str, *, fresh_original: bool) -> StoredObject:
    """Put a manifest beside `original_name`.

    Beside a copy written just now it takes the usual `<object>.manifest`; beside
    an older copy it gets a new random suffix, because that name was used once
    (object names are never reused, even for an object since lost).
    """
    name = original_name + ".manifest"
    if not fresh_original:
        name = f"{original_name}.r{secrets.token_hex(4)}.manifest"
    return target.put_bytes(name, data)


def _replica_row(item_id: str, stored: StoredObject, role: str, recipients: list[str]) -> Replica:
    return Replica(
        item_id=item_id,
        role=role,
        backend=stored.backend,
        object_name=stored.name,
        version_id=stored.version_id,
        ciphertext_sha256=stored.sha256,
        size=stored.size,
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

    # Read what is needed and let go of the catalog before any byte moves: on SQLite
    # an open session holds the write lock, and a copy can take minutes.
    with Session(archive.engine) as session:
        item = session.get(Item, item_id)
        if item is None:
            raise NotFound(f"no item {item_id!r}")
        replicas = live_replicas(session, item_id)
        first = first_provenance(session, item_id)
    policy = set(policy_names(archive))
    # A back-fill target dropped from the policy since the job was queued is no longer wanted.
    wanted = [name for name in targets if name in policy] if targets else policy_names(archive)
    originals = [r for r in replicas if r.role == ORIGINAL and r.state == VERIFIED]
    present = verified_backends(replicas)
    missing = [name for name in wanted if name not in present]
    # Sources: verified originals, policy backends first.
    sources = sorted(originals, key=lambda r: (r.backend not in policy, r.id or 0))
    result = RepairResult(item_id=item_id, status=item.status)
    new_originals: list[tuple[StoredObject, Replica]] = []
    for name in missing:
        target = archive.backends.get(name)
        if target is None:
            result.failures[name] = "backend not configured"
            continue
        if not sources:
            result.failures[name] = "no verified copy to repair from"
            continue
        errors = []
        for source_replica in sources:
            source = archive.backends.get(source_replica.backend)
            if source is None:
                continue
            try:
                new_originals.append((copy_object(source, source_replica, target), source_replica))
                break
            except (StorageError, OSError) as exc:
                errors.append(f"from {source_replica.backend}: {exc}")
        else:
            result.failures[name] = "; ".join(errors) or "no readable source"
    # Manifests: every verified original (old or new) on a wanted backend needs one.
    new_manifests: list[StoredObject] = []
    for stored, source_replica in new_originals:
        row = _replica_row(item_id, stored, ORIGINAL, list(source_replica.recipients))
        try:
            sealed = manifest_bytes(item, row, first)
            new_manifests.append(
                write_manifest(archive.backends[stored.backend], sealed, stored.name, fresh_original=True)
            )
        except (StorageError, OSError) as exc:
            result.failures[stored.backend] = f"manifest: {exc}"
    for original in originals:
        if original.backend not in wanted and original.backend not in policy:
            continue
        if manifest_of(original, replicas) is not None:
            continue
        backend = archive.backends.get(original.backend)
        if backend is None:
            continue
        try:
            sealed = manifest_bytes(item, original, first)
            new_manifests.append(write_manifest(backend, sealed, original.object_name, fresh_original=False))
        except (StorageError, OSError) as exc:
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
            for old in current:
                if old.role == ORIGINAL and old.backend == stored.backend and old.state != VERIFIED:
                    old.state = REPLACED
                    session.add(old)
                    for described in current:  # its manifest describes the bad copy: retire it too
                        if described.role == MANIFEST and described.object_name.startswith(old.object_name + "."):
                            described.state = REPLACED
                            session.add(described)
            session.add(_replica_row(item_id, stored, ORIGINAL, list(source_replica.recipients)))
            present.add(stored.backend)
            result.written.append(stored.backend)
            append_event(
                session,
                REPLICATION,
                actor=archive.actor,
                item_id=item_id,
                objects=[f"{stored.backend}:{stored.name}"],
                details={"backend": stored.backend, "from": source_replica.backend, "verified": "sha256",
                         "size": stored.size, "reason": reason},
            )
        for stored in new_manifests:
            if any(stored.name.startswith(name + ".") for name in discarded):
                _discard(archive, stored)
                continue
            for old in current:
                if (old.role == MANIFEST and old.backend == stored.backend and old.state != VERIFIED
                        and stored.name.startswith(old.object_name.removesuffix(".manifest") + ".")):
                    old.state = REPLACED
                    session.add(old)
            session.add(_replica_row(item_id, stored, MANIFEST, []))
            result.manifests.append(stored.backend)
            append_event(
                session,
                REPLICATION,
                actor=archive.actor,
                item_id=item_id,
                objects=[f"{stored.backend}:{stored.name}"],
                details={"backend": stored.backend, "role": MANIFEST, "verified": "sha256", "reason": reason},
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
