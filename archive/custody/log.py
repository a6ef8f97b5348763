"""Appending custody events: one gapless sequence, whatever the number of writers.

The next sequence number comes from the single `log_head` row, read with a row
lock (`FOR UPDATE` on PostgreSQL; SQLite's write lock does the same), so two
transactions can never take the same number and a rolled-back transaction
leaves no gap. The event is written in the caller's transaction, together with
whatever it records.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from archive.catalog.checkpoints import Checkpoint, LogState
from archive.catalog.events import Event, LogHead
from archive.custody.checkpoint import Signer, checkpoint_body
from archive.custody.entry import canonical, encode, entry_fields, leaf_hash
from archive.custody.merkle import tree_root
from archive.custody.tiles import TileStore

# PREMIS event types (https://id.loc.gov/vocabulary/preservation/eventType) used here,
# and the project's own terms where PREMIS has none.
INGESTION = "ingestion"
MESSAGE_DIGEST = "message digest calculation"
ENCRYPTION = "encryption"
REPLICATION = "replication"
FIXITY_CHECK = "fixity check"
VALIDATION = "validation"
METADATA_EXTRACTION = "metadata extraction"
DELETION = "deletion"
TRANSFER = "transfer"
ACCESS = "access"
CREATION = "creation"
INFORMATION_PACKAGE_CREATION = "information package creation"


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def append_event(
    session: Session,
    event_type: str,
    *,
    actor: str,
    item_id: str | None = None,
    objects: list[str] | None = None,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
    occurred_at: str | None = None,
) -> Event:
    """Add one event to the log inside the caller's transaction."""
    head = session.exec(select(LogHead).where(LogHead.id == 1).with_for_update()).first()
    if head is None:
        head = LogHead(id=1, size=0)
        session.add(head)
    seq = head.size
    head.size = seq + 1
    event = Event(
        seq=seq,
        occurred_at=occurred_at or utc_now(),
        actor=actor,
        event_type=event_type,
        item_id=item_id,
        objects=list(objects or []),
        outcome=outcome,
        details=dict(details or {}),
        leaf_hash="",
    )
    event.leaf_hash = leaf_hash(canonical(event_entry(event))).hex()
    session.add(head)
    session.add(event)
    session.flush()
    return event


def event_entry(event: Event) -> dict[str, Any]:
    """The fields of a stored event, as they are encoded for the Merkle leaf."""
    return entry_fields(
        seq=event.seq,
        occurred_at=event.occurred_at,
        actor=event.actor,
        event_type=event.event_type,
        item_id=event.item_id,
        objects=list(event.objects),
        outcome=event.outcome,
        details=dict(event.details),
    )


class LogCorrupt(Exception):
    """The stored log disagrees with itself; no checkpoint may be signed over it."""

    def __init__(self, seq: int | None, message: str) -> None:
        super().__init__(message)
        self.seq = seq


def _new_leaves(session: Session, start: int, end: int) -> bytes:
    """Leaf hashes of events [start, end), re-encoded from their fields so nothing altered gets signed."""
    leaves = bytearray()
    columns = [col(c) for c in (Event.seq, Event.occurred_at, Event.actor, Event.event_type, Event.item_id,
                                Event.objects, Event.outcome, Event.details, Event.leaf_hash)]
    stmt = sa_select(*columns).where(col(Event.seq) >= start, col(Event.seq) < end).order_by(col(Event.seq))
    rows = session.execute(stmt)
    for expected, (seq, occurred_at, actor, event_type, item_id, objects, outcome, details, stored) in enumerate(
        rows, start
    ):
        if seq != expected:
            raise LogCorrupt(expected, f"event {expected} is missing")
        fields = entry_fields(seq=seq, occurred_at=occurred_at, actor=actor, event_type=event_type,
                              item_id=item_id, objects=objects, outcome=outcome, details=details)
        leaf = leaf_hash(encode(fields))
        if leaf.hex() != stored:
            raise LogCorrupt(seq, f"event {seq} no longer matches its leaf hash")
        leaves += leaf
    if len(leaves) != (end - start) * 32:
        raise LogCorrupt(start + len(leaves) // 32, f"the log head says {end} events but fewer are stored")
    return bytes(leaves)


def issue_checkpoint(session: Session, signer: Signer) -> tuple[Checkpoint, bool]:
    """Sign the current tree (origin = the signer's name); (checkpoint, whether it is new).

    Locks `log_state` so issuers queue; appends are not held up (they lock
    `log_head`). Before signing, the stored tiles must still reproduce the
    previous checkpoint's root, so the archive never signs a fork of itself.
    """
    state = session.exec(select(LogState).where(LogState.id == 1).with_for_update()).first()
    if state is None:
        state = LogState(id=1, tree_size=0)
    head = session.exec(select(LogHead).where(LogHead.id == 1)).first()
    size = head.size if head else 0
    latest = session.exec(select(Checkpoint).order_by(Checkpoint.tree_size.desc()).limit(1)).first()  # type: ignore[attr-defined]
    if latest is not None and latest.tree_size == size:
        return latest, False
    old = state.tree_size
    if size < old:
        raise LogCorrupt(size, f"the log head says {size} events, fewer than the {old} already checkpointed")
    tiles = TileStore(session)
    if latest is not None and (latest.tree_size != old or tree_root(tiles, old).hex() != latest.root_hash):
        raise LogCorrupt(None, f"the stored tree no longer reproduces checkpoint {latest.tree_size}; "
                               "run `evidence log verify`")
    tiles.extend(old, _new_leaves(session, old, size))
    root = tree_root(tiles, size)
    note = signer.sign_note(checkpoint_body(signer.name, size, root))
    checkpoint = Checkpoint(tree_size=size, root_hash=root.hex(), note=note,
                            key_id=signer.verifier.key_id.hex(), issued_at=utc_now())
    state.tree_size = size
    session.add(state)
    session.add(checkpoint)
    session.flush()
    return checkpoint, True
