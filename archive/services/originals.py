"""Reading an original back: one primitive that streams verified plaintext, for every reader.

`get` (to a file), export and download (over HTTP) all read through
`open_original`, so every one of them checks the decrypted bytes against the
custody log's commitment to the item (`commitment(item id, salt, SHA-256)`
must be the one the log holds, its event checked against the signed tree),
not against the catalog, which whoever holds the database could rewrite; it
records the access as a custody event, and none can hand out a copy that does
not match. Verification needs every byte, so the
stream holds back its final chunk until the digest is checked: a consumer
never receives the whole of a bad copy, and a mismatch is an `IntegrityError`
raised in place of that last chunk.

Copies are offered in turn (`OriginalCopy`); a reader that can restart (a
file it owns) moves to the next copy on any failure, a reader that cannot (an
HTTP response already under way) stops at the first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from archive.catalog.items import Item, Replica
from archive.db import read_only
from archive.services.errors import IntegrityError, ServiceError

if TYPE_CHECKING:
    from archive.age import Identity
    from archive.context import Archive
    from storage.base import Backend


def identities_at(archive: Archive, identity_path: Path | None) -> list[Identity]:
    """The age identities that open originals: the access identity when unlocked here, and the file given
    (`--identity`), else the custodian key if it is in the home; `Locked` when there is none of them.

    Why both: reads are meant to use the access identity (the custodian's key
    belongs offline), but an item ingested before the access identity existed
    opens only with the custodian's until `evidence keys add-access`.
    """
    from archive.age import AgeError, Identity
    from archive.services.errors import Locked

    why: Exception | str = "not unlocked"
    try:
        identities = list(archive.runtime.keys.access_identities())
    except Locked as locked:
        identities, why = [], locked
    path = identity_path or archive.settings.custodian_identity_path
    if identity_path is None and not path.is_file():
        if identities:
            return identities
        raise Locked(f"reading originals needs the access identity: {why} (or pass --identity with a custodian key)")
    if not path.is_file():
        raise ServiceError(f"no identity at {path}: reading originals needs the access or a custodian identity")
    try:
        return identities + Identity.read(path)
    except (AgeError, OSError, UnicodeDecodeError) as exc:
        raise ServiceError(f"{path} holds no usable age identity ({type(exc).__name__})") from exc


@dataclass
class OriginalCopy:
    """One stored copy of an original, ready to be decrypted and verified as it streams."""

    archive: Archive
    item: Item
    replica: Replica
    backend: Backend
    identities: list[Identity]
    purpose: str
    commitment: str = ""  # the log's, for this item
    salt: str = ""
    logged_sha256: str | None = None  # the log's ciphertext hash of this copy
    size: int = 0
    sha256: str = ""  # the SHA-256 computed as it streamed, once it matched the log's commitment

    def chunks(self) -> Iterator[bytes]:
        """Plaintext chunks; the last one only after the SHA-256 matched (else `IntegrityError`)."""
        from archive.age import decrypt_stream

        digest = hashlib.sha256()
        held: bytes | None = None
        self.size = 0
        with self.backend.open_reader(self.replica.object_name, self.replica.version_id) as stream:
            for chunk in decrypt_stream(stream, self.identities):
                if held is not None:
                    yield held
                digest.update(chunk)
                self.size += len(chunk)
                held = chunk
        from archive.custody.commit import commitment

        if commitment(self.item.id, self.salt, digest.hexdigest()) != self.commitment:
            raise IntegrityError(
                f"{self.replica.backend}: decrypted bytes do not match the custody log's commitment to item "
                f"{self.item.id}"
            )
        self.sha256 = digest.hexdigest()
        self._record_access()
        if held is not None:
            yield held

    def record_bad(self, problem: Exception) -> None:
        """A read is a check too: a copy that is gone or decrypts to other bytes is recorded so, and repaired.

        Only what the copy itself shows counts (absent, failed authentication or
        the wrong SHA-256); a site that cannot be reached says nothing about it.
        """
        from archive.age import AgeError, NoMatchingIdentity
        from archive.catalog.items import ReplicaState
        from archive.catalog.jobs import REPAIR, enqueue
        from archive.custody.log import FIXITY_CHECK, append_event
        from archive.db import transaction
        from archive.services.repair import refresh_status
        from storage.base import ObjectMissing

        if isinstance(problem, NoMatchingIdentity):
            return  # not for this reader's keys (an item from before the access identity): the bytes may be fine
        if isinstance(problem, ObjectMissing):
            state = ReplicaState.MISSING
        elif isinstance(problem, (AgeError, IntegrityError)):
            state = ReplicaState.CORRUPT
        else:
            return
        with transaction(self.archive.engine) as session:
            row = session.get(Replica, self.replica.id)
            item = session.get(Item, self.item.id)
            if row is None or item is None or row.state != ReplicaState.VERIFIED:
                return
            row.state = state
            session.add(row)
            append_event(session, FIXITY_CHECK, actor=self.archive.actor, item_id=item.id,
                         objects=[f"{row.backend}:{row.object_name}"], outcome="failure",
                         details={"backend": row.backend, "role": row.role, "result": str(state),
                                  "detail": "found when reading the original", "algorithm": "SHA-256",
                                  **({"ciphertext_sha256": self.logged_sha256} if self.logged_sha256 else {})})
            refresh_status(session, self.archive, item)
            enqueue(session, REPAIR, item_id=item.id)

    def _record_access(self, outcome: str = "success", **details: object) -> None:
        from archive.custody.log import ACCESS, append_event
        from archive.db import transaction

        with transaction(self.archive.engine) as session:
            append_event(
                session,
                ACCESS,
                actor=self.archive.actor,
                item_id=self.item.id,
                objects=[f"{self.replica.backend}:{self.replica.object_name}"],
                outcome=outcome,
                details={"action": self.purpose, "verified": "sha256", "backend": self.replica.backend,
                         "role": self.replica.role,
                         **({"ciphertext_sha256": self.logged_sha256} if self.logged_sha256 else {}), **details},
            )

    def record_unfinished(self) -> None:
        """A reader that stopped before the end (a download the client broke off) had plaintext all the same:
        an access event too, `warning`, saying the bytes were not all read (so not verified)."""
        self._record_access("warning", verified="no: the reader stopped before the end")


@dataclass
class Original:
    """An item's original as stored: each copy to try, and what went wrong with those tried."""

    archive: Archive
    item: Item
    copies: list[OriginalCopy]
    failures: list[str] = field(default_factory=list)

    def refuse(self) -> IntegrityError:
        """Record that no copy could be read and verified, and the error to raise."""
        from archive.custody.log import ACCESS, append_event
        from archive.db import transaction

        with transaction(self.archive.engine) as session:
            append_event(session, ACCESS, actor=self.archive.actor, item_id=self.item.id, outcome="failure",
                         details={"action": "decrypt original", "failures": len(self.failures)})
        return IntegrityError(f"item {self.item.id}: no copy could be read and verified: " + "; ".join(self.failures))


def open_original(
    archive: Archive, ref: str, identity_path: Path | None = None, *, purpose: str = "decrypt original"
) -> Original:
    """The copies of an item's original (an id or unique prefix), verified ones first.

    Reading needs the custodian's identity (or another recipient's); nothing is
    decrypted until a copy's `chunks()` is consumed.
    """
    from archive.catalog.secrets import item_secret
    from archive.custody.expected import read_item_index
    from archive.services.items import resolve_item

    identities = identities_at(archive, identity_path)
    _ = archive.actor  # resolved before any transaction: a first use writes its users row
    with Session(read_only(archive.engine)) as session:
        item = resolve_item(session, ref)
        salt = item_secret(archive, item).salt
        replicas = session.exec(
            select(Replica).where(Replica.item_id == item.id, Replica.role == "original").order_by(col(Replica.id))
        ).all()
    index = read_item_index(archive, item.id)  # LogNotGenuine: an altered event
    logged = index.commitment(item.id)
    if logged is None or salt is None:
        raise IntegrityError(f"item {item.id}: the custody log holds no commitment to it (or the catalog no salt); "
                             "its bytes cannot be verified")
    replicas = sorted(replicas, key=lambda r: r.state != "verified")  # a known-bad copy is the last resort
    original = Original(archive, item, [])
    for replica in replicas:
        backend = archive.backends.get(replica.backend)
        if backend is None:
            original.failures.append(f"{replica.backend}: no such storage site")
            continue
        copy = index.copy(f"{replica.backend}:{replica.object_name}")
        original.copies.append(OriginalCopy(archive, item, replica, backend, identities, purpose, commitment=logged,
                                            salt=salt, logged_sha256=copy.ciphertext_sha256 if copy else None))
    return original
