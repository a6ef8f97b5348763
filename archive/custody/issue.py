"""Issuing checkpoints: fold the new events into the stored tree and sign its root.

Each new event is re-encoded and re-hashed before it goes into the tree, and
the stored tree must still reproduce the previous checkpoint, so the archive
never signs over an altered event or a fork of its own history.
"""

from __future__ import annotations

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from archive.catalog.checkpoints import Checkpoint, LogState
from archive.catalog.events import Event, LogHead
from archive.custody.checkpoint import Signer, checkpoint_body
from archive.custody.entry import encode, entry_fields, leaf_hash
from archive.custody.log import utc_now
from archive.custody.merkle import tree_root
from archive.custody.tiles import TileStore


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
    size = session.execute(sa_select(col(LogHead.size)).where(col(LogHead.id) == 1)).scalar_one_or_none() or 0
    latest = session.exec(select(Checkpoint).order_by(col(Checkpoint.tree_size).desc()).limit(1)).first()
    if latest is not None and latest.tree_size == size:
        return latest, False
    old = state.tree_size
    if size < old:
        raise LogCorrupt(size, f"the log head says {size} events, fewer than the {old} already checkpointed")
    if latest is None and old > 0:
        raise LogCorrupt(None, f"the stored tree holds {old} events but no checkpoint covers them; "
                               "run `evidence log verify`")
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
