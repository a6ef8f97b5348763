"""Incidents: every change checked first, kept with its history, bound by the log, and sealed where it tells.

Attacks as well as uses: bad input of each kind writes nothing at all (no
row, no event); a narrative or a neighbourhood never reaches the custody log
nor the database file in clear; the log's commitment is to exactly the state
the catalog holds; a locked archive refuses to write records but still lists.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import Cli, row_counts

NARRATIVE = "Two barrel bombs hit the market near the Omari mosque at noon"
NEIGHBOURHOOD = "Bab al-Hawa quarter"


def _add(cli: Cli, ref: str = "INC-1", *extra: str, expect: int = 0) -> Any:
    args = ["incident", "add", ref, "--type", "killing", "--started-at", "2023-12-09T14:30",
            "--governorate", "idlib", "--attribution", "syrian_regime+russian_forces", "--narrative", NARRATIVE,
            "--neighbourhood", NEIGHBOURHOOD, "--latitude", "35.93", "--longitude", "36.63", *extra]
    if expect:
        return cli(*args, expect=expect)
    return cli.json(*args)


def _counts(home: Path) -> dict[str, int]:
    return row_counts(home, ("incidents", "attributions", "record_changes", "events"))


def _dump(url: str) -> bytes:
    """What a thief gets: the SQLite file with its WAL, or a pg_dump."""
    if url.startswith("postgresql"):
        return subprocess.run(["pg_dump", "--dbname", url], check=True, capture_output=True).stdout
    db = Path(url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())


@pytest.mark.parametrize("args, reason", [
    (["--type", "nope"], "type: unknown value 'nope'"),
    (["--started-at", "2023-02-30"], "not a real date"),
    (["--started-at", "9 Dec 2023"], "is not a date"),
    (["--started-precision", "hour", "--started-at", "2023-12-09"], "needs a time of day"),
    (["--started-precision", "week"], "started_precision"),
    (["--governorate", "narnia"], "governorate: unknown value"),
    (["--attribution", "syrian_regime+martians"], "attribution: unknown value 'martians'"),
    (["--attribution", "+"], "a party key is required"),
    (["--controlled-by", "nobody"], "controlled_by: unknown value"),
    (["--weapon", "sword"], "weapon: unknown value"),
    (["--facility-damage", "total"], "facility_damage"),
    (["--latitude", "95"], "outside"),
    (["--latitude", "north"], "not a number"),
])
def test_bad_input_is_refused_clearly_and_writes_nothing(cli: Cli, args: list[str], reason: str) -> None:
    _add(cli, "INC-0")
    before = _counts(cli.home)
    base = {"--type": "killing", "--started-at": "2023-12-09T14:30", "--governorate": "idlib",
            "--attribution": "sdf"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    code, _, err = cli("incident", "add", "INC-BAD", *[x for kv in base.items() for x in kv], expect=None)
    assert code == 2 and reason in err, err
    assert _counts(cli.home) == before
    assert cli("incident", "show", "INC-BAD", expect=None)[0] == 2


def test_refs_are_unique_and_records_are_found_by_ref_or_id(cli: Cli) -> None:
    first = _add(cli)
    before = _counts(cli.home)
    code, _, err = _add(cli, expect=2)
    assert "exists already" in err
    second = _add(cli, "INC-2")
    code, _, err = cli("incident", "edit", "INC-2", "--ref", "INC-1", expect=2)
    assert "exists already" in err
    assert _counts(cli.home)["incidents"] == before["incidents"] + 1
    assert cli.json("incident", "show", first["id"])["ref"] == "INC-1"
    assert cli.json("incident", "show", "INC-2")["id"] == second["id"]


def test_attribution_history_keeps_who_when_why_and_on_what(cli: Cli) -> None:
    shown = _add(cli)
    assert shown["attribution"] == "russian_forces+syrian_regime"
    assert [a["kind"] for a in shown["attributions"]] == ["joint"]
    cli("incident", "attribute", "INC-1", "russian_forces", "--reason", "munition remnants identified",
        "--evidence", "item-123", "--evidence", "SRC-7")
    cli("incident", "attribute", "INC-1", "bombing_unidentified", "--reason", "remnants reassessed")
    shown = cli.json("incident", "show", "INC-1", "--history")
    assert shown["attribution"] == "bombing_unidentified"
    kinds = [(a["parties"], a["kind"], a["reason"], a["evidence"]) for a in shown["attributions"]]
    assert kinds[1:] == [("russian_forces", "single", "munition remnants identified", ["item-123", "SRC-7"]),
                         ("bombing_unidentified", "other", "remnants reassessed", [])]
    assert all(a["by"].startswith("u-") and a["at"] for a in shown["attributions"])
    changes = shown["history"]
    assert [c["change"] for c in changes] == ["create", "attribute", "attribute"]
    assert changes[1]["before"]["attribution"] == "russian_forces+syrian_regime"
    assert changes[1]["after"]["attribution"] == "russian_forces"
    # An attribution is never changed silently: edit refuses it, attribute needs a reason.
    assert "incident attribute" in cli("incident", "edit", "INC-1", "--clear", "attribution", expect=2)[2]
    assert cli("incident", "attribute", "INC-1", "sdf", "--reason", " ", expect=2)[0] == 2


def test_an_edit_keeps_the_old_state_and_an_unchanged_edit_writes_nothing(cli: Cli) -> None:
    _add(cli)
    cli("incident", "edit", "INC-1", "--weapon", "barrel_bomb", "--reason", "witness account")
    before = _counts(cli.home)
    cli("incident", "edit", "INC-1", "--weapon", "barrel_bomb")
    assert _counts(cli.home) == before, "an edit that changes nothing is no change"
    cli("incident", "edit", "INC-1", "--clear", "neighbourhood")
    history = cli.json("incident", "show", "INC-1", "--history")["history"]
    assert [c["change"] for c in history] == ["create", "edit", "edit"]
    assert history[1]["reason"] == "witness account" and history[1]["after"]["weapon"] == "barrel_bomb"
    assert history[2]["before"]["neighbourhood"] == NEIGHBOURHOOD and history[2]["after"]["neighbourhood"] is None


def test_the_log_commits_to_exactly_the_state_the_catalog_holds(cli: Cli) -> None:
    """An outsider shown a state and its salt recomputes the commitment with hashlib and finds it in the log."""
    from sqlmodel import Session, select

    from archive.context import Archive
    from archive.custody.entry import canonical
    from archive.records.changes import opened
    from archive.records.tables import RecordChange

    shown = _add(cli)
    archive = Archive.open(cli.home)
    try:
        keys = archive.runtime.keys.catalog()
        with Session(archive.engine) as session:
            change = session.exec(select(RecordChange).where(RecordChange.record_id == shown["id"])).one()
            fields = opened(keys, change)
            events = session.execute(text("SELECT event_type, details FROM events")).all()
    finally:
        archive.close()
    state_hash = hashlib.sha256(canonical(fields["state"])).hexdigest()
    line = f"evidence-record/1 {shown['id']} {fields['salt']} {state_hash}\n".encode("ascii")
    assert hashlib.sha256(line).hexdigest() == change.commitment
    details = [json.loads(d) if isinstance(d, str) else d for kind, d in events if kind == "creation"]
    assert {"record": shown["id"], "record_kind": "incident", "change": "create", "commitment": change.commitment,
            "commitment_format": "evidence-record/1"} in details
    assert fields["state"]["narrative"] == NARRATIVE
    # A different state under the same salt commits to something else: the log binds this very state.
    altered = {**fields["state"], "attribution": "sdf"}
    other = hashlib.sha256(canonical(altered)).hexdigest()
    assert hashlib.sha256(f"evidence-record/1 {shown['id']} {fields['salt']} {other}\n".encode()).hexdigest() \
        != change.commitment
    assert cli("log", "verify")[0] == 0


def test_a_stolen_catalog_or_log_holds_no_narrative_nor_place(
    tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    _add(cli)
    cli("incident", "attribute", "INC-1", "sdf", "--reason", "the commander's own statement on video")
    shown = cli.json("incident", "show", "INC-1")
    assert shown["narrative"] == NARRATIVE and shown["neighbourhood"] == NEIGHBOURHOOD
    dump = _dump(catalog_url)
    for secret in (NARRATIVE, NEIGHBOURHOOD, "35.93", "the commander's own statement"):
        assert secret.encode() not in dump, secret
    assert b"idlib" in dump, "the clear columns (what statistics need) are there, so the search means something"


def test_a_locked_archive_refuses_to_write_records_but_still_lists(cli: Cli, tmp_path: Path) -> None:
    _add(cli)
    vault = tmp_path / "vault"
    vault.mkdir()
    for name in ("catalog.key", "access.key", "custodian.key"):
        shutil.move(cli.home / "keys" / name, vault / name)
    before = _counts(cli.home)
    code, _, err = _add(cli, "INC-2", expect=1)
    assert "catalog key" in err
    assert cli("incident", "show", "INC-1", expect=None)[0] == 1
    assert [r["ref"] for r in cli.json_lines("incident", "list")] == ["INC-1"]
    assert _counts(cli.home) == before


def test_massacre_is_derived_from_five_civilian_victims(cli: Cli) -> None:
    from archive.context import Archive
    from archive.db import transaction
    from archive.records.changes import new_id
    from archive.records.rules import victim_state
    from archive.records.store import put
    from archive.records.vocab import Vocab

    incident = _add(cli)
    archive = Archive.open(cli.home, "tester")
    try:
        keys = archive.runtime.keys.catalog()
        with transaction(archive.engine) as session:
            vocab = Vocab.read(session)
            for i in range(6):
                state = victim_state(vocab, {"ref": f"V-{i}", "incident_ref": "INC-1", "sex": "male",
                                             "civilian": "true" if i < 4 else "false",
                                             "date_documented": "2023-12-10"}, incident["id"])
                put(session, keys, archive.actor, "victim", new_id("vic"), state, change="create")
    finally:
        archive.close()
    shown = cli.json("incident", "show", "INC-1")
    assert (shown["victims"], shown["civilian_victims"], shown["massacre"]) == (6, 4, False)
    archive = Archive.open(cli.home, "tester")
    try:
        keys = archive.runtime.keys.catalog()
        with transaction(archive.engine) as session:
            vocab = Vocab.read(session)
            state = victim_state(vocab, {"ref": "V-9", "incident_ref": "INC-1", "sex": "female", "age": "9",
                                         "civilian": "true", "date_documented": "2023-12-10"}, incident["id"])
            put(session, keys, archive.actor, "victim", new_id("vic"), state, change="create")
    finally:
        archive.close()
    assert cli.json("incident", "show", "INC-1")["massacre"] is True
    assert [r["ref"] for r in cli.json_lines("incident", "list", "--massacres")] == ["INC-1"]
    assert "massacre" not in cli("incident", "add", "--help")[1].split("Options:")[1], "never typed"


def test_rotating_the_catalog_key_reseals_records_and_their_history(cli: Cli) -> None:
    from sqlalchemy import text as sql

    from archive.context import Archive

    _add(cli)
    cli("incident", "edit", "INC-1", "--weapon", "artillery", "--reason", "crater analysis")
    cli("keys", "rotate-catalog")
    archive = Archive.open(cli.home)
    try:
        with archive.engine.connect() as conn:
            versions = {t: set(conn.execute(sql(f"SELECT DISTINCT key_version FROM {t}")).scalars())  # noqa: S608
                        for t in ("incidents", "attributions", "record_changes")}
    finally:
        archive.close()
    assert versions == {"incidents": {2}, "attributions": {2}, "record_changes": {2}}
    shown = cli.json("incident", "show", "INC-1", "--history")
    assert shown["narrative"] == NARRATIVE and shown["history"][1]["reason"] == "crater analysis"
    assert cli("log", "verify")[0] == 0


def test_two_edits_at_once_follow_each_other(tmp_path: Path, catalog_url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """An edit holds the record while it builds the new state from the old: a second edit waits for it and
    starts from its result, so neither undoes the other and the row is its latest change's state."""
    import threading

    from archive.context import Archive
    from archive.db import transaction
    from archive.records.common import find
    from archive.records.store import KINDS, put, state_of
    from archive.records.tables import Incident
    from archive.roles import Role
    from archive.services.incidents import edit_incident

    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    _add(cli)
    first, second = Archive.open(cli.home, "tester"), Archive.open(cli.home, "tester")
    try:
        keys = first.runtime.keys.catalog()
        holding, done = threading.Event(), threading.Event()

        def other_edit() -> None:
            holding.wait()
            edit_incident(second, "INC-1", {"weapon": "artillery"}, role=Role.CUSTODIAN)
            done.set()

        thread = threading.Thread(target=other_edit)
        thread.start()
        with transaction(first.engine) as session:
            row = find(session, Incident, "INC-1", "incident", lock=True)
            state = {**state_of(keys, KINDS["incident"], row), "facility_damage": "heavy"}
            holding.set()
            assert not done.wait(1.0), "the second edit must wait for the first"
            put(session, keys, first.actor, "incident", row.id, state, change="edit")
        thread.join(30)
        assert done.is_set()
    finally:
        first.close()
        second.close()
    shown = cli.json("incident", "show", "INC-1", "--history")
    assert (shown["facility_damage"], shown["weapon"]) == ("heavy", "artillery")
    assert shown["history"][-1]["after"]["facility_damage"] == "heavy"
    assert cli("log", "verify")[0] == 0


def test_a_ref_may_not_look_like_a_record_id(cli: Cli) -> None:
    """Records are found by ref first, then id: a ref shaped like another record's id would take it over."""
    other = _add(cli)
    for ref in (other["id"], "vic-0123456789abcdef", "INC\x00-1"):
        code, _, err = _add(cli, ref, expect=2)
        assert "ref" in err
    assert cli.json("incident", "show", other["id"])["ref"] == "INC-1"


def test_log_show_gives_a_records_custody_timeline(cli: Cli) -> None:
    """`log show REF`: every event carrying a commitment to one of the record's states, in the log's order."""
    shown = _add(cli)
    cli("incident", "edit", "INC-1", "--weapon", "artillery")
    by_ref, by_id = cli.json("log", "show", "INC-1"), cli.json("log", "show", shown["id"])
    assert by_ref == by_id and by_ref["record"] == shown["id"]
    events = by_ref["events"]
    assert [e["change"] for e in events] == ["create", "edit"]
    assert [e["type"] for e in events] == ["creation", "metadata modification"]
    assert all(e["details"]["commitment"] == e["commitment"] and e["checkpointed"] for e in events)
    assert events[0]["seq"] < events[1]["seq"]
    assert cli("log", "show", "INC-404", expect=2)[0] == 2
