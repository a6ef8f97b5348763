"""The journal of record changes every storage site keeps: how records survive the loss of the catalog.

Originals have their manifests beside them; incidents, victims, sources and
links have this. Each `record_changes` row (the record, the change, when and
by whom, its whole state, the salt, the reason, its commitment, the custody
event that carries it and its leaf in an import's Merkle tree) is written to
every site in age-encrypted objects to the archive's recipients, as originals
and manifests are: the identities behind those recipients (the custodian's,
and the access identity among them) open them, in `rebuild-catalog`, and
nobody without one can; the states hold names, places and stories. A
source's identity inside a state stays the custodian's alone: it is
encrypted a second time, to the custodian only, before it is sealed.

- Names are random (`j/<2 hex>/<32 hex>`) and say nothing: no record id, no
  count, no order. The order lives inside the encrypted content (each change
  names its custody event's sequence number).
- Append-only: an object is written once under a fresh name and never
  overwritten or deleted. A change is published once per site; a crash
  between writing an object and moving the cursor only publishes some changes
  twice, which a rebuild recognizes (by commitment) and keeps once.
- Many changes per object: up to `MAX_CHANGES`, and an imported file's batch
  (one custody event) is never split, so a rebuild checks it whole against
  the Merkle root its event carries. An import of 100,000 victims is one object.
- Published with the log: `mirror_to_sites` (after every checkpoint, and by
  the worker) calls `publish_journal` for each site the log was just mirrored
  to, with the changes whose events the checkpoint covers, so every change on
  a site is one the site's own copy of the log vouches for. A per-site cursor
  in the catalog (tied to the site's marker, like the log mirror's) makes it
  cheap when nothing is new; a site that is down catches up next time.
- The vocabularies: the whole vocabulary table rides along in an object
  whenever it differs from what the site last got (its digest in the
  cursor). A rebuild loads it only when the site's log vouches for it: its
  digest (`archive.records.vocab.digest`) is the one the log's latest
  vocabulary load carries, or, when the log records no load, the default
  set's.

Publishing needs the catalog key (the states are sealed under it in the
catalog): a process without it publishes nothing and says so; the changes
wait for the next one that has it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from archive.catalog.checkpoints import Checkpoint
from archive.records.tables import RecordChange, VocabTerm
from storage.base import StorageError

if TYPE_CHECKING:
    from archive.age import Identity, Recipient
    from archive.context import Archive
    from archive.keys.catalog import CatalogKeys
    from storage.base import Backend

JOURNAL_PREFIX = "j/"
JOURNAL_FORMAT = "evidence-journal/1"
CURSOR_PREFIX = "journal:"
MAX_CHANGES = 5000  # changes per object (an import's batch is never split, whatever its size)
ENTRY_FIELDS = ("id", "record_id", "record_kind", "change", "at", "by", "commitment", "event_seq", "batch_index",
                "state", "salt", "reason")


@dataclass
class JournalResult:
    """What one site got: objects and changes written now, whether the vocabulary went too, or why not."""

    site: str
    objects: int = 0
    changes: int = 0
    vocab: bool = False
    up_to: int = 0  # changes of events before this sequence number are on the site
    error: str | None = None


def journal_name() -> str:
    """A fresh random object name: it says nothing about the records, their number or their order."""
    token = secrets.token_hex(16)
    return f"{JOURNAL_PREFIX}{token[:2]}/{token}"


def cursor_name(site: str) -> str:
    name = CURSOR_PREFIX + site
    return name if len(name) <= 64 else CURSOR_PREFIX + hashlib.sha256(site.encode()).hexdigest()[:32]


# -- the content ---------------------------------------------------------------------------------


def _packed(document: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(document, sort_keys=True).encode(), 6)  # states repeat their field names


def _sealed(packed: bytes, recipients: Iterable[Recipient | str]) -> bytes:
    from archive.age import Recipient, encrypt_bytes

    return encrypt_bytes(packed, [r if not isinstance(r, str) else Recipient.parse(r) for r in recipients])


def seal_journal(document: dict[str, Any], recipients: Iterable[Recipient | str]) -> bytes:
    """A journal document, compressed and age-encrypted to `recipients`."""
    return _sealed(_packed(document), recipients)


def open_journal(data: bytes, identities: list[Identity]) -> dict[str, Any]:
    """A journal object's document; raises `AgeError` (not ours, or altered) or `ValueError` (not a journal)."""
    from archive.age import decrypt_bytes

    try:
        document = json.loads(zlib.decompress(decrypt_bytes(data, identities)))
    except zlib.error as exc:
        raise ValueError(f"not a compressed journal ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != JOURNAL_FORMAT:
        raise ValueError(f"not an {JOURNAL_FORMAT} document")
    changes = document.get("changes")
    if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
        raise ValueError("its changes are not a list of objects")
    return document


def vocab_document(session: Session) -> dict[str, Any] | None:
    """The whole vocabulary table as an `evidence-vocab/1` document (None while it is empty)."""
    from archive.records.vocab import FORMAT

    terms = session.exec(select(VocabTerm).order_by(col(VocabTerm.vocabulary), col(VocabTerm.id))).all()
    if not terms:
        return None
    vocabularies: dict[str, list[dict[str, Any]]] = {}
    for term in terms:
        entry: dict[str, Any] = {"key": term.key, "label": term.label, "former_names": list(term.former_names)}
        if term.group is not None:
            entry["group"] = term.group
        vocabularies.setdefault(term.vocabulary, []).append(entry)
    return {"format": FORMAT, "vocabularies": vocabularies}


def _digest(document: dict[str, Any] | None) -> str | None:
    from archive.records.vocab import document_digest

    return None if document is None else document_digest(document)


def _entry(keys: CatalogKeys, row: RecordChange) -> dict[str, Any]:
    from archive.records.changes import opened

    fields = opened(keys, row)
    return {"id": row.id, "record_id": row.record_id, "record_kind": row.record_kind, "change": row.change,
            "at": row.at, "by": row.by, "commitment": row.commitment, "event_seq": row.event_seq,
            "batch_index": row.batch_index, "state": fields["state"], "salt": fields["salt"],
            "reason": fields.get("reason")}


def _packed_chunks(session: Session, keys_of: Callable[[], CatalogKeys], start: int, end: int,
                   vocab: dict[str, Any] | None) -> Iterator[tuple[int, bytes]]:
    """(changes, compressed document) for the changes of events [start, end), in order, in chunks that never
    split one event's batch (the key is asked for only when there is one); `vocab` rides with the first.

    Each change is compressed as it is read: memory holds compressed bytes, never the opened states of a
    whole import (a million changes opened at once took 7 GB).
    """
    from archive.custody.log import utc_now

    stmt = (select(RecordChange).where(col(RecordChange.event_seq) >= start, col(RecordChange.event_seq) < end)
            .order_by(col(RecordChange.event_seq), col(RecordChange.id)))
    keys: CatalogKeys | None = None
    compressor = zlib.compressobj(6)  # states repeat their field names
    pieces: list[bytes] = [compressor.compress(b'{"changes": [')]
    count, last_seq, first = 0, None, True

    def finish() -> tuple[int, bytes]:
        tail = (f'], "format": {json.dumps(JOURNAL_FORMAT)}, "published_at": {json.dumps(utc_now())}, '
                f'"vocab": {json.dumps(vocab if first else None, sort_keys=True)}}}').encode()
        return count, b"".join([*pieces, compressor.compress(tail), compressor.flush()])

    for row in session.exec(stmt.execution_options(yield_per=1000)):
        keys = keys or keys_of()
        if count >= MAX_CHANGES and last_seq != row.event_seq:
            yield finish()
            compressor, first, count = zlib.compressobj(6), False, 0
            pieces = [compressor.compress(b'{"changes": [')]
        entry = json.dumps(_entry(keys, row), sort_keys=True).encode()
        pieces.append(compressor.compress(b", " + entry if count else entry))
        count, last_seq = count + 1, row.event_seq
    if count or (first and vocab is not None):
        yield finish()


# -- publishing ----------------------------------------------------------------------------------


def _latest_size(session: Session) -> int:
    size = session.execute(sa_select(col(Checkpoint.tree_size)).order_by(col(Checkpoint.tree_size).desc())
                           .limit(1)).scalar()
    return int(size or 0)


def _publish_site(archive: Archive, backend: Backend, keys: Callable[[], CatalogKeys],
                  recipients: Callable[[], list[Recipient]], vocab: dict[str, Any] | None,
                  result: JournalResult, cache: dict[tuple[int, int, bool], list[tuple[int, bytes]]]) -> None:
    from archive.catalog.jobs import read_cursor, write_cursor
    from archive.db import transaction

    digest = _digest(vocab)
    with Session(archive.engine) as session:
        size = _latest_size(session)
        cursor = read_cursor(session, cursor_name(backend.name))
        state = dict(cursor.state) if cursor is not None else {}
        if cursor is not None and cursor.value == str(size) and state.get("vocab") == digest:
            result.up_to = size
            return  # nothing new: no request to the site at all
        marker = backend.read_marker()  # the cursor counts only for the disk or bucket it was written for
        claim = marker.created_at if marker is not None else ""
        done = min(int(cursor.value), size) if cursor is not None and cursor.value and state.get("marker") == claim \
            else 0
        send_vocab = digest is not None and (state.get("vocab") != digest or state.get("marker") != claim)
        made = (done, size, send_vocab)
        if made not in cache:  # sites usually lack the same changes: opened and packed once for all of them
            # only once whole: a failure half-way leaves nothing for the next site
            cache[made] = list(_packed_chunks(session, keys, done, size, vocab if send_vocab else None))
        for count, plain in cache[made]:
            _write_new(backend, _sealed(plain, recipients()))
            result.objects += 1
            result.changes += count
        result.vocab = made[2]
    with transaction(archive.engine) as session:
        write_cursor(session, cursor_name(backend.name), str(size), {"marker": claim, "vocab": digest})
    result.up_to = size


def _write_new(backend: Backend, data: bytes) -> str:
    """Write under a fresh name that is not taken (never overwrite): names are random, so one try suffices."""
    for _ in range(3):
        name = journal_name()
        if backend.stat(name) is None:
            backend.put_bytes(name, data)
            return name
    raise StorageError(f"storage {backend.name!r}: no free journal name")  # pragma: no cover - 2^128 names


def publish_journal(archive: Archive, sites: Iterable[str] | None = None) -> dict[str, JournalResult]:
    """Put each site's missing record changes (and the vocabulary, when changed) on it; never raises.

    `sites` limits it to the named ones (those the log was just mirrored to,
    so the site's log covers every change it gets). A site that fails is
    reported in its result and catches up next time.
    """
    from archive.services.errors import Locked

    names = list(archive.backends) if sites is None else list(sites)
    results = {name: JournalResult(name) for name in names}
    if not names:
        return results
    from archive.records.vocab import default_digests

    try:
        with Session(archive.engine) as session:
            pending = session.exec(select(RecordChange.id).limit(1)).first() is not None
            vocab = vocab_document(session)
    except Exception as exc:  # noqa: BLE001 - publishing never fails the caller
        for result in results.values():
            result.error = str(exc) or type(exc).__name__
        return results
    if not pending and (vocab is None or _digest(vocab) in default_digests()):
        return results  # no record was ever written, and no vocabulary loaded: nothing to keep
    # Asked for only when a site lacks something: a locked worker with nothing to publish says nothing.
    keys, recipients = archive.runtime.keys.catalog, archive.recipients
    cache: dict[tuple[int, int, bool], list[tuple[int, bytes]]] = {}
    for name in names:
        backend = archive.backends.get(name)
        if backend is None:
            results[name].error = "no such storage site"
            continue
        try:
            _publish_site(archive, backend, keys, recipients, vocab, results[name], cache)
        except Locked as exc:
            results[name].error = f"the journal waits for the catalog key ({exc})"
        except Exception as exc:  # noqa: BLE001 - one site's failure must not stop the others
            results[name].error = str(exc) or type(exc).__name__
    return results


def mark_published(session: Session, site: str, marker_claim: str, up_to: int, vocab: dict[str, Any] | None) -> None:
    """Record that the site already holds the changes of events before `up_to` (a rebuild read them there)."""
    from archive.catalog.jobs import write_cursor

    write_cursor(session, cursor_name(site), str(up_to), {"marker": marker_claim, "vocab": _digest(vocab)})


# -- reading back ---------------------------------------------------------------------------------


@dataclass
class JournalRead:
    """A site's journal as read back: every change found (in order, once each) and the latest vocabulary."""

    objects: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)
    vocabs: list[dict[str, Any]] = field(default_factory=list)  # in the order published
    unreadable: list[dict[str, str]] = field(default_factory=list)  # {"journal": name, "problem": why}


def _well_formed(change: dict[str, Any]) -> bool:
    return (isinstance(change.get("record_id"), str) and isinstance(change.get("commitment"), str)
            and isinstance(change.get("salt"), str) and isinstance(change.get("state"), dict)
            and isinstance(change.get("event_seq"), int) and isinstance(change.get("record_kind"), str)
            and isinstance(change.get("change"), str) and isinstance(change.get("at"), str)
            and isinstance(change.get("by"), str)
            and (change.get("batch_index") is None or isinstance(change.get("batch_index"), int)))


def read_journal(backend: Backend, identities: list[Identity]) -> JournalRead:
    """Every change in every journal object on the site, opened with the identities given, in order.

    Nothing is checked here, nor are duplicates dropped: a planted change may
    copy a genuine commitment, so `archive.records.replay` first checks each
    against its own state and salt, then keeps one per commitment."""
    from archive.age import AgeError

    found = JournalRead()
    stamped: list[tuple[str, str, dict[str, Any]]] = []
    for info in backend.list(JOURNAL_PREFIX):
        found.objects += 1
        try:
            with backend.open_reader(info.name) as stream:
                document = open_journal(bytes(stream.read()), identities)
        except (AgeError, ValueError, StorageError, OSError) as exc:
            found.unreadable.append({"journal": info.name, "problem": f"unreadable journal object: {exc}"})
            continue
        for change in document["changes"]:
            if not _well_formed(change):
                found.unreadable.append({"journal": info.name, "problem": "a malformed change in a journal object"})
                continue
            change["journal"] = info.name
            found.changes.append(change)
        if isinstance(document.get("vocab"), dict):
            stamped.append((str(document.get("published_at") or ""), info.name, document["vocab"]))
    found.changes.sort(key=lambda c: (c["event_seq"], c["batch_index"] if c["batch_index"] is not None else -1,
                                      c["id"] if isinstance(c.get("id"), int) else 0))
    found.vocabs = [vocab for _, _, vocab in sorted(stamped, key=lambda s: (s[0], s[1]))]
    return found
