"""Rebuilding the item catalog from one storage site, for the day the database is lost.

Every original has an encrypted manifest beside it (`<object>.manifest`, see
`ingest.steps.manifest`). With the custodian identity, the manifests on one
backend are enough to recreate each item, its stored copy and its first
provenance (the file name and time of receipt; sources are deliberately not in
the manifest). Each original's ciphertext is re-hashed and checked against the
SHA-256 its manifest recorded before it is entered as a verified copy.

The rebuilt catalog lives in a *new* home whose configuration points at the
same backend, so the old home is never overwritten. The new custody log opens
with the rebuild itself (PREMIS "recovery") and a fixity check for each copy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from archive.catalog.items import Item, Provenance, Replica
from archive.config import CONFIG_NAME, Policy, Settings, StorageSpec
from archive.custody.log import FIXITY_CHECK, append_event, utc_now
from archive.services.errors import ServiceError
from archive.services.repair import CORRUPT, MISSING, REPLACED, VERIFIED, status_for
from storage.base import CHUNK, StorageError

if TYPE_CHECKING:
    from archive.age import Identity
    from archive.context import Archive
    from storage.base import Backend

# PREMIS event type (id.loc.gov/vocabulary/preservation/eventType/rec).
RECOVERY = "recovery"
MANIFEST_SUFFIX = ".manifest"


@dataclass
class Found:
    """One manifest read back, and what re-hashing its original showed."""

    manifest_name: str
    manifest_sha256: str
    manifest_size: int
    document: dict[str, Any]
    state: str  # verified | missing | corrupt
    version_id: str | None = None


@dataclass
class RebuildReport:
    home: str
    backend: str
    manifests: int = 0
    items: int = 0
    replicas: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"home": self.home, "backend": self.backend, "manifests": self.manifests, "items": self.items,
                "replicas": self.replicas, "problems": self.problems}


def _absolute_spec(spec: StorageSpec, home: Path) -> StorageSpec:
    """The same backend, with a local path made absolute so it works from the new home."""
    options = dict(spec.options)
    if spec.kind == "local":
        path = Path(options["path"])
        options["path"] = str(path if path.is_absolute() else (home / path).absolute())
    return StorageSpec(spec.name, spec.kind, options)


def _read_all(backend: Backend, name: str) -> bytes:
    with backend.open_reader(name) as stream:
        return bytes(stream.read())


def _rehash(backend: Backend, name: str, version_id: str | None) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with backend.open_reader(name, version_id) as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _examine(backend: Backend, name: str, identities: list[Identity]) -> Found:
    from ingest.steps.manifest import read_manifest

    data = _read_all(backend, name)
    document = read_manifest(data, identities)
    found = Found(name, hashlib.sha256(data).hexdigest(), len(data), document, VERIFIED)
    original = str(document["object"])
    info = backend.stat(original)
    if info is None:
        found.state = MISSING
        return found
    found.version_id = info.version_id
    digest, size = _rehash(backend, original, info.version_id)
    if digest != document.get("ciphertext_sha256") or size != document.get("ciphertext_size"):
        found.state = CORRUPT
    return found


def _new_settings(old: Settings, spec: StorageSpec, home: Path, identities: list[Identity]) -> Settings:
    custodian = str(identities[0].recipient)
    recipients = list(old.recipients) or [custodian]
    return Settings(
        home=home,
        operator=old.operator,
        recipients=recipients,
        storage=[spec],
        policy=Policy(copies=1, minimum=1, backends=[spec.name]),
    )


def rebuild_catalog(archive: Archive, backend_name: str, identity_path: Path, new_home: Path) -> RebuildReport:
    """Recreate the catalog in `new_home` from the manifests on `backend_name`."""
    from archive.age import AgeError, Identity
    from archive.context import Archive as ArchiveContext
    from archive.db import transaction
    from storage.registry import build_backend

    spec = next((s for s in archive.settings.storage if s.name == backend_name), None)
    if spec is None:
        raise ServiceError(f"no storage backend named {backend_name!r} in {archive.settings.config_path}")
    new_home = new_home.expanduser().absolute()
    if (new_home / CONFIG_NAME).exists():
        raise ServiceError(f"{new_home} already holds an archive: rebuild into a new, empty home")
    if not identity_path.is_file():
        raise ServiceError(f"no identity file at {identity_path}")
    identities = Identity.read(identity_path)
    spec = _absolute_spec(spec, archive.home)
    backend = build_backend(spec, new_home)
    problem = backend.health()
    if problem is not None:
        raise ServiceError(f"backend {backend_name} does not answer: {problem}")

    new_home.mkdir(parents=True, exist_ok=True)
    keys = new_home / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    (keys / "custodian.pub").write_text(str(identities[0].recipient) + "\n", encoding="utf-8")
    settings = _new_settings(archive.settings, spec, new_home, identities)
    settings.save()
    rebuilt = ArchiveContext(settings=settings, actor=archive.actor)
    report = RebuildReport(home=str(new_home), backend=backend_name)
    try:
        with Session(rebuilt.engine) as session:
            if session.exec(select(Item).limit(1)).first() is not None:
                raise ServiceError(f"the catalog of {new_home} is not empty ({settings.catalog_url()})")
        with transaction(rebuilt.engine) as session:
            append_event(session, RECOVERY, actor=rebuilt.actor,
                         details={"action": "rebuild catalog", "backend": backend_name, "phase": "start"})
        by_item: dict[str, list[Found]] = {}
        for info in backend.list(""):
            if not info.name.endswith(MANIFEST_SUFFIX):
                continue
            report.manifests += 1
            try:
                found = _examine(backend, info.name, identities)
            except (AgeError, ValueError, KeyError, StorageError, OSError) as exc:
                report.problems.append({"manifest": info.name, "problem": f"unreadable manifest: {exc}"})
                with transaction(rebuilt.engine) as session:
                    append_event(session, RECOVERY, actor=rebuilt.actor, outcome="failure",
                                 objects=[f"{backend_name}:{info.name}"],
                                 details={"problem": "unreadable manifest"})
                continue
            if found.state != VERIFIED:
                report.problems.append({"manifest": info.name, "item": str(found.document.get("item_id")),
                                        "problem": f"original {found.state}"})
            # By content, not by id: an ingest that published its copies but never
            # committed (killed, or beaten to the same bytes by a concurrent ingest)
            # leaves a second manifest, under another id, for the same bytes.
            by_item.setdefault(str(found.document["sha256"]), []).append(found)
        for founds in by_item.values():
            founds.sort(key=lambda f: (str(f.document.get("received_at") or ""), str(f.document["item_id"])))
            item_id = str(founds[0].document["item_id"])
            others = sorted({str(f.document["item_id"]) for f in founds} - {item_id})
            if others:
                report.problems.append({"item": item_id, "problem": "the same bytes under other ids, "
                                        f"from ingests that were never acknowledged: {', '.join(others)}"})
            _commit_item(rebuilt, backend_name, item_id, founds, report)
        with transaction(rebuilt.engine) as session:
            append_event(session, RECOVERY, actor=rebuilt.actor,
                         details={"action": "rebuild catalog", "backend": backend_name, "phase": "end",
                                  "manifests": report.manifests, "items": report.items,
                                  "problems": len(report.problems)})
    finally:
        rebuilt.close()
    return report


def _commit_item(rebuilt: Archive, backend_name: str, item_id: str, founds: list[Found], report: RebuildReport) -> None:
    from archive.db import transaction

    doc = founds[0].document
    any_good = any(f.state == VERIFIED for f in founds)
    now = utc_now()
    with transaction(rebuilt.engine) as session:
        item = Item(id=item_id, sha256=str(doc["sha256"]), size=int(doc["size"]), media_type=doc.get("media_type"),
                    status="degraded", created_at=str(doc.get("received_at") or now))
        session.add(item)
        session.flush()
        received = sorted(founds, key=lambda f: str(f.document.get("received_at") or ""))[0].document
        sealed = received.get("provenance") or {}  # manifests written since provenance was sealed in them
        session.add(Provenance(item_id=item_id, original_name=received.get("original_name"),
                               received_at=str(received.get("received_at") or now),
                               actor=str(sealed.get("actor") or rebuilt.actor), source=sealed.get("source"),
                               declared_type=sealed.get("declared_type"),
                               note=sealed.get("note") if sealed else f"recovered from the manifest on {backend_name}"))
        rows: list[Replica] = []
        for found in founds:
            document = found.document
            # A bad copy beside a good one is an old copy a repair already replaced.
            state = REPLACED if found.state != VERIFIED and any_good else found.state
            original = Replica(item_id=item_id, role="original", backend=backend_name,
                               object_name=str(document["object"]), version_id=found.version_id,
                               ciphertext_sha256=str(document["ciphertext_sha256"]),
                               size=int(document["ciphertext_size"]), recipients=list(document.get("recipients", [])),
                               state=state, verified_at=now)
            manifest = Replica(item_id=item_id, role="manifest", backend=backend_name,
                               object_name=found.manifest_name, ciphertext_sha256=found.manifest_sha256,
                               size=found.manifest_size, recipients=list(document.get("recipients", [])),
                               state=REPLACED if state == REPLACED else VERIFIED, verified_at=now)
            session.add(original)
            session.add(manifest)
            rows += [original, manifest]
            append_event(session, FIXITY_CHECK, actor=rebuilt.actor, item_id=item_id,
                         objects=[f"{backend_name}:{original.object_name}"],
                         outcome="success" if found.state == VERIFIED else "failure",
                         details={"backend": backend_name, "role": "original", "result":
                                  "ok" if found.state == VERIFIED else found.state, "algorithm": "SHA-256",
                                  "against": "manifest"})
        item.status = status_for(rebuilt, [r for r in rows if r.state != REPLACED])
        session.add(item)
        append_event(session, RECOVERY, actor=rebuilt.actor, item_id=item_id,
                     objects=[f"{backend_name}:{f.manifest_name}" for f in founds],
                     outcome="success" if any_good else "warning",
                     details={"action": "item recreated from manifest", "status": item.status})
    report.items += 1
    report.replicas += len(founds)
