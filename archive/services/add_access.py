"""`evidence keys add-access`: give the access identity to copies encrypted before it existed.

Why a rewrap and not a re-encryption: an age file's payload is sealed under a
random file key, and only the header says who may have that key. With the
custodian identity the header opens; a new header gives the same file key to
the recipients plus the access identity (`archive.age.rewrap_header`), and the
new object is that header followed by the old payload bytes, unchanged: no
plaintext is ever produced but for the check below, and gigabytes of video
cost one sequential copy.

For each verified original not yet readable by the access identity, per site:
1. write the rewrapped copy under a new random name (names are never reused),
   its ciphertext SHA-256 computed while writing and checked by the backend;
2. decrypt it with the access identity and hold its SHA-256 against the log's
   commitment to the item; the old copy's bytes, hashed as they are copied,
   must be the ones the log recorded (never the catalog's word: a substituted
   copy is not given a new lease);
3. re-seal the manifest and addenda beside it for the new object (they name it
   and its ciphertext hash), to the same recipients;
4. in one transaction, retire the old rows (`replaced`), add the new ones and
   append the custody events of the copy-event contract: a `replication`
   naming the old copy (`rewrapped_from`, `from_ciphertext_sha256`) for the
   original, a `replication` for each re-sealed document, a `deletion` for
   each old object;
5. delete the old objects.
Idempotent and resumable: a copy already readable is left alone, and a run cut
between 4 and 5 has its old objects deleted by the next run (the log says they
are gone). The new name is recorded in the catalog (setting `IN_FLIGHT`)
before step 1, so a run killed before step 4 has its unrecorded new objects
swept by the next: left on a site, they would look like forged manifests to a
later `rebuild-catalog`.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive.objects import ARRIVAL_FORMAT, MANIFEST_FORMAT, Role, arrival_name, is_beside, manifest_name
from archive.services.errors import IntegrityError, ServiceError

if TYPE_CHECKING:
    from archive.age import Identity
    from archive.catalog.items import Replica
    from archive.context import Archive
    from storage.base import Backend, StoredObject

REASON = "add access"
IN_FLIGHT = "add_access_in_flight"  # archive setting: [backend, name] of new objects not yet switched to
RETIRED = "add access: replaced by a rewrapped copy"
BLOCK = 1024 * 1024


@dataclass
class AccessAdded:
    access_recipient: str
    created: list[str] = field(default_factory=list)  # key files made first (an older home)
    recipient_added: bool = False  # the access recipient joined the recipients of new originals
    rewrapped: int = 0  # originals rewrapped
    resealed: int = 0  # manifests and addenda re-sealed beside them
    already: int = 0  # originals the access identity already opened
    deleted: int = 0  # old objects deleted
    skipped: int = 0  # copies left as they were (see problems)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Rewritten:
    old: Replica
    stored: StoredObject
    recipients: list[str]
    logged_sha256: str | None = None  # the old copy's hash as the log has it (checked against its bytes)


def add_access(archive: Archive, identity_path: Path | None) -> AccessAdded:
    """Rewrap every verified original (and re-seal its documents) the access identity cannot open yet."""
    from sqlmodel import Session, col, select

    from archive.age import AgeError, Identity
    from archive.catalog.items import Replica, ReplicaState
    from archive.db import read_only
    from archive.services.keys import create_preview_key, create_secret_keys
    from archive.services.recipients import add_recipient
    from storage.base import StorageError

    created = create_secret_keys(archive.settings.keys_dir)
    result = AccessAdded(created.access_recipient, created=created.created)
    if create_preview_key(archive.settings.keys_dir):  # an older home: previews need their own identity
        result.created.append("preview.key")
    if created.access_recipient not in archive.config.recipients:
        add_recipient(archive, created.access_recipient)
        result.recipient_added = True
    path = identity_path or archive.settings.custodian_identity_path
    try:
        custodian = Identity.read(path)
    except (AgeError, OSError, UnicodeDecodeError) as exc:
        raise ServiceError(f"{path}: no usable custodian identity ({type(exc).__name__}); pass --identity") from None
    access = archive.runtime.keys.access_identities()  # Locked: the check in step 2 needs it
    _finish_deletions(archive, result)
    _sweep_in_flight(archive, result)
    with Session(read_only(archive.engine)) as session:
        originals = session.exec(
            select(Replica).where(Replica.role == Role.ORIGINAL, Replica.state == ReplicaState.VERIFIED)
            .order_by(col(Replica.id))
        ).all()
    for replica in originals:
        if created.access_recipient in replica.recipients:
            result.already += 1
            continue
        backend = archive.backends.get(replica.backend)
        reason = backend.check_marker() if backend is not None else "no such storage site"
        if backend is None or reason is not None:
            result.skipped += 1
            result.problems.append(f"{replica.backend}:{replica.object_name}: {reason}")
            continue
        try:
            _rewrap_copy(archive, backend, replica, custodian, access, result)
        except (AgeError, StorageError, IntegrityError, ValueError, OSError) as exc:
            result.skipped += 1
            result.problems.append(f"{replica.backend}:{replica.object_name}: {exc}")
    return result


def _rewrap_copy(
    archive: Archive, backend: Backend, replica: Replica, custodian: list[Identity], access: list[Identity],
    result: AccessAdded,
) -> None:
    """Steps 1-5 of the module docstring for one original copy and the documents beside it."""
    from sqlmodel import Session, col, select

    from archive.age import header_opens, read_header, rewrap_header
    from archive.catalog.items import Item, Replica, ReplicaState
    from archive.catalog.secrets import item_secret
    from archive.custody.expected import read_item_index
    from archive.db import read_only
    from archive.objects import new_object_name

    with Session(read_only(archive.engine)) as session:
        item = session.get(Item, replica.item_id)
        if item is None:
            return
        secret = item_secret(archive, item)
        beside = [r for r in session.exec(
            select(Replica).where(Replica.item_id == item.id, Replica.backend == replica.backend,
                                  Replica.state == ReplicaState.VERIFIED,
                                  col(Replica.role).in_((Role.MANIFEST, Role.ARRIVAL))).order_by(col(Replica.id))
        ).all() if is_beside(replica.object_name, r.object_name)]
    index = read_item_index(archive, item.id)
    logged = index.copy(f"{replica.backend}:{replica.object_name}")
    committed = index.commitment(item.id)
    if logged is None or committed is None or secret.salt is None:
        raise IntegrityError(f"item {item.id}: the log records no hash for this copy or no commitment to the item "
                             "(run `evidence fixity --all` first); left as it was")
    recipients = [*replica.recipients, *[r for r in archive.config.recipients if r not in replica.recipients]]
    written: list[StoredObject] = []
    try:
        with backend.open_reader(replica.object_name, replica.version_id) as stream:
            header = read_header(stream)
            if header_opens(header, access):
                result.already += 1  # readable already (the row did not say so): nothing to rewrite
                return
            new_header = rewrap_header(header, custodian, _parsed(recipients))
            old_digest = hashlib.sha256(header)
            new_name = new_object_name()
            _journal(archive, add=(backend.name, new_name))
            stored = _write(backend, new_name, new_header, stream, old_digest)
        written.append(stored)
        if old_digest.hexdigest() != logged.ciphertext_sha256:
            raise IntegrityError(f"item {item.id}: this copy is not the one the log recorded; left as it was")
        _check_plaintext(backend, stored, access, commitment_of=(item.id, secret.salt, committed))
        sides = [_reseal(backend, side, stored, recipients, custodian + access) for side in beside]
        for side in sides:
            side_logged = index.copy(f"{side.old.backend}:{side.old.object_name}")
            if side_logged is None or side_logged.ciphertext_sha256 != side.logged_sha256:
                raise IntegrityError(f"item {item.id}: {side.old.object_name} is not the document the log recorded; "
                                     "left as it was")
        written += [s.stored for s in sides]
        switched = _switch(archive, _Rewritten(replica, stored, recipients, logged.ciphertext_sha256), sides)
    except BaseException:
        for obj in written:
            _delete_quietly(backend, obj.name, obj.version_id)
        raise
    if written:
        _journal(archive, remove=(backend.name, written[0].name))  # switched to, or deleted just below
    if not switched:
        for obj in written:
            _delete_quietly(backend, obj.name, obj.version_id)
        result.skipped += 1
        result.problems.append(f"{replica.backend}:{replica.object_name}: changed by another process meanwhile")
        return
    result.rewrapped += 1
    result.resealed += len(sides)
    for old in [replica, *[s.old for s in sides]]:
        result.deleted += _delete_quietly(backend, old.object_name, old.version_id)


def _parsed(recipients: list[str]) -> list[Any]:
    from archive.age import Recipient

    return [Recipient.parse(r) for r in recipients]


def _write(backend: Backend, name: str, header: bytes, payload: Any, old_digest: Any) -> StoredObject:
    """`header` then the rest of `payload`, as a new object; its SHA-256 (and the old copy's, in
    `old_digest`, already fed the old header) computed as the bytes go."""
    digest = hashlib.sha256(header)
    writer = backend.open_writer(name)
    writer.digest_covers_sent_bytes()
    try:
        writer.write(header)
        while block := payload.read(BLOCK):
            digest.update(block)
            old_digest.update(block)
            writer.write(block)
        return writer.commit(digest.hexdigest())
    except BaseException:
        writer.abort()
        raise


def _check_plaintext(backend: Backend, stored: StoredObject, access: list[Identity], *,
                     commitment_of: tuple[str, str, str]) -> None:
    """The new copy opens with the access identity and decrypts to the bytes the log committed to."""
    from archive.age import decrypt_stream
    from archive.custody.commit import commitment

    item_id, salt, committed = commitment_of
    digest = hashlib.sha256()
    with backend.open_reader(stored.name, stored.version_id) as stream:
        for chunk in decrypt_stream(stream, access):
            digest.update(chunk)
    if commitment(item_id, salt, digest.hexdigest()) != committed:
        raise IntegrityError(f"item {item_id}: the rewrapped copy does not decrypt to the bytes the log committed to: "
                             "kept the old")


def _reseal(backend: Backend, side: Replica, original: StoredObject, recipients: list[str],
            identities: list[Identity]) -> _Rewritten:
    """A manifest or addendum sealed anew beside the rewrapped original (it names that object)."""
    from archive.objects import seal, unseal

    with backend.open_reader(side.object_name, side.version_id) as stream:
        data = stream.read()
    old_sha256 = hashlib.sha256(data).hexdigest()  # held against the log by the caller
    manifest = side.role == Role.MANIFEST
    document = unseal(data, identities, MANIFEST_FORMAT if manifest else ARRIVAL_FORMAT)
    document["object"] = original.name
    if manifest:
        document.update(ciphertext_sha256=original.sha256, ciphertext_size=original.size, recipients=recipients)
    name = manifest_name(original.name) if manifest else arrival_name(original.name)
    return _Rewritten(side, backend.put_bytes(name, seal(document, recipients)), recipients, old_sha256)


def _switch(archive: Archive, original: _Rewritten, sides: list[_Rewritten]) -> bool:
    """Retire the old rows, add the new ones and their custody events, in one transaction; False if the
    old original's row changed meanwhile (nothing done)."""
    from archive.catalog.items import Replica, ReplicaState
    from archive.custody.log import DELETION, REPLICATION, append_event, utc_now
    from archive.db import transaction

    with transaction(archive.engine) as session:
        row = session.get(Replica, original.old.id)
        if row is None or row.state != ReplicaState.VERIFIED or row.object_name != original.old.object_name:
            return False
        for change in [original, *sides]:
            old = session.get(Replica, change.old.id)
            assert old is not None
            old_sha256 = change.logged_sha256 or old.ciphertext_sha256
            old.state = ReplicaState.REPLACED
            session.add(old)
            stored = change.stored
            session.add(Replica(item_id=old.item_id, role=old.role, backend=old.backend, object_name=stored.name,
                                version_id=stored.version_id, ciphertext_sha256=stored.sha256,
                                recipients=change.recipients if old.role == Role.ORIGINAL else [],
                                checksum_detail=stored.checksum_detail, state=ReplicaState.VERIFIED,
                                verified_at=utc_now()))
            details: dict[str, Any] = {"backend": old.backend, "role": old.role, "ciphertext_sha256": stored.sha256,
                                       "verified": "sha256", "reason": REASON}
            if old.role == Role.ORIGINAL:
                details.update(rewrapped_from=f"{old.backend}:{old.object_name}",
                               from_ciphertext_sha256=old_sha256)
            append_event(session, REPLICATION, actor=archive.actor, item_id=old.item_id,
                         objects=[f"{old.backend}:{stored.name}"], details=details)
            append_event(session, DELETION, actor=archive.actor, item_id=old.item_id,
                         objects=[f"{old.backend}:{old.object_name}"],
                         details={"backend": old.backend, "role": old.role,
                                  "ciphertext_sha256": old_sha256, "reason": RETIRED})
    return True


def _delete_quietly(backend: Backend, name: str, version_id: str | None) -> int:
    """Delete an object; 1 if it was there. A failure leaves it for the next run (the log says it is gone)."""
    from storage.base import StorageError

    try:
        if backend.stat(name, version_id) is None:
            return 0
        backend.delete(name, version_id)
    except StorageError:
        return 0
    return 1


def _journal(archive: Archive, *, add: tuple[str, str] | None = None, remove: tuple[str, str] | None = None) -> None:
    """Record (or forget) a new object about to be written, in a short transaction of its own."""
    from archive.catalog.settings import ArchiveSetting, put_setting
    from archive.db import transaction

    with transaction(archive.engine) as session:
        row = session.get(ArchiveSetting, IN_FLIGHT)
        names = [list(entry) for entry in (row.value if row is not None else [])]
        if add is not None:
            names.append(list(add))
        if remove is not None:
            names = [entry for entry in names if entry != list(remove)]
        put_setting(session, IN_FLIGHT, names)


def _sweep_in_flight(archive: Archive, result: AccessAdded) -> None:
    """Delete the new objects (and the documents beside them) of a run killed before its switch."""
    from sqlmodel import Session, select

    from archive.catalog.items import Replica
    from archive.catalog.settings import ArchiveSetting
    from archive.db import read_only
    from storage.base import ObjectInfo

    with Session(read_only(archive.engine)) as session:
        row = session.get(ArchiveSetting, IN_FLIGHT)
        entries = [tuple(entry) for entry in (row.value if row is not None else [])]
        recorded = {(r.backend, r.object_name) for r in session.exec(
            select(Replica).where(Replica.object_name.in_([name for _, name in entries]))  # type: ignore[attr-defined]
        ).all()} if entries else set()
    for backend_name, name in entries:
        backend = archive.backends.get(backend_name)
        if backend is None or backend.check_marker() is not None:
            continue  # kept in the journal: swept when the site answers for itself again
        if (backend_name, name) not in recorded:  # the catalog never switched to it: not evidence
            found = [info for info in backend.list(name + ".") if is_beside(name, info.name)]
            found.append(backend.stat(name) or ObjectInfo(name, 0))
            for info in found:
                result.deleted += _delete_quietly(backend, info.name, info.version_id)
        _journal(archive, remove=(backend_name, name))


def _finish_deletions(archive: Archive, result: AccessAdded) -> None:
    """Delete the old objects a run cut short retired in the catalog and the log but left on their site."""
    from sqlmodel import Session, col, select

    from archive.catalog.events import Event
    from archive.catalog.items import Replica, ReplicaState
    from archive.custody.log import DELETION
    from archive.db import read_only

    with Session(read_only(archive.engine)) as session:
        retired = session.exec(select(Replica).where(Replica.state == ReplicaState.REPLACED)).all()
        if not retired:
            return
        items = sorted({r.item_id for r in retired})
        gone = {
            obj
            for objects, details in session.exec(
                select(Event.objects, Event.details).where(Event.event_type == DELETION, col(Event.item_id).in_(items))
            ).all()
            if details.get("reason") == RETIRED
            for obj in objects
        }
    for row in retired:
        backend = archive.backends.get(row.backend)
        if backend is not None and f"{row.backend}:{row.object_name}" in gone and backend.check_marker() is None:
            result.deleted += _delete_quietly(backend, row.object_name, row.version_id)
