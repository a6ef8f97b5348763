"""The log index: what the custody log itself says each item's content and each stored copy is.

Why: whoever holds the database can rewrite the catalog (a replica's hash, an
item's SHA-256), but not the log without breaking the signed tree. So fixity,
`get`, `log verify` and `rebuild-catalog` take what a copy *should* be from
here, never from the catalog. The rules (the copy event contract,
repeated in short):

- an item's first `message digest calculation` commitment is final; a second
  one is a broken rule;
- an object's ciphertext hash is set once, by a replication or an information
  package creation of a manifest or addendum (or a baseline fixity check, for
  a copy named before hashes were logged or recovered by a rebuild into a new
  log), and never set again; a later original of an item names its source: a
  repair the source copy and its hash (`from_object`, `from_ciphertext_sha256`),
  a duplicate restore the later arrival the log is ingesting then (its digest
  event, before the restore, names it), a rewrap (`rewrapped_from`) another live
  original of the item, written to a new object;
- every other event naming a copy (fixity check, deletion) carries the hash
  the log has for it, and changes nothing but a deletion's end of the copy.

Events read for a reader are first checked genuine (`check_genuine`): each
one's leaf hash recomputed from its canonical encoding, and its inclusion in
the latest signed checkpoint proven, so editing an `events` row fools no one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from archive.catalog.checkpoints import Checkpoint
from archive.catalog.events import Event
from archive.custody.entry import encode, leaf_hash
from archive.custody.log import (
    ACCESS,
    DELETION,
    FIXITY_CHECK,
    INFORMATION_PACKAGE_CREATION,
    INGESTION,
    MESSAGE_DIGEST,
    REPLICATION,
    event_entry,
)
from archive.services.errors import IntegrityError

if TYPE_CHECKING:
    from archive.context import Archive
    from archive.custody.verify import Verifier

ORIGINAL = "original"
SIDE_ROLES = ("manifest", "arrival")
RECORD_FORMAT = "evidence-record/1"  # archive.records.changes.FORMAT: a record's change, not an item's
VOCABULARY = "vocabulary"  # archive.records.vocab.VOCABULARY_CHANGE: a vocabulary load, not an item's event
RECOVERY = "recovery"  # archive.services.rebuild: an item recreated from its manifest
RESTORED_FROM = "duplicate arrival"  # ingest.steps.replicate: a copy made from a later arrival's bytes
ESTABLISHING = (REPLICATION, INFORMATION_PACKAGE_CREATION)
REFERRING = (FIXITY_CHECK, ACCESS, DELETION)


class LogNotGenuine(IntegrityError):
    """A stored event the check relies on is not the event the signed log holds."""


@dataclass(frozen=True)
class RuleBroken:
    """An event that breaks the copy event contract; `item` names the item when the event does."""

    seq: int
    item: str | None
    message: str

    def __str__(self) -> str:
        about = f" (item {self.item})" if self.item else ""
        return f"seq {self.seq}{about}: {self.message}"


@dataclass
class LoggedCopy:
    """One stored object as the log records it."""

    key: str  # "<backend>:<object name>"
    item: str | None
    role: str
    ciphertext_sha256: str
    seq: int  # the event that set the hash
    deleted: bool = False


@dataclass
class LogIndex:
    """Per item the (first, final) commitment, per object its current ciphertext hash."""

    commitments: dict[str, tuple[str, int]] = field(default_factory=dict)  # item -> (commitment, seq)
    copies: dict[str, LoggedCopy] = field(default_factory=dict)
    unhashed: set[str] = field(default_factory=set)  # objects named before hashes were logged
    ingested: set[str] = field(default_factory=set)  # items with a successful ingestion event
    recovered: set[str] = field(default_factory=set)  # items a rebuild recreated into this (new) log
    arriving: dict[str, Any] = field(default_factory=dict)  # item -> the later arrival being ingested now
    failed: set[str] = field(default_factory=set)  # objects a check found missing or corrupt (repair may retire them)
    records: dict[int, dict[str, Any]] = field(default_factory=dict)  # seq -> a record change event (its entry)
    vocabulary: dict[str, Any] | None = None  # the latest vocabulary load's event (archive.records.vocab)
    vocabularies: dict[str, int] = field(default_factory=dict)  # every digest a load's event carried -> its seq
    problems: list[RuleBroken] = field(default_factory=list)

    @classmethod
    def of(cls, entries: Iterable[dict[str, Any]]) -> LogIndex:
        index = cls()
        for entry in entries:
            index.add(entry)
        return index

    def commitment(self, item_id: str) -> str | None:
        found = self.commitments.get(item_id)
        return found[0] if found else None

    def copy(self, key: str) -> LoggedCopy | None:
        found = self.copies.get(key)
        return None if found is None or found.deleted else found

    def add(self, entry: dict[str, Any]) -> None:
        """Apply one event (its canonical fields: seq, type, item, objects, outcome, details)."""
        kind, item, details = str(entry.get("type")), entry.get("item"), entry.get("details")
        if not isinstance(details, dict):
            details = {}
        if details.get("commitment_format") == RECORD_FORMAT:  # a record's change (archive.records.changes)
            self.records[int(entry["seq"])] = entry
            return
        if details.get("change") == VOCABULARY and isinstance(details.get("vocabulary_sha256"), str):
            self.vocabulary = entry  # a vocabulary load (archive.records.vocab.record_load)
            self.vocabularies[details["vocabulary_sha256"]] = int(entry["seq"])
            return
        if kind == MESSAGE_DIGEST and "commitment" in details:
            self._commit(entry["seq"], item, details["commitment"])
            return
        if kind == MESSAGE_DIGEST and details.get("duplicate") is True and item:
            # A later arrival of the item's bytes: until its ingestion event, it may restore lost copies.
            if entry.get("outcome") == "success" and details.get("matches_commitment") is not False:
                self.arriving[str(item)] = details.get("arrival")
            return
        if kind == INGESTION and entry.get("outcome") == "success" and item:
            self.ingested.add(str(item))
            self.arriving.pop(str(item), None)
            return
        if kind == RECOVERY and entry.get("outcome") in ("success", "warning") and item:
            self.recovered.add(str(item))
            return
        objects = entry.get("objects") or []
        if len(objects) != 1 or not isinstance(objects[0], str):
            return
        key, digest = objects[0], details.get("ciphertext_sha256")
        if kind == FIXITY_CHECK and entry.get("outcome") == "failure":
            self.failed.add(key)
        baseline = kind == FIXITY_CHECK and details.get("baseline") is True  # whatever the copy's state
        if baseline or (kind in ESTABLISHING and entry.get("outcome") == "success"):
            if not isinstance(digest, str):
                self.unhashed.add(key)  # an event from before hashes were logged
                return
            if baseline:
                self._baseline(entry["seq"], item, key, digest, details)
            else:
                self._establish(entry["seq"], item, key, digest, details, kind)
        elif kind in REFERRING and isinstance(digest, str):
            self._refer(entry["seq"], item, key, digest, kind)

    def _broken(self, seq: int, item: str | None, message: str) -> None:
        self.problems.append(RuleBroken(seq, item, message))

    def _commit(self, seq: int, item: str | None, value: Any) -> None:
        if not item or not isinstance(value, str):
            self._broken(seq, item, "a commitment that names no item or is not a hex string")
            return
        first = self.commitments.get(item)
        if first is not None:
            self._broken(seq, item, f"a second commitment for the item (the first, at seq {first[1]}, is final)")
            return
        self.commitments[item] = (value, seq)

    def _source(self, seq: int, item: str | None, source: Any, source_hash: Any, what: str) -> LoggedCopy | None:
        """The copy a new one names as its source, when it is the one the log has (else a broken rule)."""
        found = self.copy(str(source)) if isinstance(source, str) else None
        if found is None:
            self._broken(seq, item, f"{what} names a source copy the log does not hold ({source})")
            return None
        if found.ciphertext_sha256 != source_hash or found.item != item:
            self._broken(seq, item, f"{what} names source {source} with another hash than the log's")
            return None
        return found

    def _baseline(self, seq: int, item: str | None, key: str, digest: str, details: dict[str, Any]) -> None:
        """A first hash for a copy named before hashes were logged, or recovered by a rebuild into this new log.

        Nothing else may be baselined: a new object of an ingested (or already
        recovered) item gets its hash from the event that made it.
        """
        role = str(details.get("role") or ORIGINAL)
        if key in self.copies:
            self._broken(seq, item, f"a baseline for {key}, which already has a hash in the log "
                         f"(seq {self.copies[key].seq})")
            return
        being_recovered = (item is not None and item in self.commitments and item not in self.ingested
                           and item not in self.recovered)
        if key not in self.unhashed and not being_recovered:
            self._broken(seq, item, f"a baseline for {key}, a copy the log never named before hashes were logged")
            return
        self.copies[key] = LoggedCopy(key, item, role, digest, seq)

    def _establish(self, seq: int, item: str | None, key: str, digest: str, details: dict[str, Any],
                   kind: str) -> None:
        role = str(details.get("role") or details.get("object") or ORIGINAL)
        if details.get("merged_from") is not None:
            self._merge(seq, item, key, digest, details)
            return
        if key in self.copies:
            self._broken(seq, item, f"{key} already has a hash in the log (seq {self.copies[key].seq}); "
                         "a copy's hash is set once")
            return
        if kind == INFORMATION_PACKAGE_CREATION and role not in SIDE_ROLES:
            self._broken(seq, item, f"an information package creation for {key} as a {role} "
                         "(only a manifest or an addendum is made so)")
            return
        rewrapped = details.get("rewrapped_from")
        if rewrapped is not None:
            if rewrapped == key:
                self._broken(seq, item, f"a rewrap of {key} onto itself (a rewrap writes a new object)")
                return
            source = self._source(seq, item, rewrapped, details.get("from_ciphertext_sha256"), "a rewrap")
            if source is None:
                return
            if source.role != ORIGINAL or role != ORIGINAL:
                self._broken(seq, item, f"a rewrap of {rewrapped}, which is not an original")
                return
        elif kind == REPLICATION and role == ORIGINAL:
            if "from" in details or "from_object" in details:  # a repair: a byte-for-byte copy of a logged copy
                if self._source(seq, item, details.get("from_object"), details.get("from_ciphertext_sha256"),
                                "a repair") is None:
                    return
                if details.get("from_ciphertext_sha256") != digest:
                    self._broken(seq, item, f"a repair of {key} records other bytes than its source's")
                    return
            elif item in self.ingested or item in self.recovered:
                if not self._restore_allowed(item, details):
                    self._broken(seq, item, f"a new original {key} after the item's ingestion names no source "
                                 "copy, nor the later arrival the log is ingesting")
                    return
        self.copies[key] = LoggedCopy(key, item, role, digest, seq)

    def _restore_allowed(self, item: str | None, details: dict[str, Any]) -> bool:
        """A duplicate restore: made while the log ingests a later arrival of the item, and naming that arrival."""
        if item is None or item not in self.arriving or details.get("restored_from") != RESTORED_FROM:
            return False
        arrival, logged = details.get("arrival"), self.arriving[item]
        return arrival is not None and (logged is None or arrival == logged)

    def _merge(self, seq: int, item: str | None, key: str, digest: str, details: dict[str, Any]) -> None:
        """A copy moved, unchanged, from an item merged into this one (settlement of a locked ingest)."""
        source = self.copy(key)
        if (source is None or details.get("from_object") != key or source.item != details.get("merged_from")
                or source.ciphertext_sha256 != digest or details.get("from_ciphertext_sha256") != digest):
            self._broken(seq, item, f"a merge names {key} as a copy of item {details.get('merged_from')} "
                         "that the log does not hold so")
            return
        source.item = item

    def _refer(self, seq: int, item: str | None, key: str, digest: str, kind: str) -> None:
        """A check or deletion only reports on a copy: it never sets a hash, so it breaks no rule.

        (A check that named another hash than the log's records what its
        process believed, e.g. a catalog row since rewritten; what counts is
        the hash the log established.) A deletion of the copy the log holds
        ends its life.
        """
        found = self.copy(key)
        if kind == DELETION and found is not None and found.ciphertext_sha256 == digest and found.item == item:
            found.deleted = True


def check_genuine(session: Session, events: list[Event], verifier: Verifier) -> None:
    """Each event must be what the signed log holds: raises `LogNotGenuine` naming the first that is not.

    The leaf hash is recomputed from the stored fields; events the latest
    checkpoint covers must also prove their inclusion in its signed root
    (through the stored tiles, which an edit cannot keep consistent with the
    signature). Events after it are only as good as their recomputed leaf:
    nothing signed vouches for them yet.
    """
    from archive.custody.merkle import ProofError, inclusion_proof
    from archive.custody.tiles import TileStore
    from archive.custody.verify import VerificationError, open_note, parse_checkpoint, verify_inclusion

    latest = session.exec(select(Checkpoint).order_by(col(Checkpoint.tree_size).desc()).limit(1)).first()
    size, root = 0, b""
    if latest is not None:
        try:
            body = parse_checkpoint(open_note(latest.note, verifier))
        except VerificationError as exc:
            raise LogNotGenuine(f"the latest checkpoint does not verify ({exc}); run `evidence log verify`") from exc
        size, root = body.tree_size, body.root_hash
    covered = [e for e in events if e.seq < size]
    tiles = TileStore(session)
    try:
        tiles.preload(lambda source: [inclusion_proof(source, e.seq, size) for e in covered])
        for event in events:
            leaf = leaf_hash(encode(event_entry(event)))
            if leaf.hex() != event.leaf_hash:
                raise LogNotGenuine(f"custody event {event.seq} was altered (it no longer matches its leaf hash); "
                                    "run `evidence log verify`")
            if event.seq < size:
                verify_inclusion(leaf, event.seq, size, inclusion_proof(tiles, event.seq, size), root)
    except (ProofError, VerificationError) as exc:
        raise LogNotGenuine(f"a custody event of item {events[0].item_id} is not in the signed log ({exc}); "
                            "run `evidence log verify`") from exc


def item_events(session: Session, item_id: str) -> list[Event]:
    return list(session.exec(select(Event).where(col(Event.item_id) == item_id).order_by(col(Event.seq))).all())


def logged_commitment(session: Session, item_id: str) -> str | None:
    """The item's commitment as its events say (no genuineness check: for writers about to append)."""
    return LogIndex.of(event_entry(e) for e in item_events(session, item_id)
                       if e.event_type == MESSAGE_DIGEST).commitment(item_id)


def item_index(session: Session, item_id: str, verifier: Verifier) -> LogIndex:
    """What the log says of one item, from its events once each is checked genuine.

    The events of items merged into it come too: its copies from them were
    recorded under their ids first.
    """
    by_seq = {e.seq: e for e in item_events(session, item_id)}
    seen, todo = {item_id}, [item_id]
    while todo:
        merged = {str(e.details["merged_from"]) for e in by_seq.values()
                  if isinstance(e.details, dict) and e.details.get("merged_from")} - seen
        todo = sorted(merged)
        seen |= merged
        for other in todo:
            by_seq.update({e.seq: e for e in item_events(session, other)})
    events = [by_seq[seq] for seq in sorted(by_seq)]
    if events:
        check_genuine(session, events, verifier)
    return LogIndex.of(event_entry(e) for e in events)


def read_item_index(archive: Archive, item_id: str) -> LogIndex:
    """`item_index` in a short read of its own, with the archive's verifier key."""
    from archive.custody.service import verifier_key
    from archive.db import read_only

    verifier = verifier_key(archive)
    with Session(read_only(archive.engine)) as session:
        return item_index(session, item_id, verifier)
