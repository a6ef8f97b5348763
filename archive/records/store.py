"""Writing a record: one generic path from a record's whole state to its row and its history.

Each kind of record (`KINDS`) says which of its state's fields are clear
columns, which are sealed, and which columns are derived (a victim's `child`
and `woman`, an incident's `started_day`, a source's `reliability`): derived
values are computed here and never typed. Services validate a request, build
the new state and call `put`; `rebuild-catalog` replays the journal through
the same `apply`, so a restored catalog holds exactly what the original did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlmodel import SQLModel

from archive.catalog.sealing import SealedTable, open_row, register
from archive.records import tables as t
from archive.records.changes import Change, record
from archive.records.vocab import CHILD_AGE, SOURCE_RELIABILITY

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.keys.catalog import CatalogKeys

NAME_LOOKUP = "victim-name"  # purpose of the keyed hash of a victim's normalized name


def _incident(state: dict[str, Any], _keys: CatalogKeys) -> dict[str, Any]:
    return {"started_day": str(state["started_at"])[:10]}


def is_child(age: int | None, age_group: str | None) -> bool:
    """Under 18, or age group child when the age is unknown."""
    return age < CHILD_AGE if age is not None else age_group == "child"


def _victim(state: dict[str, Any], keys: CatalogKeys) -> dict[str, Any]:
    from archive.records.names import normalize

    child = is_child(state.get("age"), state.get("age_group"))
    name = state.get("name") or ""
    normal = normalize(name) if name else ""
    professions = state.get("professions") or []
    return {"anonymous": not name, "child": child, "woman": state.get("sex") == "female" and not child,
            "professions": f";{';'.join(sorted(professions))};" if professions else "",
            "name_lookup": keys.lookup(NAME_LOOKUP, normal) if normal else None}


def _source(state: dict[str, Any], _keys: CatalogKeys) -> dict[str, Any]:
    return {"reliability": SOURCE_RELIABILITY[state["kind"]]}


def _nothing(_state: dict[str, Any], _keys: CatalogKeys) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Kind:
    """One kind of record: its table, id prefix, clear and sealed state fields, and derived columns."""

    name: str
    model: type[SQLModel]
    prefix: str
    clear: tuple[str, ...]
    sealed: tuple[str, ...]
    derived: Callable[[dict[str, Any], CatalogKeys], dict[str, Any]] = _nothing

    @property
    def table(self) -> str:
        return str(self.model.__tablename__)


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("incident", t.Incident, "inc",
         ("ref", "type", "started_at", "started_precision", "governorate", "controlled_by", "attribution",
          "weapon", "facility_damage"),
         ("district", "place", "neighbourhood", "latitude", "longitude", "narrative"), _incident),
    Kind("attribution", t.Attribution, "att", ("incident_id", "parties", "kind"), ("reason", "evidence")),
    Kind("victim", t.Victim, "vic",
         ("ref", "incident_id", "name_withheld", "sex", "civilian", "died_under_torture", "governorate_of_death",
          "date_of_death", "date_documented", "status", "merged_into"),
         ("name", "age", "age_group", "governorate_of_origin", "professions"), _victim),
    Kind("consent", t.Consent, "con", ("victim_id", "scope", "status", "given_on"),
         ("recorded_by", "document", "note")),
    Kind("source", t.Source, "src", ("ref", "kind"),
         ("alias", "url", "channel", "posted_at", "description", "identity"), _source),
    Kind("interview", t.Interview, "itv", ("source_id", "held_on", "informed_consent", "no_payment"),
         ("interviewer", "notes")),
    Kind("link", t.Link, "lnk", ("kind", "a_id", "b_id", "certainty", "active"), ("note",)),
)}


def _lookups(kind: Kind) -> Callable[[CatalogKeys, dict[str, Any]], dict[str, str | None]]:
    def lookups(keys: CatalogKeys, fields: dict[str, Any]) -> dict[str, str | None]:
        if kind.name != "victim":
            return {}
        return {"name_lookup": _victim(fields, keys)["name_lookup"]}
    return lookups


for _kind in KINDS.values():
    register(SealedTable(_kind.table, "id", _lookups(_kind), ("name_lookup",) if _kind.name == "victim" else ()))


def kind_of(record_id: str) -> Kind:
    """The kind a record id names (by its prefix)."""
    prefix = record_id.split("-", 1)[0]
    for kind in KINDS.values():
        if kind.prefix == prefix:
            return kind
    raise KeyError(record_id)


def columns(kind: Kind, keys: CatalogKeys, record_id: str, state: dict[str, Any]) -> dict[str, Any]:
    """The row's columns for a state: clear fields, derived columns, and the sealed fields sealed."""
    values: dict[str, Any] = {f: state.get(f) for f in kind.clear}
    values.update(kind.derived(state, keys))
    values["key_version"], values["sealed"] = keys.seal(kind.table, record_id, {f: state.get(f) for f in kind.sealed})
    return values


def _stamp(kind: Kind, row: Any, created: bool, at: str, actor: str, state: dict[str, Any]) -> None:
    """The bookkeeping columns: when and by whom, from the change itself."""
    fields = type(row).model_fields
    if created and "created_at" in fields:
        row.created_at = at
    if "updated_at" in fields:
        row.updated_at = at
    if created and "created_by" in fields:
        row.created_by = actor
    if "at" in fields:
        row.at, row.by = at, actor
    if kind.name == "link":
        row.removed_at, row.removed_by = (None, None) if state.get("active") else (row.removed_at or at,
                                                                                   row.removed_by or actor)


def apply(session: Session, keys: CatalogKeys, kind: Kind, record_id: str, state: dict[str, Any], *,
          at: str, actor: str) -> Any:
    """Make the record's row hold `state` (created if new); no history written (see `put`)."""
    row = session.get(kind.model, record_id)
    created = row is None
    if row is None:
        row = kind.model(id=record_id, **{k: v for k, v in columns(kind, keys, record_id, state).items()},
                         **_placeholders(kind))
    else:
        for name, value in columns(kind, keys, record_id, state).items():
            setattr(row, name, value)
    _stamp(kind, row, created, at, actor, state)
    session.add(row)
    return row


def _placeholders(kind: Kind) -> dict[str, Any]:
    fields = kind.model.model_fields
    return {name: "" for name in ("created_at", "updated_at", "created_by", "at", "by") if name in fields}


def put(session: Session, keys: CatalogKeys, actor: str, kind: str, record_id: str, state: dict[str, Any], *,
        change: str, reason: str | None = None, item_id: str | None = None) -> Any:
    """Write a record's new state and keep the change (sealed state, commitment, custody event); the row."""
    from archive.custody.log import utc_now

    spec = KINDS[kind]
    at = utc_now()
    row = apply(session, keys, spec, record_id, state, at=at, actor=actor)
    record(session, keys, actor, Change(record_id, kind, change, state, reason, item_id), at=at)
    session.flush()
    return row


def state_of(keys: CatalogKeys, kind: Kind, row: Any) -> dict[str, Any]:
    """A row's whole state (clear fields and opened sealed fields), as `put` was given it."""
    state: dict[str, Any] = {f: getattr(row, f) for f in kind.clear}
    state.update(open_row(keys, kind.table, row.id, row.key_version, row.sealed))
    return state
