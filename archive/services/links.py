"""Links: what an item shows, who a source vouches for, which incident a victim belongs to.

A link joins two things (an item, an incident, a victim, a source) with a
certainty (confirmed, probable, possible) and a relevance note (sealed). Its
kind follows from what the two names are, so `link(a, b)` works either way
round; the row always holds the pair in the kind's order. Linking a pair
that is linked already changes its certainty or note, with history, never a
second row; unlinking marks the link inactive (the row and its history stay).

A link that involves an item is written with that item's id, so the item's
custody timeline shows it; a link between two items (same footage) is
written once for each, so both timelines do. The events carry the link's id
and commitment, never the note. A link that touches a victim whose name is
withheld shows its note and reasons to custodians only.

Compartments: for a caller a restricted case hides things from
(`archive.records.compartments`), those things are not found by any name
(the same message as a name that is nothing), a link that touches one is
not found either and is missing from every list, and so is a near-duplicate
candidate pair with a hidden item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlmodel import col, or_, select

from archive.db import transaction
from archive.records.changes import Change, new_id, record
from archive.records.common import check_choice, check_text, record_keys, require
from archive.records.compartments import NOTHING, Hidden, find_visible, hidden_in
from archive.records.store import KINDS, put, state_of
from archive.records.tables import Incident, Link, Source, Victim
from archive.records.vocab import CERTAINTIES
from archive.roles import Role, sees_identities
from archive.services.errors import Ambiguous, Invalid, NotFound

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive
    from archive.keys.catalog import CatalogKeys

TYPES = ("item", "incident", "victim", "source")
# kind -> (type of a, type of b). The two footage kinds are symmetric: their pair is kept sorted.
LINK_KINDS: dict[str, tuple[str, str]] = {
    "item_incident": ("item", "incident"),
    "item_victim": ("item", "victim"),
    "victim_incident": ("victim", "incident"),
    "source_item": ("source", "item"),
    "source_incident": ("source", "incident"),
    "same_footage": ("item", "item"),  # a confirmed near-duplicate: never a merge
    "not_same_footage": ("item", "item"),  # a rejected near-duplicate: kept, so the decision survives a rebuild
    "not_same_person": ("victim", "victim"),  # a rejected victim match (archive.services.victims.reject_match)
}
SYMMETRIC = ("same_footage", "not_same_footage", "not_same_person")
DECISIONS = ("not_same_footage", "not_same_person")  # written by a decision, never inferred from two names
DEFAULT_CERTAINTY = "probable"
WITHHELD = "[withheld]"  # a note or reason about a withheld person, as a non-custodian sees it
_MODELS: dict[str, Any] = {"incident": Incident, "victim": Victim, "source": Source}
_PREFIXES = {"inc": "incident", "vic": "victim", "src": "source"}


@dataclass(frozen=True)
class Target:
    """One end of a link: what it is, its id, and the name users know it by (a ref, or the item id)."""

    type: str
    id: str
    name: str


def _item_target(session: Session, keys: CatalogKeys, name: str, merged: bool = False,
                 hidden: Hidden = NOTHING) -> Target:
    from archive.catalog.items import ItemStatus
    from archive.catalog.secrets import item_secret
    from archive.services.items import not_found, resolve_item

    item = resolve_item(session, name, hidden.items)
    if item.status == ItemStatus.MERGED and (hidden.items or not merged):
        holder = item_secret(keys, item).merged_into
        if holder in hidden.items:
            raise not_found(name)
        if not merged:
            raise Invalid(f"item {item.id} was merged into item {holder} (the same bytes): link that one")
    return Target("item", item.id, item.id)


def _hidden_of(hidden: Hidden, type_: str) -> frozenset[str]:
    return {"incident": hidden.incidents, "victim": hidden.victims, "item": hidden.items}.get(type_, frozenset())


def _record_target(session: Session, type_: str, name: str, merged: bool = False, hidden: Hidden = NOTHING
                   ) -> Target:
    row = find_visible(session, _MODELS[type_], name, type_, _hidden_of(hidden, type_))
    if type_ == "victim" and row.status == "merged" and not merged:
        raise Invalid(f"victim {row.ref} was merged into {row.merged_into} (the same person): link that one")
    return Target(type_, row.id, row.ref)


def _looks_like_item(name: str) -> bool:
    return len(name) >= 8 and all(c in "0123456789abcdef-" for c in name.lower())


def resolve(session: Session, keys: CatalogKeys, name: str, type_: str | None = None, *,
            merged: bool = False, hidden: Hidden = NOTHING) -> Target:
    """What a name is: an item (id or unique prefix), or an incident, victim or source (ref or id).

    Without `type_`, every kind is tried; a name that is two things at once
    (a ref that is also an item prefix) is `Ambiguous` and says how to choose.
    A merged item or victim is refused (`Invalid`, naming what holds it now)
    unless `merged` (reading its old links). What is `hidden` is nothing.
    """
    name = (name or "").strip()
    if not name:
        raise Invalid("a link needs two names (an item id, or a record's ref or id)")
    if type_ is not None:
        check_choice(type_, TYPES, "type")
        if type_ == "item":
            return _item_target(session, keys, name, merged, hidden)
        return _record_target(session, type_, name, merged, hidden)
    prefix = name.split("-", 1)[0]
    if prefix in _PREFIXES and session.get(_MODELS[_PREFIXES[prefix]], name) is not None \
            and name not in _hidden_of(hidden, _PREFIXES[prefix]):
        return _record_target(session, _PREFIXES[prefix], name, merged, hidden)
    found = []
    for t, model in _MODELS.items():
        row_id = session.exec(select(model.id).where(model.ref == name)).first()
        if row_id is not None and row_id not in _hidden_of(hidden, t):
            found.append(t)
    if _looks_like_item(name):
        try:
            _item_target(session, keys, name, merged=True, hidden=hidden)
            found.append("item")
        except NotFound:
            pass
    if not found:
        raise NotFound(f"no item, incident, victim or source {name!r} (by id, ref or item prefix)")
    if len(found) > 1:
        raise Ambiguous(f"{name!r} names {' and '.join(found)}: say which (--incident, --victim, --source, --item) "
                        "or give its id")
    return resolve(session, keys, name, found[0], merged=merged, hidden=hidden)


def kind_for(a: Target, b: Target, kind: str | None = None) -> tuple[str, Target, Target]:
    """The link kind two ends make, and the ends in its order; `Invalid` for a pair no link joins."""
    if kind is not None:
        check_choice(kind, tuple(LINK_KINDS), "kind")
        wanted = LINK_KINDS[kind]
        if (a.type, b.type) == wanted:
            pass
        elif (b.type, a.type) == wanted:
            a, b = b, a
        else:
            raise Invalid(f"kind: a {kind} link joins {wanted[0]} and {wanted[1]}, not {a.type} and {b.type}")
    else:
        for name, pair in LINK_KINDS.items():
            if name in DECISIONS:
                continue
            if (a.type, b.type) == pair:
                kind = name
                break
            if (b.type, a.type) == pair:
                kind, a, b = name, b, a
                break
        else:
            raise Invalid(f"no link joins a {a.type} and a {b.type} (links: item-incident, item-victim, "
                          "victim-incident, source-item, source-incident, item-item same footage)")
    if a.id == b.id:
        raise Invalid(f"a link joins two different things, not {a.name} with itself")
    if kind in SYMMETRIC and b.id < a.id:
        a, b = b, a
    return kind, a, b


def _active(session: Session, kind: str, a_id: str, b_id: str) -> Link | None:
    return session.exec(select(Link).where(Link.kind == kind, Link.a_id == a_id, Link.b_id == b_id,
                                           Link.active == True)).first()  # noqa: E712


def _items(kind: str, a_id: str, b_id: str) -> list[str]:
    types = LINK_KINDS[kind]
    return [i for t, i in zip(types, (a_id, b_id), strict=True) if t == "item"]


def write(session: Session, keys: CatalogKeys, actor: str, link_id: str, state: dict[str, Any], *, change: str,
          reason: str | None) -> None:
    """Put a link's new state: one record change, and one more for a second item so both timelines show it."""
    items: list[str | None] = [*_items(state["kind"], state["a_id"], state["b_id"])] or [None]
    put(session, keys, actor, "link", link_id, state, change=change, reason=reason, item_id=items[0])
    for other in items[1:]:
        record(session, keys, actor, Change(link_id, "link", change, state, reason, other))
    if state["kind"] == "source_item" and state["active"]:  # a witness's item shows no preview (same transaction)
        from archive.services.previews import drop_previews_linked_to_interviews

        drop_previews_linked_to_interviews(session, _items(state["kind"], state["a_id"], state["b_id"]))
    if state["kind"] in ("same_footage", "not_same_footage"):
        decided = "confirmed" if state["kind"] == "same_footage" else "rejected"
        _candidate_state(session, state["a_id"], state["b_id"], decided if state["active"] else "candidate")


def _candidates(session: Session, a_id: str, b_id: str) -> list[Any]:
    """The near-duplicate candidate rows of a pair of items, either way round."""
    from archive.catalog.fingerprints import Candidate

    return list(session.exec(select(Candidate).where(or_(
        (col(Candidate.item_id) == a_id) & (col(Candidate.other_id) == b_id),
        (col(Candidate.item_id) == b_id) & (col(Candidate.other_id) == a_id)))).all())


def _candidate_state(session: Session, a_id: str, b_id: str, state: str) -> None:
    """Keep a pair's candidate rows in step with its footage links (a link made or unlinked by hand too)."""
    for row in _candidates(session, a_id, b_id):
        row.state = state
        session.add(row)


def connect(session: Session, keys: CatalogKeys, actor: str, kind: str, a: Target, b: Target, *,
            certainty: str | None, note: str | None, reason: str | None) -> tuple[str, bool]:
    """Link a to b (already ordered), or update the active link between them; (link id, whether it changed)."""
    if certainty is not None:
        check_choice(certainty, CERTAINTIES, "certainty")
    note = check_text(note, "note", 4000)
    row = _active(session, kind, a.id, b.id)
    if row is None:
        state = {"kind": kind, "a_id": a.id, "b_id": b.id, "certainty": certainty or DEFAULT_CERTAINTY,
                 "active": True, "note": note}
        link_id = new_id("lnk")
        write(session, keys, actor, link_id, state, change="link", reason=reason)
        return link_id, True
    old = state_of(keys, KINDS["link"], row)
    state = {**old, "certainty": certainty or old["certainty"], "note": note if note is not None else old["note"]}
    if state == old:
        return row.id, False
    write(session, keys, actor, row.id, state, change="edit", reason=reason)
    return row.id, True


def disconnect(session: Session, keys: CatalogKeys, actor: str, row: Link, reason: str | None) -> None:
    """Mark a link inactive (its row and history stay)."""
    state = {**state_of(keys, KINDS["link"], row), "active": False}
    write(session, keys, actor, row.id, state, change="unlink", reason=reason)


def link(archive: Archive, a: str, b: str, *, role: Role, certainty: str | None = None, note: str | None = None,
         kind: str | None = None, b_type: str | None = None, a_type: str | None = None,
         reason: str | None = None) -> dict[str, Any]:
    """Link two things named by id, ref or item prefix (`b_type`/`a_type` say what a name is when known).

    A new link's certainty defaults to probable; linking a linked pair again
    changes only what is given. `Invalid` for a merged victim or item, an
    unknown certainty or a pair no link joins; `NotFound` for a name that is
    nothing. Nothing is written then.
    """
    require(role, "linking")
    keys = record_keys(archive, "linking (the relevance note is sealed)")
    with transaction(archive.engine) as session:
        hidden = hidden_in(archive, session, role)
        kind, first, second = kind_for(resolve(session, keys, a, a_type, hidden=hidden),
                                       resolve(session, keys, b, b_type, hidden=hidden), kind)
        link_id, changed = connect(session, keys, archive.actor, kind, first, second, certainty=certainty,
                                   note=note, reason=reason)
    shown = show_link(archive, link_id, role=role)
    shown["changed"] = changed
    return shown


def unlink(archive: Archive, a: str, b: str | None = None, *, role: Role, kind: str | None = None,
           b_type: str | None = None, a_type: str | None = None, reason: str | None = None) -> dict[str, Any]:
    """Mark the active link between a and b (or the link named by its id, `lnk-…`) inactive."""
    require(role, "unlinking")
    keys = record_keys(archive, "unlinking")
    with transaction(archive.engine) as session:
        hidden = hidden_in(archive, session, role)
        if b is None:
            row = session.get(Link, a.strip())
            if row is None or _touches(row, hidden):
                raise NotFound(f"no link {a.strip()!r}: name a link id (lnk-…) or the two things it joins")
        else:
            kind, first, second = kind_for(resolve(session, keys, a, a_type, hidden=hidden),
                                           resolve(session, keys, b, b_type, hidden=hidden), kind)
            found = _active(session, kind, first.id, second.id)
            if found is None:
                raise NotFound(f"{first.name} and {second.name} are not linked")
            row = found
        if not row.active:
            raise Invalid(f"link {row.id} was unlinked already ({row.removed_at})")
        disconnect(session, keys, archive.actor, row, reason)
        link_id = row.id
    return show_link(archive, link_id, role=role)


def _names(session: Session, ids: set[str]) -> dict[str, str]:
    """The ref of each record id (items are named by their id)."""
    names = {i: i for i in ids}
    for prefix, type_ in _PREFIXES.items():
        model = _MODELS[type_]
        wanted = [i for i in ids if i.startswith(f"{prefix}-")]
        if wanted:
            for id_, ref in session.exec(select(model.id, model.ref).where(col(model.id).in_(wanted))).all():
                names[id_] = ref
    return names


def _hidden_for(session: Session, role: Role) -> set[str]:
    """The victims whose links' free text `role` may not read: for a non-custodian, every victim whose
    person's name is withheld (a note or reason may spell the name any way, as in the victim's own history)."""
    from archive.services.victims import withheld_people

    return set() if sees_identities(role) else withheld_people(session)


def _touches(row: Link, hidden: Hidden) -> bool:
    """Whether a link joins something a restricted case hides from the caller."""
    return hidden.any_of((row.a_id, row.b_id))


def _hides(row: Link, hidden: set[str]) -> bool:
    return row.a_id in hidden or row.b_id in hidden


def _shown(keys: CatalogKeys, row: Link, names: dict[str, str], hidden: set[str]) -> dict[str, Any]:
    state = state_of(keys, KINDS["link"], row)
    a_type, b_type = LINK_KINDS.get(row.kind, ("?", "?"))
    note = state.get("note")
    return {"id": row.id, "kind": row.kind, "a": {"type": a_type, "id": row.a_id, "name": names.get(row.a_id)},
            "b": {"type": b_type, "id": row.b_id, "name": names.get(row.b_id)}, "certainty": row.certainty,
            "active": row.active, "note": WITHHELD if note and _hides(row, hidden) else note,
            "created_at": row.created_at, "created_by": row.created_by, "removed_at": row.removed_at,
            "removed_by": row.removed_by}


def _shown_history(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A link's history with every note and reason hidden (it touches a withheld person)."""
    def state(s: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if s is None else {**s, "note": WITHHELD if s.get("note") else None}

    return [{**c, "before": state(c["before"]), "after": state(c["after"]),
             "reason": WITHHELD if c["reason"] else None} for c in changes]


def show_link(archive: Archive, link_id: str, *, role: Role, history: bool = False) -> dict[str, Any]:
    """One link with its note; with `history`, every change with its state before and after."""
    from archive.records.changes import history as changes_of

    require(role, "reading a link")
    keys = record_keys(archive, "reading a link")
    with transaction(archive.engine) as session:
        row = session.get(Link, link_id)
        if row is None or _touches(row, hidden_in(archive, session, role)):
            raise NotFound(f"no link {link_id!r}")
        hidden = _hidden_for(session, role)
        shown = _shown(keys, row, _names(session, {row.a_id, row.b_id}), hidden)
        if history:
            changes = changes_of(session, keys, row.id)
            shown["history"] = _shown_history(changes) if _hides(row, hidden) else changes
    return shown


def links_of(archive: Archive, name: str, *, role: Role, type_: str | None = None,
             include_inactive: bool = False) -> dict[str, Any]:
    """What a record or an item is linked to: {"target": {...}, "links": [...]}, oldest first."""
    require(role, "reading links")
    keys = record_keys(archive, "reading links (relevance notes are sealed)")
    with transaction(archive.engine) as session:
        compartments = hidden_in(archive, session, role)
        target = resolve(session, keys, name, type_, merged=True, hidden=compartments)
        query = select(Link).where(or_(Link.a_id == target.id, Link.b_id == target.id))
        if not include_inactive:
            query = query.where(Link.active == True)  # noqa: E712
        rows = [r for r in session.exec(query.order_by(col(Link.created_at), col(Link.id))).all()
                if not _touches(r, compartments)]
        names = _names(session, {r.a_id for r in rows} | {r.b_id for r in rows})
        hidden = _hidden_for(session, role)
        links = [_shown(keys, r, names, hidden) for r in rows]
    return {"target": {"type": target.type, "id": target.id, "name": target.name}, "links": links}


def linked_ids(session: Session, kind: str, ids: list[str] | None = None, *, side: str = "a") -> dict[str, set[str]]:
    """For the active links of a kind: each `side` id -> the ids on the other side (for searches)."""
    query = select(Link.a_id, Link.b_id).where(Link.kind == kind, Link.active == True)  # noqa: E712
    if ids is not None:
        query = query.where(col(Link.a_id if side == "a" else Link.b_id).in_(ids))
    out: dict[str, set[str]] = {}
    for a_id, b_id in session.exec(query).all():
        key, other = (a_id, b_id) if side == "a" else (b_id, a_id)
        out.setdefault(key, set()).add(other)
    return out


# --- near-duplicate candidates ---------------------------------------------------------------

CANDIDATE_STATES = ("candidate", "confirmed", "rejected")


def list_candidates(archive: Archive, *, role: Role, state: str | None = None) -> list[dict[str, Any]]:
    """The near-duplicate pairs suggested at ingest, one entry per pair (closest first); merged items, and items
    a restricted case hides from the caller, left out.

    Clear data only (item ids, a distance, a state): no key needed.
    """
    from archive.catalog.fingerprints import Candidate
    from archive.catalog.items import Item, ItemStatus

    require(role, "reading near-duplicate candidates")
    if state is not None:
        check_choice(state, CANDIDATE_STATES, "state")
    with transaction(archive.engine) as session:
        merged = set(session.exec(select(Item.id).where(Item.status == ItemStatus.MERGED)).all())
        merged |= hidden_in(archive, session, role).items  # a pair with a hidden item is no pair for the caller
        pairs: dict[tuple[str, str], dict[str, Any]] = {}
        for c in session.exec(select(Candidate).order_by(col(Candidate.id))).all():
            if c.item_id in merged or c.other_id in merged or (state is not None and c.state != state):
                continue
            entry = {"item_id": c.item_id, "other_id": c.other_id, "distance": c.distance,
                     "frame_match_share": c.frame_match_share, "state": c.state, "created_at": c.created_at}
            key = (min(c.item_id, c.other_id), max(c.item_id, c.other_id))
            if key not in pairs or c.distance < pairs[key]["distance"]:
                pairs[key] = entry
    return sorted(pairs.values(), key=lambda e: (e["distance"], e["created_at"], e["item_id"]))


def _decide(archive: Archive, item: str, other: str, *, role: Role, decision: str, note: str | None,
            reason: str | None) -> dict[str, Any]:
    require(role, f"{'confirming' if decision == 'confirmed' else 'rejecting'} a near-duplicate")
    keys = record_keys(archive, "deciding a near-duplicate (the link's note is sealed)")
    kind, undone = ("same_footage", "not_same_footage") if decision == "confirmed" else (
        "not_same_footage", "same_footage")
    with transaction(archive.engine) as session:
        hidden = hidden_in(archive, session, role)
        _, a, b = kind_for(resolve(session, keys, item, "item", hidden=hidden),
                           resolve(session, keys, other, "item", hidden=hidden), kind)
        if not _candidates(session, a.id, b.id):
            raise NotFound(f"no near-duplicate candidate between items {a.id} and {b.id} (`evidence link ITEM "
                           "--item OTHER` links any two items as the same footage)")
        opposite = _active(session, undone, a.id, b.id)
        if opposite is not None:
            disconnect(session, keys, archive.actor, opposite, reason)
        link_id, _ = connect(session, keys, archive.actor, kind, a, b, certainty="confirmed", note=note,
                             reason=reason)
        _candidate_state(session, a.id, b.id, decision)  # also when the link was there already
    return show_link(archive, link_id, role=role)


def confirm_candidate(archive: Archive, item: str, other: str, *, role: Role, note: str | None = None,
                      reason: str | None = None) -> dict[str, Any]:
    """The pair is the same footage: a confirmed `same_footage` link (never a merge); the candidate confirmed."""
    return _decide(archive, item, other, role=role, decision="confirmed", note=note, reason=reason)


def reject_candidate(archive: Archive, item: str, other: str, *, role: Role, note: str | None = None,
                     reason: str | None = None) -> dict[str, Any]:
    """The pair is not the same footage: kept as a `not_same_footage` link, so the decision is in the journal
    and survives a rebuild; a same-footage link between them is unlinked."""
    return _decide(archive, item, other, role=role, decision="rejected", note=note, reason=reason)
