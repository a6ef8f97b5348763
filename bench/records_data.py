"""Realistic incidents and victims in the interchange format (`evidence import` CSV), for tests and benchmarks.

    python bench/records_data.py --report-2023 --out DIR        # the SNHR 2023 tables, exactly
    python bench/records_data.py --incidents 20000 --victims 100000 --seed 1 --out DIR

Two generators, both returning a `Dataset` (rows as the CSV holds them: every
column of the spec's Interchange section, values as text, "" for empty):

- `report_2023(seed)`: the civilian deaths of `../shared/corpus/snhr-2023-tables.json`
  (each party's civilians, children and women; deaths under torture by party)
  as individual victims in incidents spread over the months and governorates of
  2023, with some massacres, plus victims that must *not* be counted for 2023:
  combatants, and civilians documented in December 2022 or January 2024.
  Counted by date documented over 2023-01-01..2023-12-31, the data gives the
  report's by-party lines exactly (`expected_2023()`), and its group totals
  (358 main, 674 other, 1032 in all). The report's stated total of women
  (150) disagrees with its own lines (119): the lines are reproduced.
  The torture table's "other" row (4 deaths) is attributed to
  `killing_unidentified`.
- `generate(n_incidents, n_victims, seed)`: data at scale (100,000 victims
  over 20,000 incidents is the benchmark's size) with joint attributions,
  combatants, professions, deaths under torture documented years later,
  anonymous victims, withheld names, family consent, victims without a date
  or a governorate of death, facility attacks and massacres.

`Dataset.write(directory)` writes `incidents.csv` and `victims.csv` (UTF-8,
header row) and returns their paths; `insert(archive, dataset)` loads a dataset
straight into a catalog through the record rules and store (validated, sealed,
committed with one batch event per kind), for benchmarks that must not depend
on `evidence import`. Deterministic: the same arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archive.records.rules import FIELDS as INCIDENT_COLUMNS  # noqa: E402
from archive.records.rules import VICTIM_FIELDS as VICTIM_COLUMNS  # noqa: E402

CORPUS_TABLES = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "snhr-2023-tables.json"
TORTURE_OTHER = "killing_unidentified"  # the party the torture table's "other" row is given to
YEAR_START, YEAR_END = date(2023, 1, 1), date(2023, 12, 31)

GOVERNORATES = ("damascus", "rural_damascus", "aleppo", "idlib", "hama", "homs", "latakia", "tartus", "daraa",
                "suwayda", "quneitra", "deir_ez_zour", "raqqa", "hasaka")
WHERE = {  # where each party's victims mostly died in 2023
    "syrian_regime": ("idlib", "aleppo", "hama", "daraa", "rural_damascus", "deir_ez_zour"),
    "russian_forces": ("idlib", "hama", "latakia", "aleppo"),
    "isis": ("deir_ez_zour", "homs", "raqqa"),
    "hts": ("idlib", "aleppo"),
    "sna": ("aleppo", "hasaka", "raqqa"),
    "sdf": ("deir_ez_zour", "raqqa", "hasaka", "aleppo"),
    "international_coalition": ("deir_ez_zour", "idlib", "hasaka"),
    "gunfire_unidentified": ("daraa", "suwayda", "deir_ez_zour", "aleppo", "rural_damascus"),
    "killing_unidentified": ("daraa", "deir_ez_zour", "homs", "rural_damascus", "aleppo"),
    "bombing_unidentified": ("aleppo", "idlib", "daraa", "homs"),
    "turkish_forces": ("aleppo", "hasaka", "raqqa"),
    "turkish_border_guard": ("idlib", "aleppo", "hasaka"),
    "jordanian_forces": ("daraa", "suwayda"),
    "lebanese_forces": ("homs", "rural_damascus"),
    "drowning": ("latakia", "tartus", "idlib"),
}
TYPES = {"landmine_unidentified": "landmine", "drowning": "drowning", "bombing_unidentified": "explosion"}
FACILITY_TYPES = ("attack_medical_facility", "attack_school", "attack_civil_defence", "attack_ambulance",
                  "attack_red_crescent")
WEAPONS = {
    "syrian_regime": ("artillery", "barrel_bomb", "airstrike", "rocket", "sniper", "drone"),
    "russian_forces": ("airstrike", "cluster_munition"),
    "international_coalition": ("airstrike", "drone"),
    "landmine_unidentified": ("landmine",),
    "bombing_unidentified": ("ied", "car_bomb"),
    "drowning": ("other",),
}
PRISONS = {"syrian_regime": "damascus", "hts": "idlib", "sna": "aleppo", "sdf": "hasaka"}
FIRST_NAMES = {"male": ("محمد", "أحمد", "خالد", "عمر", "علي", "حسن", "يوسف", "إبراهيم", "عبد الله", "مصطفى", "Mahmoud",
                        "Ayham", "Samer"),
               "female": ("فاطمة", "عائشة", "مريم", "زينب", "هدى", "رنا", "سلمى", "ليلى", "خديجة", "Nour", "Rasha")}
FAMILY_NAMES = ("الحسين", "العلي", "الأحمد", "الخطيب", "الحمصي", "الشامي", "المصري", "الحلبي", "النجار", "الزعبي",
                "al-Omar", "Haddad", "Darwish", "Qassem", "Sabbagh")
RESEARCHERS = tuple(f"field researcher {n}" for n in range(1, 13))


@dataclass
class Dataset:
    """Incidents and victims as the interchange CSV holds them (every column, text values)."""

    incidents: list[dict[str, str]] = field(default_factory=list)
    victims: list[dict[str, str]] = field(default_factory=list)

    def write(self, directory: Path) -> tuple[Path, Path]:
        """Write `incidents.csv` and `victims.csv` in `directory`; their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        incidents, victims = directory / "incidents.csv", directory / "victims.csv"
        write_csv(incidents, INCIDENT_COLUMNS, self.incidents)
        write_csv(victims, VICTIM_COLUMNS, self.victims)
        return incidents, victims


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def corpus_tables(path: Path = CORPUS_TABLES) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def expected_2023(path: Path = CORPUS_TABLES) -> dict[str, Any]:
    """What `report_2023` must give, from the corpus: {"parties": {party: (group, civilians, children, women)},
    "torture": {party: (deaths, children, women)}, "groups": {group: civilians}, "civilians": total}."""
    tables = corpus_tables(path)
    parties = {party: (group, *line) for group, lines in tables["by_party"].items() if group in ("main", "other")
               for party, line in lines.items()}
    torture = {TORTURE_OTHER if party == "other" else party: tuple(line)
               for party, line in tables["torture_by_party"]["rows"].items()}
    return {"parties": parties, "torture": torture, "groups": dict(tables["by_party"]["group_totals"]),
            "civilians": sum(p[1] for p in parties.values())}


class _Maker:
    """Builds rows one incident at a time, with refs numbered in order."""

    def __init__(self, rng: random.Random, prefix: str) -> None:
        self.rng, self.prefix, self.data = rng, prefix, Dataset()

    def incident(self, party: str, day: date, *, type: str | None = None, governorate: str | None = None,
                 precision: str = "day") -> dict[str, str]:
        rng = self.rng
        main_party = party.split("+")[0]
        governorate = governorate or rng.choice(WHERE.get(main_party, GOVERNORATES))
        kind = type or TYPES.get(main_party, "killing")
        timed = precision in ("hour", "minute")
        started = f"{day.isoformat()}T{rng.randrange(24):02d}:{rng.randrange(60):02d}" if timed else day.isoformat()
        located = rng.random() < 0.4
        row = {
            "ref": f"{self.prefix}I{len(self.data.incidents) + 1:06d}", "type": kind, "started_at": started,
            "started_precision": precision, "governorate": governorate,
            "district": f"{governorate} district {rng.randrange(1, 6)}" if rng.random() < 0.7 else "",
            "place": f"village {rng.randrange(1, 400)}" if rng.random() < 0.8 else "",
            "neighbourhood": f"quarter {rng.randrange(1, 30)}" if rng.random() < 0.3 else "",
            "latitude": f"{rng.uniform(32.3, 37.3):.5f}" if located else "",
            "longitude": f"{rng.uniform(35.7, 42.3):.5f}" if located else "",
            "controlled_by": rng.choice(("syrian_regime", "hts", "sna", "sdf")) if rng.random() < 0.6 else "",
            "attribution": party,
            "weapon": rng.choice(WEAPONS.get(main_party, ("gunfire", "other"))) if kind != "death_under_torture"
            else "torture",
            "facility_damage": rng.choice(("slight", "moderate", "heavy", "out_of_service"))
            if kind in FACILITY_TYPES else "",
            "narrative": "Witnesses describe the attack; footage received the same day." if rng.random() < 0.5
            else "",
        }
        self.data.incidents.append(row)
        return row

    def victim(self, incident: dict[str, str], *, kind: str, documented: date, died: date | None,
               civilian: bool = True, torture: bool = False, governorate: str | None = None,
               professions: tuple[str, ...] = ()) -> dict[str, str]:
        """`kind`: child, woman, or adult (a man, or an adult of unknown sex: never a woman)."""
        rng = self.rng
        if kind == "child":
            sex = rng.choice(("male", "female", "male", "unknown"))
            age, group = (str(rng.randrange(0, 18)), "child") if rng.random() < 0.8 else ("", "child")
            if rng.random() < 0.3 and age:
                group = ""  # the age alone says child
        else:
            sex = "female" if kind == "woman" else ("male" if rng.random() < 0.9 else "unknown")
            roll = rng.random()
            age, group = ((str(rng.randrange(18, 85)), rng.choice(("adult", ""))) if roll < 0.75
                          else ("", "adult") if roll < 0.9 else ("", "unknown"))
        anonymous = rng.random() < 0.2
        name = "" if anonymous else (f"{rng.choice(FIRST_NAMES['female' if sex == 'female' else 'male'])} "
                                     f"{rng.choice(FAMILY_NAMES)}")
        consent = rng.choices(("yes", "no", "not_asked", ""), (3, 1, 3, 3))[0] if not anonymous else ""
        given = documented + timedelta(days=rng.randrange(0, 20)) if consent == "yes" else None
        row = {
            "ref": f"{self.prefix}V{len(self.data.victims) + 1:06d}", "incident_ref": incident["ref"], "name": name,
            "name_withheld": "true" if name and rng.random() < 0.05 else "false", "sex": sex, "age": age,
            "age_group": group, "civilian": "true" if civilian else "false", "professions": ";".join(professions),
            "died_under_torture": "true" if torture else "false",
            "governorate_of_death": governorate if governorate is not None else incident["governorate"],
            "governorate_of_origin": rng.choice(GOVERNORATES) if rng.random() < 0.7 else "",
            "date_of_death": died.isoformat() if died else "", "date_documented": documented.isoformat(),
            "family_consent": consent, "consent_date": given.isoformat() if given else "",
            "consent_recorded_by": rng.choice(RESEARCHERS) if consent == "yes" else "",
        }
        self.data.victims.append(row)
        return row


def _day_in(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))


def _sizes(rng: random.Random, n: int, massacre_share: float) -> Iterator[int]:
    """Incident sizes summing to n: mostly one to four victims, sometimes a massacre of five to twelve."""
    while n > 0:
        size = rng.randrange(5, 13) if n >= 5 and rng.random() < massacre_share else rng.choice((1, 1, 1, 2, 2, 3, 4))
        size = min(size, n)
        n -= size
        yield size


def report_2023(seed: int = 2023, path: Path = CORPUS_TABLES) -> Dataset:
    """The corpus's 2023 tables as individual records (see the module docstring)."""
    rng = random.Random(seed)
    make = _Maker(rng, "R23-")
    expected = expected_2023(path)
    for party, (_group, civilians, children, women) in expected["parties"].items():
        t_deaths, t_children, t_women = expected["torture"].get(party, (0, 0, 0))
        kinds = (["child"] * (children - t_children) + ["woman"] * (women - t_women)
                 + ["adult"] * (civilians - children - women - (t_deaths - t_children - t_women)))
        if min(len(kinds), children - t_children, women - t_women) < 0:
            raise ValueError(f"{party}: the torture line exceeds the party's line")
        # Deaths under torture: one incident each, died in detention years before the date documented.
        for kind in ["child"] * t_children + ["woman"] * t_women + ["adult"] * (t_deaths - t_children - t_women):
            documented = _day_in(rng, YEAR_START, YEAR_END)
            died = _day_in(rng, date(2012, 1, 1), documented - timedelta(days=200))
            known = rng.random() < 0.85
            prison = PRISONS.get(party, "damascus")
            incident = make.incident(party, died, type="death_under_torture", governorate=prison,
                                     precision="day" if known else "about")
            make.victim(incident, kind=kind, documented=documented, died=died if known else None, torture=True)
        rng.shuffle(kinds)
        at = 0
        for size in _sizes(rng, len(kinds), 0.08):
            documented = _day_in(rng, YEAR_START, YEAR_END)
            started = max(documented - timedelta(days=rng.choice((0, 0, 0, 1, 2, 5))), date(2022, 12, 20))
            facility = party in ("syrian_regime", "russian_forces") and rng.random() < 0.1
            incident = make.incident(party, started, type=rng.choice(FACILITY_TYPES) if facility else None,
                                     precision=rng.choice(("day", "hour", "minute")))
            for kind in kinds[at : at + size]:
                profession = (rng.choice(("medical", "media", "civil_defence")),) if (
                    kind == "adult" and rng.random() < (0.3 if facility else 0.03)) else ()
                make.victim(incident, kind=kind, documented=documented, died=started, professions=profession)
            at += size
            if rng.random() < 0.15:  # combatants killed in the same incident: never counted
                for _ in range(rng.randrange(1, 4)):
                    make.victim(incident, kind="adult", documented=documented, died=started, civilian=False)
    for first, last in ((date(2022, 11, 20), date(2022, 12, 31)), (date(2024, 1, 1), date(2024, 1, 31))):
        for _ in range(25):  # civilians documented just outside the year: never counted for 2023
            documented = _day_in(rng, first, last)
            party = rng.choice(list(expected["parties"]))
            incident = make.incident(party, documented - timedelta(days=rng.randrange(0, 3)))
            make.victim(incident, kind=rng.choice(("child", "woman", "adult")), documented=documented,
                        died=date.fromisoformat(incident["started_at"][:10]))
    return make.data


def generate(n_incidents: int = 20_000, n_victims: int = 100_000, seed: int = 0) -> Dataset:
    """`n_incidents` incidents (2020-2024) holding `n_victims` victims (every incident at least one)."""
    if n_incidents < 1 or n_victims < n_incidents:
        raise ValueError("need at least one incident and at least as many victims as incidents")
    rng = random.Random(seed)
    make = _Maker(rng, f"G{seed}-")
    expected = expected_2023()
    parties = list(expected["parties"])
    weights = [line[1] for line in expected["parties"].values()]
    joints = ("russian_forces+syrian_regime", "international_coalition+sdf", "hts+sna",
              "landmine_unidentified+syrian_regime", "gunfire_unidentified+jordanian_forces")
    party_of = [rng.choice(joints) if rng.random() < 0.04 else rng.choices(parties, weights)[0]
                for _ in range(n_incidents)]
    torture = [p in PRISONS and rng.random() < 0.08 for p in party_of]  # one victim each, died in detention
    extra = [0] * n_incidents
    heavy = [0.0 if t else min(rng.paretovariate(1.3), 60.0) for t in torture]
    for index in rng.choices(range(n_incidents), heavy, k=n_victims - n_incidents):
        extra[index] += 1
    first, last = date(2020, 1, 1), date(2024, 12, 31)
    for n in range(n_incidents):
        size, party = extra[n] + 1, party_of[n]
        if torture[n]:
            documented = _day_in(rng, first, last)
            death = _day_in(rng, date(2011, 3, 15), documented)
            incident = make.incident(party, death, type="death_under_torture", governorate=PRISONS[party])
            make.victim(incident, kind=rng.choices(("adult", "woman", "child"), (95, 4, 1))[0],
                        documented=documented, died=death if rng.random() < 0.9 else None, torture=True)
            continue
        started = _day_in(rng, first, last)
        facility = rng.random() < 0.04
        incident = make.incident(party, started, type=rng.choice(FACILITY_TYPES) if facility else None,
                                 precision=rng.choice(("day", "hour", "minute", "about")))
        for _ in range(size):
            kind = rng.choices(("adult", "child", "woman"), (62, 20, 18))[0]
            civilian = kind != "adult" or rng.random() > 0.15
            professions = ((rng.choice(("medical", "media", "civil_defence", "red_crescent", "aid_worker")),)
                           if kind == "adult" and rng.random() < (0.25 if facility else 0.02) else ())
            documented = min(started + timedelta(days=rng.choice((0, 0, 1, 3, 10, 40, 400))), date(2025, 6, 30))
            died: date | None = started if rng.random() > 0.04 else None
            make.victim(incident, kind=kind, documented=documented, died=died, civilian=civilian,
                        professions=professions, governorate="" if rng.random() < 0.03 else None)
    return make.data


def insert(archive: Any, dataset: Dataset, *, batch: int = 5000) -> dict[str, str]:
    """Load a dataset into the archive's catalog (the catalog key needed) without `evidence import`:
    each row checked by `archive.records.rules`, its row written by `store.columns` (sealed), its
    history kept by `changes.record_batch` (one event per kind). Returns {incident ref: incident id}.
    Consent columns are not loaded (the import's job); statistics do not read them."""
    from sqlalchemy import insert as sql_insert

    from archive.custody.log import utc_now
    from archive.db import transaction
    from archive.records.changes import Change, new_id, record_batch
    from archive.records.common import record_keys
    from archive.records.rules import incident_state, parse_attribution, victim_state
    from archive.records.store import KINDS, columns
    from archive.records.tables import Attribution, Incident, Victim
    from archive.records.vocab import Vocab

    keys = record_keys(archive, "loading generated records")
    at, actor = utc_now(), archive.actor
    ids: dict[str, str] = {}
    with transaction(archive.engine) as session:
        vocab = Vocab.read(session)
        changes: dict[str, list[Change]] = {"incident": [], "attribution": [], "victim": []}
        rows: dict[str, list[dict[str, Any]]] = {"incident": [], "attribution": [], "victim": []}

        def add(kind: str, record_id: str, state: dict[str, Any], stamps: dict[str, Any]) -> None:
            rows[kind].append({"id": record_id, **columns(KINDS[kind], keys, record_id, state), **stamps})
            changes[kind].append(Change(record_id, kind, "import", state))

        for fields in dataset.incidents:
            state = incident_state(vocab, fields)
            ids[state["ref"]] = incident_id = new_id("inc")
            add("incident", incident_id, state, {"created_at": at, "updated_at": at})
            parties, kind = parse_attribution(vocab, state["attribution"])
            add("attribution", new_id("att"), {"incident_id": incident_id, "parties": parties, "kind": kind,
                                               "reason": "imported", "evidence": []}, {"at": at, "by": actor})
        for fields in dataset.victims:
            person = {k: v for k, v in fields.items() if k not in ("family_consent", "consent_date",
                                                                    "consent_recorded_by")}
            state = victim_state(vocab, person, ids[fields["incident_ref"]])
            add("victim", new_id("vic"), state, {"created_at": at, "updated_at": at})
        for kind, model in (("incident", Incident), ("attribution", Attribution), ("victim", Victim)):
            table = model.__table__  # type: ignore[union-attr]
            for start in range(0, len(rows[kind]), batch):
                session.execute(sql_insert(table), rows[kind][start : start + batch])
            record_batch(session, keys, actor, changes[kind], what=f"{kind}s")
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Directory for incidents.csv and victims.csv.")
    parser.add_argument("--report-2023", action="store_true", help="The SNHR 2023 tables (ignores the sizes).")
    parser.add_argument("--incidents", type=int, default=20_000)
    parser.add_argument("--victims", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = report_2023(args.seed or 2023) if args.report_2023 else generate(args.incidents, args.victims, args.seed)
    incidents, victims = data.write(args.out)
    print(f"{incidents}: {len(data.incidents)} incidents\n{victims}: {len(data.victims)} victims")


if __name__ == "__main__":
    main()
