"""What an export carries and what it withholds: compartments, the family's consent per purpose, overrides.

The rules (issue 12), applied here before anything is opened or written:

- only custodians and investigators export; a restricted case's incidents,
  items and victims are invisible to a non-member (`hidden_in`): named
  explicitly they answer NotFound, word for word like an unknown ref, and
  nothing reached through links brings them in (nor counts them: a count
  would tell the case exists);
- for `un` and `court`, a victim whose family has not said "yes" (now) for
  the purpose's scope (`CONSENT_SCOPE`) is withheld, and so is every item
  linked (an active item-victim link) to a withheld victim, unless a
  custodian overrides that item by name with a reason (logged by the
  export-started event); links that touch a withheld victim go too;
- `Selection.withheld` holds counts and reasons only, never an id or a name.

Names, witness identities and free-text provenance are the records' concern
(`archive.exports.records`): the selection decides which records go at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlmodel import col, select

from archive.db import transaction
from archive.exports.formats import CONSENT_SCOPE, PURPOSES, Withheld
from archive.records.common import require
from archive.records.compartments import Hidden, find_visible, hidden_in
from archive.records.tables import Attribution, Incident, Link, Source, Victim
from archive.roles import Role
from archive.services.errors import Forbidden, Invalid

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive
    from archive.services.record_search import Query

NO_CONSENT = "no_consent_{scope}"  # Withheld.reason of a victim without the family's current "yes"
LINKED_TO_WITHHELD = "linked_to_withheld_victim"  # an item linked to such a victim
LINK_TO_WITHHELD = "touches_withheld"  # a link with such a victim or item at one end
OVERRIDE_REASON_MAX = 2000


@dataclass(frozen=True)
class ExportRequest:
    """What to export (incidents, items or a search) and for which purpose; overrides are custodians' only."""

    purpose: str
    incidents: tuple[str, ...] = ()  # refs or ids
    items: tuple[str, ...] = ()  # ids (or what `resolve_item` accepts)
    query: Query | None = None
    overrides: tuple[str, ...] = ()  # items withheld by the consent rule that go anyway
    override_reason: str | None = None


@dataclass
class Selection:
    """The ids an export carries (sorted), the items a custodian overrode, and what was withheld (counts)."""

    purpose: str
    items: list[str]
    incidents: list[str]
    victims: list[str]
    sources: list[str]
    links: list[str]
    overridden: list[str]
    withheld: list[Withheld]
    attributions: list[str] = field(default_factory=list)

    def record_ids(self) -> list[str]:
        """Every record the export carries (incidents, attributions, victims, sources, links), sorted."""
        return sorted({*self.incidents, *self.attributions, *self.victims, *self.sources, *self.links})


def _check(request: ExportRequest, role: Role) -> tuple[str, ...]:
    require(role, "exporting")
    if request.purpose not in PURPOSES:
        raise Invalid(f"purpose: {request.purpose!r} is not one of {', '.join(PURPOSES)}")
    if not (request.incidents or request.items or request.query is not None):
        raise Invalid("nothing selected: give incidents, items or a search")
    overrides = tuple(dict.fromkeys(o.strip() for o in request.overrides if o and o.strip()))
    if overrides:
        if role is not Role.CUSTODIAN:
            raise Forbidden("overriding the consent rule for an item needs the custodian role")
        if request.purpose not in CONSENT_SCOPE:
            raise Invalid(f"overrides: a {request.purpose!r} export withholds nothing for consent")
        reason = (request.override_reason or "").strip()
        if not reason:
            raise Invalid("override_reason: required with overrides (it is logged)")
        if len(reason) > OVERRIDE_REASON_MAX:
            raise Invalid(f"override_reason: at most {OVERRIDE_REASON_MAX} characters")
    return overrides


def _active_links(session: Session, kind: str, *, a: set[str] | None = None, b: set[str] | None = None
                  ) -> list[Link]:
    query = select(Link).where(Link.kind == kind, Link.active == True)  # noqa: E712
    if a is not None:
        if not a:
            return []
        query = query.where(col(Link.a_id).in_(sorted(a)))
    if b is not None:
        if not b:
            return []
        query = query.where(col(Link.b_id).in_(sorted(b)))
    return list(session.exec(query).all())


def _item_ids(archive: Archive, session: Session, refs: tuple[str, ...], hidden: Hidden) -> set[str]:
    from archive.services.items import resolve_item

    return {resolve_item(session, ref, hidden.items).id for ref in refs}


def _search(archive: Archive, query: Query, role: Role) -> set[str]:
    from archive.services.record_search import search_records

    found = search_records(archive, query, role=role)
    return {str(i["id"]) if isinstance(i, dict) else str(i) for i in found.get("items", [])}


def _provenance_sources(session: Session, items: set[str]) -> set[str]:
    from archive.catalog.items import Provenance

    if not items:
        return set()
    rows = session.exec(select(Provenance.source_id).where(col(Provenance.item_id).in_(sorted(items)),
                                                           col(Provenance.source_id).is_not(None))).all()
    return {str(r) for r in rows}


def _merged(session: Session, items: set[str]) -> set[str]:
    from archive.catalog.items import Item, ItemStatus

    if not items:
        return set()
    return set(session.exec(select(Item.id).where(col(Item.id).in_(sorted(items)),
                                                  Item.status == ItemStatus.MERGED)).all())


def _incident_victims(session: Session, incidents: set[str]) -> set[str]:
    if not incidents:
        return set()
    own = set(session.exec(select(Victim.id).where(col(Victim.incident_id).in_(sorted(incidents)),
                                                   Victim.status == "active")).all())
    return own | {ln.a_id for ln in _active_links(session, "victim_incident", b=incidents)}


def _reached(session: Session, incidents: set[str], items: set[str], hidden: Hidden
             ) -> tuple[set[str], set[str], set[str]]:
    """What the named incidents and the items bring: incidents, victims and sources (visible ones only)."""
    all_incidents = incidents | {ln.b_id for ln in _active_links(session, "item_incident", a=items)}
    victims = _incident_victims(session, incidents) | {ln.b_id for ln in _active_links(session, "item_victim",
                                                                                        a=items)}
    sources = {ln.a_id for ln in _active_links(session, "source_item", b=items)}
    sources |= {ln.a_id for ln in _active_links(session, "source_incident", b=incidents)}
    sources |= _provenance_sources(session, items)
    existing = set(session.exec(select(Source.id).where(col(Source.id).in_(sorted(sources)))).all()) \
        if sources else set()
    return all_incidents - hidden.incidents, victims - hidden.victims, existing


def _without_consent(session: Session, victims: set[str], scope: str) -> set[str]:
    from archive.services.victims import consents

    return {v for v in victims if not consents(session, v, scope)}


def select_export(archive: Archive, request: ExportRequest, *, role: Role) -> Selection:
    """What `request` exports for `role` (see the module docstring). Invalid, Forbidden, NotFound as they apply."""
    overrides = _check(request, role)
    searched = _search(archive, request.query, role) if request.query is not None else set()
    withheld: list[Withheld] = []
    with transaction(archive.engine) as session:
        hidden = hidden_in(archive, session, role)
        named_incidents = {find_visible(session, Incident, ref, "incident", hidden.incidents).id
                           for ref in request.incidents}
        named_items = _item_ids(archive, session, request.items, hidden) | (searched - hidden.items)
        merged = _merged(session, named_items)
        if merged:
            raise Invalid(f"item {sorted(merged)[0]} was merged into another item (the same bytes): export that one")
        # The items: those named, and those linked to a named incident.
        items = named_items | {ln.a_id for ln in _active_links(session, "item_incident", b=named_incidents)}
        items -= hidden.items | _merged(session, items)
        _, victims, _ = _reached(session, named_incidents, items, hidden)
        scope = CONSENT_SCOPE.get(request.purpose)
        refused: set[str] = _without_consent(session, victims, scope) if scope is not None else set()
        tied = {ln.a_id for ln in _active_links(session, "item_victim", a=items, b=refused)} if refused else set()
        unknown = [o for o in overrides if o not in tied]
        if unknown:
            raise Invalid(f"overrides: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not withheld by "
                          "the consent rule in this export (only such items can be overridden)")
        overridden = set(overrides)
        items -= tied - overridden
        # What the remaining items bring (a record reached only through a withheld item stays out).
        incidents, victims, sources = _reached(session, named_incidents, items, hidden)
        victims -= refused
        everything = items | incidents | victims | sources
        dropped = refused | (tied - overridden)
        links: set[str] = set()
        touching = 0
        near = sorted(everything | dropped)
        for row in session.exec(select(Link).where(Link.active == True, col(Link.a_id).in_(near))  # noqa: E712
                                ).all() if near else []:
            ends = {row.a_id, row.b_id}
            if ends <= everything:
                links.add(row.id)
            elif ends & dropped and ends <= everything | dropped:
                touching += 1
        attributions = set(session.exec(select(Attribution.id).where(
            col(Attribution.incident_id).in_(sorted(incidents)))).all()) if incidents else set()
    if refused and scope is not None:
        withheld.append(Withheld("victim", NO_CONSENT.format(scope=scope), len(refused),
                                 f"the family has not consented (now) to sharing with {scope.replace('_', ' ')}"))
    if tied - overridden:
        withheld.append(Withheld("item", LINKED_TO_WITHHELD, len(tied - overridden),
                                 "linked to a victim withheld for want of the family's consent"))
    if touching:
        withheld.append(Withheld("link", LINK_TO_WITHHELD, touching, "one end is a withheld victim or item"))
    return Selection(purpose=request.purpose, items=sorted(items), incidents=sorted(incidents),
                     victims=sorted(victims), sources=sorted(sources), links=sorted(links),
                     overridden=sorted(overridden), withheld=withheld, attributions=sorted(attributions))
