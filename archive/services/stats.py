"""Statistics like a monthly report: civilian deaths by party, month, governorate or incident type.

Everything is counted in the database (one GROUP BY per measure) from clear
columns alone, so statistics work on a locked server (no catalog key) and
cost the same on 100 or 100,000 victims. The rules, stated once:

- A *victim count* (`civilians`, `children`, `women`, `torture`, `medical`,
  `media`, `civil_defence`) counts civilian victims whose status is
  `active` (a victim merged into another is the same person, counted once as
  the one it was merged into), each once, in the row of its incident's
  dimension. Children and women are the derived columns (`store.is_child`), so
  they never exceed civilians. A victim falls in the period by the date
  `date` chooses: `documented` (the default, as the monthly reports count)
  or `death`; a victim with no date of death is then left out, and the
  result says how many (`excluded.no_date_of_death`, civilians only).
- A *massacre* is an incident with at least `MASSACRE_CIVILIANS` civilian
  active victims, counting all of them whatever their dates (the same rule as
  `incidents.is_massacre`, so a list of massacres and these counts agree). It
  counts once, in its incident's row, when the incident's start day falls in
  the period. A *facility attack* is an incident whose type is in the
  vocabulary group `facility`, counted the same way.
- An incident's row: `party` is its attribution (a joint attribution is its
  own row, keyed by its parties sorted and joined by "+", in group `main` if
  any member is); `type` its type. `month` is the victim's chosen date's
  month for victim counts and the incident's start month for massacres and
  facility attacks. `governorate` is the victim's governorate of death
  (null when not known) for victim counts and the incident's governorate for
  massacres and facility attacks.
- The total is summed on its own (over the incidents, not over the rows),
  in the same statement as the rows: that rows and groups add up to it is a
  check, not a tautology (tests/test_stats.py). --by party and --by type
  read the victims once (all counts per incident, then per key); --by month
  and --by governorate read them by their own key, and once more, lightly,
  for the massacres.
- Compartments: for a caller a restricted case hides things from
  (`archive.records.compartments`), the hidden incidents and victims are not
  counted at all, anywhere (rows, groups, totals, massacres, the undated):
  the numbers are those of an archive that never held them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, case, func, literal, literal_column, select, union_all
from sqlmodel import col

from archive.db import read_only, transaction
from archive.records.common import check_day, require
from archive.records.compartments import NOTHING, Hidden, excluding, hidden_in
from archive.records.tables import Incident, Victim, VocabTerm
from archive.records.vocab import DEFAULT_FILE, MASSACRE_CIVILIANS, PARTY_GROUPS
from archive.roles import Role
from archive.services.errors import Invalid

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive

DIMENSIONS = ("party", "month", "governorate", "type")
DATES = ("documented", "death")
VICTIM_COUNTS = ("civilians", "children", "women", "torture", "medical", "media", "civil_defence")
INCIDENT_COUNTS = ("massacres", "facility_attacks")
COUNTS = VICTIM_COUNTS + INCIDENT_COUNTS
PROFESSIONS = ("medical", "media", "civil_defence")  # the professions the report counts (victim column `;k;`)


def statistics(archive: Archive, *, role: Role, date_from: str | None = None, date_to: str | None = None,
               date: str = "documented", by: str = "party") -> dict[str, Any]:
    """`{"rows", "groups", "total", …}`: the period's counts by one dimension (see the module docstring).

    `date_from` and `date_to` are inclusive days (`YYYY-MM-DD`); either may be
    left open. `Invalid` for a bad date, an empty period, an unknown `by` or
    `date`; `Forbidden` for a contributor. No personal data is read, and no key.
    """
    require(role, "reading statistics")
    if by not in DIMENSIONS:
        raise Invalid(f"by: {by!r} is not one of {', '.join(DIMENSIONS)}")
    if date not in DATES:
        raise Invalid(f"date: {date!r} is not one of {', '.join(DATES)}")
    start = check_day(date_from, "from") if date_from not in (None, "") else None
    end = check_day(date_to, "to") if date_to not in (None, "") else None
    if start and end and start > end:
        raise Invalid(f"from: {start} is after to ({end})")
    period = Period(col(Victim.date_documented) if date == "documented" else col(Victim.date_of_death), start, end)
    with transaction(read_only(archive.engine)) as session:  # reads only: never queues behind an import
        hidden = hidden_in(archive, session, role)
        parties, facility = _vocab(session)
        if by in ("party", "type"):
            counts, total, undated = _by_incident(session, period, facility, by, victims=True, hidden=hidden)
        else:  # the victims by their own month or governorate; massacres and facility attacks by the incident's
            incidents, incident_total, undated = _by_incident(session, period, facility, by, victims=False,
                                                              hidden=hidden)
            victims, victim_total = _by_victim(session, period, by, hidden)
            none = [0] * len(VICTIM_COUNTS), [0] * len(INCIDENT_COUNTS)
            counts = {key: victims.get(key, none[0]) + incidents.get(key, none[1])
                      for key in set(victims) | set(incidents)}
            total = victim_total + incident_total
    excluded = undated if date == "death" else 0
    rows = _rows(by, counts, parties)
    groups = _groups(rows) if by == "party" else []
    return {"by": by, "date": date, "from": start, "to": end, "rows": rows, "groups": groups,
            "total": dict(zip(COUNTS, total, strict=True)),
            "excluded": {"no_date_of_death": excluded}}


@dataclass(frozen=True)
class Period:
    """The victim's date that counts (documented or death) and the inclusive bounds (None: open)."""

    day: Any
    start: str | None
    end: str | None

    def holds(self, day: Any = None) -> ColumnElement[bool]:
        """`day` (the victim's date by default) within the period; a missing day is outside every period."""
        day = self.day if day is None else day
        conditions: list[ColumnElement[bool]] = [day.is_not(None)]
        if self.start:
            conditions.append(day >= self.start)
        if self.end:
            conditions.append(day <= self.end)
        return and_(*conditions)


def _vocab(session: Session) -> tuple[dict[str, str], set[str]]:
    """(party → group, facility incident types), read without writing (the default set if none is loaded)."""
    terms = session.exec(select(VocabTerm.vocabulary, VocabTerm.key, VocabTerm.group)  # type: ignore[call-overload]
                         .where(col(VocabTerm.vocabulary).in_(("parties", "incident_types")))).all()
    if not terms:
        data = json.loads(DEFAULT_FILE.read_text(encoding="utf-8"))["vocabularies"]
        terms = [(name, t["key"], t.get("group")) for name in ("parties", "incident_types") for t in data[name]]
    parties = {key: group or "other" for vocabulary, key, group in terms if vocabulary == "parties"}
    facility = {key for vocabulary, key, group in terms if vocabulary == "incident_types" and group == "facility"}
    return parties, facility


def _counted(hidden: Hidden = NOTHING) -> ColumnElement[bool]:
    """A victim counted at all: a civilian, not merged into another record of the same person, not hidden."""
    return and_(col(Victim.civilian) == True, col(Victim.status) == "active",  # noqa: E712
                excluding(col(Victim.id), hidden.victims))


def _flag(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _categories() -> list[ColumnElement[bool]]:
    """What each victim count after `civilians` counts, in COUNTS order."""
    return [col(Victim.child) == True, col(Victim.woman) == True,  # noqa: E712
            col(Victim.died_under_torture) == True,  # noqa: E712
            *(col(Victim.professions).like(f"%;{p};%") for p in PROFESSIONS)]


def _per_incident(period: Period, victims: bool, dialect: str, hidden: Hidden = NOTHING) -> Any:
    """Per incident: all its counted victims (whatever their dates: the massacre rule), those without a date
    of death, and (with `victims`) those in the period by category.

    On SQLite the GROUP BY is on `+incident_id`: the unary plus keeps the planner from walking the
    incident_id index (a random row read per victim); sorting one sequential scan is about twice as fast."""
    group: Any = literal_column("+victims.incident_id") if dialect == "sqlite" else col(Victim.incident_id)
    in_period = period.holds()
    categories = [_flag(in_period).label("civilians"),
                  *(_flag(and_(in_period, c)).label(f"c{i}") for i, c in enumerate(_categories()))]
    return (select(col(Victim.incident_id).label("incident_id"), func.count().label("everyone"),
                   _flag(col(Victim.date_of_death).is_(None)).label("undated"), *(categories if victims else []))
            .where(_counted(hidden)).group_by(group).cte("per_incident"))


def _incident_flags(period: Period, facility: set[str], everyone: Any) -> list[Any]:
    """Massacres and facility attacks: incidents whose start falls in the period."""
    started = period.holds(col(Incident.started_day))
    is_facility: ColumnElement[bool] = col(Incident.type).in_(sorted(facility)) if facility else literal(False)
    return [_flag(and_(started, everyone >= MASSACRE_CIVILIANS)), _flag(and_(started, is_facility))]


def _by_incident(session: Session, period: Period, facility: set[str], by: str,
                 victims: bool, hidden: Hidden = NOTHING) -> tuple[dict[Any, list[int]], list[int], int]:
    """(counts per key of the incident, the total, civilians without a date of death) in ONE pass over the
    victims: each incident's victims summed first (a CTE), then the incidents grouped by the key (attribution,
    type, start month or governorate) and, in the same statement, summed on their own for the total.
    The counts are the massacres and facility attacks, after the victim counts when `victims`."""
    per = _per_incident(period, victims, session.get_bind().dialect.name, hidden)
    key: Any = {"party": col(Incident.attribution), "type": col(Incident.type),
                "governorate": col(Incident.governorate),
                "month": func.substr(col(Incident.started_day), 1, 7)}[by]
    sums = [func.coalesce(func.sum(c), 0) for c in list(per.c)[3:]]
    measures = [func.coalesce(func.sum(per.c.undated), 0), *sums,
                *_incident_flags(period, facility, func.coalesce(per.c.everyone, 0))]
    joined = Incident.__table__.outerjoin(per, per.c.incident_id == col(Incident.id))  # type: ignore[attr-defined]
    shown = excluding(col(Incident.id), hidden.incidents)
    grouped = (select(literal(0).label("whole"), key.label("key"), *measures).select_from(joined).where(shown)
               .group_by(key))
    whole = select(literal(1), literal(None), *measures).select_from(joined).where(shown)
    counts: dict[Any, list[int]] = {}
    total, undated = [0] * (len(measures) - 1), 0
    for row in session.execute(union_all(grouped, whole)).all():
        values = [int(v) for v in row[3:]]
        if row[0]:
            total, undated = values, int(row[2])
        elif any(values):
            counts[row[1]] = values
    return counts, total, undated


def _by_victim(session: Session, period: Period, by: str,
               hidden: Hidden = NOTHING) -> tuple[dict[Any, list[int]], list[int]]:
    """(victim counts per month of the victim's date or governorate of death, their total counted on its own):
    one statement, no join."""
    key: Any = func.substr(period.day, 1, 7) if by == "month" else col(Victim.governorate_of_death)
    measures = [func.count(), *(_flag(c) for c in _categories())]
    grouped = (select(literal(0).label("whole"), key.label("key"), *measures).select_from(Victim)
               .where(_counted(hidden), period.holds()).group_by(key))
    whole = select(literal(1), literal(None), *measures).select_from(Victim).where(_counted(hidden),
                                                                                    period.holds())
    counts: dict[Any, list[int]] = {}
    total = [0] * len(VICTIM_COUNTS)
    for row in session.execute(union_all(grouped, whole)).all():
        if row[0]:
            total = [int(v) for v in row[2:]]
        else:
            counts[row[1]] = [int(v) for v in row[2:]]
    return counts, total


def _rows(by: str, counts: dict[Any, list[int]], parties: dict[str, str]) -> list[dict[str, Any]]:
    """One row per key, in report order: months in order, else main before other and the most deaths first."""
    rows = []
    for key, values in counts.items():
        row: dict[str, Any] = {by: key}
        if by == "party":
            row["group"] = party_group(parties, key)
        row.update(zip(COUNTS, values, strict=True))
        rows.append(row)
    if by == "month":
        return sorted(rows, key=lambda r: r["month"] or "")
    order = {g: i for i, g in enumerate(PARTY_GROUPS)}
    return sorted(rows, key=lambda r: (order.get(r.get("group", ""), 0), -r["civilians"], r[by] is None,
                                       r[by] or ""))


def party_group(parties: dict[str, str], attribution: str) -> str:
    """`main` if any party of the (joint) attribution is main, else `other`."""
    return "main" if any(parties.get(p) == "main" for p in attribution.split("+")) else "other"


def _groups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups = []
    for group in PARTY_GROUPS:
        members = [r for r in rows if r["group"] == group]
        groups.append({"group": group, **{c: sum(r[c] for r in members) for c in COUNTS}})
    return groups
