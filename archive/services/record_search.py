"""Search items and incidents together: what the options say, combined with AND.

Each option filters one side directly: incident options (start dates,
governorate, party, type, victim category) filter incidents; item options
(capture day, device, exact hash, similar to an item, linked or not) filter
items; a GPS box and a source kind filter both (an incident by its own
sealed coordinates and the sources linked to it; an item by its capture
position, and its provenance's source or a source linked to it). Then the
two sides meet through the item–incident links: when an incident option is
given, only items linked to a matching incident are shown, and when an item
option is given, only incidents linked to a matching item.

What is clear is filtered in SQL; what is sealed (coordinates, make and
model, the SHA-256) is opened in memory with the catalog key and compared
there, or found by its keyed lookup (the hash), never stored in clear.

What a restricted case hides from the caller (`archive.records.compartments`)
is taken out before anything meets anything: hidden incidents, items and
victims match no option, and links that touch them join nothing, so no
option can make a visible incident or item appear (or change its item count)
because of something hidden.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from archive.db import transaction
from archive.records.common import check_choice, check_day, record_keys, require
from archive.records.compartments import NOTHING, Hidden, among, hidden_in
from archive.records.tables import Incident, Link, Source, Victim
from archive.records.vocab import SOURCE_RELIABILITY, Vocab
from archive.roles import Role
from archive.services.errors import Invalid

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive
    from archive.keys.catalog import CatalogKeys

CATEGORIES = ("child", "woman", "civilian", "torture", "medical", "media", "civil_defence")
INCIDENT_OPTIONS = ("date_from", "date_to", "governorate", "party", "type_", "category")
ITEM_OPTIONS = ("linked", "captured_from", "captured_to", "device", "sha256", "similar_to")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Query:
    """The search options; None is "any"."""

    date_from: str | None = None
    date_to: str | None = None
    governorate: str | None = None
    box: str | None = None  # LAT1,LON1,LAT2,LON2 (archive.services.search.Box)
    party: str | None = None
    type_: str | None = None
    category: str | None = None
    source_kind: str | None = None
    linked: bool | None = None  # True: items linked to an incident; False: items linked to none
    captured_from: str | None = None
    captured_to: str | None = None
    device: str | None = None
    sha256: str | None = None
    similar_to: str | None = None

    def given(self, names: tuple[str, ...]) -> bool:
        return any(getattr(self, n) is not None for n in names)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def _check(session: Session, query: Query) -> None:
    """Refuse a bad option before anything is opened (`Invalid` naming it)."""
    vocab = Vocab.read(session)
    for name in ("date_from", "date_to", "captured_from", "captured_to"):
        value = getattr(query, name)
        if value is not None:
            check_day(value, name.replace("_", "-"))
    if query.governorate is not None:
        vocab.check("governorates", query.governorate, "governorate")
    if query.party is not None:
        vocab.check("parties", query.party, "party")
    if query.type_ is not None:
        vocab.check("incident_types", query.type_, "type")
    if query.category is not None:
        check_choice(query.category, CATEGORIES, "victim")
    if query.source_kind is not None:
        check_choice(query.source_kind, tuple(SOURCE_RELIABILITY), "source-kind")
    if query.sha256 is not None and not _SHA256.match(query.sha256.strip().lower()):
        raise Invalid(f"sha256: {query.sha256[:80]!r} is not 64 hexadecimal digits")
    if query.device is not None and not query.device.strip():
        raise Invalid("device: give part of a make or model")


def _incident_ids(session: Session, keys: CatalogKeys | None, query: Query, box: Any,
                  hidden: Hidden = NOTHING) -> set[str]:
    """Incidents matching every incident option (and the box and source kind), none of the hidden ones."""
    q = select(Incident.id, Incident.attribution)
    if query.date_from:
        q = q.where(Incident.started_day >= query.date_from)
    if query.date_to:
        q = q.where(Incident.started_day <= query.date_to)
    if query.governorate:
        q = q.where(Incident.governorate == query.governorate)
    if query.type_:
        q = q.where(Incident.type == query.type_)
    found = {i for i, attribution in session.exec(q).all()
             if i not in hidden.incidents and (query.party is None or query.party in attribution.split("+"))}
    if query.category is not None:
        found &= _incidents_with_victims(session, query.category, hidden.victims)
    if query.source_kind is not None:
        found &= _linked(session, "source_incident", _sources(session, query.source_kind))
    if box is not None:
        found &= _incidents_in_box(session, keys, box, found)
    return found


def _incidents_with_victims(session: Session, category: str, hidden: frozenset[str] = frozenset()) -> set[str]:
    """Incidents with an active victim of the category (not a hidden one): by the victim's incident, or a
    victim–incident link."""
    condition: Any = {
        "child": col(Victim.child) == True,  # noqa: E712
        "woman": col(Victim.woman) == True,  # noqa: E712
        "civilian": col(Victim.civilian) == True,  # noqa: E712
        "torture": col(Victim.died_under_torture) == True,  # noqa: E712
    }.get(category)
    if condition is None:  # a profession
        condition = col(Victim.professions).contains(f";{category};")
    rows = [r for r in session.exec(select(Victim.id, Victim.incident_id).where(Victim.status == "active",
                                                                                  condition)).all()
            if r[0] not in hidden]
    found = {incident for _, incident in rows}
    victims = {v for v, _ in rows}
    return found | _linked(session, "victim_incident", victims)


def _sources(session: Session, kind: str) -> set[str]:
    return set(session.exec(select(Source.id).where(Source.kind == kind)).all())


def _linked(session: Session, kind: str, a_ids: set[str]) -> set[str]:
    """The b ids actively linked (by links of `kind`) to any of `a_ids`."""
    if not a_ids:
        return set()
    rows = session.exec(select(Link.a_id, Link.b_id).where(Link.kind == kind, Link.active == True)).all()  # noqa: E712
    return {b for a, b in rows if a in a_ids}


def _incident_links(session: Session, hidden: Hidden = NOTHING) -> list[tuple[str, str]]:
    """(item id, incident id) of every active item–incident link between things the caller may see."""
    rows = session.exec(select(Link.a_id, Link.b_id).where(Link.kind == "item_incident",
                                                            Link.active == True)).all()  # noqa: E712
    return [(a, b) for a, b in rows if a not in hidden.items and b not in hidden.incidents]


def _incidents_in_box(session: Session, keys: CatalogKeys | None, box: Any, within: set[str]) -> set[str]:
    """The incidents among `within` whose own (sealed) coordinates lie in the box: opened in memory."""
    from archive.records.store import KINDS, state_of

    assert keys is not None
    inside = set()
    for row in session.exec(select(Incident).where(among(col(Incident.id), within))).all():
        state = state_of(keys, KINDS["incident"], row)
        lat, lon = state.get("latitude"), state.get("longitude")
        if lat is not None and lon is not None and box.holds(float(lat), float(lon)):
            inside.add(row.id)
    return inside


def _item_ids(archive: Archive, session: Session, keys: CatalogKeys | None, query: Query, box: Any,
              links: list[tuple[str, str]], hidden: Hidden = NOTHING) -> set[str]:
    """Items (not merged, not hidden) matching every item option (and the box and source kind)."""
    from archive.catalog.items import Item, ItemStatus, Provenance
    from archive.catalog.metadata import ItemMetadata

    base = select(Item.id).where(Item.status != ItemStatus.MERGED)
    if query.captured_from or query.captured_to:  # clear columns: the capture days narrow in SQL, first
        base = base.join(ItemMetadata, col(ItemMetadata.item_id) == col(Item.id)).where(
            col(ItemMetadata.captured_day).is_not(None))
        if query.captured_from:
            base = base.where(col(ItemMetadata.captured_day) >= query.captured_from)
        if query.captured_to:
            base = base.where(col(ItemMetadata.captured_day) <= query.captured_to)
    found = set(session.exec(base).all()) - hidden.items
    if query.linked is not None:
        linked = {item for item, _ in links}
        found = found & linked if query.linked else found - linked
    if query.sha256 is not None:
        from archive.catalog.secrets import find_item_by_sha256

        assert keys is not None
        item = find_item_by_sha256(session, keys, query.sha256.strip().lower())
        found &= {item.id} if item is not None else set()
    if query.device is not None:
        found &= _items_by_device(session, keys, query.device, found)
    if query.source_kind is not None:
        sources = _sources(session, query.source_kind)
        handed = set(session.exec(select(Provenance.item_id).where(col(Provenance.source_id).in_(sorted(sources))))
                     .all()) if sources else set()
        found &= handed | _linked(session, "source_item", sources)
    if box is not None:
        from archive.services.search import items_in_box

        found &= set(items_in_box(archive, box))
    return found


def _items_by_device(session: Session, keys: CatalogKeys | None, text: str, among: set[str]) -> set[str]:
    """Items whose sealed camera make or model contains `text` (case-insensitive), opened in memory."""
    from archive.catalog.metadata import ItemMetadata, metadata_fields
    from archive.catalog.sealing import PENDING

    assert keys is not None
    wanted = text.strip().casefold()
    found = set()
    rows = session.exec(select(ItemMetadata).where(col(ItemMetadata.key_version) != PENDING)).all()
    for row in rows:
        if row.item_id not in among:
            continue
        opened = metadata_fields(keys, row)
        device = " ".join(str(opened.get(f) or "") for f in ("make", "model")).casefold()
        if wanted in device:
            found.add(row.item_id)
    return found


def search_records(archive: Archive, query: Query, *, role: Role, limit: int | None = None,
                   after: str | None = None) -> dict[str, Any]:
    """{"items": [...], "incidents": [...]} matching every option of `query` (see the module docstring).

    Custodians and investigators (contributors and auditors: `Forbidden`). A box,
    a device, a hash or a similar item needs the catalog key (`Locked` without).

    `limit` or `after` page the items (oldest first, like `list_items`): at most
    `limit` items listed after the item `after`, and two more keys, `"next"`
    (the `after` of the following page; None on the last) and `"total"` (how
    many items match). The page is cut in SQL after everything hidden was taken
    out, so no page is short because of a hidden item, and a hidden item's id
    as `after` is refused like an id never ingested. A search with no option
    then reads no more than its page: no set of every item is built. Without
    them, every matching item (as before paging existed).
    """
    from archive.services.search import Box

    require(role, "searching items and incidents")
    box = Box.parse(query.box) if query.box is not None else None
    needs_key = box is not None or query.device is not None or query.sha256 is not None
    keys = record_keys(archive, "this search (coordinates, devices and hashes are sealed)") if needs_key else None
    with transaction(archive.engine) as session:
        _check(session, query)
    similar: set[str] | None = None
    if query.similar_to is not None:
        from archive.similarity import similar_to_item

        similar = {m.id for m in similar_to_item(archive, query.similar_to, role=role)}
    paged = limit is not None or after is not None
    if limit is not None and limit < 1:
        raise Invalid("limit: give at least 1")
    with transaction(archive.engine) as session:
        hidden = hidden_in(archive, session, role)
        links = _incident_links(session, hidden)
        incidents = _incident_ids(session, keys, query, box, hidden)
        if paged and not (query.given(ITEM_OPTIONS) or query.given(INCIDENT_OPTIONS) or box is not None
                          or query.source_kind is not None or similar is not None):
            # Every visible item matches: the page, its cursor and the count straight from SQL.
            ids, following, total = _page_of_all(session, hidden.items, limit, after)
            return {"query": query.as_dict(), "items": _items_shown(session, set(ids), links), "next": following,
                    "total": total, "incidents": _incidents_shown(session, incidents, links)}
        items = _item_ids(archive, session, keys, query, box, links, hidden)
        if similar is not None:
            items &= similar
        if query.given(INCIDENT_OPTIONS):
            items &= {item for item, incident in links if incident in incidents}
        if query.given(ITEM_OPTIONS):
            incidents &= {incident for item, incident in links if item in items}
        result: dict[str, Any] = {"query": query.as_dict()}
        if paged:
            ids, following = _page_of(session, items, limit, after)
            result.update(items=_items_shown(session, set(ids), links), next=following, total=len(items))
        else:
            result["items"] = _items_shown(session, items, links)
        result["incidents"] = _incidents_shown(session, incidents, links)
        return result


SCAN = 2000  # rows read at a time when a page is cut from a large set of matching items
INLINE = 1000  # up to this many matching items, the page is one query naming them


def _page_of_all(session: Session, hidden: frozenset[str], limit: int | None,
                 after: str | None) -> tuple[list[str], str | None, int]:
    """(the page's item ids, the next cursor, how many) of every visible item, in SQL."""
    from sqlalchemy import func
    from sqlalchemy import select as core_select

    from archive.records.compartments import excluding
    from archive.services.items import ITEMS, keyset_after

    conn = session.connection()
    visible = (ITEMS.c.status != "merged", excluding(ITEMS.c.id, hidden))
    query = core_select(ITEMS.c.id).where(*visible, keyset_after(conn, after, hidden)).order_by(
        ITEMS.c.created_at, ITEMS.c.id)
    ids = [str(i) for i in conn.execute(query.limit(limit + 1) if limit is not None else query).scalars()]
    total = int(conn.execute(core_select(func.count()).select_from(ITEMS).where(*visible)).scalar_one())
    return _cut(ids, limit) + (total,)


def _page_of(session: Session, items: set[str], limit: int | None, after: str | None) -> tuple[list[str], str | None]:
    """(the page's item ids, the next cursor) among `items` (visible matches), in the lists' order.

    A small set is named in one query; a large one is walked in the lists' order
    `SCAN` rows at a time until the page is full, so a dense match stops early
    and no query carries tens of thousands of ids.
    """
    from sqlalchemy import and_, or_
    from sqlalchemy import select as core_select

    from archive.services.items import ITEMS, bad_cursor, keyset_after

    if after is not None and after not in items:
        raise bad_cursor(after)
    conn = session.connection()
    condition = keyset_after(conn, after, frozenset())
    order = (ITEMS.c.created_at, ITEMS.c.id)
    want = None if limit is None else limit + 1
    if len(items) <= INLINE or want is None:
        query = core_select(ITEMS.c.id).where(among(ITEMS.c.id, items), condition).order_by(*order)
        return _cut([str(i) for i in conn.execute(query.limit(want) if want else query).scalars()], limit)
    ids: list[str] = []
    while len(ids) < want:
        rows = conn.execute(core_select(ITEMS.c.id, ITEMS.c.created_at).where(ITEMS.c.status != "merged", condition)
                            .order_by(*order).limit(SCAN)).all()
        ids += [str(r[0]) for r in rows if r[0] in items]
        if len(rows) < SCAN:
            break
        last_id, last_at = rows[-1]
        condition = or_(ITEMS.c.created_at > last_at, and_(ITEMS.c.created_at == last_at, ITEMS.c.id > last_id))
    return _cut(ids[:want], limit)


def _cut(ids: list[str], limit: int | None) -> tuple[list[str], str | None]:
    """A page of at most `limit` from up to `limit + 1` ids: (the page, its last id when one more followed)."""
    if limit is None or len(ids) <= limit:
        return ids, None
    return ids[:limit], ids[limit - 1]


def _items_shown(session: Session, ids: set[str], links: list[tuple[str, str]]) -> list[dict[str, Any]]:
    from archive.catalog.items import Item
    from archive.catalog.metadata import ItemMetadata

    if not ids:
        return []
    wanted = sorted(ids)
    days = dict(session.exec(select(ItemMetadata.item_id, ItemMetadata.captured_day)
                             .where(among(col(ItemMetadata.item_id), wanted))).all())
    refs = dict(session.exec(select(Incident.id, Incident.ref)).all()) if links else {}
    linked: dict[str, list[str]] = {}
    for item, incident in links:
        if item in ids:
            linked.setdefault(item, []).append(refs.get(incident, incident))
    rows = session.exec(select(Item).where(among(col(Item.id), wanted)).order_by(col(Item.created_at), col(Item.id)))
    return [{"id": r.id, "status": r.status, "media_type": r.media_type, "captured_day": days.get(r.id),
             "created_at": r.created_at, "incidents": sorted(linked.get(r.id, []))} for r in rows.all()]


def _incidents_shown(session: Session, ids: set[str], links: list[tuple[str, str]]) -> list[dict[str, Any]]:
    if not ids:
        return []
    counts: dict[str, int] = {}
    for _, incident in links:
        counts[incident] = counts.get(incident, 0) + 1
    rows = session.exec(select(Incident).where(among(col(Incident.id), ids))
                        .order_by(col(Incident.started_at), col(Incident.ref))).all()
    return [{"id": r.id, "ref": r.ref, "type": r.type, "started_at": r.started_at,
             "started_precision": r.started_precision, "governorate": r.governorate,
             "attribution": r.attribution, "items": counts.get(r.id, 0)} for r in rows]
