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
- The total is its own query, not the sum of the rows: that rows and groups
  add up to it is a check, not a tautology (tests/test_stats.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlmodel import col

from archive.db import read_only, transaction
from archive.records.common import check_day, require
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
    `date`; `Forbidden` for a contributor. No personal data is read.
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
    with transaction(read_only(archive.engine)) as session:
        parties, facility = _vocab(session)
        victim_day = col(Victim.date_documented) if date == "documented" else col(Victim.date_of_death)
        victims = _victims_by(session, by, victim_day, start, end)
        incidents = _incidents_by(session, by, facility, start, end)
        total = _total(session, victim_day, facility, start, end)
        excluded = _no_death_date(session) if date == "death" else 0
    rows = _merge(by, victims, incidents, parties)
    groups = _groups(rows) if by == "party" else []
    return {"by": by, "date": date, "from": start, "to": end, "rows": rows, "groups": groups, "total": total,
            "excluded": {"no_date_of_death": excluded}}


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


def _within(day: Any, start: str | None, end: str | None) -> ColumnElement[bool]:
    """The period, inclusive at both ends (a missing day is outside every period)."""
    conditions: list[ColumnElement[bool]] = [day.is_not(None)]
    if start:
        conditions.append(day >= start)
    if end:
        conditions.append(day <= end)
    return and_(*conditions)


def _counted() -> ColumnElement[bool]:
    return and_(col(Victim.civilian) == True, col(Victim.status) == "active")  # noqa: E712


def _victim_sums() -> list[Any]:
    def flag(condition: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    return [func.count().label("civilians"), flag(col(Victim.child) == True).label("children"),  # noqa: E712
            flag(col(Victim.woman) == True).label("women"),  # noqa: E712
            flag(col(Victim.died_under_torture) == True).label("torture"),  # noqa: E712
            *(flag(col(Victim.professions).like(f"%;{p};%")).label(p) for p in PROFESSIONS)]


def _victims_by(session: Session, by: str, day: Any, start: str | None, end: str | None) -> dict[Any, list[int]]:
    """Victim counts per key of the dimension: one GROUP BY."""
    key: Any = {"party": col(Incident.attribution), "type": col(Incident.type),
                "month": func.substr(day, 1, 7), "governorate": col(Victim.governorate_of_death)}[by]
    query = select(key.label("key"), *_victim_sums()).select_from(Victim)
    if by in ("party", "type"):
        query = query.join(Incident, col(Incident.id) == col(Victim.incident_id))
    query = query.where(_counted(), _within(day, start, end)).group_by(key)
    return {row[0]: [int(v) for v in row[1:]] for row in session.execute(query).all()}


def _massacre_ids() -> Any:
    """Incidents with at least MASSACRE_CIVILIANS civilian active victims (of any date)."""
    return (select(col(Victim.incident_id).label("incident_id")).where(_counted())
            .group_by(col(Victim.incident_id)).having(func.count() >= MASSACRE_CIVILIANS).subquery())


def _incidents_by(session: Session, by: str, facility: set[str], start: str | None,
                  end: str | None) -> dict[Any, list[int]]:
    """Massacres and facility attacks per key of the dimension, by the incident's start."""
    key: Any = {"party": col(Incident.attribution), "type": col(Incident.type),
                "month": func.substr(col(Incident.started_day), 1, 7), "governorate": col(Incident.governorate)}[by]
    massacres = _massacre_ids()
    is_massacre = massacres.c.incident_id.is_not(None)
    is_facility: ColumnElement[bool] = col(Incident.type).in_(sorted(facility)) if facility else literal(False)
    query = (select(key.label("key"), func.coalesce(func.sum(case((is_massacre, 1), else_=0)), 0),
                    func.coalesce(func.sum(case((is_facility, 1), else_=0)), 0))
             .select_from(Incident).outerjoin(massacres, massacres.c.incident_id == col(Incident.id))
             .where(_within(col(Incident.started_day), start, end), or_(is_massacre, is_facility)).group_by(key))
    return {row[0]: [int(row[1]), int(row[2])] for row in session.execute(query).all()}


def _total(session: Session, day: Any, facility: set[str], start: str | None, end: str | None) -> dict[str, int]:
    """The period's totals, counted on their own (no dimension, no join)."""
    sums = session.execute(select(*_victim_sums()).select_from(Victim)
                           .where(_counted(), _within(day, start, end))).one()
    in_period = _within(col(Incident.started_day), start, end)
    massacres = _massacre_ids()
    n_massacres = session.execute(select(func.count()).select_from(Incident)
                                  .join(massacres, massacres.c.incident_id == col(Incident.id))
                                  .where(in_period)).scalar_one()
    n_facility = (session.execute(select(func.count()).select_from(Incident)
                                  .where(in_period, col(Incident.type).in_(sorted(facility)))).scalar_one()
                  if facility else 0)
    return dict(zip(COUNTS, [int(v) for v in sums] + [int(n_massacres), int(n_facility)], strict=True))


def _no_death_date(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(Victim)
                               .where(_counted(), col(Victim.date_of_death).is_(None))).scalar_one())


def _merge(by: str, victims: dict[Any, list[int]], incidents: dict[Any, list[int]],
           parties: dict[str, str]) -> list[dict[str, Any]]:
    """One row per key seen by either measure, in report order."""
    rows = []
    for key in set(victims) | set(incidents):
        row: dict[str, Any] = {by: key}
        if by == "party":
            row["group"] = party_group(parties, key)
        counts = victims.get(key, [0] * len(VICTIM_COUNTS)) + incidents.get(key, [0] * len(INCIDENT_COUNTS))
        row.update(zip(COUNTS, counts, strict=True))
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
