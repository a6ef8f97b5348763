"""`log verify` for records: does every incident, victim, source and link follow from the log?

Why: whoever holds the database can edit a victim's clear `civilian` or
`governorate_of_death` column, or an incident's attribution, and every
statistic follows. The log holds a salted commitment to each state a record
ever had, so:

- every `record_changes` row must be carried by its custody event: the event's
  commitment (or, for an imported file, the Merkle root over its batch's
  commitments, leaf i in order) and who, when, which record, which change;
- every row's sealed state and salt must give its commitment (needs the
  catalog key);
- every current record row must hold exactly its latest change's state:
  clear columns, sealed fields and derived columns (needs the catalog key);
- no record change the log records may lack its row, and no record may lack
  its changes (a row added behind the log's back), nor a changed record its row;
- no record row and no change row may be *pending* (key version 0): records
  are only ever written under the catalog key, so a pending row is an edit
  (one that would otherwise turn every check of its record off);
- every row's bookkeeping stamps (`at`, `by`, `created_at`, `created_by`,
  `updated_at`, a link's `removed_at`/`removed_by`) are its changes' own, as
  `store.apply` and the rebuild (`archive.records.replay`) stamp them: the
  current consent is the latest by `at`, so a back-dated row is an undone
  withdrawal;
- every boolean column holds 0 or 1 (SQLite keeps any integer there; the
  ORM reads 2 as true, the statistics' `= 1` does not count it);
- the vocabulary table has the digest of the log's latest vocabulary load
  (or, with none, is empty or the default set).

Without the catalog key the states cannot be opened (no sealed state, no
clear column against its state, no link's removal); the cross-check then says
commitments were not checked ("not fully verified"). Record changes that a
site's journal does not hold yet are counted per site (a warning: `evidence
log checkpoint` publishes them).
Mismatches name the record by id and the column by name, never a value.
The same comparison of changes with their event (`event_disagrees`) checks a
site's journal in `rebuild-catalog`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from archive.db import read_only
from archive.records.provenance import PREFIX as PROVENANCE_PREFIX
from archive.records.tables import RecordChange

if TYPE_CHECKING:
    from archive.context import Archive
    from archive.custody.crosscheck import CrossCheck
    from archive.custody.expected import LogIndex
    from archive.keys.catalog import CatalogKeys

PAGE = 1000
RECORD = "record"


def event_disagrees(event: dict[str, Any], changes: Sequence[dict[str, Any]]) -> str | None:
    """Why these changes (each: record_id, record_kind, change, at, by, commitment, batch_index) are not what
    the log's event `event` (its entry: seq, time, actor, details) carries; None when they are exactly that."""
    from archive.records.changes import batch_root

    details = event.get("details") or {}
    seq = event.get("seq")
    # An event a rebuild wrote again into a new log says who made the change and when (it made the event).
    again = "recovered_from_seq" in details
    who, when = (details.get("recorded_by"), details.get("recorded_at")) if again else (event.get("actor"),
                                                                                       event.get("time"))
    if any(c["by"] != who or c["at"] != when for c in changes):
        return f"who or when is not what the custody log's event {seq} says"
    if "merkle_root" in details:
        ordered = sorted(changes, key=lambda c: c["batch_index"] if c["batch_index"] is not None else -1)
        if [c["batch_index"] for c in ordered] != list(range(len(ordered))) or details.get("records") != len(ordered):
            return (f"the custody log's import event {seq} holds {details.get('records')} changes, and "
                    f"{len(ordered)} were found for it")
        if batch_root([c["commitment"] for c in ordered]) != details.get("merkle_root"):
            return f"the Merkle root of its import's commitments is not the one the custody log's event {seq} holds"
        return None
    if len(changes) != 1:
        return f"{len(changes)} changes claim the custody log's event {seq}, which carries one"
    change = changes[0]
    if details.get("commitment") != change["commitment"]:
        return f"its commitment is not the one the custody log's event {seq} holds"
    if (details.get("record"), details.get("record_kind"), details.get("change")) != (
            change["record_id"], change["record_kind"], change["change"]):
        return f"the custody log's event {seq} is about another record or change"
    return None


def change_fields(row: RecordChange) -> dict[str, Any]:
    return {"record_id": row.record_id, "record_kind": row.record_kind, "change": row.change, "at": row.at,
            "by": row.by, "commitment": row.commitment, "batch_index": row.batch_index}


def _changes(session: Session) -> Iterator[list[RecordChange]]:
    """Every change row, grouped by its custody event (rows without one come alone)."""
    stmt = select(RecordChange).order_by(col(RecordChange.event_seq), col(RecordChange.id))
    group: list[RecordChange] = []
    for row in session.exec(stmt.execution_options(yield_per=PAGE)):
        if group and (row.event_seq is None or row.event_seq != group[-1].event_seq):
            yield group
            group = []
        group.append(row)
    if group:
        yield group


def _holds(keys: CatalogKeys, row: RecordChange) -> str | None:
    from archive.catalog.sealing import open_row
    from archive.records.changes import TABLE, record_commitment
    from archive.services.errors import Locked

    try:
        fields = open_row(keys, TABLE, row.commitment, row.key_version, row.sealed)
    except Locked:
        return None  # a pending row: reported as such by the caller
    except Exception as exc:  # noqa: BLE001 - a row that does not open is a finding, not a crash
        return f"its sealed state does not open ({type(exc).__name__})"
    if record_commitment(row.record_id, str(fields.get("salt")), fields.get("state") or {}) != row.commitment:
        return "its sealed state and salt do not give the commitment the custody log holds"
    return None


@dataclass
class _Seen:
    """Per record: its latest change row's id, and the (at, by) of its first and latest changes."""

    latest: dict[str, int] = field(default_factory=dict)
    first: dict[str, tuple[str, str]] = field(default_factory=dict)
    last: dict[str, tuple[str, str]] = field(default_factory=dict)


def _check_changes(session: Session, keys: CatalogKeys | None, index: LogIndex, result: CrossCheck,
                   history: _Seen) -> set[int]:
    from archive.catalog.sealing import PENDING

    seen: set[int] = set()
    for group in _changes(session):
        for row in group:
            history.latest[row.record_id] = int(row.id or 0)
            history.first.setdefault(row.record_id, (row.at, row.by))
            history.last[row.record_id] = (row.at, row.by)
            if row.key_version == PENDING:
                result.add(row.record_id, f"its change of {row.at} is marked pending (key version 0), and record "
                           "changes are only ever written under the catalog key: the row was altered", RECORD)
        seq = group[0].event_seq
        if seq is None:
            result.add(group[0].record_id, "a change of this record is bound to no custody event", RECORD)
            continue
        seen.add(seq)
        event = index.records.get(seq)
        if event is None:
            result.add(group[0].record_id, f"its change of {group[0].at} claims custody event {seq}, which is no "
                       "record change the log holds", RECORD)
            continue
        why = event_disagrees(event, [change_fields(r) for r in group])
        if why is not None:
            result.add(group[0].record_id, why, RECORD)
        if keys is not None:
            for row in group:
                if (problem := _holds(keys, row)) is not None:
                    result.add(row.record_id, problem, RECORD)
    return seen


def _missing_rows(index: LogIndex, seen: set[int], result: CrossCheck) -> None:
    for seq in sorted(set(index.records) - seen):
        details = index.records[seq].get("details") or {}
        if "merkle_root" in details:
            result.add(f"import event {seq}", f"the custody log records an import of {details.get('records')} "
                       "changes, and the catalog holds none of them", RECORD)
        else:
            result.add(str(details.get("record")), f"the custody log records its {details.get('change')} "
                       f"(event {seq}), and the catalog holds no change row for it", RECORD)


def _differs(keys: CatalogKeys, kind: Any, row: Any, state: dict[str, Any]) -> list[str]:
    """The columns (names only) of `row` that are not what `state` makes them."""
    from archive.catalog.sealing import open_row

    wrong = [f for f in kind.clear if getattr(row, f) != state.get(f)]
    try:
        sealed = open_row(keys, kind.table, row.id, row.key_version, row.sealed)
    except Exception:  # noqa: BLE001 - reported as a finding
        return [*wrong, "sealed"]
    wrong += [f"sealed {f}" for f in kind.sealed if sealed.get(f) != state.get(f)]
    wrong += [f for f, value in kind.derived(state, keys).items() if getattr(row, f) != value]
    return wrong


def _stamps(kind: Any, row: Any, history: _Seen, removed: tuple[str, str] | None | bool) -> list[str]:
    """The bookkeeping columns (names only) of `row` that are not its changes' (as `store._stamp` writes them,
    and `replay._row`): created from the first change, updated, at and by from the latest; a link's removal
    from the first change of its last run of inactive states (`removed`: False when it cannot be known)."""
    fields = kind.model.model_fields
    first, last = history.first[row.id], history.last[row.id]
    expected = {"created_at": first[0], "created_by": first[1], "updated_at": last[0], "at": last[0],
                "by": last[1]}
    wrong = [name for name, value in expected.items() if name in fields and getattr(row, name) != value]
    if removed is not False:
        at, by = removed if isinstance(removed, tuple) else (None, None)
        wrong += [name for name, value in (("removed_at", at), ("removed_by", by)) if getattr(row, name) != value]
    return wrong


def _removals(session: Session, keys: CatalogKeys, ids: list[str]) -> dict[str, tuple[str, str] | None]:
    """Per link: (at, by) of the first change of its last run of inactive states, None while active."""
    from archive.records.changes import opened

    out: dict[str, tuple[str, str] | None] = {}
    rows = session.exec(select(RecordChange).where(col(RecordChange.record_id).in_(ids))
                        .order_by(col(RecordChange.event_seq), col(RecordChange.batch_index),
                                  col(RecordChange.id))).all()
    for change in rows:
        try:
            active = bool(opened(keys, change)["state"].get("active"))
        except Exception:  # noqa: BLE001 - reported by the change check
            out.pop(change.record_id, None)
            continue
        out[change.record_id] = None if active else (out.get(change.record_id) or (change.at, change.by))
    return out


def _not_boolean(session: Session, kind: Any, ids: list[str]) -> dict[str, list[str]]:
    """Per row: its boolean columns holding neither 0 nor 1 (SQLite stores any value a statement writes)."""
    from sqlalchemy import Boolean, Integer, cast, or_
    from sqlalchemy import select as sa_select

    table = kind.model.__table__
    flags = [c for c in table.columns if isinstance(c.type, Boolean)]
    if not flags:
        return {}
    sqlite = session.get_bind().dialect.name == "sqlite"
    out: dict[str, list[str]] = {}
    for column in flags:
        raw = column if sqlite else cast(column, Integer)  # SQLite: no CAST ('true' would cast to 0)
        bad = raw.notin_([0, 1]) if column.nullable else or_(raw.is_(None), raw.notin_([0, 1]))
        stmt = sa_select(table.c.id).where(table.c.id.in_(ids), bad)
        for (record_id,) in session.execute(stmt):
            out.setdefault(record_id, []).append(column.name)
    return out


def _check_rows(session: Session, keys: CatalogKeys | None, result: CrossCheck, history: _Seen) -> None:
    from archive.catalog.sealing import PENDING
    from archive.records.changes import opened
    from archive.records.store import KINDS

    latest = history.latest
    held: set[str] = set()
    for kind in KINDS.values():
        after = ""
        while True:
            model: Any = kind.model
            rows = list(session.exec(select(model).where(col(model.id) > after).order_by(col(model.id))
                                     .limit(PAGE)).all())
            if not rows:
                break
            after = rows[-1].id
            ids = [r.id for r in rows]
            flags = _not_boolean(session, kind, ids)
            changes = {}
            removals: dict[str, tuple[str, str] | None] = {}
            if keys is not None:
                changes = {c.record_id: c for c in session.exec(select(RecordChange).where(
                    col(RecordChange.id).in_([latest[i] for i in ids if i in latest]))).all()}
                if kind.name == "link":
                    removals = _removals(session, keys, [i for i in ids if i in latest])
            for row in rows:
                held.add(row.id)
                result.records += 1
                if row.id in flags:
                    names = flags[row.id]
                    result.add(row.id, f"its {', '.join(names)} column{'s hold' if len(names) > 1 else ' holds'} a "
                               "value that is neither true nor false (0 or 1): the statistics would not count it as "
                               "its state says", RECORD)
                if row.key_version == PENDING:
                    result.add(row.id, f"its {kind.name} row is marked pending (key version 0), and records are only "
                               "ever written under the catalog key: the row was altered", RECORD)
                if row.id not in latest:
                    result.add(row.id, f"the catalog holds this {kind.name} and no change of it: it was not "
                               "written through the log", RECORD)
                    continue
                stamps = _stamps(kind, row, history, removals.get(row.id, None) if row.id in removals else False)
                if stamps:
                    result.add(row.id, f"its {', '.join(stamps)} {'is' if len(stamps) == 1 else 'are'} not what its "
                               "changes say (who made them and when, as the custody log's events carry them)", RECORD)
                change = changes.get(row.id)
                if keys is None or change is None:
                    continue
                try:
                    state = opened(keys, change)["state"]
                except Exception:  # noqa: BLE001 - the change check says why it does not open
                    result.add(row.id, "its latest change does not open: its row cannot be held against it", RECORD)
                    continue
                wrong = _differs(keys, kind, row, state)
                if wrong:
                    result.add(row.id, f"its {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not "
                               "its latest change's state (the state the custody log commits to)", RECORD)
    for record_id in sorted(set(latest) - held):
        if record_id.startswith(f"{PROVENANCE_PREFIX}-"):  # an arrival's channel and source record
            _check_provenance(session, keys, result, record_id, latest[record_id])
            continue
        result.add(record_id, "the custody log records changes of this record, and the catalog holds no row "
                   "for it", RECORD)


def _check_provenance(session: Session, keys: CatalogKeys | None, result: CrossCheck, record_id: str,
                      change_id: int) -> None:
    """An arrival's channel and source record against its latest change (they live on the provenance row)."""
    from archive.records.changes import opened
    from archive.records.provenance import differs

    result.records += 1
    change = session.get(RecordChange, change_id)
    if keys is None or change is None:
        return
    try:
        state = opened(keys, change)["state"]
    except Exception:  # noqa: BLE001 - reported by the change check
        return
    wrong = differs(session, state)
    if wrong is None:
        result.add(record_id, "the custody log records a change of this arrival, and the catalog holds no such "
                   "arrival", RECORD)
    elif wrong:
        result.add(record_id, f"its {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not its latest "
                   "change's state (the state the custody log commits to)", RECORD)


def check_records(archive: Archive, index: LogIndex, result: CrossCheck) -> None:
    """Hold every record and every change of one against the log index; mismatches go to `result`."""
    from archive.catalog.sealing import keys_if_unlocked

    keys = keys_if_unlocked(archive) if result.commitments_checked else None
    history = _Seen()
    with Session(read_only(archive.engine)) as session:
        seen = _check_changes(session, keys, index, result, history)
        _missing_rows(index, seen, result)
        _check_rows(session, keys, result, history)
        _check_vocabulary(session, index, result)
        result.unpublished = unpublished(session, _site_names(archive))


def _site_names(archive: Archive) -> list[str]:
    """The storage sites whose journals lag are counted (none for a bare catalog holding no archive settings)."""
    from archive.config import ConfigError

    try:
        return list(archive.config.site_names())
    except ConfigError:
        return []


def _check_vocabulary(session: Session, index: LogIndex, result: CrossCheck) -> None:
    """The vocabulary table against the log's latest vocabulary load (none: empty, or the default set)."""
    from archive.records.vocab import default_digests, digest

    now = digest(session)
    if index.vocabulary is None:
        if now not in default_digests():
            result.add("vocab_terms", "the vocabularies are not the default set, and the custody log records no "
                       "vocabulary load (`vocab load`): they were edited in the database", "vocabulary")
        return
    details = index.vocabulary.get("details") or {}
    if details.get("vocabulary_sha256") != now:
        result.add("vocab_terms", "the vocabularies are not the ones the custody log's latest vocabulary load "
                   f"(event {index.vocabulary.get('seq')}) holds: they were edited in the database", "vocabulary")


def unpublished(session: Session, sites: list[str]) -> dict[str, int]:
    """Per site: how many record changes its journal does not hold yet (`evidence log checkpoint` publishes
    them; the journal cursor says up to which custody event a site has them)."""
    from sqlalchemy import func

    from archive.catalog.jobs import read_cursor
    from archive.records.journal import cursor_name

    out: dict[str, int] = {}
    for site in sites:
        cursor = read_cursor(session, cursor_name(site))
        value = cursor.value if cursor is not None else None
        done = int(value) if value is not None and value.isdigit() else 0
        count = session.exec(select(func.count()).select_from(RecordChange)
                             .where(col(RecordChange.event_seq) >= done)).one()
        if count:
            out[site] = int(count)
    return out
