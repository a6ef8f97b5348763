"""Records restored from a site's journal in `rebuild-catalog`, each change checked against the site's log.

age authenticates no sender: anyone holding the public recipient can write a
well-formed journal object. So, as manifests are, every change is held
against the site's copy of the custody log (checked against its signed
checkpoints): its commitment recomputed from its state and salt must be its
own, and its custody event must carry it (the commitment itself, or the
Merkle root of its import's batch, which is checked whole), with the same
record, change, actor and time. A change that fails is *rejected*: listed in
the report, never entered, its object left on the site. Changes the log
records and the journal lacks (an object removed, or never published) are
reported as missing: the record is then restored at its last state the
journal holds, or not at all.

A site with no log that verifies can vouch for no change: records are then
not restored at all (said in the report), never entered on the journal's word.

Replay follows `archive.records.store.apply`, in the log's order (each record
ends as its changes leave it, written once), and each change's row is entered
again (sealed under the rebuilt catalog's key), so history survives. Taken
over, the log already holds every event; into a new log, each original event
is written again with the same commitments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert

from archive.custody.records_check import event_disagrees
from archive.records.changes import TABLE, record_commitment
from archive.records.journal import JournalRead
from archive.records.provenance import KIND as PROVENANCE
from archive.records.provenance import PREFIX as PROVENANCE_PREFIX
from archive.records.provenance import apply as apply_provenance
from archive.records.tables import RecordChange

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive
    from archive.custody.expected import LogIndex
    from archive.keys.catalog import CatalogKeys

# The record a kind's state must find restored first (its foreign key).
PARENTS = {"attribution": "incident_id", "victim": "incident_id", "consent": "victim_id", "interview": "source_id"}


@dataclass
class Restored:
    objects: int = 0
    records: int = 0
    changes: int = 0
    vocab_terms: int = 0
    vocab_checked: bool | None = None  # True: the vocabulary loaded is the one the site's log vouches for
    rejected: list[dict[str, str]] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)


def _reject(out: Restored, change: dict[str, Any], why: str) -> None:
    out.rejected.append({"journal": str(change.get("journal")), "record": str(change.get("record_id")),
                         "problem": why})


def checked_changes(index: LogIndex, read: JournalRead, out: Restored) -> list[dict[str, Any]]:
    """The changes the site's log vouches for, once each, in the log's order; the others rejected."""
    from archive.records.store import kind_of

    own: list[dict[str, Any]] = []
    seen: set[str] = set()
    for change in read.changes:
        kind: str | None
        try:
            kind = kind_of(change["record_id"]).name
        except KeyError:
            kind = PROVENANCE if change["record_id"].startswith(f"{PROVENANCE_PREFIX}-") else None
        if kind != change["record_kind"]:
            _reject(out, change, "forged journal entry: its record id names no record of its kind")
        elif record_commitment(change["record_id"], change["salt"], change["state"]) != change["commitment"]:
            _reject(out, change, "forged or altered journal entry: its state and salt do not give its commitment")
        elif change["commitment"] not in seen:  # a copy of a genuine change (republished) counts once
            seen.add(change["commitment"])
            own.append(change)
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for change in own:  # a batch is never split across objects: each object's part is checked whole
        groups.setdefault((change["event_seq"], change["journal"]), []).append(change)
    good: list[dict[str, Any]] = []
    vouched: set[int] = set()
    for (seq, _), changes in sorted(groups.items()):
        event = index.records.get(seq)
        why: str | None
        if event is None:
            why = "not recorded by the log: the site's log holds no record change event " + str(seq)
        elif seq in vouched:
            why = f"the custody log's event {seq} is already vouched for by other journal entries"
        else:
            why = event_disagrees(event, changes)
        if why is not None:
            for change in changes:
                _reject(out, change, why if why.startswith(("not recorded", "forged")) else f"forged: {why}")
            continue
        vouched.add(seq)
        good += changes
    for seq in sorted(set(index.records) - vouched):
        details = index.records[seq].get("details") or {}
        what = (f"an import of {details.get('records')} changes" if "merkle_root" in details
                else f"record {details.get('record')} ({details.get('change')})")
        out.problems.append({"event": str(seq), "problem": f"the site's log records {what}, and the site's "
                             "journal does not hold it (a journal object removed, or never published)"})
    good.sort(key=lambda c: (c["event_seq"], c["batch_index"] if c["batch_index"] is not None else -1))
    return good


def _load_vocab(session: Session, index: LogIndex, read: JournalRead, out: Restored, *, new_log: bool,
                actor: str) -> None:
    """Load the journalled vocabulary the site's log vouches for: the latest whose digest is the one the log's
    latest vocabulary load carries (no load in the log: the default set's). A vocabulary no load of the log
    ever carried is refused (the statistics follow it: a party's group, the facility attacks)."""
    from archive.records.vocab import default_digests, document_digest, load
    from archive.services.errors import Invalid

    vouched = (index.vocabulary.get("details") or {}).get("vocabulary_sha256") if index.vocabulary else None
    known = set(index.vocabularies) | (set() if index.vocabulary else set(default_digests()))
    chosen: dict[str, Any] | None = None
    for document in read.vocabs:  # in the order published: the latest vouched one wins
        try:
            sha256 = document_digest(document)
        except Invalid as exc:
            out.problems.append({"vocab": "a vocabulary in the site's journal was not loaded", "problem": str(exc)})
            continue
        if sha256 not in known:
            out.problems.append({"vocab": "a vocabulary in the site's journal was refused", "problem": "forged: "
                                 "no vocabulary load the site's custody log records carries its digest"})
        elif sha256 == vouched or (vouched is None and index.vocabulary is None):
            chosen = document
    if chosen is None:
        if index.vocabulary is not None:
            out.problems.append({"vocab": f"the vocabulary of the custody log's event {index.vocabulary.get('seq')}",
                                 "problem": "the site's journal does not hold it (the default set is used instead)"})
        return
    try:
        report = load(session, chosen, "a vocabulary in the site's journal")
    except Invalid as exc:
        out.problems.append({"vocab": "a vocabulary in the site's journal was not loaded", "problem": str(exc)})
        return
    out.vocab_terms += sum(counts["added"] for counts in report.values())
    out.vocab_checked = True
    if new_log and index.vocabulary is not None:  # the load's event written again, carrying the same digest
        _new_event(session, index.vocabulary, actor, "vocabulary recovered from the journal into a new log")


def _new_event(session: Session, original: dict[str, Any], actor: str, note: str) -> int:
    """The original event written again into a new log by the rebuild: the same details (commitments, record,
    change), and who made the change and when, as the original event said."""
    from archive.custody.log import append_event

    details = {**(original.get("details") or {}), "note": note, "recovered_from_seq": original.get("seq"),
               "recorded_by": original.get("actor"), "recorded_at": original.get("time")}
    event = append_event(session, str(original.get("type")), actor=actor, item_id=original.get("item"),
                         details=details)
    return int(event.seq)


# Parents before children, so every foreign key finds its row.
ORDER = ("incident", "source", "attribution", "victim", "consent", "interview", "link")


@dataclass
class _Final:
    """One record as its changes leave it: the last state, and the stamps `store.apply` would have written."""

    kind: str
    state: dict[str, Any]
    created: tuple[str, str]  # (at, by) of its first change
    last: tuple[str, str]
    removed: tuple[str, str] | None = None  # a link's unlinking


def _row(keys: CatalogKeys, record_id: str, final: _Final) -> dict[str, Any]:
    """The row's columns, as `store.apply` makes them change after change (`store.columns`, and its stamps)."""
    from archive.records.store import KINDS, columns

    kind = KINDS[final.kind]
    fields = kind.model.model_fields
    values = {"id": record_id, **columns(kind, keys, record_id, final.state)}
    stamps = {"created_at": final.created[0], "created_by": final.created[1], "updated_at": final.last[0],
              "at": final.last[0], "by": final.last[1]}
    values.update({name: value for name, value in stamps.items() if name in fields})
    if kind.name == "link":
        values["removed_at"], values["removed_by"] = final.removed or (None, None)
    return values


def _change_row(session: Session, keys: CatalogKeys, index: LogIndex, change: dict[str, Any],
                new_seqs: dict[int, int], *, new_log: bool, site: str, actor: str) -> dict[str, Any]:
    """The `record_changes` row of a replayed change (its event written again first, into a new log)."""
    seq = change["event_seq"]
    if new_log:
        if seq not in new_seqs:
            new_seqs[seq] = _new_event(session, index.records[seq], actor,
                                       f"recovered from the journal on {site} into a new log")
        seq = new_seqs[seq]
    version, sealed = keys.seal(TABLE, change["commitment"], {"state": change["state"], "salt": change["salt"],
                                                              "reason": change.get("reason")})
    return {"record_id": change["record_id"], "record_kind": change["record_kind"], "change": change["change"],
            "at": change["at"], "by": change["by"], "commitment": change["commitment"], "event_seq": seq,
            "batch_index": change["batch_index"], "sealed": sealed, "key_version": version}


def replay(session: Session, keys: CatalogKeys, index: LogIndex, changes: list[dict[str, Any]], out: Restored,
           *, new_log: bool, site: str, actor: str) -> None:
    """Enter the checked changes, in order, in the caller's transaction.

    Each record's row is what `store.apply` leaves after its changes in order
    (the same `store.columns`, the same stamps), written once in bulk: a
    rebuild of 100,000 victims must not take a query per change.
    """
    from archive.records.store import KINDS

    finals: dict[str, _Final] = {}
    rows: list[dict[str, Any]] = []
    new_seqs: dict[int, int] = {}
    for change in changes:
        if change["record_kind"] == PROVENANCE:  # an arrival's channel and source: the item is restored already
            if not apply_provenance(session, change["state"]):
                _reject(out, change, "it names an arrival that was not restored")
                continue
            rows.append(_change_row(session, keys, index, change, new_seqs, new_log=new_log, site=site, actor=actor))
            out.changes += 1
            continue
        kind = KINDS[change["record_kind"]]
        parent = PARENTS.get(kind.name)
        if parent is not None and change["state"].get(parent) not in finals:
            _reject(out, change, f"its {parent} names a record that was not restored")
            continue
        stamp = (change["at"], change["by"])
        final = finals.get(change["record_id"])
        if final is None:
            final = finals[change["record_id"]] = _Final(kind.name, change["state"], stamp, stamp)
        final.state, final.last = change["state"], stamp
        if kind.name == "link":
            final.removed = None if change["state"].get("active") else (final.removed or stamp)
        rows.append(_change_row(session, keys, index, change, new_seqs, new_log=new_log, site=site, actor=actor))
        out.changes += 1
    for name in ORDER:
        records = [_row(keys, record_id, final) for record_id, final in finals.items() if final.kind == name]
        for start in range(0, len(records), 5000):
            session.execute(insert(KINDS[name].model.__table__), records[start : start + 5000])  # type: ignore[attr-defined]
        out.records += len(records)
    for start in range(0, len(rows), 5000):
        session.execute(insert(RecordChange.__table__), rows[start : start + 5000])  # type: ignore[attr-defined]


def restore_records(rebuilt: Archive, backend: Any, identities: list[Any], index: LogIndex | None,
                    *, new_log: bool, marker_claim: str, log_size: int) -> Restored:
    """Read the site's journal, check it against the site's log, and enter what holds (one transaction)."""
    from archive.db import transaction
    from archive.records.journal import mark_published, read_journal

    out = Restored()
    read = read_journal(backend, identities)
    out.objects = read.objects
    out.problems += read.unreadable
    if not read.objects and (index is None or not index.records):
        return out
    if index is None:
        out.problems.append({"journal": f"{read.objects} journal objects", "problem": "records were NOT restored: "
                             "the site has no custody log that verifies, so no change in its journal can be checked"})
        return out
    changes = checked_changes(index, read, out)
    keys = rebuilt.runtime.keys.catalog()
    with transaction(rebuilt.engine) as session:
        _load_vocab(session, index, read, out, new_log=new_log, actor=rebuilt.actor)
        replay(session, keys, index, changes, out, new_log=new_log, site=backend.name, actor=rebuilt.actor)
        if not new_log:  # the site holds these already: the rebuilt archive must not publish them again
            from archive.records.journal import vocab_document

            mark_published(session, backend.name, marker_claim, log_size, vocab_document(session))
    return out
