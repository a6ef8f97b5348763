"""Every change of a record: its whole new state sealed in the catalog, a salted commitment in the log.

The commitment is SHA-256 of the ASCII line
`evidence-record/1 <record-id> <salt-hex> <state-sha256-hex>\n`, where the
state's SHA-256 is over its RFC 8785 bytes (`archive.custody.entry.canonical`)
and the salt is 32 random bytes, fresh for every change. The custody event
names the record by id and carries the commitment, never a name, a place or
a story; so the log proves to an outsider who is later shown a state (and its
salt) that the archive held exactly that state then, and says nothing to
anyone else.

A bulk import is one event per file: the Merkle root (RFC 9162) of its
records' commitments, leaf i being SHA-256(0x00 || commitment i); each
`record_changes` row keeps its leaf index, so one record can be proven
without showing the others.

The history of a record is the sequence of its states in `record_changes`,
sealed as its fields are (under the catalog key, bound to the commitment).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert
from sqlmodel import col, select

from archive.catalog.sealing import SealedTable, register
from archive.custody.commit import new_salt
from archive.custody.entry import canonical, leaf_hash
from archive.custody.log import CREATION, append_event, utc_now
from archive.records.tables import RecordChange

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlmodel import Session

    from archive.keys.catalog import CatalogKeys

FORMAT = "evidence-record/1"
TREE_FORMAT = "RFC 9162 Merkle tree; leaf i = SHA-256(0x00 || commitment i)"
METADATA_MODIFICATION = "metadata modification"  # PREMIS event type
TABLE = "record_changes"
register(SealedTable(TABLE, "commitment"))
_INSERT: Table = RecordChange.__table__  # type: ignore[attr-defined]


def new_id(prefix: str) -> str:
    """A random record id (`inc-…`, `vic-…`): it says nothing about the record."""
    return f"{prefix}-{secrets.token_hex(8)}"


def state_digest(state: dict[str, Any]) -> str:
    """SHA-256 (hex) of a state's RFC 8785 bytes: what a commitment binds."""
    return hashlib.sha256(canonical(state)).hexdigest()


def commitment_line(record_id: str, salt_hex: str, digest_hex: str) -> str:
    return f"{FORMAT} {record_id} {salt_hex} {digest_hex}\n"


def record_commitment(record_id: str, salt_hex: str, state: dict[str, Any]) -> str:
    """The commitment to one state of one record under a salt."""
    line = commitment_line(record_id, salt_hex, state_digest(state))
    return hashlib.sha256(line.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Change:
    """One change to record: the record, what changed, its whole new state and why.

    `item_id` names the item the change concerns (a link to an item), so the
    item's custody timeline shows it.
    """

    record_id: str
    kind: str  # incident | attribution | victim | consent | source | interview | link
    change: str  # create | edit | attribute | link | unlink | merge | consent | withdraw | interview …
    state: dict[str, Any]
    reason: str | None = None
    item_id: str | None = None


def _event_details(change: Change, commitment: str) -> dict[str, Any]:
    return {"record": change.record_id, "record_kind": change.kind, "change": change.change,
            "commitment": commitment, "commitment_format": FORMAT}


def _row(keys: CatalogKeys, change: Change, actor: str, at: str, salt: str, commitment: str,
         event_seq: int | None, batch_index: int | None) -> dict[str, Any]:
    version, sealed = keys.seal(TABLE, commitment, {"state": change.state, "salt": salt, "reason": change.reason})
    return {"record_id": change.record_id, "record_kind": change.kind, "change": change.change, "at": at,
            "by": actor, "commitment": commitment, "event_seq": event_seq, "batch_index": batch_index,
            "sealed": sealed, "key_version": version}


def record(session: Session, keys: CatalogKeys, actor: str, change: Change, *, at: str | None = None) -> str:
    """Keep one change (its sealed state, and one custody event with its commitment) in the caller's
    transaction; returns the commitment. `at`: the time the row was stamped with, so both say the same."""
    salt = new_salt()
    commitment = record_commitment(change.record_id, salt, change.state)
    event_type = CREATION if change.change == "create" else METADATA_MODIFICATION
    event = append_event(session, event_type, actor=actor, item_id=change.item_id,
                         details=_event_details(change, commitment), occurred_at=at)
    session.execute(insert(_INSERT), [_row(keys, change, actor, event.occurred_at, salt, commitment, event.seq, None)])
    return commitment


def batch_root(commitments: Sequence[str]) -> str:
    """The Merkle root (hex) over commitments, in order (the root of an empty batch is SHA-256 of nothing)."""
    from archive.custody.merkle import MemoryTree

    leaves = b"".join(leaf_hash(bytes.fromhex(c)) for c in commitments)
    return MemoryTree(leaves).root().hex()


def record_batch(session: Session, keys: CatalogKeys, actor: str, changes: Sequence[Change], *,
                 what: str, at: str | None = None) -> tuple[int, str] | None:
    """Keep many changes (an imported file) under one custody event carrying their Merkle root.

    `what` says what the file held (`incidents`, `victims`), never its name.
    Returns (event seq, root), or None when there was nothing to change (a
    re-import of the same file writes nothing at all). `at`: the time the rows
    were stamped with, so the rows, the changes and the event say the same.
    """
    if not changes:
        return None
    salts = [new_salt() for _ in changes]
    commitments = [record_commitment(c.record_id, s, c.state) for c, s in zip(changes, salts, strict=True)]
    root = batch_root(commitments)
    details = {"change": "import", "records_kind": what, "records": len(changes), "merkle_root": root,
               "commitment_format": FORMAT, "tree_format": TREE_FORMAT}
    event = append_event(session, METADATA_MODIFICATION, actor=actor, details=details, occurred_at=at)
    rows = [_row(keys, c, actor, event.occurred_at, s, m, event.seq, i)
            for i, (c, s, m) in enumerate(zip(changes, salts, commitments, strict=True))]
    for start in range(0, len(rows), 5000):
        session.execute(insert(_INSERT), rows[start : start + 5000])
    return event.seq, root


class BatchWriter:
    """`record_batch` for a file read row by row: changes written as they come, one event at the end.

    The event's sequence number is reserved first (`_next_seq` holds
    `log_head` for the rest of the transaction, and the next `append_event`
    in it takes that number), so every `record_changes` row can name it
    before the event exists; only each change's commitment (32 bytes, as its
    Merkle leaf) is kept until `finish`. Same rows, same event and same root
    as `record_batch` over the same changes.
    """

    def __init__(self, session: Session, keys: CatalogKeys, actor: str, *, what: str, at: str) -> None:
        from archive.custody.log import _next_seq

        self.session, self.keys, self.actor, self.what, self.at = session, keys, actor, what, at
        self.seq = _next_seq(session)
        self.leaves = bytearray()
        self.count = 0

    def add(self, changes: Sequence[Change]) -> None:
        rows = []
        for change in changes:
            salt = new_salt()
            commitment = record_commitment(change.record_id, salt, change.state)
            rows.append(_row(self.keys, change, self.actor, self.at, salt, commitment, self.seq, self.count))
            self.leaves += leaf_hash(bytes.fromhex(commitment))
            self.count += 1
        for start in range(0, len(rows), 5000):
            self.session.execute(insert(_INSERT), rows[start : start + 5000])

    def finish(self) -> tuple[int, str] | None:
        """Append the batch's event (None, and no event, when nothing changed); (event seq, root)."""
        from archive.custody.merkle import MemoryTree

        if not self.count:
            return None
        root = MemoryTree(bytes(self.leaves)).root().hex()
        self.leaves = bytearray()
        details = {"change": "import", "records_kind": self.what, "records": self.count, "merkle_root": root,
                   "commitment_format": FORMAT, "tree_format": TREE_FORMAT}
        event = append_event(self.session, METADATA_MODIFICATION, actor=self.actor, details=details,
                             occurred_at=self.at)
        if event.seq != self.seq:  # another append came between: the rows would name the wrong event
            raise RuntimeError(f"batch event took seq {event.seq}, its rows name {self.seq}")
        return event.seq, root


def opened(keys: CatalogKeys, row: RecordChange) -> dict[str, Any]:
    """A change row's sealed {"state", "salt", "reason"}."""
    from archive.catalog.sealing import open_row

    return open_row(keys, TABLE, row.commitment, row.key_version, row.sealed)


def holds(keys: CatalogKeys, row: RecordChange) -> bool:
    """Whether the row's sealed state and salt give the commitment it shows (and the log holds)."""
    fields = opened(keys, row)
    return record_commitment(row.record_id, fields["salt"], fields["state"]) == row.commitment


def history(session: Session, keys: CatalogKeys, record_id: str) -> list[dict[str, Any]]:
    """Every change of a record, oldest first, each with the state before and after it."""
    rows = session.exec(select(RecordChange).where(RecordChange.record_id == record_id)  # the log's order: each
                        .order_by(col(RecordChange.event_seq), col(RecordChange.batch_index),  # row's event_seq is
                                  col(RecordChange.id))).all()  # bound by its commitment, its id is not
    out: list[dict[str, Any]] = []
    before: dict[str, Any] | None = None
    for row in rows:
        fields = opened(keys, row)
        out.append({"at": row.at, "by": row.by, "change": row.change, "reason": fields.get("reason"),
                    "before": before, "after": fields["state"], "commitment": row.commitment,
                    "event_seq": row.event_seq, "batch_index": row.batch_index})
        before = fields["state"]
    return out


def now() -> str:
    return utc_now()
