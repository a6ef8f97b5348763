"""Incidents: add, edit, show, list, and attribute (every change keeps its history).

Custodians and investigators. An incident a restricted case hides from the
caller (`archive.records.compartments`) is not found, exactly like an
unknown ref, is missing from lists, and victims hidden with a case are not
counted in any incident's numbers. One thing cannot be hidden: refs are unique
across the archive, so adding an incident under a hidden incident's ref is
refused as a ref already used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlmodel import col, select

from archive.db import transaction
from archive.records.changes import new_id
from archive.records.common import record_keys, require
from archive.records.compartments import excluding, find_visible, hidden_in
from archive.records.rules import incident_state, parse_attribution
from archive.records.store import KINDS, put, state_of
from archive.records.tables import Attribution, Incident, RecordChange, Victim
from archive.records.vocab import MASSACRE_CIVILIANS, Vocab
from archive.roles import Role
from archive.services.errors import Invalid

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive

def attribution_state(incident_id: str, parties: str, kind: str, reason: str | None,
                      evidence: list[str]) -> dict[str, Any]:
    return {"incident_id": incident_id, "parties": parties, "kind": kind, "reason": reason, "evidence": evidence}


def write_attribution(session: Session, archive: Archive, keys: Any, incident_id: str, parties: str, kind: str,
                      reason: str | None, evidence: list[str]) -> None:
    """One attribution record (who, when, why, on what) beside the incident's current attribution."""
    put(session, keys, archive.actor, "attribution", new_id("att"),
        attribution_state(incident_id, parties, kind, reason, evidence), change="create", reason=reason)


def add_incident(archive: Archive, fields: dict[str, Any], *, role: Role, reason: str | None = None) -> dict[str, Any]:
    """Record a new incident (and its first attribution); `Invalid` for a bad field or a ref already used."""
    require(role, "adding an incident")
    keys = record_keys(archive, "recording an incident")
    with transaction(archive.engine) as session:
        vocab = Vocab.read(session)
        state = incident_state(vocab, fields)
        if session.exec(select(Incident.id).where(Incident.ref == state["ref"])).first() is not None:
            raise Invalid(f"ref: an incident {state['ref']!r} exists already")
        incident_id = new_id("inc")
        put(session, keys, archive.actor, "incident", incident_id, state, change="create", reason=reason)
        parties, kind = parse_attribution(vocab, state["attribution"])
        write_attribution(session, archive, keys, incident_id, parties, kind, reason or "first attribution", [])
    return show_incident(archive, incident_id, role=role)


def edit_incident(archive: Archive, name: str, changes: dict[str, Any], *, role: Role,
                  reason: str | None = None) -> dict[str, Any]:
    """Change some fields of an incident (a field given as None or "" is cleared); an attribution change goes
    through `attribute` so that it keeps its why and its evidence."""
    require(role, "editing an incident")
    if "attribution" in changes:
        raise Invalid("attribution: change it with `incident attribute` (it keeps why, and on what evidence)")
    keys = record_keys(archive, "editing an incident")
    with transaction(archive.engine) as session:
        vocab = Vocab.read(session)
        row = find_visible(session, Incident, name, "incident", hidden_in(archive, session, role).incidents,
                           lock=True)
        old = state_of(keys, KINDS["incident"], row)
        state = incident_state(vocab, {**old, **changes})
        if state["ref"] != old["ref"] and session.exec(
                select(Incident.id).where(Incident.ref == state["ref"])).first() is not None:
            raise Invalid(f"ref: an incident {state['ref']!r} exists already")
        if state != old:
            put(session, keys, archive.actor, "incident", row.id, state, change="edit", reason=reason)
        incident_id = row.id
    return show_incident(archive, incident_id, role=role)


def attribute(archive: Archive, name: str, parties: str | list[str], *, role: Role, reason: str,
              evidence: list[str] | None = None) -> dict[str, Any]:
    """Attribute an incident to a party, jointly to several, or to an "other parties" category.

    `reason` is required: an attribution changes as evidence comes in, and its
    history must say why and on what (`evidence`: item ids, source refs …).
    """
    require(role, "attributing an incident")
    if not (reason or "").strip():
        raise Invalid("reason: say why the attribution is made or changed")
    keys = record_keys(archive, "attributing an incident")
    with transaction(archive.engine) as session:
        vocab = Vocab.read(session)
        row = find_visible(session, Incident, name, "incident", hidden_in(archive, session, role).incidents,
                           lock=True)
        joined, kind = parse_attribution(vocab, parties)
        state = {**state_of(keys, KINDS["incident"], row), "attribution": joined}
        put(session, keys, archive.actor, "incident", row.id, state, change="attribute", reason=reason.strip())
        write_attribution(session, archive, keys, row.id, joined, kind, reason.strip(),
                          [str(e) for e in evidence or []])
        incident_id = row.id
    return show_incident(archive, incident_id, role=role)


def civilian_counts(session: Session, incident_ids: list[str] | None = None,
                    hidden_victims: frozenset[str] = frozenset()) -> dict[str, int]:
    """Civilian victims (active, not merged away, not hidden from the caller) per incident id."""
    query = (select(Victim.incident_id, func.count()).where(Victim.civilian == True, Victim.status == "active",  # noqa: E712
                                                            excluding(col(Victim.id), hidden_victims))
             .group_by(col(Victim.incident_id)))
    if incident_ids is not None:
        query = query.where(col(Victim.incident_id).in_(incident_ids))
    return {incident_id: int(n) for incident_id, n in session.exec(query).all()}


def is_massacre(civilians: int) -> bool:
    """An incident with at least five civilian victims: derived, never typed."""
    return civilians >= MASSACRE_CIVILIANS


def _clear(row: Incident, civilians: int) -> dict[str, Any]:
    return {"id": row.id, "ref": row.ref, "type": row.type, "started_at": row.started_at,
            "started_precision": row.started_precision, "governorate": row.governorate,
            "controlled_by": row.controlled_by, "attribution": row.attribution, "weapon": row.weapon,
            "facility_damage": row.facility_damage, "civilian_victims": civilians,
            "massacre": is_massacre(civilians), "created_at": row.created_at, "updated_at": row.updated_at}


def show_incident(archive: Archive, name: str, *, role: Role, history: bool = False) -> dict[str, Any]:
    """One incident: every field, its attributions in order (who, when, why, on what) and its victims' count;
    with `history`, every change with its state before and after."""
    from archive.catalog.sealing import open_row
    from archive.records.changes import history as changes_of

    require(role, "reading an incident")
    keys = record_keys(archive, "reading an incident")
    with transaction(archive.engine) as session:
        hidden = hidden_in(archive, session, role)
        row = find_visible(session, Incident, name, "incident", hidden.incidents)
        civilians = civilian_counts(session, [row.id], hidden.victims).get(row.id, 0)
        shown = {**_clear(row, civilians), **state_of(keys, KINDS["incident"], row)}
        attributions = [a for a, _seq, _index in session.exec(
            select(Attribution, RecordChange.event_seq, RecordChange.batch_index)
            .join(RecordChange, col(RecordChange.record_id) == col(Attribution.id))
            .where(Attribution.incident_id == row.id, RecordChange.change == "create")
            .order_by(col(RecordChange.event_seq), col(RecordChange.batch_index))).all()]
        # In the log's order (bound by each change's commitment), not by a time column anyone could edit.
        shown["attributions"] = [{"parties": a.parties, "kind": a.kind, "at": a.at, "by": a.by,
                                  **open_row(keys, "attributions", a.id, a.key_version, a.sealed)}
                                 for a in attributions]
        shown["victims"] = int(session.exec(select(func.count()).select_from(Victim)
                                            .where(Victim.incident_id == row.id, Victim.status == "active",
                                                   excluding(col(Victim.id), hidden.victims))).one())
        if history:
            shown["history"] = changes_of(session, keys, row.id)
    return shown


def list_incidents(archive: Archive, *, role: Role, type: str | None = None, governorate: str | None = None,
                   party: str | None = None, date_from: str | None = None, date_to: str | None = None,
                   massacres: bool = False, limit: int | None = None) -> list[dict[str, Any]]:
    """Incidents by start date, from their clear columns alone (no key needed): filters combine. Those a
    restricted case hides from the caller are left out before the limit."""
    from archive.records.common import check_day

    require(role, "listing incidents")
    with transaction(archive.engine) as session:
        hidden = hidden_in(archive, session, role)
        query = (select(Incident).where(excluding(col(Incident.id), hidden.incidents))
                 .order_by(col(Incident.started_at), col(Incident.ref)))
        if type:
            query = query.where(Incident.type == type)
        if governorate:
            query = query.where(Incident.governorate == governorate)
        if party:
            query = query.where(col(Incident.attribution).contains(party))  # refined below: whole keys only
        if date_from:
            query = query.where(Incident.started_day >= check_day(date_from, "from"))
        if date_to:
            query = query.where(Incident.started_day <= check_day(date_to, "to"))
        rows = [r for r in session.exec(query).all() if not party or party in r.attribution.split("+")]
        counts = civilian_counts(session, hidden_victims=hidden.victims)
        shown = [_clear(r, counts.get(r.id, 0)) for r in rows]
    if massacres:
        shown = [s for s in shown if s["massacre"]]
    return shown[:limit] if limit is not None else shown
