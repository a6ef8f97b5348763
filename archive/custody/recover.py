"""Continuing the same custody log in a catalog rebuilt from one storage site.

Every site keeps the log as tiles (`archive.custody.mirror`) and the signing
key sealed to the archive's recipients. With the custodian identity, a
rebuild takes both back: the events up to the site's newest checkpoint become
the new catalog's events, with the same sequence numbers, the checkpoints the
same checkpoints, and the same key signs what comes next. A witness holding an
old checkpoint can then ask for a consistency proof to the new ones, exactly
as if nothing had happened; events after the site's last checkpoint were
never witnessed and are reported as lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel import Session

from archive.catalog.checkpoints import Checkpoint, LogState
from archive.catalog.events import Event, LogHead
from archive.custody.entry import encode, entry_fields, leaf_hash
from archive.custody.log import utc_now
from archive.custody.tiles import TileStore
from archive.custody.verify import VerificationError, open_note, parse_checkpoint

if TYPE_CHECKING:
    from archive.age import Identity, Recipient
    from archive.custody.checkpoint import Signer
    from archive.custody.mirror import MirroredLog
    from archive.custody.verify import Verifier
    from storage.base import Backend


class RecoveryError(VerificationError):
    """The site's log cannot be taken over as it is; the message says what does not fit."""


def seal_signing_key(signer: Signer, recipients: list[Recipient]) -> bytes:
    """The signing key, age-encrypted: a seized site cannot sign, a custodian can recover it."""
    from archive.age import encrypt_bytes

    return encrypt_bytes((signer.encode() + "\n").encode("ascii"), recipients)


def unseal_signing_key(backend: Backend, identities: list[Identity]) -> Signer | None:
    """The signing key a site keeps sealed, or None when the site has none (an older site)."""
    from archive.age import AgeError, decrypt_bytes
    from archive.custody.checkpoint import Signer
    from archive.custody.mirror import SEALED_SIGNING_KEY

    if backend.stat(SEALED_SIGNING_KEY) is None:
        return None
    with backend.open_reader(SEALED_SIGNING_KEY) as stream:
        sealed = bytes(stream.read())
    try:
        return Signer.decode(decrypt_bytes(sealed, identities).decode("ascii").strip())
    except (AgeError, ValueError, UnicodeDecodeError) as exc:
        raise RecoveryError(f"{SEALED_SIGNING_KEY} on {backend.name!r} cannot be opened: {exc}") from exc


@dataclass
class Recovered:
    """What was taken over from the site's log."""

    origin: str
    events: int
    checkpoints: int
    items: set[str]  # ids of items the log has an ingestion event for


def _event(seq: int, entry: bytes) -> Event:
    fields = json.loads(entry)
    if fields.get("seq") != seq:
        raise RecoveryError(f"entry {seq} of the site's log says it is entry {fields.get('seq')}")
    event = Event(seq=seq, occurred_at=fields["time"], actor=fields["actor"], event_type=fields["type"],
                  item_id=fields["item"], objects=list(fields["objects"]), outcome=fields["outcome"],
                  details=dict(fields["details"]), leaf_hash=leaf_hash(entry).hex())
    again = encode(entry_fields(seq=seq, occurred_at=event.occurred_at, actor=event.actor,
                                event_type=event.event_type, item_id=event.item_id, objects=event.objects,
                                outcome=event.outcome, details=event.details))
    if again != entry:
        raise RecoveryError(f"entry {seq} of the site's log is not in its canonical encoding")
    return event


def check_take_over(log: MirroredLog, signer: Signer, verifier: Verifier) -> None:
    """Everything `take_over` requires, checked before anything is made: raises `RecoveryError` saying what."""
    from archive.custody.entry import FORMAT

    if signer.verifier.encode() != verifier.encode():
        raise RecoveryError("the sealed signing key is not the key the site's checkpoints are signed with")
    for seq, entry in enumerate(log.entries):
        _event(seq, entry)
        if json.loads(entry).get("format") != FORMAT:
            raise RecoveryError(f"entry {seq} of the site's log has an unknown format")
    for tree_size, note in log.checkpoints.items():
        if parse_checkpoint(open_note(note, verifier)).origin != signer.name:
            raise RecoveryError(f"checkpoint {tree_size} is for another log than the sealed key signs")


def logged_items(entries: list[bytes]) -> set[str]:
    """Ids of the items a log's entries record as ingested (what a rebuilt manifest must match)."""
    items = set()
    for entry in entries:
        fields = json.loads(entry)
        if fields.get("type") == "ingestion" and fields.get("item") and fields.get("outcome") != "failure":
            items.add(str(fields["item"]))
    return items


def take_over(session: Session, log: MirroredLog, signer: Signer, verifier: Verifier) -> Recovered:
    """Make the site's checked log this (empty) catalog's log, in the caller's transaction.

    The signer must be the key the checkpoints are signed with; the log itself
    was checked by `read_mirrored_log` (signatures, roots, tiles).
    """
    from archive.custody.entry import FORMAT

    if signer.verifier.encode() != verifier.encode():
        raise RecoveryError("the sealed signing key is not the key the site's checkpoints are signed with")
    head = session.get(LogHead, 1)
    if head is not None and head.size:
        raise RecoveryError("the new catalog's log is not empty")
    leaves = bytearray()
    for seq, entry in enumerate(log.entries):
        event = _event(seq, entry)
        if json.loads(entry).get("format") != FORMAT:
            raise RecoveryError(f"entry {seq} of the site's log has an unknown format")
        session.add(event)
        leaves += bytes.fromhex(event.leaf_hash)
    session.flush()
    size = len(log.entries)
    head = head or LogHead(id=1, size=0)
    head.size = size
    session.add(head)
    TileStore(session).extend(0, bytes(leaves))
    state = session.get(LogState, 1) or LogState(id=1, tree_size=0)
    state.tree_size = size
    session.add(state)
    origin = ""
    for tree_size, note in sorted(log.checkpoints.items()):
        body = parse_checkpoint(open_note(note, verifier))
        origin = body.origin
        if origin != signer.name:
            raise RecoveryError(f"checkpoint {tree_size} is for {origin!r}, the sealed key signs for {signer.name!r}")
        # The note carries no time; when it was issued is not known here, when it was recovered is.
        session.add(Checkpoint(tree_size=tree_size, root_hash=body.root_hash.hex(), note=note,
                               key_id=verifier.key_id.hex(), issued_at=utc_now()))
    session.flush()
    return Recovered(origin or signer.name, size, len(log.checkpoints), logged_items(log.entries))
