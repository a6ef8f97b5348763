"""Victims: checked before anything is written, child and woman derived, consent per scope with its history,
and a withheld name that no one but a custodian ever sees (nor finds in the database file or the log).

Attacks as well as uses: each kind of bad input is refused with a reason
naming the field and leaves no row and no event; an investigator asks for a
withheld name every way there is (show, list, history, an error, a match)
and never gets it; a thief with the SQLite file or a pg_dump finds no name.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from archive.context import Archive
from archive.roles import Role
from archive.services.errors import Forbidden, Invalid
from tests.conftest import Cli, row_counts

WITHHELD_NAME = "زينب الخطيب الدمشقية"  # unique enough to grep for
PLAIN_NAME = "أحمد الحمصي"
TABLES = ("victims", "consents", "record_changes", "events")


def _incident(cli: Cli, ref: str = "INC-1", governorate: str = "idlib") -> None:
    cli("incident", "add", ref, "--type", "killing", "--started-at", "2023-12-09", "--governorate", governorate,
        "--attribution", "syrian_regime")


def _victim(cli: Cli, ref: str, *extra: str, expect: int = 0) -> Any:
    base = {"--incident": "INC-1", "--sex": "male", "--civilian": "true", "--date-documented": "2023-12-10"}
    given = dict(zip(extra[::2], extra[1::2], strict=True))
    args = ["victim", "add", ref, *[x for kv in {**base, **given}.items() for x in kv]]
    if expect:
        return cli(*args, expect=expect)
    return cli.json(*args)


def _counts(home: Path) -> dict[str, int]:
    return row_counts(home, TABLES)


def _dump(url: str) -> bytes:
    """What a thief gets: the SQLite file with its WAL, or a pg_dump."""
    if url.startswith("postgresql"):
        return subprocess.run(["pg_dump", "--dbname", url], check=True, capture_output=True).stdout
    db = Path(url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())


@pytest.fixture()
def db_cli(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """An archive on SQLite or PostgreSQL, with one incident."""
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    runner = Cli(tmp_path / "home")
    runner("init", "--operator", "tester")
    _incident(runner)
    return runner


@pytest.fixture()
def archive_of(cli: Cli) -> Iterator[Archive]:
    _incident(cli)
    archive = Archive.open(cli.home, "tester")
    try:
        yield archive
    finally:
        archive.close()


BAD = [
    ({"--date-of-death": "2023-12-11"}, "date_of_death: 2023-12-11 is after the date documented"),
    ({"--age": "7", "--age-group": "adult"}, "age_group: 'adult' disagrees with age 7"),
    ({"--age": "30", "--age-group": "child"}, "disagrees with age 30"),
    ({"--age": "seven"}, "age: 'seven' is not a whole number"),
    ({"--age": "-3"}, "age: '-3' is not a whole number"),
    ({"--age": "200"}, "not a possible age"),
    ({"--age-group": "teen"}, "age_group: 'teen' is not one of"),
    ({"--sex": "other"}, "sex: 'other' is not one of"),
    ({"--civilian": "maybe"}, "civilian: 'maybe' is not true or false"),
    ({"--name-withheld": "yes"}, "name_withheld: 'yes' is not true or false"),
    ({"--governorate-of-death": "narnia"}, "governorate_of_death: unknown value 'narnia'"),
    ({"--governorate-of-origin": "atlantis"}, "governorate_of_origin: unknown value 'atlantis'"),
    ({"--professions": "medical;pilot"}, "professions: unknown value 'pilot'"),
    ({"--incident": "INC-NOPE"}, "incident_ref: no incident 'INC-NOPE'"),
    ({"--date-documented": "2023-02-30"}, "date_documented: '2023-02-30' is not a real date"),
    ({"--date-documented": ""}, "date_documented: required"),
    ({"--date-of-death": "10/12/2023"}, "date_of_death: '10/12/2023' is not a date"),
    ({"--family-consent": "maybe"}, "family_consent: 'maybe' is not one of"),
    ({"--family-consent": "yes", "--consent-recorded-by": "team"}, "consent_date: required"),
    ({"--family-consent": "yes", "--consent-date": "2023-12-11"}, "consent_recorded_by: say who"),
    ({"--consent-date": "2023-12-11"}, "family_consent: give the family's answer"),
    ({"--name": "x" * 300}, "name: longer than 255 characters"),
]


def test_bad_input_is_refused_clearly_and_writes_nothing(db_cli: Cli) -> None:
    """Every kind of bad row, on both databases: exit 2, the field and why, and not one row or event more."""
    _victim(db_cli, "V-0", "--name", PLAIN_NAME)
    before = _counts(db_cli.home)
    for args, reason in [*BAD, ({}, "ref: a victim 'V-0' exists already")]:
        ref = "V-0" if not args else "V-BAD"
        named = {"--name": WITHHELD_NAME, "--name-withheld": "true", **args}
        code, out, err = _victim(db_cli, ref, *[x for kv in named.items() for x in kv], expect=2)
        assert code == 2 and reason in err, (args, err)
        assert WITHHELD_NAME not in err + out  # an error message may be logged: it never names anyone
        assert _counts(db_cli.home) == before, args


def test_child_and_woman_are_derived_by_the_store_never_typed(archive_of: Archive) -> None:
    from archive.services.victims import add_victim, edit_victim

    base = {"incident_ref": "INC-1", "civilian": "true", "date_documented": "2023-12-10"}
    for field in ("child", "woman", "anonymous"):
        with pytest.raises(Invalid, match=f"unknown field.*{field}"):
            add_victim(archive_of, {**base, "ref": "V-X", "sex": "female", field: "true"}, role=Role.CUSTODIAN)
    cases = [  # (sex, age, age group) -> (child, woman)
        (("female", "7", ""), (True, False)),
        (("female", "17", "child"), (True, False)),
        (("female", "18", ""), (False, True)),
        (("female", "", "child"), (True, False)),
        (("female", "", "adult"), (False, True)),
        (("female", "", "unknown"), (False, True)),
        (("female", "", ""), (False, True)),
        (("male", "7", ""), (True, False)),
        (("male", "40", "adult"), (False, False)),
        (("unknown", "", "child"), (True, False)),
        (("unknown", "30", ""), (False, False)),
    ]
    for i, ((sex, age, group), (child, woman)) in enumerate(cases):
        shown = add_victim(archive_of, {**base, "ref": f"V-{i}", "sex": sex, "age": age, "age_group": group},
                           role=Role.CUSTODIAN)
        assert (shown["child"], shown["woman"]) == (child, woman), (sex, age, group)
    grown = edit_victim(archive_of, "V-0", {"age": "30"}, role=Role.CUSTODIAN, reason="age corrected")
    assert (grown["child"], grown["woman"]) == (False, True)
    assert edit_victim(archive_of, "V-0", {"sex": "male"}, role=Role.CUSTODIAN)["woman"] is False
    with pytest.raises(Invalid, match="unknown field"):
        edit_victim(archive_of, "V-0", {"child": True}, role=Role.CUSTODIAN)


def test_the_cli_has_no_option_for_derived_fields(cli: Cli) -> None:
    _incident(cli)
    code, _, err = _victim(cli, "V-1", "--child", "true", expect=2)
    assert "No such option" in err


def test_a_withheld_name_reaches_custodians_only_and_is_never_in_clear_on_disk(
    tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An investigator asks for it every way there is; a thief reads the database and the log."""
    from archive.services.victims import (
        edit_victim,
        list_matches,
        list_victims,
        show_victim,
        suggest_matches,
    )

    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    _incident(cli)
    _victim(cli, "V-1", "--name", WITHHELD_NAME, "--name-withheld", "true", "--sex", "female", "--age", "30",
            "--date-of-death", "2023-12-09", "--governorate-of-death", "idlib")
    _victim(cli, "V-2", "--sex", "female", "--date-of-death", "2023-12-09", "--governorate-of-death", "idlib")
    cli("victim", "identify", "V-2", "--name", "زينب الخطيب الدمشقيه", "--name-withheld", "true",
        "--reason", f"her brother named her as {WITHHELD_NAME}")
    _victim(cli, "V-3", "--name", PLAIN_NAME)
    assert cli.json("victim", "show", "V-1")["name"] == WITHHELD_NAME  # the custodian sees it

    archive = Archive.open(cli.home, "investigator-1")
    try:
        inv = Role.INVESTIGATOR
        seen: list[Any] = [
            show_victim(archive, "V-1", role=inv, history=True),
            show_victim(archive, "V-2", role=inv, history=True),
            list_victims(archive, role=inv, names=True),
            list_victims(archive, role=inv),
            suggest_matches(archive, role=inv),
            list_matches(archive, role=inv, state=None),
        ]
        shown = json.dumps(seen, ensure_ascii=False)
        assert WITHHELD_NAME not in shown and "الدمشقيه" not in shown and "الدمشقية" not in shown
        assert seen[0]["name"] == "[withheld]" and seen[0]["history"][0]["after"]["name"] == "[withheld]"
        assert seen[1]["history"][-1]["reason"] == "[withheld]"
        assert {v["ref"]: v.get("name") for v in seen[2]}["V-3"] == PLAIN_NAME  # not withheld: shown
        assert seen[4] == [] and seen[5] == []  # pairs of a withheld person: matched by custodians only
        assert len(suggest_matches(archive, role=Role.CUSTODIAN)) == 1  # the two reports of her are a candidate
        assert list_matches(archive, role=inv, state=None) == []  # … that investigators never see
        with pytest.raises(Forbidden, match="only a custodian may lift"):
            edit_victim(archive, "V-1", {"name_withheld": "false"}, role=inv)
        with pytest.raises(Forbidden, match="only a custodian may give or change"):
            edit_victim(archive, "V-1", {"name": "someone else"}, role=inv)
        with pytest.raises(Invalid) as refused:
            edit_victim(archive, "V-1", {"age": "7", "age_group": "adult"}, role=inv)
        assert WITHHELD_NAME not in str(refused.value)
        for contributor_call in (lambda: show_victim(archive, "V-3", role=Role.CONTRIBUTOR),
                                 lambda: list_victims(archive, role=Role.CONTRIBUTOR)):
            with pytest.raises(Forbidden):
                contributor_call()
        with archive.engine.connect() as conn:
            details = [row[0] for row in conn.execute(text("SELECT details FROM events"))]
    finally:
        archive.close()
    assert PLAIN_NAME not in json.dumps(details, ensure_ascii=False)  # no name in the log at all
    assert all(name.encode() not in _dump(catalog_url) for name in (WITHHELD_NAME, PLAIN_NAME, "الدمشقيه"))
    for path in cli.home.rglob("*"):  # nor anywhere else in the home (journal, logs, keys)
        if path.is_file():
            assert WITHHELD_NAME.encode() not in path.read_bytes(), path


def test_history_hides_a_name_once_withheld_even_where_it_was_not_yet(archive_of: Archive) -> None:
    from archive.services.victims import add_victim, edit_victim, show_victim

    add_victim(archive_of, {"ref": "V-1", "incident_ref": "INC-1", "name": WITHHELD_NAME, "sex": "female",
                            "civilian": "true", "date_documented": "2023-12-10"}, role=Role.CUSTODIAN)
    edit_victim(archive_of, "V-1", {"name_withheld": "true"}, role=Role.CUSTODIAN,
                reason=f"the family of {WITHHELD_NAME} asked")
    history = show_victim(archive_of, "V-1", role=Role.INVESTIGATOR, history=True)["history"]
    assert [c["change"] for c in history] == ["create", "edit"]
    assert WITHHELD_NAME not in json.dumps(history, ensure_ascii=False)
    custodian = show_victim(archive_of, "V-1", role=Role.CUSTODIAN, history=True)["history"]
    assert custodian[0]["after"]["name"] == WITHHELD_NAME and WITHHELD_NAME in custodian[1]["reason"]


def test_an_anonymous_victim_is_identified_later_with_its_history(cli: Cli) -> None:
    _incident(cli)
    added = _victim(cli, "V-1", "--sex", "male", "--age", "12")
    assert added["anonymous"] is True and added["name"] is None
    code, _, err = cli("victim", "edit", "V-1", "--name", PLAIN_NAME, expect=2)
    assert "victim identify" in err
    code, _, err = cli("victim", "identify", "V-1", "--name", PLAIN_NAME, "--reason", "", expect=2)
    assert "reason" in err
    shown = cli.json("victim", "identify", "V-1", "--name", PLAIN_NAME, "--reason", "his father, with ID papers")
    assert shown["anonymous"] is False and shown["name"] == PLAIN_NAME
    history = cli.json("victim", "show", added["id"], "--history")["history"]
    assert [c["change"] for c in history] == ["create", "identify"]
    assert history[1]["before"]["name"] is None and history[1]["after"]["name"] == PLAIN_NAME
    assert history[1]["reason"] == "his father, with ID papers"
    code, _, err = cli("victim", "identify", "V-1", "--name", "another", "--reason", "r", expect=2)
    assert "is not anonymous" in err


def test_consent_per_scope_the_latest_counts_and_a_withdrawal_keeps_the_history(db_cli: Cli) -> None:
    from sqlmodel import Session

    from archive.services.victims import consent_for, consents

    shown = _victim(db_cli, "V-1", "--name", PLAIN_NAME, "--family-consent", "yes", "--consent-date",
                    "2023-12-11", "--consent-recorded-by", "field researcher 3")
    assert shown["consent"] == {"un_bodies": "yes", "courts": None, "publication": None}
    assert shown["consents"][0]["recorded_by"] == "field researcher 3"
    db_cli("victim", "consent", "V-1", "no", "--scope", "courts", "--date", "2023-12-12", "--recorded-by", "r1")
    before = _counts(db_cli.home)
    code, _, err = db_cli("victim", "consent", "V-1", "withdrawn", "--scope", "courts", "--date", "2024-01-02",
                          "--recorded-by", "r1", expect=2)
    assert "no consent for courts to withdraw" in err
    code, _, err = db_cli("victim", "consent", "V-1", "withdrawn", "--scope", "un_bodies", "--recorded-by", "r1",
                          expect=2)
    assert "consent_date" in err
    code, _, err = db_cli("victim", "consent", "V-1", "yes", "--scope", "publication", "--date", "2023-13-01",
                          "--recorded-by", "r1", expect=2)
    assert "not a real date" in err
    assert _counts(db_cli.home) == before
    shown = db_cli.json("victim", "consent", "V-1", "withdrawn", "--scope", "un_bodies", "--date", "2024-01-02",
                        "--recorded-by", "field researcher 3", "--document", "signed letter, item 4f2a")
    assert shown["consent"] == {"un_bodies": "withdrawn", "courts": "no", "publication": None}
    assert [(c["scope"], c["status"]) for c in shown["consents"]] == [
        ("un_bodies", "yes"), ("courts", "no"), ("un_bodies", "withdrawn")]
    after = _counts(db_cli.home)
    assert after["consents"] == before["consents"] + 1 and after["events"] == before["events"] + 1
    shown = db_cli.json("victim", "consent", "V-1", "yes", "--scope", "un_bodies", "--date", "2024-03-01",
                        "--recorded-by", "field researcher 5")
    assert shown["consent"]["un_bodies"] == "yes"
    archive = Archive.open(db_cli.home)
    try:
        with Session(archive.engine) as session:
            current = consent_for(session, shown["id"], "un_bodies")
            assert current is not None and current.given_on == "2024-03-01"
            assert consents(session, shown["id"], "un_bodies") and not consents(session, shown["id"], "courts")
            assert consent_for(session, shown["id"], "publication") is None
            with pytest.raises(Invalid, match="scope"):
                consent_for(session, shown["id"], "press")
    finally:
        archive.close()


def test_an_edit_keeps_the_old_state_and_refuses_what_it_does_not_own(cli: Cli) -> None:
    _incident(cli)
    _incident(cli, "INC-2", "aleppo")
    _victim(cli, "V-1", "--name", PLAIN_NAME)
    before = _counts(cli.home)
    cli("victim", "edit", "V-1", "--sex", "male")  # unchanged: nothing written
    assert _counts(cli.home) == before
    code, _, err = cli("victim", "edit", "V-1", "--incident", "INC-9", expect=2)
    assert "incident_ref: no incident" in err
    _victim(cli, "V-2")
    code, _, err = cli("victim", "edit", "V-2", "--ref", "V-1", expect=2)
    assert "exists already" in err
    shown = cli.json("victim", "edit", "V-1", "--incident", "INC-2", "--age", "44", "--reason", "second source")
    assert shown["incident_ref"] == "INC-2"
    history = cli.json("victim", "show", "V-1", "--history")["history"]
    assert history[-1]["before"]["age"] is None and history[-1]["after"]["age"] == 44
    assert history[-1]["reason"] == "second source"
    assert [v["ref"] for v in cli.json("victim", "list", "--incident", "INC-2")] == ["V-1"]
    assert [v["ref"] for v in cli.json("victim", "list", "--child", "false", "--from", "2023-12-10")] == ["V-1", "V-2"]


def test_custody_events_name_the_record_and_nothing_else(cli: Cli) -> None:
    _incident(cli)
    shown = _victim(cli, "V-1", "--name", PLAIN_NAME, "--family-consent", "no")
    archive = Archive.open(cli.home)
    try:
        with archive.engine.connect() as conn:
            rows = [json.loads(r[0]) if isinstance(r[0], str) else r[0]
                    for r in conn.execute(text("SELECT details FROM events"))]
    finally:
        archive.close()
    mine = [d for d in rows if d.get("record") == shown["id"]]
    assert len(mine) == 1 and set(mine[0]) == {"record", "record_kind", "change", "commitment", "commitment_format"}
    consent = [d for d in rows if d.get("record_kind") == "consent"]
    assert len(consent) == 1 and consent[0]["change"] == "consent"


def test_the_current_consent_follows_the_log_not_an_editable_column(db_cli: Cli) -> None:
    """R2 finding 3: an insider moves the family's withdrawal back in time (`consents.at`, an unchecked
    column) and the consent given before forward; the withdrawal stays the current consent, on screen and for exports
    (`consents`), because the order is the custody log's (each change's event, bound by its commitment)."""
    from sqlmodel import Session

    from archive.services.victims import consent_for, consents, consents_in_log_order

    shown = _victim(db_cli, "V-1", "--name", PLAIN_NAME, "--family-consent", "yes", "--consent-date",
                    "2023-12-11", "--consent-recorded-by", "field researcher 3")
    db_cli("victim", "consent", "V-1", "withdrawn", "--scope", "un_bodies", "--date", "2024-01-02",
           "--recorded-by", "field researcher 3")
    archive = Archive.open(db_cli.home)
    try:
        with archive.engine.begin() as conn:
            conn.execute(text("UPDATE consents SET at = '2000-01-01T00:00:00' WHERE status = 'withdrawn'"))
            conn.execute(text("UPDATE consents SET at = '2099-01-01T00:00:00' WHERE status = 'yes'"))
        with Session(archive.engine) as session:
            current = consent_for(session, shown["id"], "un_bodies")
            assert current is not None and current.status == "withdrawn"
            assert not consents(session, shown["id"], "un_bodies")
            assert [c.status for c in consents_in_log_order(session, [shown["id"]])] == ["yes", "withdrawn"]
    finally:
        archive.close()
    seen = db_cli.json("victim", "show", "V-1")
    assert seen["consent"]["un_bodies"] == "withdrawn"
    assert [c["status"] for c in seen["consents"]] == ["yes", "withdrawn"]


def _while_held(cli: Cli, ref: str, first_change: Any, second: Any) -> Any:
    """Hold victim `ref` in one transaction (as a write path does) and write `first_change(session, keys,
    actor, row)` there, while `second(archive)` runs in a thread: it must wait, then start from the result.
    Returns what `second` returned or raised."""
    import threading

    from archive.db import transaction
    from archive.records.common import find
    from archive.records.tables import Victim

    first_archive, second_archive = Archive.open(cli.home, "tester"), Archive.open(cli.home, "tester")
    outcome: dict[str, Any] = {}
    try:
        keys = first_archive.runtime.keys.catalog()
        holding, done = threading.Event(), threading.Event()

        def run() -> None:
            holding.wait()
            try:
                outcome["value"] = second(second_archive)
            except Exception as exc:  # noqa: BLE001 - handed to the test
                outcome["value"] = exc
            done.set()

        thread = threading.Thread(target=run)
        thread.start()
        with transaction(first_archive.engine) as session:
            row = find(session, Victim, ref, "victim", lock=True)
            holding.set()
            assert not done.wait(1.0), "the second write must wait for the first"
            first_change(session, keys, first_archive.actor, row)
        thread.join(30)
        assert done.is_set()
    finally:
        first_archive.close()
        second_archive.close()
    return outcome["value"]


def _edited(field: str, value: Any) -> Any:
    from archive.records.store import KINDS, put, state_of

    def change(session: Any, keys: Any, actor: str, row: Any) -> None:
        state = {**state_of(keys, KINDS["victim"], row), field: value}
        put(session, keys, actor, "victim", row.id, state, change="edit")
    return change


def test_two_edits_of_one_victim_at_once_follow_each_other(db_cli: Cli) -> None:
    """R2 finding 4: an edit holds the victim while it builds the new state, so a second edit waits and starts
    from its result: neither undoes the other, and the row is its latest change's state (`log verify`)."""
    from archive.services.victims import edit_victim, identify_victim

    _victim(db_cli, "V-1", "--name", PLAIN_NAME)
    _while_held(db_cli, "V-1", _edited("governorate_of_origin", "aleppo"),
                lambda a: edit_victim(a, "V-1", {"died_under_torture": "true"}, role=Role.CUSTODIAN, reason="B"))
    shown = db_cli.json("victim", "show", "V-1", "--history")
    assert (shown["governorate_of_origin"], shown["died_under_torture"]) == ("aleppo", True)
    assert shown["history"][-1]["after"]["governorate_of_origin"] == "aleppo"
    _victim(db_cli, "V-2")
    _while_held(db_cli, "V-2", _edited("governorate_of_origin", "hama"),
                lambda a: identify_victim(a, "V-2", "سامر حداد", role=Role.CUSTODIAN, reason="his brother"))
    shown = db_cli.json("victim", "show", "V-2")
    assert (shown["governorate_of_origin"], shown["name"]) == ("hama", "سامر حداد")
    assert db_cli("log", "verify")[0] == 0


def test_a_withdrawal_waits_for_the_consent_recorded_at_the_same_time(db_cli: Cli) -> None:
    """While one transaction records the family's refusal, a withdrawal of the earlier consent waits for it,
    then finds nothing to withdraw (it must not read the consent from before the refusal)."""
    from archive.records.changes import new_id
    from archive.records.rules import consent_state
    from archive.records.store import put
    from archive.services.victims import withdraw_consent

    _victim(db_cli, "V-1", "--name", PLAIN_NAME, "--family-consent", "yes", "--consent-date", "2023-12-11",
            "--consent-recorded-by", "r1")

    def refuse(session: Any, keys: Any, actor: str, row: Any) -> None:
        put(session, keys, actor, "consent", new_id("con"),
            consent_state(row.id, "un_bodies", "no", "2024-01-01", "r1"), change="consent")

    found = _while_held(db_cli, "V-1", refuse, lambda a: withdraw_consent(a, "V-1", "un_bodies", "2024-01-02", "r2",
                                                                           role=Role.CUSTODIAN))
    assert isinstance(found, Invalid) and "no consent for un_bodies to withdraw" in str(found)
    assert db_cli.json("victim", "show", "V-1")["consent"]["un_bodies"] == "no"
    assert db_cli("log", "verify")[0] == 0


def test_a_merge_waits_for_an_edit_of_either_report(db_cli: Cli) -> None:
    """A merge builds the kept report from both: it holds them, so an edit made meanwhile is in the result."""
    from archive.services.victims import confirm_match

    _victim(db_cli, "V-1", "--name", PLAIN_NAME)
    _victim(db_cli, "V-2", "--name", PLAIN_NAME, "--date-documented", "2023-12-11")
    kept = _while_held(db_cli, "V-2", _edited("professions", ["media"]),
                       lambda a: confirm_match(a, "V-1", "V-2", role=Role.CUSTODIAN, reason="one person"))
    assert not isinstance(kept, Exception), kept
    assert kept["ref"] == "V-1" and kept["professions"] == ["media"]
    merged = db_cli.json("victim", "show", "V-2", "--history")
    assert merged["status"] == "merged" and merged["professions"] == ["media"]
    assert db_cli("log", "verify")[0] == 0


def test_an_investigator_learns_nothing_by_offering_a_withheld_name(archive_of: Archive) -> None:
    """The right guess and a wrong one get the same refusal, and neither writes anything."""
    from archive.roles import Role
    from archive.services.errors import Forbidden
    from archive.services.victims import add_victim, edit_victim

    add_victim(archive_of, {"ref": "V-W", "incident_ref": "INC-1", "name": "سامر الخطيب", "name_withheld": "true",
                            "sex": "male", "civilian": "true", "date_documented": "2023-12-10"},
               role=Role.CUSTODIAN)
    before = _counts(archive_of.home)
    answers = []
    for guess in ("سامر الخطيب", "someone else"):
        with pytest.raises(Forbidden) as refused:
            edit_victim(archive_of, "V-W", {"name": guess}, role=Role.INVESTIGATOR)
        answers.append(str(refused.value))
    assert answers[0] == answers[1] and _counts(archive_of.home) == before
