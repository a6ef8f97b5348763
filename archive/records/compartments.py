"""Compartments: what restricted cases hide from a caller. The one place that decides it.

A custodian puts incidents into a restricted case (`archive.services.cases`)
and names its members. `hidden_for` says, for one caller, which incidents,
items and victims do not exist as far as that caller is concerned; every
reader (items, search, statistics, incidents, victims, links, candidates,
similar, and the exports of issue 12) subtracts exactly these sets, so a
hidden thing behaves like one that was never recorded: the same NotFound
message as an unknown ref, no difference in any count.

The rules, stated once:

- Custodians see everything. Auditors too, but they only ever get the
  non-personal views (ids, states), never the documentation model.
- Anyone else (an investigator; a contributor, who reads nothing anyway) does
  not see an incident that is in a case they are not a member of. An
  incident in two cases needs membership of both: the most restrictive case wins.
- A victim is hidden when its incident is hidden or it is actively linked
  (victim–incident) to a hidden incident, even if it is also linked to a
  visible one; and so is every report merged with it (one person).
- An item is hidden when it is actively linked to a hidden incident or to a
  hidden victim, even if also linked to a visible incident. An unlinked
  (inactive) link hides nothing.
- Sources are not compartmented (one witness speaks of many incidents); their
  links to hidden things are hidden with those things.

Cost: when no case hides anything from the caller (the common case) one
query; otherwise four more (victims by incident and links by b id, both
indexed; the merge pairs, one read of two columns: `victims.merged_into` has
no index), computed once per session and cached on it, never per row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import ColumnElement, bindparam, not_, select, true, union

from archive.roles import Role

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlmodel import Session, SQLModel

    from archive.context import Archive

Row = TypeVar("Row", bound="SQLModel")
_CACHE = "compartments.hidden"  # session.info key: {(user id, role): Hidden}


@dataclass(frozen=True)
class Hidden:
    """The ids a caller may not see; empty sets: nothing hidden."""

    incidents: frozenset[str] = frozenset()
    items: frozenset[str] = frozenset()
    victims: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.incidents or self.items or self.victims)

    def any_of(self, ids: Iterable[str]) -> bool:
        """Whether any of these ids (of any kind) is hidden."""
        return any(i in self.incidents or i in self.items or i in self.victims for i in ids)

    @property
    def everything(self) -> frozenset[str]:
        return self.incidents | self.items | self.victims


NOTHING = Hidden()


def sees_all(role: Role) -> bool:
    """Roles no case hides anything from: custodians, and auditors (who get non-personal views only)."""
    return role in (Role.CUSTODIAN, Role.AUDITOR)


def hidden_for(session: Session | Connection, user_id: str, role: Role) -> Hidden:
    """What `user_id` acting as `role` may not see (see the module docstring); cached on the session."""
    if sees_all(role):
        return NOTHING
    info = getattr(session, "info", None)
    cache: dict[tuple[str, str], Hidden] | None = info.setdefault(_CACHE, {}) if isinstance(info, dict) else None
    if cache is not None and (user_id, role.value) in cache:
        return cache[(user_id, role.value)]
    found = _compute(session, user_id)
    if cache is not None:
        cache[(user_id, role.value)] = found
    return found


def hidden_in(archive: Archive, session: Session | Connection, role: Role) -> Hidden:
    """`hidden_for` the archive's actor (the HTTP layer's caller); never reads the actor for a role that sees all
    (a CLI custodian's actor may not be resolved yet, and need not be)."""
    if sees_all(role):
        return NOTHING
    return hidden_for(session, archive.actor, role)


def forget(session: Session) -> None:
    """Drop the cached answers (a case changed inside this session)."""
    session.info.pop(_CACHE, None)


def _compute(session: Session | Connection, user_id: str) -> Hidden:
    from archive.catalog.cases import CaseIncident, CaseMember
    from archive.records.tables import Link, Victim

    ci, cm = CaseIncident.__table__.c, CaseMember.__table__.c  # type: ignore[attr-defined]
    member_of = select(cm.case_id).where(cm.user_id == user_id)
    incidents = frozenset(str(i) for i in session.execute(
        select(ci.incident_id).where(ci.case_id.not_in(member_of)).distinct()).scalars())
    if not incidents:
        return NOTHING
    lk, vt = Link.__table__.c, Victim.__table__.c  # type: ignore[attr-defined]

    def linked_to(kind: str, ids: frozenset[str]) -> Any:
        return select(lk.a_id).where(lk.kind == kind, lk.active == True, among(lk.b_id, ids))  # noqa: E712

    victims = set(session.execute(union(select(vt.id).where(among(vt.incident_id, incidents)),
                                        linked_to("victim_incident", incidents))).scalars())
    if victims:  # reports merged with a hidden one, either way round: one person
        victims = _with_merged(session, victims)
    hidden_victims = frozenset(str(v) for v in victims)
    query = linked_to("item_incident", incidents)
    if hidden_victims:
        query = union(query, linked_to("item_victim", hidden_victims))
    items = frozenset(str(i) for i in session.execute(query).scalars())
    return Hidden(incidents, items, hidden_victims)


def _with_merged(session: Session | Connection, victims: set[str]) -> set[str]:
    """`victims` and every report merged with one of them (through any chain, either way round).

    One read of the merge pairs (`merged_into` is set on merged reports only), closed in memory: a
    pair query per step would scan the table once per step (the column has no index)."""
    from archive.records.tables import Victim

    vt = Victim.__table__.c  # type: ignore[attr-defined]
    neighbours: dict[str, set[str]] = {}
    for report, kept in session.execute(select(vt.id, vt.merged_into).where(vt.merged_into.is_not(None))).all():
        neighbours.setdefault(str(report), set()).add(str(kept))
        neighbours.setdefault(str(kept), set()).add(str(report))
    found, todo = set(victims), list(victims)
    while todo:
        for other in neighbours.get(todo.pop(), ()):
            if other not in found:
                found.add(other)
                todo.append(other)
    return found


def among(column: Any, ids: Iterable[str]) -> ColumnElement[bool]:
    """`column IN (ids)` with the ids rendered inline (no bound parameter per id: SQLite and PostgreSQL cap
    those, and a case may hold tens of thousands of victims). The ids come from the catalog itself."""
    values = sorted(ids)
    if not values:
        return not_(true())
    return column.in_(bindparam(None, values, expanding=True, literal_execute=True))


def excluding(column: Any, ids: Iterable[str]) -> ColumnElement[bool]:
    """`column NOT IN (ids)` (true when nothing is hidden): a WHERE clause for counts and lists, on a column
    that is never NULL (NULL NOT IN … is not true)."""
    values = frozenset(ids)
    if not values:
        return true()
    return not_(among(column, values))


def find_visible(session: Session, model: type[Row], name: str, what: str, hidden: frozenset[str], *,
                 lock: bool = False) -> Row:
    """`archive.records.common.find` as if the `hidden` records did not exist: the same NotFound, word for word."""
    from archive.records.common import find
    from archive.services.errors import NotFound

    row = find(session, model, name, what, lock=lock)
    if row.id in hidden:  # type: ignore[attr-defined]
        raise NotFound(f"no {what} {name.strip()!r} (by ref or id)")
    return row
