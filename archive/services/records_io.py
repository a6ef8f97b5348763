"""Import and export of incidents and victims (the interchange files), and loading a vocabulary.

An import is one transaction for both files, and custodians' only: a row may
rewrite any record, a withheld name included. The files are read a chunk of
rows at a time; each row is checked (by `archive.records.rules`, the rules
forms use) and written as it comes, and a file with any bad row rolls the
whole transaction back, so nothing is imported; the report lists every bad
row with its file and line. Memory holds one chunk, the refs seen (to find
duplicates) and 32 bytes per change (the batch's Merkle root), never the
file. A row whose ref the archive holds already updates that record (with
history) when it differs and is left alone when it does not, so importing
the same file again changes nothing: no new rows, no new events. A column
the file does not have leaves that field as it is (a new record gets the
default); rows absent from a later file are left as they are.

Custody: one event per file, carrying the Merkle root of the commitments of
every record the file changed (`changes.BatchWriter`, the streaming
`record_batch`); the rows themselves are written in bulk (SQLAlchemy Core,
one statement per few thousand rows), so a spreadsheet of 100,000 victims
imports in seconds.

Export writes the same format back, to a new file (an existing one only with
`force`) readable by its owner only; CSV cells that a spreadsheet would run
as a formula get one leading `'`, which import drops again
(`interchange.escape`). Names a family asked to withhold are never exported,
whatever the role (empty name, `name_withheld` true); importing such a row
back keeps the name the archive holds, and a row lifting the withholding
must give the name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import Table, bindparam, insert, update
from sqlmodel import col, select

from archive.custody.log import utc_now
from archive.db import transaction
from archive.records import interchange
from archive.records.changes import BatchWriter, Change, new_id
from archive.records.common import check_text, record_keys, require
from archive.records.interchange import CONSENT_COLUMNS, INCIDENTS, VICTIMS, Parsed
from archive.records.rules import (
    FIELDS,
    VICTIM_FIELDS,
    consent_state,
    incident_state,
    parse_attribution,
    victim_state,
)
from archive.records.store import KINDS, Kind, columns, state_of
from archive.records.tables import Consent, Incident, Victim, VocabTerm
from archive.records.vocab import VOCABULARIES, Vocab
from archive.roles import Role
from archive.services.errors import Forbidden, Invalid

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive
    from archive.keys.catalog import CatalogKeys

REASON = "imported"
CONSENT_SCOPE = "un_bodies"  # the scope the interchange columns record
CHUNK = 5000  # rows per bulk statement
QUERY_CHUNK = 900  # values per IN (...) (SQLite allows 999 parameters in old builds)
ANALYZE_AFTER = 10_000  # changes written by one import: enough to refresh the planner's statistics
MAX_VOCAB_BYTES = 16 << 20  # a vocabulary of every party and place of a conflict is well under 1 MB
RECORD_TABLES = ("incidents", "attributions", "victims", "consents", "record_changes")


@dataclass
class Plan:
    """What one file writes, a chunk of rows at a time: new and changed rows per kind and the changes for
    the log (emptied by `flush`), and the file's counts (kept)."""

    inserts: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    updates: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def write(self, kind: str, record_id: str, state: dict[str, Any], new: bool, change: str,
              reason: str = REASON) -> None:
        (self.inserts if new else self.updates).setdefault(kind, []).append((record_id, state))
        self.changes.append(Change(record_id, kind, change, state, reason))

    def count(self, old: dict[str, Any] | None, changed: bool) -> None:
        if not changed:
            self.unchanged += 1
        elif old is None:
            self.created += 1
        else:
            self.updated += 1

    def flush(self, session: Session, keys: CatalogKeys, batch: BatchWriter, kinds: tuple[str, ...],
              actor: str) -> None:
        """Write the chunk's rows and their changes (sealed, bound to their commitments), then forget them."""
        for kind in kinds:
            _bulk(session, keys, self, kind, batch.at, actor)
        batch.add(self.changes)
        self.inserts, self.updates, self.changes = {}, {}, []


class _Refused(Exception):
    """Raised inside the transaction when any row is bad, so nothing at all is written."""


def batched(rows: Iterator[Any], size: int) -> Iterator[list[Any]]:
    """`rows` a list of `size` at a time (itertools.batched arrives with Python 3.12)."""
    while chunk := list(islice(rows, size)):
        yield chunk


def _chunks(values: list[Any], size: int = QUERY_CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _by_ref(session: Session, model: Any, refs: Iterable[str]) -> dict[str, Any]:
    """The rows of `model` whose ref is one of `refs`, by ref (one query per chunk, never one per row)."""
    found: dict[str, Any] = {}
    for chunk in _chunks(sorted(set(refs) - {""})):
        for row in session.exec(select(model).where(col(model.ref).in_(chunk))).all():
            found[row.ref] = row
    return found


def _ref_of(fields: dict[str, Any]) -> str:
    value = fields.get("ref")
    return value.strip() if isinstance(value, str) else ""


def _fresh(parsed: Parsed, seen: dict[str, int], rows: list[tuple[int, dict[str, Any]]]) \
        -> list[tuple[int, dict[str, Any]]]:
    """The rows of a chunk whose ref no earlier line of the file used (the others each reported); `seen`
    (ref -> first line) is all the file's rows leave behind."""
    fresh = []
    for line, fields in rows:
        ref = _ref_of(fields)
        if ref and ref in seen:
            parsed.problem(line, f"ref: duplicate ref {ref!r} (first on line {seen[ref]})")
            continue
        if ref:
            seen[ref] = line
        fresh.append((line, fields))
    return fresh


def _import_incidents(session: Session, keys: CatalogKeys, vocab: Vocab, parsed: Parsed, batch: BatchWriter,
                      actor: str, bad: set[str]) -> Plan:
    """The incidents file, a chunk at a time; `bad` gets the refs of its bad rows (victims of them are not
    "unknown incident" too)."""
    from archive.services.incidents import attribution_state

    plan = Plan(extra={"attributions": 0})
    spec = KINDS["incident"]
    seen: dict[str, int] = {}
    for chunk in batched(parsed.rows(), CHUNK):
        rows = _fresh(parsed, seen, chunk)
        existing = _by_ref(session, Incident, (_ref_of(f) for _, f in rows))
        for line, fields in rows:
            ref = _ref_of(fields)
            row = existing.get(ref)
            old = state_of(keys, spec, row) if row is not None else None
            try:  # a column the file does not have leaves that field as the archive holds it
                state = incident_state(vocab, fields if old is None else {**_given(old, FIELDS), **fields})
            except Invalid as exc:
                parsed.problem(line, str(exc))
                bad.add(ref)
                continue
            changed = old is None or {**old, **state} != old
            plan.count(old, changed)
            if not changed:
                continue
            record_id = row.id if row is not None else new_id(spec.prefix)
            plan.write("incident", record_id, {**(old or {}), **state}, old is None,
                       "create" if old is None else "edit")
            if old is None or old.get("attribution") != state["attribution"]:
                parties, kind = parse_attribution(vocab, state["attribution"])
                plan.write("attribution", new_id("att"), attribution_state(record_id, parties, kind, REASON, []),
                           True, "create")
                plan.extra["attributions"] += 1
        plan.flush(session, keys, batch, ("incident", "attribution"), actor)
    return plan


def _incident_ids(session: Session, wanted: set[str]) -> dict[str, str]:
    """incident_ref -> id, by ref first, else by id (the archive's rows, this import's already written)."""
    ids: dict[str, str] = {}
    for chunk in _chunks(sorted(wanted)):
        for ref, incident_id in session.exec(select(Incident.ref, Incident.id)
                                             .where(col(Incident.ref).in_(chunk))).all():
            ids[ref] = incident_id
    for chunk in _chunks(sorted(wanted - set(ids))):
        for incident_id in session.exec(select(Incident.id).where(col(Incident.id).in_(chunk))).all():
            ids[incident_id] = incident_id
    return ids


def _consents(session: Session, victim_ids: list[str]) -> dict[str, Consent]:
    """Each victim's latest consent row of the interchange's scope, in the custody log's order (an editable
    time column could make a withdrawn consent current again)."""
    from archive.services.victims import consents_in_log_order

    latest: dict[str, Consent] = {}
    for chunk in _chunks(victim_ids):
        for row in consents_in_log_order(session, list(chunk), CONSENT_SCOPE):
            latest[row.victim_id] = row
    return latest


def _import_victims(session: Session, keys: CatalogKeys, vocab: Vocab, parsed: Parsed, batch: BatchWriter,
                    actor: str, bad_incidents: set[str]) -> Plan:
    plan = Plan(extra={"consents": 0})
    spec, consent_spec = KINDS["victim"], KINDS["consent"]
    seen: dict[str, int] = {}
    for chunk in batched(parsed.rows(), CHUNK):
        rows = _fresh(parsed, seen, chunk)
        wanted = {str(f.get("incident_ref") or "").strip() for _, f in rows} - {""}
        incidents = _incident_ids(session, wanted - bad_incidents)
        existing = _by_ref(session, Victim, (_ref_of(f) for _, f in rows))
        consents = _consents(session, [row.id for row in existing.values()])
        for line, fields in rows:
            incident_ref = str(fields.get("incident_ref") or "").strip()
            try:
                if incident_ref and incident_ref not in incidents and incident_ref not in bad_incidents:
                    raise Invalid(f"incident_ref: unknown incident {incident_ref!r} (not in this import nor the "
                                  "archive)")
                row = existing.get(_ref_of(fields))
                old = state_of(keys, spec, row) if row is not None else None
                given = fields if old is None else {**_given(old, VICTIM_FIELDS), **fields}
                state = victim_state(vocab, given, incidents.get(incident_ref) or "")
                if old is not None:
                    _keep_withheld(old, state, fields)
                record_id = row.id if row is not None else new_id(spec.prefix)
                consent = _consent_fields(fields, record_id)
            except Invalid as exc:
                parsed.problem(line, str(exc))
                continue
            if incident_ref in bad_incidents:
                continue  # checked, but its incident is a bad row (reported): nothing to write it under
            changed = old is None or {**old, **state} != old
            if changed:
                plan.write("victim", record_id, {**(old or {}), **state}, old is None,
                           "create" if old is None else "edit")
            if consent is not None:
                changed |= _plan_consent(plan, keys, consent_spec, consents.get(record_id), consent)
            plan.count(old, changed)
        plan.flush(session, keys, batch, ("victim", "consent"), actor)
    return plan


def _given(old: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    """A stored state as the columns a file would give it: what a row's absent columns leave unchanged."""
    return {c: old[c] for c in columns if c in old}


def _keep_withheld(old: dict[str, Any], state: dict[str, Any], fields: dict[str, Any]) -> None:
    """A row about a record the archive holds: keep its status, and never lose a withheld name.

    An export never holds a withheld name (its row has `name_withheld` true
    and no name), so such a row keeps the archive's name; a row that lifts
    the withholding must give the name, since an empty one would erase what
    the family gave.
    """
    state["status"], state["merged_into"] = old.get("status", "active"), old.get("merged_into")
    if not old.get("name_withheld") or not old.get("name"):
        return
    if fields.get("name_withheld") in (None, ""):  # an empty cell never lifts what the family asked
        state["name_withheld"] = True
    if state["name_withheld"] and not state["name"]:
        state["name"] = old.get("name")
    elif not state["name_withheld"] and not check_text(fields.get("name"), "name", 255):
        raise Invalid("name_withheld: to lift a withheld name, give the name in the same row (an empty name "
                      "would erase it)")


def _consent_fields(fields: dict[str, Any], victim_id: str) -> dict[str, Any] | None:
    """The consent record a victim row's consent columns give (scope un_bodies), or None if they are empty."""
    given = {c: fields.get(c) for c in CONSENT_COLUMNS if fields.get(c) not in (None, "")}
    if not given:
        return None
    answer = str(given.get("family_consent") or "").strip()
    if not answer:
        raise Invalid("family_consent: required when consent_date or consent_recorded_by is given")
    return consent_state(victim_id, CONSENT_SCOPE, answer, given.get("consent_date"), given.get("consent_recorded_by"))


def _plan_consent(plan: Plan, keys: CatalogKeys, spec: Kind, row: Consent | None, state: dict[str, Any]) -> bool:
    """Plan the consent change a row asks for; whether there is one. The document and note it rests on,
    which the file does not hold, stay as recorded."""
    if row is not None:
        old = state_of(keys, spec, row)
        state = {**old, **state, "document": old.get("document"), "note": old.get("note")}
        if state == old:
            return False
    change = "withdraw" if state["status"] == "withdrawn" else "consent"
    plan.write("consent", row.id if row is not None else new_id(spec.prefix), state, row is None, change)
    plan.extra["consents"] += 1
    return True


def _bulk(session: Session, keys: CatalogKeys, plan: Plan, kind: str, at: str, actor: str) -> None:
    """Write a kind's new and changed rows with Core statements (a few thousand rows each)."""
    spec = KINDS[kind]
    table: Table = spec.model.__table__  # type: ignore[attr-defined]
    fields = spec.model.model_fields
    stamps_new = {k: v for k, v in (("created_at", at), ("updated_at", at), ("created_by", actor),
                                    ("at", at), ("by", actor)) if k in fields}
    stamps_old = {k: v for k, v in (("updated_at", at), ("at", at), ("by", actor)) if k in fields}
    rows = [{"id": rid, **columns(spec, keys, rid, state), **stamps_new} for rid, state in plan.inserts.get(kind, [])]
    for chunk in _chunks(rows, CHUNK):
        session.execute(insert(table), chunk)
    rows = [{"row_id": rid, **columns(spec, keys, rid, state), **stamps_old}
            for rid, state in plan.updates.get(kind, [])]
    if rows:
        statement = update(table).where(table.c.id == bindparam("row_id"))
        for chunk in _chunks(rows, CHUNK):
            session.connection().execute(statement, chunk)


def _file_report(plan: Plan | None, parsed: Parsed, event: tuple[int, str] | None) -> dict[str, Any]:
    errors = [p.as_dict() for p in sorted(parsed.problems, key=lambda p: p.line)]
    report: dict[str, Any] = {"file": parsed.file, "rows": parsed.count,
                              "created": plan.created if plan else 0, "updated": plan.updated if plan else 0,
                              "unchanged": plan.unchanged if plan else 0,
                              "errors": errors, "error_count": parsed.total,
                              "event": {"seq": event[0], "merkle_root": event[1]} if event else None}
    if plan is not None:
        report.update(plan.extra)
    return report


def import_records(archive: Archive, *, incidents: str | Path | BinaryIO | None = None,
                   victims: str | Path | BinaryIO | None = None, format: str = "csv",
                   role: Role) -> dict[str, Any]:
    """Import an incidents file, a victims file, or both, in one transaction; the report.

    Custodians only: a row may rewrite any record, or lift a name a family
    asked to withhold, which only a custodian sees. A column the file does
    not have leaves that field of an existing record as it is (a new record
    gets the default). The files are read a chunk of rows at a time and
    written as they are checked, inside the one transaction: memory holds a
    chunk, the refs seen (duplicates) and 32 bytes per change (the Merkle
    root), not the file; a bad row anywhere rolls everything back.

    The report has, per file given: rows, created, updated, unchanged,
    errors [{file, line, reason}] (capped; `error_count` counts all), and the
    custody event (seq and Merkle root) or None when the file changed
    nothing; `imported` is false when any row was bad, and then nothing was
    written.
    """
    if role != Role.CUSTODIAN:  # a row may rewrite or lift a withheld name, which only a custodian sees
        raise Forbidden(f"importing records needs the custodian role, not {role}: an import may change any "
                        "record, withheld names included")
    interchange.check_format(format)
    if incidents is None and victims is None:
        raise Invalid("give an incidents file, a victims file, or both")
    keys = record_keys(archive, "importing records")
    files: dict[str, Parsed | None] = {"incidents": None, "victims": None}
    try:
        files["incidents"] = interchange.read(incidents, INCIDENTS, format) if incidents is not None else None
        files["victims"] = interchange.read(victims, VICTIMS, format) if victims is not None else None
        plans: dict[str, Plan] = {}
        events: dict[str, tuple[int, str] | None] = {}
        written = 0
        try:
            with transaction(archive.engine) as session:
                vocab = Vocab.read(session)
                at, actor = utc_now(), archive.actor
                bad: set[str] = set()
                for what, run in (("incidents", _import_incidents), ("victims", _import_victims)):
                    parsed = files[what]
                    if parsed is None:
                        continue
                    batch = BatchWriter(session, keys, actor, what=what, at=at)
                    plans[what] = run(session, keys, vocab, parsed, batch, actor, bad)
                    written += batch.count
                    if not any(f.total for f in files.values() if f is not None):
                        events[what] = batch.finish()
                if any(f.total for f in files.values() if f is not None):
                    raise _Refused
        except _Refused:
            plans, events, written = {}, {}, 0
    finally:
        for parsed in files.values():
            if parsed is not None:
                parsed.close()
    if written >= ANALYZE_AFTER:
        _analyze(archive)
    report: dict[str, Any] = {"imported": not any(f.total for f in files.values() if f is not None)}
    for what, parsed in files.items():
        if parsed is not None:
            report[what] = _file_report(plans.get(what), parsed, events.get(what))
    return report


def _analyze(archive: Archive) -> None:
    """Fresh planner statistics after a large import, so the first `stats` is planned on the real counts
    (an ANALYZE of the record tables, sampled on SQLite; then SQLite's PRAGMA optimize)."""
    from sqlalchemy import text

    with archive.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE " + ", ".join(RECORD_TABLES)))
        else:  # sampled (analysis_limit): a few hundred milliseconds whatever the size
            conn.execute(text("PRAGMA analysis_limit=1000"))
            for table in RECORD_TABLES:
                conn.execute(text(f"ANALYZE {table}"))
            conn.execute(text("PRAGMA optimize"))
        conn.commit()


def _export_incidents(session: Session, keys: CatalogKeys) -> Iterator[dict[str, Any]]:
    spec = KINDS["incident"]
    for row in session.exec(select(Incident).order_by(col(Incident.ref))).all():
        yield state_of(keys, spec, row)


def _export_victims(session: Session, keys: CatalogKeys) -> Iterator[dict[str, Any]]:
    spec, consent_spec = KINDS["victim"], KINDS["consent"]
    refs = dict(session.exec(select(Incident.id, Incident.ref)).all())
    rows = session.exec(select(Victim).where(Victim.status == "active").order_by(col(Victim.ref))).all()
    consents = _consents(session, [row.id for row in rows])
    for row in rows:
        state = state_of(keys, spec, row)
        out = {**state, "incident_ref": refs.get(row.incident_id, row.incident_id)}
        if state.get("name_withheld"):
            out["name"] = None  # never exported, whatever the role
        consent = consents.get(row.id)
        if consent is not None:
            given = state_of(keys, consent_spec, consent)
            out.update(family_consent=given["status"], consent_date=given.get("given_on"),
                       consent_recorded_by=given.get("recorded_by"))
        yield out


def export_records(archive: Archive, *, incidents: str | Path | None = None, victims: str | Path | None = None,
                   format: str = "csv", role: Role, force: bool = False) -> dict[str, Any]:
    """Write incidents and/or victims in the interchange format; {what: {"file", "rows"}}.

    Victims merged into another are left out (the one they were merged into
    stands for them), so a re-import counts nobody twice; withheld names are
    never written. An existing file is replaced only with `force`; files
    are written readable by their owner only (they hold names and places).
    """
    require(role, "exporting records")
    interchange.check_format(format)
    if incidents is None and victims is None:
        raise Invalid("give an incidents file, a victims file, or both")
    if incidents is not None and victims is not None and Path(incidents).absolute() == Path(victims).absolute():
        raise Invalid("give the incidents and the victims different files")
    for path in (incidents, victims):
        if path is not None:
            interchange.check_target(path, force)  # both checked before either is written
    keys = record_keys(archive, "exporting records")
    report: dict[str, Any] = {}
    with transaction(archive.engine) as session:
        if incidents is not None:
            report["incidents"] = {"file": str(incidents), "rows": interchange.write(
                incidents, INCIDENTS, _export_incidents(session, keys), format, force=force)}
        if victims is not None:
            report["victims"] = {"file": str(victims), "rows": interchange.write(
                victims, VICTIMS, _export_victims(session, keys), format, force=force)}
    return report


def load_vocab(archive: Archive, path: str | Path, *, role: Role) -> dict[str, Any]:
    """Load a vocabulary file (`evidence-vocab/1`): terms added or relabelled, never removed; the report.

    Custodians only: the vocabulary is what every record and statistic is
    checked against. Loaded into an archive that holds no vocabulary yet, it
    replaces the default Syrian set, which is then never added. A load that
    changes the table is a custody event carrying the table's digest
    (`archive.records.vocab.record_load`), which `log verify` holds it against.
    """
    from archive.records import vocab as vocabularies

    if role != Role.CUSTODIAN:
        raise Forbidden(f"loading a vocabulary needs the custodian role, not {role}")
    name = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_VOCAB_BYTES + 1)  # a special file (/dev/zero) too: never more than this
        if len(raw) > MAX_VOCAB_BYTES:
            raise Invalid(f"{name}: larger than {MAX_VOCAB_BYTES // (1 << 20)} MB: not a vocabulary file")
        text = raw.decode("utf-8-sig")
    except OSError as exc:
        raise Invalid(f"{name}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise Invalid(f"{name}: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Invalid(f"{name}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    with transaction(archive.engine) as session:
        counts = vocabularies.load(session, data, where=name)
        if any(c["added"] or c["updated"] for c in counts.values()):  # the statistics follow it: a custody event
            vocabularies.record_load(session, archive.actor)
    return {"file": name, "name": data.get("name"), "vocabularies": counts,
            "added": sum(c["added"] for c in counts.values()), "updated": sum(c["updated"] for c in counts.values())}


def show_vocab(archive: Archive, vocabulary: str | None = None, *, role: Role) -> dict[str, list[dict[str, Any]]]:
    """The vocabularies (or one): each term's key, label, group and former names. Clear data: no key needed."""
    require(role, "reading the vocabularies")
    if vocabulary is not None and vocabulary not in VOCABULARIES:
        raise Invalid(f"vocabulary: {vocabulary!r} is not one of {', '.join(VOCABULARIES)}")
    with transaction(archive.engine) as session:
        vocab = Vocab.read(session)
        names = [vocabulary] if vocabulary else list(VOCABULARIES)
        return {name: [_term(vocab.terms[name][key]) for key in vocab.keys(name)] for name in names}


def _term(term: VocabTerm) -> dict[str, Any]:
    return {"key": term.key, "label": term.label, "group": term.group, "former_names": list(term.former_names)}
