"""`log verify`: recompute the whole tree from the stored events and hold it against every checkpoint.

Read-only, and independent of the code that writes: each event is re-encoded
(entry.py) and re-hashed, the tree is rebuilt in memory, and every stored
checkpoint must carry a valid signature and the root of exactly that many
re-hashed events; consecutive checkpoints must be consistent (RFC 9162 proof
checked by verify.py). The stored tiles are compared too, because proofs are
served from them and because they keep the leaf hashes as they were when
checkpointed, which names the first altered event even when someone has
rewritten the events' own leaf hashes.

`first_bad_seq` is the first sequence number whose custody can no longer be
vouched for: the altered, missing or displaced event when it can be named,
otherwise the first event the failing checkpoint was the first to cover.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, cast, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from archive.catalog.checkpoints import Checkpoint, LogState, LogTile
from archive.catalog.events import Event, LogHead
from archive.custody.entry import encode, entry_fields
from archive.custody.merkle import HASH_SIZE, MemoryTree, consistency_proof
from archive.custody.tiles import TILE_HEIGHT, TILE_WIDTH
from archive.custody.verify import (
    CheckpointBody,
    VerificationError,
    Verifier,
    open_note,
    parse_checkpoint,
    verify_consistency,
)
from archive.db import transaction

if TYPE_CHECKING:
    from archive.custody.crosscheck import CrossCheck

CHUNK = 10_000  # rows per read transaction: short, since SQLite reads here take the write lock
MAX_PROBLEMS = 50


class LogError(VerificationError):
    """A problem in the stored log; `seq` is the first sequence number it puts in doubt.

    With `end`, the problem is known only to lie somewhere in [seq, end) (a
    checkpoint that no longer matches, say); without, it is exactly at `seq`.
    """

    kind = "log"

    def __init__(self, seq: int | None, message: str, end: int | None = None) -> None:
        super().__init__(message if seq is None else f"seq {seq}: {message}")
        self.seq = seq
        self.end = end


class EntryAltered(LogError):
    kind = "entry-altered"


class EntryMissing(LogError):
    kind = "entry-missing"


class LogTruncated(LogError):
    kind = "truncated"


class CheckpointInvalid(LogError):
    kind = "checkpoint-invalid"


class CheckpointMissing(LogError):
    kind = "checkpoint-missing"


class RootMismatch(LogError):
    kind = "root-mismatch"


class TileMismatch(LogError):
    kind = "tile-mismatch"


class RuleBroken(LogError):
    """An event the tree holds but the copy event contract forbids (a second commitment, say)."""

    kind = "rule-broken"


@dataclass
class AuditReport:
    total_events: int = 0
    checkpoints: int = 0
    checked_size: int = 0
    problems: list[LogError] = field(default_factory=list)
    more_problems: int = 0  # exact problems found beyond the first MAX_PROBLEMS, not listed
    catalog: CrossCheck | None = None  # the catalog held against the log (archive.custody.crosscheck)

    @property
    def ok(self) -> bool:
        return not self.problems and not (self.catalog and (self.catalog.mismatches or self.catalog.more))

    @property
    def uncovered(self) -> int:
        return max(0, self.total_events - self.checked_size)

    @property
    def first_bad_seq(self) -> int | None:
        """The earliest exact problem, or the start of a range in doubt that no exact problem explains."""
        exact = [p.seq for p in self.problems if p.seq is not None and p.end is None]
        ranges = [(p.seq, p.end) for p in self.problems if p.seq is not None and p.end is not None]
        unexplained = [start for start, end in ranges if not any(start <= s < end for s in exact)]
        candidates = exact + unexplained
        return min(candidates) if candidates else (0 if self.problems else None)

    def add(self, problem: LogError) -> None:
        """Keep every checkpoint-level problem (one per checkpoint at most) and the first exact ones."""
        if problem.end is not None or sum(p.end is None for p in self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.more_problems += 1

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checked_size": self.checked_size,
            "uncovered": self.uncovered,
            "first_bad_seq": self.first_bad_seq,
            "total_events": self.total_events,
            "checkpoints": self.checkpoints,
            "problems": [{"kind": p.kind, "seq": p.seq, "message": str(p)} for p in self.problems],
            "more_problems": self.more_problems,
            "catalog": None if self.catalog is None else {
                "ok": not (self.catalog.mismatches or self.catalog.more),
                "items": self.catalog.items,
                "replicas": self.catalog.replicas,
                "records": self.catalog.records,
                "commitments_checked": self.catalog.commitments_checked,
                "commitments_unchecked": self.catalog.commitments_unchecked,
                "mismatches": [{"item": m.item, "message": m.message, "what": m.what} for m in self.catalog.mismatches],
                "more_mismatches": self.catalog.more,
                "unpublished_record_changes": self.catalog.unpublished,
            },
        }


def _event_rows(engine: Engine) -> Iterator[tuple[Any, ...]]:
    """All events in order, read in short transactions so appends are never held up for long.

    The two JSON columns come back as their stored text and are parsed in one
    call per row: decoding dominates the cost of verifying a large log.
    """
    columns = [col(c) for c in (Event.seq, Event.occurred_at, Event.actor, Event.event_type, Event.item_id,
                                Event.outcome, Event.leaf_hash)]
    json_text = [cast(col(Event.objects), Text), cast(col(Event.details), Text)]
    after = -1
    while True:
        stmt = select(*columns, *json_text).where(col(Event.seq) > after).order_by(col(Event.seq)).limit(CHUNK)
        with engine.begin() as connection:
            rows: list[Any] = list(connection.execute(stmt))
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


def _rehash(engine: Engine, report: AuditReport) -> bytes:
    """Every event's leaf hash as re-encoded now, checked against the stored one and the sequence."""
    sha = hashlib.sha256
    leaves = bytearray()
    expected = 0
    for seq, occurred_at, actor, event_type, item_id, outcome, stored, objects, details in _event_rows(engine):
        if seq != expected:
            report.add(EntryMissing(expected, f"events {expected}..{seq - 1} are missing"))
        try:
            objects, details = json.loads(f"[{objects},{details}]")
            fields = entry_fields(seq=seq, occurred_at=occurred_at, actor=actor, event_type=event_type,
                                  item_id=item_id, objects=objects, outcome=outcome, details=details)
            leaf = sha(b"\x00" + encode(fields)).digest()
        except (TypeError, ValueError) as exc:
            report.add(EntryAltered(seq, f"the event cannot be decoded or encoded: {exc}"))
            leaf = bytes(HASH_SIZE)
        if leaf.hex() != stored:
            report.add(EntryAltered(seq, "the event's fields no longer match its leaf hash"))
        leaves += leaf
        expected = seq + 1
    report.total_events = len(leaves) // HASH_SIZE
    return bytes(leaves)


def _compare_tiles(engine: Engine, tree: MemoryTree, report: AuditReport) -> None:
    """The stored tiles must hold exactly the recomputed hashes (as far as both go)."""
    with transaction(engine) as session:
        tiles = session.execute(select(col(LogTile.level), col(LogTile.idx), col(LogTile.hashes))).all()
    for level, idx, blob in sorted(tiles):
        tree_level = level * TILE_HEIGHT
        row = tree.levels[tree_level] if tree_level < len(tree.levels) else b""
        start = idx * TILE_WIDTH * HASH_SIZE
        mine = row[start : start + len(blob)]
        stored = bytes(blob)[: len(mine)]
        if mine == stored:
            continue
        at = next(i for i in range(0, len(mine), HASH_SIZE) if mine[i : i + HASH_SIZE] != stored[i : i + HASH_SIZE])
        entry = idx * TILE_WIDTH + at // HASH_SIZE
        what = "leaf hash recorded at checkpoint time" if level == 0 else f"stored tree node (level {tree_level})"
        first_leaf = entry << tree_level
        end = None if level == 0 else first_leaf + (1 << tree_level)
        report.add(TileMismatch(first_leaf, f"the {what} differs from the recomputed one", end))


def audit_log(engine: Engine, verifier: Verifier, origin: str | None) -> AuditReport:
    """Verify the whole stored log against its checkpoints; collect every problem found."""
    report = AuditReport()
    # Read in this order, and before the events, so that appends and checkpoints made meanwhile
    # (even between statements, under READ COMMITTED) only ever add to what is checked.
    with transaction(engine) as session:
        state = session.get(LogState, 1)
        checkpoints = session.execute(select(Checkpoint).order_by(col(Checkpoint.tree_size))).scalars().all()
        head = session.get(LogHead, 1)
    tree = MemoryTree(_rehash(engine, report))
    if head is not None and head.size > tree.size:
        report.add(EntryMissing(tree.size, f"the log head counts {head.size} events but only {tree.size} are stored"))
    _compare_tiles(engine, tree, report)
    report.checkpoints = len(checkpoints)
    report.checked_size = checkpoints[-1].tree_size if checkpoints else 0
    if state is not None and state.tree_size > report.checked_size:
        message = f"checkpoints were removed: the stored tree was signed up to {state.tree_size} events"
        report.add(CheckpointMissing(report.checked_size, message, state.tree_size))
    good: CheckpointBody | None = None
    for row in checkpoints:
        start, size = (good.tree_size if good else 0), row.tree_size
        try:
            body = parse_checkpoint(open_note(row.note, verifier))
        except VerificationError as exc:
            report.add(CheckpointInvalid(start, f"checkpoint {size}: {exc}", size))
            continue
        if origin is not None and body.origin != origin:
            report.add(CheckpointInvalid(start, f"checkpoint {size} names origin {body.origin!r}", size))
            continue
        if body.tree_size != size or body.root_hash.hex() != row.root_hash:
            report.add(CheckpointInvalid(start, f"checkpoint {size}: the stored size or root is not its note's", size))
            continue
        if size > tree.size:
            report.add(LogTruncated(tree.size, f"checkpoint {size} covers events the log no longer has"))
            continue
        if tree.root(size) != body.root_hash:
            report.add(RootMismatch(start, f"the first {size} events no longer give checkpoint {size}'s root", size))
            continue
        if good is not None:
            proof = consistency_proof(tree, good.tree_size, size)
            try:
                verify_consistency(good.tree_size, size, good.root_hash, body.root_hash, proof)
            except VerificationError as exc:
                report.add(RootMismatch(start, f"checkpoints {good.tree_size} and {size}: {exc}", size))
                continue
        good = body
    return report
