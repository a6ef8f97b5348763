"""Statistics that add up like a monthly report, checked on generated data and on the SNHR 2023 tables.

The data goes in the way a documentation group's spreadsheets do (`evidence
import` of the interchange CSV, bench/records_data.py); merges go through the
victims service. Every count is also recomputed here in plain Python from the
CSV rows, so the identities (rows and groups add up to the total, children and
women never exceed civilians) are checked against an independent count, not
against the service itself. Both databases.
"""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from itertools import product
from pathlib import Path
from typing import Any

import pytest

from archive.roles import Role
from bench.records_data import Dataset, expected_2023, generate, report_2023
from tests.conftest import Cli

VAULT = ("catalog.key", "access.key", "custodian.key")  # what a custodian takes away: the server is locked
COUNTS = ("civilians", "children", "women", "torture", "medical", "media", "civil_defence", "massacres",
          "facility_attacks")
FACILITY = {"attack_medical_facility", "attack_ambulance", "attack_civil_defence", "attack_red_crescent",
            "attack_school"}
MAIN = {"syrian_regime", "russian_forces", "isis", "hts", "sna", "sdf", "international_coalition"}


@pytest.fixture()
def home(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    return cli


@pytest.fixture()
def archive(home: Cli) -> Iterator[Any]:
    from archive.context import Archive

    opened = Archive.open(home.home, "tester")
    try:
        yield opened
    finally:
        opened.close()


def load(archive: Any, data: Dataset, where: Path) -> None:
    """Import the dataset through the real import (one transaction, checked row by row)."""
    from archive.services.records_io import import_records

    incidents, victims = data.write(where)
    report = import_records(archive, incidents=incidents, victims=victims, role=Role.CUSTODIAN)
    assert report["imported"], report


def stats(archive: Any, **options: Any) -> dict[str, Any]:
    from archive.services.stats import statistics

    return statistics(archive, role=Role.CUSTODIAN, **options)


# -- an independent count, in Python, from the CSV rows ---------------------------------------------------

def _child(v: dict[str, str]) -> bool:
    return int(v["age"]) < 18 if v["age"] else v["age_group"] == "child"


def _within(day: str, start: str | None, end: str | None) -> bool:
    return bool(day) and (start is None or day >= start) and (end is None or day <= end)


def expected(data: Dataset, by: str, date: str, start: str | None, end: str | None,
             gone: frozenset[str] = frozenset()) -> tuple[dict[Any, Counter[str]], Counter[str], int]:
    """(rows, total, civilians without a date of death) as the spec defines them; `gone`: merged victim refs."""
    incidents = {i["ref"]: i for i in data.incidents}
    civilians = [v for v in data.victims if v["civilian"] == "true" and v["ref"] not in gone]
    rows: dict[Any, Counter[str]] = defaultdict(Counter)
    total: Counter[str] = Counter()
    for v in civilians:
        day = v["date_documented"] if date == "documented" else v["date_of_death"]
        if not _within(day, start, end):
            continue
        incident = incidents[v["incident_ref"]]
        key = {"party": incident["attribution"], "type": incident["type"], "month": day[:7],
               "governorate": v["governorate_of_death"] or None}[by]
        professions = set(v["professions"].split(";"))
        counts = {"civilians": True, "children": _child(v), "women": v["sex"] == "female" and not _child(v),
                  "torture": v["died_under_torture"] == "true", "medical": "medical" in professions,
                  "media": "media" in professions, "civil_defence": "civil_defence" in professions}
        for name, hit in counts.items():
            rows[key][name] += int(hit)
            total[name] += int(hit)
    per_incident = Counter(v["incident_ref"] for v in civilians)
    for ref, incident in incidents.items():
        if not _within(incident["started_at"][:10], start, end):
            continue
        key = {"party": incident["attribution"], "type": incident["type"], "month": incident["started_at"][:7],
               "governorate": incident["governorate"]}[by]
        for name, hit in (("massacres", per_incident[ref] >= 5), ("facility_attacks", incident["type"] in FACILITY)):
            if hit:
                rows[key][name] += 1
                total[name] += 1
    no_death = sum(1 for v in civilians if not v["date_of_death"]) if date == "death" else 0
    return rows, total, no_death


def check_identities(result: dict[str, Any]) -> None:
    """Rows add up to the total, groups too; children and women never exceed civilians (nor together)."""
    by = result["by"]
    for name in COUNTS:
        assert sum(r[name] for r in result["rows"]) == result["total"][name], (by, name)
        if by == "party":
            assert sum(g[name] for g in result["groups"]) == result["total"][name], (by, name)
    for line in [*result["rows"], *result["groups"], result["total"]]:
        assert line["children"] + line["women"] <= line["civilians"], line
        for name in ("torture", "medical", "media", "civil_defence"):
            assert line[name] <= line["civilians"], (name, line)
    keys = [r[by] for r in result["rows"]]
    assert len(keys) == len(set(keys)), f"a key twice: {keys}"
    if by == "party":
        for row in result["rows"]:
            assert row["group"] == ("main" if set(row["party"].split("+")) & MAIN else "other"), row
        assert [g["group"] for g in result["groups"]] == ["main", "other"]
    else:
        assert result["groups"] == []


def test_identities_hold_for_every_dimension_and_date(archive: Any, tmp_path: Path) -> None:
    data = generate(400, 2500, seed=11)
    assert any("+" in i["attribution"] for i in data.incidents), "joint attributions in the data"
    assert any(v["civilian"] == "false" for v in data.victims) and any(not v["date_of_death"] for v in data.victims)
    load(archive, data, tmp_path / "csv")
    for (start, end), by, date in product(((None, None), ("2021-03-01", "2023-09-30"), ("2024-02-29", None)),
                                          ("party", "month", "governorate", "type"), ("documented", "death")):
        result = stats(archive, by=by, date=date, date_from=start, date_to=end)
        check_identities(result)
        rows, total, no_death = expected(data, by, date, start, end)
        assert result["total"] == {name: total[name] for name in COUNTS}, (by, date)
        assert {r[by]: {n: r[n] for n in COUNTS} for r in result["rows"]} == {
            key: {n: c[n] for n in COUNTS} for key, c in rows.items()}, (by, date)
        assert result["excluded"] == {"no_date_of_death": no_death}
        assert (result["by"], result["date"], result["from"], result["to"]) == (by, date, start, end)
    assert stats(archive, date="death")["excluded"]["no_date_of_death"] > 0


def test_report_2023_tables_reproduced(archive: Any, home: Cli, tmp_path: Path) -> None:
    data = report_2023()
    want = expected_2023()
    load(archive, data, tmp_path / "csv")
    year = {"date_from": "2023-01-01", "date_to": "2023-12-31"}
    result = stats(archive, by="party", **year)
    check_identities(result)
    rows = {r["party"]: r for r in result["rows"]}
    assert set(rows) == set(want["parties"]), "one row per party of the report, no other"
    for party, (group, civilians, children, women) in want["parties"].items():
        row = rows[party]
        assert (row["group"], row["civilians"], row["children"], row["women"]) == (group, civilians, children,
                                                                                  women), party
        assert row["torture"] == want["torture"].get(party, (0,))[0], party
    groups = {g["group"]: g["civilians"] for g in result["groups"]}
    assert groups == {"main": 358, "other": 674} == want["groups"]
    assert result["total"]["civilians"] == 1032 and result["total"]["children"] == 181
    assert result["total"]["torture"] == 57
    assert result["total"]["women"] == 119  # the report's lines; its stated total (150) disagrees with them
    assert result["total"]["massacres"] > 0
    # The torture table's children and women, in the data the service counted.
    torture: Counter[tuple[str, str]] = Counter()
    for v in data.victims:
        if v["died_under_torture"] == "true" and v["date_documented"].startswith("2023"):
            party = next(i["attribution"] for i in data.incidents if i["ref"] == v["incident_ref"])
            torture[(party, "children")] += _child(v)
            torture[(party, "women")] += v["sex"] == "female" and not _child(v)
    for party, (_deaths, children, women) in want["torture"].items():
        assert (torture[(party, "children")], torture[(party, "women")]) == (children, women), party
    # Spread over the year and the country, as the report's months and governorates are.
    assert len(stats(archive, by="month", **year)["rows"]) == 12
    assert len(stats(archive, by="governorate", **year)["rows"]) >= 10
    # The CLI gives the same, and a readable table.
    assert home.json("stats", "--from", "2023-01-01", "--to", "2023-12-31") == result
    _, out, _ = home("stats", "--from", "2023-01-01", "--to", "2023-12-31")
    lines = out.splitlines()
    assert any(line.startswith("group main") and " 358 " in f"{line} " for line in lines), out
    assert any(line.startswith("group other") and " 674 " in f"{line} " for line in lines), out
    assert any(line.startswith("total") and " 1032 " in line for line in lines), out


def _row(ref: str, incident: str, *, died: str, documented: str, civilian: bool = True, sex: str = "male",
         age: str = "30", governorate: str = "idlib", professions: str = "", name: str = "") -> dict[str, str]:
    return {"ref": ref, "incident_ref": incident, "name": name, "name_withheld": "false", "sex": sex, "age": age,
            "age_group": "", "civilian": "true" if civilian else "false", "professions": professions,
            "died_under_torture": "false", "governorate_of_death": governorate, "governorate_of_origin": "",
            "date_of_death": died, "date_documented": documented, "family_consent": "", "consent_date": "",
            "consent_recorded_by": ""}


def _incident(ref: str, attribution: str, started: str, type: str = "killing",
              governorate: str = "idlib") -> dict[str, str]:
    from archive.records.rules import FIELDS

    return {**dict.fromkeys(FIELDS, ""), "ref": ref, "type": type, "started_at": started, "governorate": governorate,
            "attribution": attribution}


def small_dataset() -> Dataset:
    """A joint massacre across a month boundary, a combatant, a facility attack, and a near-massacre of four."""
    data = Dataset()
    data.incidents = [_incident("M1", "syrian_regime+russian_forces", "2023-03-31T22:10"),
                      _incident("I2", "syrian_regime", "2023-04-10", governorate="hama"),
                      _incident("F3", "russian_forces", "2023-04-01", type="attack_medical_facility"),
                      _incident("D4", "syrian_regime", "2023-04-30", governorate="aleppo")]
    data.victims = [
        *(_row(f"M1-{n}", "M1", died="2023-03-31", documented="2023-03-31", age=str(10 + n)) for n in range(3)),
        _row("M1-3", "M1", died="2023-04-01", documented="2023-04-02", sex="female", governorate="aleppo"),
        _row("M1-4", "M1", died="2023-04-01", documented="2023-04-02", sex="female"),
        _row("M1-5", "M1", died="2023-03-31", documented="2023-03-31", civilian=False),
        *(_row(f"I2-{n}", "I2", died="2023-04-10", documented="2023-04-11", governorate="hama") for n in range(4)),
        *(_row(f"I2-c{n}", "I2", died="2023-04-10", documented="2023-04-11", civilian=False) for n in range(3)),
        _row("F3-0", "F3", died="2023-04-01", documented="2023-04-01", professions="medical"),
        *(_row(f"D4-{n}", "D4", died="2023-04-30", documented="2023-05-01", governorate="aleppo",
               name=f"Khaled Darwish {n}") for n in range(4)),
        _row("D4-dup", "D4", died="2023-04-30", documented="2023-05-03", governorate="aleppo", name="Khaled Darwish 0"),
    ]
    return data


def test_massacres_once_in_their_row_and_joint_attribution_its_own(archive: Any, tmp_path: Path) -> None:
    from archive.services.victims import confirm_match

    data = small_dataset()
    load(archive, data, tmp_path / "csv")
    rows = {r["party"]: r for r in stats(archive)["rows"]}
    joint = rows["russian_forces+syrian_regime"]
    assert (joint["group"], joint["civilians"], joint["children"], joint["women"], joint["massacres"]) == (
        "main", 5, 3, 2, 1)
    assert rows["syrian_regime"]["civilians"] == 4 + 5, "the joint incident's victims are not the regime's too"
    assert rows["syrian_regime"]["massacres"] == 1, "D4 has five civilian reports"
    assert (rows["russian_forces"]["civilians"], rows["russian_forces"]["medical"],
            rows["russian_forces"]["facility_attacks"], rows["russian_forces"]["massacres"]) == (1, 1, 1, 0)
    assert stats(archive)["total"]["massacres"] == 2

    # Two reports of one person merged: counted once, and D4 is no massacre any more.
    confirm_match(archive, "D4-0", "D4-dup", role=Role.CUSTODIAN, reason="same person, two sources")
    after = stats(archive)
    rows = {r["party"]: r for r in after["rows"]}
    assert (rows["syrian_regime"]["civilians"], rows["syrian_regime"]["massacres"]) == (8, 0)
    assert after["total"]["civilians"] == 5 + 4 + 1 + 4 and after["total"]["massacres"] == 1
    gone = frozenset({"D4-dup"})

    # By month: the victims by their date documented, the massacre once, in its start's month.
    months = {r["month"]: r for r in stats(archive, by="month")["rows"]}
    assert months["2023-03"]["civilians"] == 3 and months["2023-03"]["massacres"] == 1
    assert months["2023-04"]["civilians"] == 2 + 4 + 1 and months["2023-04"]["massacres"] == 0
    assert months["2023-04"]["facility_attacks"] == 1 and months["2023-05"]["civilians"] == 4
    # By governorate: victims where they died; the massacre once, where it happened.
    places = {r["governorate"]: r for r in stats(archive, by="governorate")["rows"]}
    assert (places["idlib"]["civilians"], places["idlib"]["massacres"]) == (4 + 1, 1)
    assert (places["aleppo"]["civilians"], places["aleppo"]["massacres"]) == (1 + 4, 0)
    types = {r["type"]: r for r in stats(archive, by="type")["rows"]}
    assert types["killing"]["massacres"] == 1 and types["attack_medical_facility"]["facility_attacks"] == 1
    for by in ("party", "month", "governorate", "type"):
        for date in ("documented", "death"):
            result = stats(archive, by=by, date=date)
            check_identities(result)
            _, total, _ = expected(data, by, date, None, None, gone)
            assert result["total"] == {n: total[n] for n in COUNTS}

    # The massacre's start outside the period: not counted, though two of its victims are.
    april = stats(archive, date_from="2023-04-01", date_to="2023-04-30")
    assert april["total"]["massacres"] == 0 and april["total"]["facility_attacks"] == 1
    joint = {r["party"]: r for r in april["rows"]}["russian_forces+syrian_regime"]
    assert (joint["civilians"], joint["massacres"]) == (2, 0)
    march = stats(archive, date_to="2023-03-31")
    assert march["total"]["massacres"] == 1 and march["total"]["civilians"] == 3
    by_death = stats(archive, date="death", date_to="2023-03-31")
    assert by_death["total"]["civilians"] == 3


def test_period_bounds_are_inclusive_and_date_of_death_chooses(archive: Any, tmp_path: Path) -> None:
    data = Dataset(incidents=[_incident("T1", "syrian_regime", "2019-06-01", type="death_under_torture",
                                        governorate="damascus"),
                              _incident("K1", "hts", "2023-01-31")])
    data.victims = [_row("T1-0", "T1", died="2019-06-01", documented="2023-02-10", governorate="damascus"),
                    _row("K1-a", "K1", died="2023-01-31", documented="2023-01-31"),
                    _row("K1-b", "K1", died="2023-01-31", documented="2023-02-01"),
                    _row("K1-c", "K1", died="2023-01-31", documented="2023-02-28"),
                    _row("K1-d", "K1", died="2023-01-31", documented="2023-03-01"),
                    _row("K1-e", "K1", died="", documented="2023-02-15")]
    load(archive, data, tmp_path / "csv")
    february = stats(archive, date_from="2023-02-01", date_to="2023-02-28")
    assert february["total"]["civilians"] == 4  # T1-0, K1-b, K1-c, K1-e: both bounds in, neighbours out
    assert february["excluded"] == {"no_date_of_death": 0}
    assert stats(archive, date_from="2023-02-01", date_to="2023-02-01")["total"]["civilians"] == 1
    assert stats(archive, date_from="2023-01-31", date_to="2023-01-31")["total"]["massacres"] == 1  # K1: 5 civilians
    assert stats(archive, date_from="2023-02-01")["total"]["massacres"] == 0  # K1 started the day before
    # By date of death, the same period holds nobody: they died in January 2023 and in 2019.
    died = stats(archive, date="death", date_from="2023-02-01", date_to="2023-02-28")
    assert died["total"]["civilians"] == 0 and died["excluded"] == {"no_date_of_death": 1}
    months = {r["month"]: r["civilians"] for r in stats(archive, by="month", date="death")["rows"]}
    assert months == {"2019-06": 1, "2023-01": 4}, "K1-e has no date of death: left out, and said so"
    assert {r["month"]: r["civilians"] for r in stats(archive, by="month")["rows"]} == {
        "2023-01": 1, "2023-02": 4, "2023-03": 1}


def test_statistics_need_no_key_and_no_personal_data(home: Cli, archive: Any, tmp_path: Path) -> None:
    load(archive, small_dataset(), tmp_path / "csv")
    unlocked = {by: home.json("stats", "--by", by, "--date", "death") for by in ("party", "month", "governorate")}
    vault = tmp_path / "vault"
    vault.mkdir()
    for name in VAULT:
        shutil.move(home.home / "keys" / name, vault / name)
    try:
        code, _, err = home("incident", "show", "M1", expect=None)
        assert code == 1 and "lock" in err.lower(), "reading a record needs the key: the server is locked"
        for by, result in unlocked.items():
            assert home.json("stats", "--by", by, "--date", "death") == result
        _, out, _ = home("stats", "--by", "type")
        assert "total" in out and "Khaled" not in out
    finally:
        for name in VAULT:
            shutil.move(vault / name, home.home / "keys" / name)


def test_roles_and_bad_input(home: Cli, archive: Any) -> None:
    from archive.services.errors import Forbidden, Invalid
    from archive.services.stats import statistics

    empty = statistics(archive, role=Role.INVESTIGATOR)
    assert empty["rows"] == [] and empty["total"] == dict.fromkeys(COUNTS, 0)
    assert [g["group"] for g in empty["groups"]] == ["main", "other"]
    with pytest.raises(Forbidden):
        statistics(archive, role=Role.CONTRIBUTOR)
    for options, message in (({"date_from": "2023-13-01"}, "from"), ({"date_to": "yesterday"}, "to"),
                             ({"date_from": "2023-02-30"}, "real date"),
                             ({"date_from": "2023-05-01", "date_to": "2023-04-30"}, "after"),
                             ({"by": "village"}, "by"), ({"date": "killed"}, "date")):
        with pytest.raises(Invalid, match=message):
            statistics(archive, role=Role.CUSTODIAN, **options)
    code, _, err = home("stats", "--from", "01/02/2023", expect=2)
    assert "from" in err and "YYYY-MM-DD" in err
    code, _, err = home("stats", "--by", "village", expect=2)
    assert "village" in err
    code, _, err = home("stats", "--date", "killed", expect=2)
    assert "killed" in err
