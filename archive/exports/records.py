"""The records an export carries: `data/records/` (JSON, CSV, schema.json), salts.json and the change events.

Everything here is opened under the catalog key (`Locked` without it) and
shaped by the rules that hold whatever the selection:

- a withheld victim name (the person's: `withheld_people`) is never written:
  the victim goes without its name, and none of its states is opened
  (`changes.json` state null, no salt), since every state holds the name;
- a witness's identity is never written: sources carry alias, kind, url,
  channel and dates; a source state holding an identity (or a person's
  free-text description) is not opened;
- free-text provenance (who handed an item over, the intake note) is never
  written: arrivals carry time, actor id, channel, source id, original name
  and declared type (no original name for an item linked to a victim whose
  name is withheld: a file name may spell it);
- a link's note about a name-withheld victim is not written, nor its states.

`salts.json` holds exactly the included items' salts and the opened changes'
salts, so a reader can recompute each commitment (`archive.custody.commit`,
`archive.records.changes`) and nothing else can be opened.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from archive.db import transaction
from archive.exports import formats
from archive.exports.formats import Withheld
from archive.records.common import record_keys
from archive.records.interchange import cell
from archive.records.store import KINDS, state_of
from archive.records.tables import Attribution, Incident, Link, RecordChange, Source, Victim
from archive.services.errors import NotFound

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive
    from archive.exports.selection import Selection
    from archive.keys.catalog import CatalogKeys

SCHEMA_VERSION = 1
KINDS_WRITTEN = ("items", "incidents", "victims", "sources", "links", "changes")
OPEN_SOURCE_KINDS = ("open_source", "official")  # a publication: its description names no witness
NAME_WITHHELD = "name_withheld"
WITNESS_IDENTITY = "witness_identity"
SOURCE_DESCRIPTION = "witness_description"
PROVENANCE_TEXT = "provenance_free_text"
ORIGINAL_NAME = "original_name_of_withheld_person"
CONSENT_SCOPES = ("un_bodies", "courts", "publication")

# CSV columns per kind: the documentation model's names where it has them (archive.records.rules).
CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "items": ("id", "sha256", "size", "media_type", "original", "part", "commitment", "commitment_event",
              "status", "created_at", "captured_at", "latitude", "longitude", "altitude", "make", "model",
              "width", "height", "duration", "original_names", "received_at", "channels", "incidents", "victims",
              "sources"),
    "incidents": ("id", "ref", "type", "started_at", "started_precision", "governorate", "district", "place",
                  "neighbourhood", "latitude", "longitude", "controlled_by", "attribution", "weapon",
                  "facility_damage", "narrative", "created_at", "updated_at"),
    "victims": ("id", "ref", "incident_id", "incident_ref", "name", "name_withheld", "sex", "age", "age_group",
                "civilian", "professions", "died_under_torture", "governorate_of_death", "governorate_of_origin",
                "date_of_death", "date_documented", "status", "merged_into", "family_consent", "consent_date",
                "consent_courts", "consent_courts_date", "consent_publication", "consent_publication_date",
                "created_at", "updated_at"),
    "sources": ("id", "ref", "kind", "reliability", "alias", "url", "channel", "posted_at", "description",
                "created_at", "updated_at"),
    "links": ("id", "kind", "a_id", "b_id", "certainty", "active", "note", "created_at", "created_by"),
}


@dataclass
class RecordSet:
    """The files under data/records/ (name -> bytes), salts.json's document, the events the changes name,
    the items.json records (for certificates) and what the records withheld (counts)."""

    files: dict[str, bytes]
    salts: dict[str, Any]
    change_events: set[int]
    items: list[dict[str, Any]]
    withheld: list[Withheld] = field(default_factory=list)


# --- items ---------------------------------------------------------------------------------------------------

def item_facts(archive: Archive, item_ids: list[str]) -> dict[str, dict[str, Any]]:
    """{id: {"size", "media_type", "original_name", "sha256"}} for packing and naming originals (`Locked`
    without the catalog key). The original name is the first arrival's (its extension only is used)."""
    from archive.catalog.items import Item, Provenance
    from archive.catalog.secrets import item_secret, provenance_fields

    keys = record_keys(archive, "an export (item hashes and sizes are sealed)")
    out: dict[str, dict[str, Any]] = {}
    with transaction(archive.engine) as session:
        for item_id in item_ids:
            item = session.get(Item, item_id)
            if item is None:
                raise NotFound(f"no item {item_id}")
            secret = item_secret(keys, item)
            first = session.exec(select(Provenance).where(Provenance.item_id == item_id)
                                 .order_by(col(Provenance.id)).limit(1)).first()
            name = provenance_fields(keys, first).get("original_name") if first is not None else None
            out[item_id] = {"size": secret.size, "media_type": item.media_type, "original_name": name,
                            "sha256": secret.sha256}
    return out


def _commitment_event(session: Session, item_id: str, commitment: str) -> int | None:
    from archive.catalog.events import Event
    from archive.custody.log import MESSAGE_DIGEST

    rows = session.exec(select(Event).where(Event.item_id == item_id, Event.event_type == MESSAGE_DIGEST)
                        .order_by(col(Event.seq))).all()
    for row in rows:
        if (row.details or {}).get("commitment") == commitment:
            return int(row.seq)
    return None


def _item_record(session: Session, keys: CatalogKeys, item_id: str, placement: tuple[str, int],
                 sources: set[str], links: list[Link], counts: Counter[str], *, names_withheld: bool = False
                 ) -> tuple[dict[str, Any], str | None]:
    from archive.catalog.fingerprints import ItemFingerprints, open_hashes
    from archive.catalog.items import Item, Provenance
    from archive.catalog.metadata import ItemMetadata, normalized_view
    from archive.catalog.secrets import item_secret, provenance_fields
    from archive.custody.commit import commitment

    item = session.get(Item, item_id)
    if item is None:
        raise NotFound(f"no item {item_id}")
    secret = item_secret(keys, item)
    committed = commitment(item_id, secret.salt, secret.sha256) if secret.salt is not None else None
    meta = session.get(ItemMetadata, item_id)
    prints = session.exec(select(ItemFingerprints).where(ItemFingerprints.item_id == item_id)).first()
    arrivals = []
    for row in session.exec(select(Provenance).where(Provenance.item_id == item_id).order_by(col(Provenance.id))):
        fields = provenance_fields(keys, row)
        if fields.get("source") or fields.get("note"):
            counts[PROVENANCE_TEXT] += 1
        if names_withheld and fields.get("original_name"):
            counts[ORIGINAL_NAME] += 1  # a file name may spell the withheld name
            fields["original_name"] = None
        arrivals.append({"received_at": fields["received_at"], "actor": fields["actor"], "channel": row.channel,
                         "source": row.source_id if row.source_id in sources else None,
                         "original_name": fields.get("original_name"), "declared_type": fields.get("declared_type")})
    own = [ln for ln in links if item_id in (ln.a_id, ln.b_id)]
    record: dict[str, Any] = {
        "id": item_id, "sha256": secret.sha256, "size": secret.size, "media_type": item.media_type,
        "original": placement[0], "part": placement[1], "commitment": committed,
        "commitment_event": _commitment_event(session, item_id, committed) if committed else None,
        "status": item.status, "created_at": item.created_at,
        "metadata": normalized_view(meta, keys),
        "fingerprints": [{"kind": h.kind, "variant": h.variant, "offset_ms": h.offset_ms, "value": f"{h.value:016x}"}
                         for h in open_hashes(keys, item_id, prints.key_version, prints.sealed)]
        if prints is not None else [],
        "provenance": arrivals,
        "links": [{"link": ln.id, "kind": ln.kind, "other": ln.b_id if ln.a_id == item_id else ln.a_id,
                   "certainty": ln.certainty} for ln in own],
        "incidents": sorted(ln.b_id for ln in own if ln.kind == "item_incident"),
        "victims": sorted(ln.b_id for ln in own if ln.kind == "item_victim"),
        "sources": sorted({ln.a_id for ln in own if ln.kind == "source_item"}
                          | {a["source"] for a in arrivals if a["source"]}),
    }
    return record, secret.salt


def _item_row(record: dict[str, Any]) -> dict[str, Any]:
    meta = record.get("metadata") or {}
    return {**{k: record.get(k) for k in CSV_COLUMNS["items"]}, **{k: meta.get(k) for k in (
        "captured_at", "latitude", "longitude", "altitude", "make", "model", "width", "height", "duration")},
        "original_names": [a["original_name"] for a in record["provenance"] if a["original_name"]],
        "received_at": [a["received_at"] for a in record["provenance"]],
        "channels": [a["channel"] for a in record["provenance"] if a["channel"]]}


# --- records -------------------------------------------------------------------------------------------------

def _incident_records(session: Session, keys: CatalogKeys, ids: list[str], attributions: list[str]
                      ) -> list[dict[str, Any]]:
    out = []
    wanted = set(attributions)
    for incident_id in ids:
        row = session.get(Incident, incident_id)
        if row is None:
            continue
        history = []
        for att in session.exec(select(Attribution).where(Attribution.incident_id == incident_id)
                                .order_by(col(Attribution.at), col(Attribution.id))):
            if att.id in wanted:
                history.append({"id": att.id, **state_of(keys, KINDS["attribution"], att), "at": att.at,
                                "by": att.by})
        out.append({"id": row.id, **state_of(keys, KINDS["incident"], row), "started_day": row.started_day,
                    "created_at": row.created_at, "updated_at": row.updated_at, "attributions": history})
    return out


def _victim_records(session: Session, keys: CatalogKeys, ids: list[str], withheld_names: set[str]
                    ) -> list[dict[str, Any]]:
    from archive.services.victims import consent_for

    out = []
    for victim_id in ids:
        row = session.get(Victim, victim_id)
        if row is None:
            continue
        state = state_of(keys, KINDS["victim"], row)
        if victim_id in withheld_names:
            state["name"] = None
            state["name_withheld"] = True
        incident = session.get(Incident, row.incident_id)
        consent, given_on = {}, {}
        for scope in CONSENT_SCOPES:  # the status and date only: who took it and its documents are free text
            current = consent_for(session, victim_id, scope)
            consent[scope] = current.status if current is not None else None
            given_on[scope] = current.given_on if current is not None else None
        out.append({"id": row.id, **state, "incident_ref": incident.ref if incident is not None else None,
                    "anonymous": row.anonymous, "child": row.child, "woman": row.woman,
                    "consent": consent, "consent_given_on": given_on, "created_at": row.created_at,
                    "updated_at": row.updated_at})
    return out


def _person_source(kind: str) -> bool:
    return kind not in OPEN_SOURCE_KINDS


def _source_records(session: Session, keys: CatalogKeys, ids: list[str], counts: Counter[str]
                    ) -> list[dict[str, Any]]:
    out = []
    for source_id in ids:
        row = session.get(Source, source_id)
        if row is None:
            continue
        state = state_of(keys, KINDS["source"], row)
        if state.get("identity"):
            counts[WITNESS_IDENTITY] += 1
        description = state.get("description")
        if description and _person_source(row.kind):
            counts[SOURCE_DESCRIPTION] += 1
            description = None
        out.append({"id": row.id, "ref": row.ref, "kind": row.kind, "reliability": row.reliability,
                    "alias": state.get("alias"), "url": state.get("url"), "channel": state.get("channel"),
                    "posted_at": state.get("posted_at"), "description": description,
                    "created_at": row.created_at, "updated_at": row.updated_at})
    return out


def _link_records(rows: list[Link], keys: CatalogKeys, withheld_names: set[str]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        note = state_of(keys, KINDS["link"], row).get("note")
        if {row.a_id, row.b_id} & withheld_names:
            note = None
        out.append({"id": row.id, "kind": row.kind, "a_id": row.a_id, "b_id": row.b_id, "certainty": row.certainty,
                    "active": row.active, "note": note, "created_at": row.created_at, "created_by": row.created_by})
    return out


# --- changes -------------------------------------------------------------------------------------------------

def _withheld_state(kind: str, record_id: str, state: dict[str, Any], withheld_names: set[str],
                    link_ends: dict[str, tuple[str, str]]) -> str | None:
    """Why this state may not be opened, or None."""
    if kind == "victim" and record_id in withheld_names:
        return NAME_WITHHELD
    if kind == "source":
        if state.get("identity"):
            return WITNESS_IDENTITY
        if state.get("description") and _person_source(str(state.get("kind"))):
            return SOURCE_DESCRIPTION
    if kind == "link" and set(link_ends.get(record_id, ())) & withheld_names:
        return NAME_WITHHELD
    return None


def _batch_paths(session: Session, seq: int) -> tuple[list[str], list[list[str]]]:
    from archive.custody.entry import leaf_hash
    from archive.custody.merkle import MemoryTree, inclusion_proof

    commitments = list(session.exec(select(RecordChange.commitment).where(RecordChange.event_seq == seq)
                                    .order_by(col(RecordChange.batch_index))).all())
    tree = MemoryTree(b"".join(leaf_hash(bytes.fromhex(c)) for c in commitments))
    return commitments, [[h.hex() for h in inclusion_proof(tree, i, len(commitments))]
                         for i in range(len(commitments))]


def _changes(session: Session, keys: CatalogKeys, record_ids: list[str], withheld_names: set[str],
             link_ends: dict[str, tuple[str, str]], counts: Counter[str]
             ) -> tuple[list[dict[str, Any]], dict[str, str], set[int]]:
    from archive.records.changes import opened

    out: list[dict[str, Any]] = []
    salts: dict[str, str] = {}
    events: set[int] = set()
    batches: dict[int, tuple[list[str], list[list[str]]]] = {}
    if not record_ids:
        return out, salts, events
    rows = session.exec(select(RecordChange).where(col(RecordChange.record_id).in_(record_ids))).all()
    rows = sorted(rows, key=lambda r: (r.event_seq if r.event_seq is not None else -1,
                                       r.batch_index if r.batch_index is not None else -1, r.record_id, r.id or 0))
    for row in rows:
        fields = opened(keys, row)
        state = fields["state"]
        why = _withheld_state(row.record_kind, row.record_id, state, withheld_names, link_ends)
        path = size = None
        if row.batch_index is not None and row.event_seq is not None:
            if row.event_seq not in batches:
                batches[row.event_seq] = _batch_paths(session, row.event_seq)
            commitments, paths = batches[row.event_seq]
            size, path = len(commitments), paths[row.batch_index]
        if row.event_seq is not None:
            events.add(int(row.event_seq))
        if why is None:
            salts[row.commitment] = str(fields["salt"])
        else:
            counts[f"state:{why}"] += 1
        out.append({"record_id": row.record_id, "record_kind": row.record_kind, "change": row.change, "at": row.at,
                    "by": row.by, "event_seq": row.event_seq, "batch_index": row.batch_index, "batch_path": path,
                    "batch_size": size, "commitment": row.commitment, "state": state if why is None else None,
                    "withheld": why})
    return out, salts, events


# --- files ---------------------------------------------------------------------------------------------------

def _json(kind: str, records: list[dict[str, Any]]) -> bytes:
    doc = {"format": formats.RECORDS_FORMAT, "kind": kind, "records": records}
    return (json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode("utf-8")


def _csv(kind: str, rows: list[dict[str, Any]]) -> bytes:
    columns = CSV_COLUMNS[kind]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buffer.getvalue().encode("utf-8")


def _cell(value: Any) -> str:
    if isinstance(value, list) and not all(isinstance(v, str) for v in value):
        value = [str(v) for v in value]
    if isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(cell(value, "csv"))


def _victim_row(record: dict[str, Any]) -> dict[str, Any]:
    """The interchange's UN-bodies columns (`family_consent`, `consent_date`), then the other scopes'."""
    consent, given_on = record.get("consent") or {}, record.get("consent_given_on") or {}
    return {**record, "family_consent": consent.get("un_bodies"), "consent_date": given_on.get("un_bodies"),
            **{f"consent_{s}": consent.get(s) for s in ("courts", "publication")},
            **{f"consent_{s}_date": given_on.get(s) for s in ("courts", "publication")}}


def schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of the records files: versioned with `RECORDS_FORMAT`."""
    nullable_str = {"type": ["string", "null"]}
    hex64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}

    def doc(kind: str, record: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "required": ["format", "kind", "records"], "properties": {
            "format": {"const": formats.RECORDS_FORMAT}, "kind": {"const": kind},
            "records": {"type": "array", "items": record}}}

    item = {"type": "object", "required": ["id", "sha256", "size", "media_type", "original", "part", "commitment",
                                           "commitment_event"],
            "properties": {"id": {"type": "string"}, "sha256": hex64, "size": {"type": "integer", "minimum": 0},
                           "media_type": nullable_str, "original": {"type": "string", "pattern": "^data/originals/"},
                           "part": {"type": "integer", "minimum": 1},
                           "commitment": {"oneOf": [hex64, {"type": "null"}]},
                           "commitment_event": {"type": ["integer", "null"]},
                           "metadata": {"type": ["object", "null"]},
                           "fingerprints": {"type": "array"}, "provenance": {"type": "array", "items": {
                               "type": "object", "properties": {
                                   "received_at": {"type": "string"}, "actor": {"type": "string"},
                                   "channel": nullable_str, "source": nullable_str, "original_name": nullable_str,
                                   "declared_type": nullable_str}}},
                           "links": {"type": "array"}, "incidents": {"type": "array"},
                           "victims": {"type": "array"}, "sources": {"type": "array"}}}
    change = {"type": "object", "required": ["record_id", "record_kind", "change", "at", "by", "event_seq",
                                             "batch_index", "batch_path", "batch_size", "commitment", "state",
                                             "withheld"],
              "properties": {"record_id": {"type": "string"}, "record_kind": {"type": "string"},
                             "change": {"type": "string"}, "at": {"type": "string"}, "by": {"type": "string"},
                             "event_seq": {"type": ["integer", "null"]}, "batch_index": {"type": ["integer", "null"]},
                             "batch_path": {"type": ["array", "null"], "items": hex64},
                             "batch_size": {"type": ["integer", "null"]}, "commitment": hex64,
                             "state": {"type": ["object", "null"]}, "withheld": nullable_str}}
    record = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
    victim = {**record, "properties": {"id": {"type": "string"}, "name": nullable_str,
                                       "name_withheld": {"type": "boolean"}, "consent": {"type": "object"}}}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"urn:evidence-archive:records-schema:{SCHEMA_VERSION}", "title": "Evidence bundle records",
            "version": SCHEMA_VERSION, "format": formats.RECORDS_FORMAT,
            "description": "data/records/<kind>.json; the .csv files hold the same records, one row each "
                           "(lists joined by ';'). A withheld victim name is null, a witness identity and "
                           "free-text provenance are never present; a change's state is null when withheld.",
            "files": {"items.json": doc("items", item), "incidents.json": doc("incidents", record),
                      "victims.json": doc("victims", victim), "sources.json": doc("sources", record),
                      "links.json": doc("links", record), "changes.json": doc("changes", change)}}


_WHY = {
    NAME_WITHHELD: ("victim name", "the family asked that the name be withheld: the victim goes without it"),
    WITNESS_IDENTITY: ("witness identity", "a witness's real identity is never exported (aliases only)"),
    SOURCE_DESCRIPTION: ("witness description", "free text describing a witness may identify them"),
    PROVENANCE_TEXT: ("provenance text", "free-text provenance (who handed it over, intake notes) is not exported"),
    ORIGINAL_NAME: ("original file name", "an item linked to a victim whose name is withheld goes without its "
                                          "original file name (it may spell the name)"),
}


def _withheld(counts: Counter[str], names: int) -> list[Withheld]:
    out = []
    if names:
        out.append(Withheld(*_WHY[NAME_WITHHELD][:1], NAME_WITHHELD, names, _WHY[NAME_WITHHELD][1]))
    for key in (WITNESS_IDENTITY, SOURCE_DESCRIPTION, PROVENANCE_TEXT, ORIGINAL_NAME):
        if counts[key]:
            out.append(Withheld(_WHY[key][0], key, counts[key], _WHY[key][1]))
    for key in (NAME_WITHHELD, WITNESS_IDENTITY, SOURCE_DESCRIPTION):
        if counts[f"state:{key}"]:
            out.append(Withheld("record state", key, counts[f"state:{key}"],
                                "a change's state is not opened (its commitment still is in the log): "
                                + _WHY[key][1]))
    return out


def build_records(archive: Archive, selection: Selection, *, placement: dict[str, tuple[str, int]]) -> RecordSet:
    """The records files, salts and change events for `selection` (see the module docstring); `placement`:
    item id -> (bag path of its original, part)."""
    from archive.services.victims import withheld_people

    keys = record_keys(archive, "an export (records are sealed)")
    counts: Counter[str] = Counter()
    with transaction(archive.engine) as session:
        all_withheld = withheld_people(session)
        withheld_names = all_withheld & set(selection.victims)
        link_rows = [r for r in (session.get(Link, i) for i in selection.links) if r is not None]
        link_ends = {r.id: (r.a_id, r.b_id) for r in link_rows}
        sources = set(selection.sources)
        named = {ln.a_id for ln in session.exec(select(Link).where(
            Link.kind == "item_victim", Link.active == True,  # noqa: E712
            col(Link.a_id).in_(selection.items), col(Link.b_id).in_(sorted(all_withheld))))} \
            if selection.items and all_withheld else set()
        items, item_salts = [], {}
        for item_id in selection.items:
            record, salt = _item_record(session, keys, item_id, placement[item_id], sources, link_rows, counts,
                                        names_withheld=item_id in named)
            items.append(record)
            if salt is not None:
                item_salts[item_id] = salt
        incidents = _incident_records(session, keys, selection.incidents, selection.attributions)
        victims = _victim_records(session, keys, selection.victims, all_withheld)
        source_rows = _source_records(session, keys, selection.sources, counts)
        links = _link_records(link_rows, keys, all_withheld)
        changes, record_salts, events = _changes(session, keys, selection.record_ids(), all_withheld, link_ends,
                                                 counts)
    files = {
        "items.json": _json("items", items), "incidents.json": _json("incidents", incidents),
        "victims.json": _json("victims", victims), "sources.json": _json("sources", source_rows),
        "links.json": _json("links", links), "changes.json": _json("changes", changes),
        "items.csv": _csv("items", [_item_row(r) for r in items]), "incidents.csv": _csv("incidents", incidents),
        "victims.csv": _csv("victims", [_victim_row(r) for r in victims]),
        "sources.csv": _csv("sources", source_rows), "links.csv": _csv("links", links),
        "schema.json": (json.dumps(schema(), indent=1, sort_keys=True) + "\n").encode("utf-8"),
    }
    salts = {"format": formats.SALTS_FORMAT, "items": item_salts, "records": record_salts}
    return RecordSet(files=files, salts=salts, change_events=events, items=items,
                     withheld=_withheld(counts, len(withheld_names)))
