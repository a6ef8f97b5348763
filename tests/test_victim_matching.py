"""One person from several sources: spelling variants meet, different people do not, and a confirmed pair is
merged once, with its history, so statistics count the person once.

Attacks as well as uses: merging a victim with itself, twice, or a victim
already merged is refused and writes nothing; a rejected pair is never
suggested again; a name withheld by one family stays withheld after the
merge; the scale (100,000 victims) never compares all pairs.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session

from archive.context import Archive
from archive.records.matching import SUGGEST, candidates, name_similarity, name_tokens, pairs, profile, score
from archive.roles import Role
from archive.services.errors import Forbidden, Invalid
from tests.conftest import Cli, row_counts

CUSTODIAN = Role.CUSTODIAN


def _p(victim_id: str, name: str, **fields: Any) -> Any:
    state = {"name": name, "incident_id": "inc-1", "sex": "male", "date_of_death": "2023-12-09",
             "governorate_of_death": "idlib", **fields}
    return profile(victim_id, state)


@pytest.mark.parametrize("a, b", [
    ("أحمد الحمصي", "احمد حمصي"),  # hamza on alef, the article
    ("فاطمة العلي", "فاطمه العلي"),  # ta marbuta
    ("مصطفى الخطيب", "مصطفي الخطيب"),  # alef maqsura
    ("مُحَمَّد الحَلَبِي", "محمد الحلبي"),  # diacritics
    ("محـــمد الحلبي", "محمد الحلبي"),  # tatweel
    ("عبد الله الحسن", "عبدالله الحسن"),  # the compound given name, with or without its space
    ("إبراهيم محمد الزعبي", "ابراهيم الزعبي"),  # one report leaves out the father's name
    ("Ahmad al-Homsi", "Ahmed Homsi"),  # transliterations
])
def test_spelling_variants_of_one_name_are_suggested(a: str, b: str) -> None:
    found = score(_p("vic-a", a), _p("vic-b", b, incident_id="inc-2"))
    assert found is not None and found.value >= SUGGEST * 1000, (a, b, found)


@pytest.mark.parametrize("a, b, other", [
    ("محمد الحمصي", "أحمد الحمصي", {}),  # another given name, same family
    ("علي حسين", "حسين علي", {}),  # Ali son of Hussein is not Hussein son of Ali
    ("خالد العلي", "عمر العلي", {}),
    ("أحمد الحمصي", "أحمد الحلبي", {}),  # another family
    ("أحمد الحمصي", "احمد حمصي", {"sex": "female"}),  # same name, another sex
    ("أحمد الحمصي", "احمد حمصي", {"date_of_death": "2021-03-01"}),  # deaths years apart
    ("أحمد الحمصي", "احمد حمصي", {"age": 70}),  # ages far apart (the other report: 30)
    ("أحمد الحمصي", "احمد حمصي", {"age": None, "age_group": "child"}),  # a child and an adult
    ("أحمد الحمصي", "احمد حمصي", {"date_of_death": "2023-12-29", "governorate_of_death": "daraa",
                                      "incident_id": "inc-2"}),  # died elsewhere, weeks apart
])
def test_different_people_are_not_suggested(a: str, b: str, other: dict[str, Any]) -> None:
    first = _p("vic-a", a, age=30)
    second = _p("vic-b", b, **{"age": 30, **other})
    found = score(first, second)
    assert found is None or found.value < SUGGEST * 1000, (a, b, other, found)


def test_names_are_compared_as_names() -> None:
    assert name_tokens("عبد الرحمن") == name_tokens("عبدالرحمن")
    assert name_similarity(name_tokens("أحمد الحمصي"), name_tokens("احمد حمصي")) == 1.0
    assert name_similarity((), ("x",)) == 0.0
    assert profile("vic-a", {"name": "", "incident_id": "inc-1"}) is None  # anonymous: nothing to match on


def _incident(cli: Cli, ref: str, governorate: str = "idlib") -> None:
    cli("incident", "add", ref, "--type", "killing", "--started-at", "2023-12-09", "--governorate", governorate,
        "--attribution", "syrian_regime")


def _victim(cli: Cli, ref: str, incident: str, name: str | None, *extra: str) -> Any:
    named = ["--name", name] if name else []
    return cli.json("victim", "add", ref, "--incident", incident, "--sex", "male", "--civilian", "true",
                    "--date-documented", "2023-12-10", "--date-of-death", "2023-12-09", "--governorate-of-death",
                    "idlib", *named, *extra)


def _counts(home: Path) -> dict[str, int]:
    return row_counts(home, ("victims", "victim_matches", "record_changes", "events"))


@pytest.fixture()
def reports(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    """Two incidents (two sources' reports of one attack), two people reported twice, one other person."""
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    _incident(cli, "INC-A")
    _incident(cli, "INC-B")
    _victim(cli, "A-1", "INC-A", "أحمد الحمصي", "--age", "30", "--family-consent", "no")
    _victim(cli, "A-2", "INC-A", "فاطمة العلي", "--sex", "female")
    _victim(cli, "A-3", "INC-A", "محمد الحمصي", "--age", "30")
    _victim(cli, "B-1", "INC-B", "احمد حمصي", "--age", "31", "--professions", "media", "--family-consent", "yes",
            "--consent-date", "2023-12-20", "--consent-recorded-by", "field researcher 2")
    _victim(cli, "B-2", "INC-B", "فاطمه العلي", "--sex", "female", "--age", "25")
    _victim(cli, "B-3", "INC-B", None)  # anonymous: never a candidate
    yield cli


def _pairs(rows: list[dict[str, Any]]) -> set[frozenset[str]]:
    return {frozenset((r["a"]["ref"], r["b"]["ref"])) for r in rows}


def test_suggest_confirm_merge_once_and_count_the_person_once(reports: Cli) -> None:
    from archive.services.incidents import civilian_counts
    from archive.services.victims import consent_for

    suggested = reports.json("victim", "match", "suggest")
    assert _pairs(suggested) == {frozenset(("A-1", "B-1")), frozenset(("A-2", "B-2"))}
    assert all(r["state"] == "candidate" and r["score"] >= SUGGEST for r in suggested)
    assert reports.json("victim", "match", "suggest") == suggested  # suggesting again adds nothing
    before = _counts(reports.home)
    for args, reason in [
        (["A-1", "A-1"], "cannot be matched with itself"),
        (["A-1", reports.json("victim", "show", "A-1")["id"]], "cannot be matched with itself"),  # ref and id
        (["A-1", "NOPE"], "no victim 'NOPE'"),
        (["A-1", "B-1", "--reason", ""], "reason"),
        (["A-1", "B-1", "--keep", "A-2"], "neither of the pair"),
    ]:
        code, _, err = reports("victim", "match", "confirm", *args, *(["--reason", "r"] if "--reason" not in args
                                                                     else []), expect=None)
        assert code == 2 and reason in err, (args, err)
    assert _counts(reports.home) == before

    kept = reports.json("victim", "match", "confirm", "B-1", "A-1", "--reason", "same person per both families")
    assert kept["ref"] == "A-1" and [m["ref"] for m in kept["merged"]] == ["B-1"]  # the earlier record is kept
    assert kept["age"] == 30 and kept["professions"] == ["media"]  # what only the later report knew is kept
    assert kept["consent"]["un_bodies"] == "yes"  # the later record's consent is reached through the kept one
    merged = reports.json("victim", "show", "B-1", "--history")
    assert merged["status"] == "merged" and merged["merged_into"] == kept["id"] and merged["merged_into_ref"] == "A-1"
    assert [c["change"] for c in merged["history"]] == ["create", "merge"]
    assert merged["history"][-1]["reason"] == "same person per both families"
    assert [c["change"] for c in reports.json("victim", "show", "A-1", "--history")["history"]] == ["create", "merge"]
    after = _counts(reports.home)
    assert after["events"] == before["events"] + 2 and after["victims"] == before["victims"]

    archive = Archive.open(reports.home)
    try:
        with Session(archive.engine) as session:
            incidents = {r["ref"]: r["id"] for r in reports.json_lines("incident", "list")}
            counts = civilian_counts(session)
            assert counts[incidents["INC-A"]] == 3 and counts[incidents["INC-B"]] == 2  # B-1 counts in A-1
            current = consent_for(session, merged["id"], "un_bodies")  # asked of the merged record: the person's
            assert current is not None and current.status == "yes"
        events = [e for e in _event_details(archive) if e.get("change") == "merge"]
        assert {e["record"] for e in events} == {kept["id"], merged["id"]}
    finally:
        archive.close()
    assert {v["ref"] for v in reports.json("victim", "list")} == {"A-1", "A-2", "A-3", "B-2", "B-3"}
    assert [v["ref"] for v in reports.json("victim", "list", "--status", "merged")] == ["B-1"]
    confirmed = reports.json("victim", "match", "list", "--state", "confirmed")
    assert _pairs(confirmed) == {frozenset(("A-1", "B-1"))} and confirmed[0]["decided_by"]

    before = _counts(reports.home)
    for args, reason in [
        (["A-1", "B-1"], "was merged into another record"),  # merging twice
        (["B-1", "A-2"], "was merged into another record"),  # merging a merged victim
        (["A-2", "B-1"], "was merged into another record"),
    ]:
        code, _, err = reports("victim", "match", "confirm", *args, "--reason", "again", expect=None)
        assert code == 2 and reason in err, (args, err)
    code, _, err = reports("victim", "match", "reject", "A-1", "B-1", expect=None)
    assert code == 2 and "confirmed as one person" in err
    code, _, err = reports("victim", "edit", "B-1", "--age", "40", expect=None)
    assert code == 2 and "merged" in err
    code, _, err = reports("victim", "consent", "B-1", "no", "--scope", "courts", expect=None)
    assert code == 2 and "merged" in err
    assert _counts(reports.home) == before
    assert _pairs(reports.json("victim", "match", "list")) == {frozenset(("A-2", "B-2"))}  # the other is moot


def _event_details(archive: Archive) -> list[dict[str, Any]]:
    import json

    with archive.engine.connect() as conn:
        return [json.loads(r[0]) if isinstance(r[0], str) else r[0]
                for r in conn.execute(text("SELECT details FROM events"))]


def test_a_rejected_pair_is_never_suggested_again(reports: Cli) -> None:
    reports.json("victim", "match", "suggest")
    before = _counts(reports.home)
    shown = reports.json("victim", "match", "reject", "A-2", "B-2", "--reason", "different mothers named")
    assert shown["state"] == "rejected"
    after = _counts(reports.home)
    assert after["events"] == before["events"] + 1 and after["victim_matches"] == before["victim_matches"]
    # The decision is a link record (journalled: a rebuilt catalog keeps it), the victims themselves unchanged.
    [decision] = [link for link in reports.json("links", "B-2")["links"] if link["kind"] == "not_same_person"]
    assert decision["certainty"] == "confirmed" and decision["note"] == "different mothers named"
    for _ in range(2):
        assert _pairs(reports.json("victim", "match", "suggest")) == {frozenset(("A-1", "B-1"))}
    assert _pairs(reports.json("victim", "match", "suggest", "B-2")) == set()
    assert _pairs(reports.json("victim", "match", "list", "--state", "rejected")) == {frozenset(("A-2", "B-2"))}
    code, _, err = reports("victim", "match", "reject", "B-2", "A-2", expect=None)
    assert code == 2 and "rejected as a match already" in err
    # a pair never suggested can be rejected too (and then never will be)
    reports.json("victim", "match", "reject", "A-3", "A-1")
    assert _pairs(reports.json("victim", "match", "list", "--state", "rejected")) == {
        frozenset(("A-2", "B-2")), frozenset(("A-1", "A-3"))}


def test_a_name_withheld_by_either_family_stays_withheld_after_the_merge(cli: Cli) -> None:
    from archive.services.victims import confirm_match, show_victim

    _incident(cli, "INC-A")
    _victim(cli, "A-1", "INC-A", None, "--age", "30")  # anonymous in the first report
    _victim(cli, "B-1", "INC-A", "خالد النجار", "--name-withheld", "true")
    archive = Archive.open(cli.home, "investigator-1")
    try:
        with pytest.raises(Forbidden, match="custodians only"):  # a withheld person's reports: custodians merge
            confirm_match(archive, "A-1", "B-1", role=Role.INVESTIGATOR, reason="one person")
        kept = confirm_match(archive, "A-1", "B-1", role=CUSTODIAN, reason="one person")
        kept = show_victim(archive, "A-1", role=Role.INVESTIGATOR)
        assert kept["ref"] == "A-1" and kept["name_withheld"] is True and kept["name"] == "[withheld]"
        assert kept["anonymous"] is False
        assert "خالد" not in str(show_victim(archive, "A-1", role=Role.INVESTIGATOR, history=True))
        assert show_victim(archive, "A-1", role=CUSTODIAN)["name"] == "خالد النجار"
    finally:
        archive.close()


def test_the_merged_report_withholds_the_name_too(cli: Cli) -> None:
    """R1 F3: the kept report withholds the name, the later one named him openly. Once they are one person,
    the family's request covers both: the merged report (shown with `merged_into`) does not name him, nor
    do its history, the victim list or the confirmed pair."""
    from archive.services.victims import confirm_match, list_matches, list_victims, show_victim

    name = "وسيم القاسم"
    _incident(cli, "INC-A")
    _victim(cli, "A-1", "INC-A", name, "--name-withheld", "true", "--age", "34")
    _victim(cli, "B-1", "INC-A", name, "--age", "34")
    archive = Archive.open(cli.home, "tester")
    inv = Role.INVESTIGATOR
    try:
        confirm_match(archive, "A-1", "B-1", role=CUSTODIAN, reason=f"the family: both are {name}")
        merged = show_victim(archive, "B-1", role=inv, history=True)
        assert merged["status"] == "merged" and merged["merged_into_ref"] == "A-1"
        assert merged["name"] == "[withheld]" and merged["name_withheld"] is True
        seen = [merged, show_victim(archive, "A-1", role=inv, history=True),
                list_victims(archive, role=inv, status=None, names=True),
                list_matches(archive, role=inv, state=None)]
        assert "القاسم" not in json.dumps(seen, ensure_ascii=False)
        assert show_victim(archive, "B-1", role=CUSTODIAN)["name"] == name
        assert len(list_matches(archive, role=CUSTODIAN, state="confirmed")) == 1
    finally:
        archive.close()


def test_a_merge_made_before_the_rule_still_withholds_for_the_person(cli: Cli) -> None:
    """A report merged (in an older archive) without the flag: the person's request still covers it."""
    from archive.db import transaction
    from archive.records.common import find
    from archive.records.store import KINDS, put, state_of
    from archive.records.tables import Victim
    from archive.services.victims import list_victims, show_victim

    _incident(cli, "INC-A")
    kept = _victim(cli, "A-1", "INC-A", "وسيم القاسم", "--name-withheld", "true")
    _victim(cli, "B-1", "INC-A", "وسيم القاسم")
    archive = Archive.open(cli.home, "tester")
    try:
        keys = archive.runtime.keys.catalog()
        with transaction(archive.engine) as session:  # the old merge: only the status and the pointer
            row = find(session, Victim, "B-1", "victim", lock=True)
            state = {**state_of(keys, KINDS["victim"], row), "status": "merged", "merged_into": kept["id"]}
            put(session, keys, archive.actor, "victim", row.id, state, change="merge", reason="وسيم")
        inv = Role.INVESTIGATOR
        seen: list[Any] = [show_victim(archive, "B-1", role=inv, history=True),
                list_victims(archive, role=inv, status=None, names=True)]
        dumped = json.dumps(seen, ensure_ascii=False)
        assert "القاسم" not in dumped and "وسيم" not in dumped
        assert seen[0]["name"] == "[withheld]"
    finally:
        archive.close()


def test_reports_that_disagree_are_not_merged_until_one_is_corrected(cli: Cli) -> None:
    from archive.services.victims import confirm_match

    _incident(cli, "INC-A")
    _victim(cli, "A-1", "INC-A", "سامر حداد", "--age-group", "adult")
    _victim(cli, "B-1", "INC-A", "سامر حداد", "--age", "12")
    before = _counts(cli.home)
    archive = Archive.open(cli.home, "tester")
    try:
        with pytest.raises(Invalid, match="the two reports disagree"):
            confirm_match(archive, "A-1", "B-1", role=CUSTODIAN, reason="same")
    finally:
        archive.close()
    assert _counts(cli.home) == before


def test_blocking_never_compares_all_pairs_and_finds_planted_duplicates() -> None:
    """100,000 victims with varied names: pairs come from shared blocks only, and every planted report of
    one person from a second source (with a spelling variant) is found."""
    rng = random.Random(10)
    given = [f"g{i}" for i in range(400)]
    fathers = [f"f{i}" for i in range(400)]
    families = [f"fam{i}" for i in range(3000)]
    governorates = ["damascus", "aleppo", "idlib", "hama", "homs", "daraa", "raqqa"]
    profiles = []
    for i in range(100_000):
        day = f"2023-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        profiles.append(_p(f"vic-{i:06d}", f"{rng.choice(given)} {rng.choice(fathers)} {rng.choice(families)}",
                           date_of_death=day, governorate_of_death=rng.choice(governorates),
                           incident_id=f"inc-{i // 5}", age=rng.randrange(1, 90)))
    planted = []
    for n, i in enumerate(rng.sample(range(100_000), 200)):
        original = profiles[i]
        words = list(original.tokens)
        variant = f"{words[0]} {words[2]}" if n % 2 else f"{words[0]} {words[1]} {words[2]}h"  # drop / misspell
        profiles.append(_p(f"vic-dup{n:03d}", variant, date_of_death=original.date_of_death,
                           governorate_of_death=original.governorate_of_death, age=original.age,
                           incident_id="inc-other"))
        planted.append((original.id, f"vic-dup{n:03d}"))
    started = time.monotonic()
    compared = pairs(profiles)
    found = candidates(profiles, set())
    elapsed = time.monotonic() - started
    everything = len(profiles) * (len(profiles) - 1) // 2
    assert len(compared) < everything / 1000  # blocked: a tiny share of all pairs is ever scored
    ids = {(a, b) for a, b, _ in found}
    assert all(tuple(sorted(p)) in ids for p in planted), [p for p in planted if tuple(sorted(p)) not in ids][:5]
    assert elapsed < 60, elapsed
    # one victim against all the others: its blocks only
    assert {(a, b) for a, b, _ in candidates(profiles, set(), only=[planted[0][1]])} == {tuple(sorted(planted[0]))}


def test_a_rejection_survives_a_rebuild_from_storage(cli: Cli, tmp_path: Path) -> None:
    """The decision is a journalled link: the rebuilt catalog still never suggests the pair."""
    from tests.test_records_journal import rebuild

    _incident(cli, "INC-A")
    _incident(cli, "INC-B")
    _victim(cli, "A-2", "INC-A", "فاطمة العلي", "--sex", "female")
    _victim(cli, "B-2", "INC-B", "فاطمه العلي", "--sex", "female", "--age", "25")
    assert _pairs(cli.json("victim", "match", "suggest")) == {frozenset(("A-2", "B-2"))}
    cli("victim", "match", "reject", "A-2", "B-2", "--reason", "different mothers named")
    cli("log", "checkpoint")
    rebuild(cli, tmp_path)
    rebuilt = Cli(tmp_path / "rebuilt")
    assert _pairs(rebuilt.json("victim", "match", "suggest")) == set()
    assert rebuilt("log", "verify")[0] == 0


def test_a_probe_with_a_guessed_name_learns_nothing_of_a_withheld_one(
    tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R1 F1: an investigator adds probe victims, one with a wrong guess and one with the withheld name (spelt
    another way, which normalization forgives), and asks for matches every way there is. Both probes get the
    same answers: no pair with the withheld person is suggested, listed, confirmed or rejected by an
    investigator, and none is counted. A second report naming the person openly does not pair up either."""
    from archive.services import incidents
    from archive.services.victims import add_victim, confirm_match, list_matches, reject_match, suggest_matches

    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    _incident(cli, "INC-A")
    _victim(cli, "V-1", "INC-A", "محمد الأحمد", "--name-withheld", "true", "--age", "34")
    _victim(cli, "V-3", "INC-A", "سامر حداد")
    _victim(cli, "V-4", "INC-A", "سامر حداد")  # an ordinary pair: investigators see it
    inv = Role.INVESTIGATOR
    archive = Archive.open(cli.home, "investigator-1")
    try:
        incidents.add_incident(archive, {"ref": "INC-PROBE", "type": "other", "started_at": "2020-01-01",
                                         "governorate": "damascus", "attribution": "isis"}, role=inv)
        answers = []
        for probe, guess in (("P-0", "خالد العمر"), ("P-1", "مُحمّد الاحمد")):
            add_victim(archive, {"ref": probe, "incident_ref": "INC-PROBE", "name": guess, "sex": "unknown",
                                 "civilian": "true", "date_documented": "2020-01-02"}, role=inv)
            seen = [suggest_matches(archive, role=inv, victim=probe), suggest_matches(archive, role=inv),
                    list_matches(archive, role=inv, state=None), list_matches(archive, role=inv, victim=probe),
                    list_matches(archive, role=inv, state=None, names=False)]
            answers.append([_pairs(s) for s in seen])
        assert answers[0] == answers[1], "the right guess must not be told apart from the wrong one"
        assert answers[1][1] == {frozenset(("V-3", "V-4"))}  # only the pair without a withheld person
        assert all(not s for s in answers[1][0])
        _victim(cli, "V-2", "INC-A", "محمد الأحمد", "--age", "34")  # another source names him openly
        assert _pairs(suggest_matches(archive, role=inv)) == {frozenset(("V-3", "V-4")), frozenset(("V-2", "P-1"))}

        assert _pairs(suggest_matches(archive, role=CUSTODIAN)) >= {frozenset(("V-1", "P-1")),
                                                                      frozenset(("V-1", "V-2"))}
        assert _pairs(list_matches(archive, role=inv, state=None)) == {frozenset(("V-3", "V-4")),
                                                                        frozenset(("V-2", "P-1"))}
        for probe in ("P-0", "P-1"):  # the same refusal whether a candidate exists or not
            for decide in (lambda p: confirm_match(archive, p, "V-1", role=inv, reason="same"),
                           lambda p: reject_match(archive, "V-1", p, role=inv, reason="not")):
                with pytest.raises(Forbidden, match="custodians only"):
                    decide(probe)
        for ask in (lambda: suggest_matches(archive, role=inv, victim="V-1"),
                    lambda: list_matches(archive, role=inv, victim="V-1")):
            with pytest.raises(Forbidden, match="custodians only"):
                ask()
        before = _counts(cli.home)
        reject_match(archive, "V-1", "P-1", role=CUSTODIAN, reason="not him")  # custodians decide them
        assert _counts(cli.home)["events"] == before["events"] + 1
        assert frozenset(("V-1", "P-1")) in _pairs(list_matches(archive, role=CUSTODIAN, state="rejected"))
        assert _pairs(list_matches(archive, role=inv, state="rejected")) == set()
    finally:
        archive.close()
