"""`log verify` holds every record against the log: a column edited in the database is caught, by record id.

Attacks: a victim's clear `civilian` or `governorate_of_death`, or an
incident's attribution, changed with SQL (every statistic would follow); a
derived column (`child`) changed; sealed fields swapped between two rows; a
change row deleted, or its commitment altered, or a record row added behind
the log's back; one row of an imported batch altered; a change or record row
marked pending (which once turned its record's checks off); a flag stored as 2
(true to the ORM, not counted by the statistics); a withdrawn consent back-dated,
an attribution re-credited, a link's removal moved (the rows' stamps against
their changes, and an honest rebuild keeping them). Record changes not yet on
a site are a warning in `log verify` and `status`. On SQLite and
PostgreSQL. Without the catalog key the clear columns cannot be compared with
the sealed states: the run says it is not fully verified, and what it can check
(commitments against events, rows against events) it still checks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import Cli
from tests.test_records_journal import put_victims, victim_state


def _setup(cli: Cli) -> tuple[str, list[str], list[str]]:
    incident = cli.json("incident", "add", "INC-1", "--type", "killing", "--started-at", "2023-12-09",
                        "--governorate", "idlib", "--attribution", "syrian_regime")
    ids = put_victims(cli.home, incident["id"], [victim_state(incident["id"], "V-1"),
                                                 victim_state(incident["id"], "V-2", name="Mariam", sex="female",
                                                              age=30)])
    batch = put_victims(cli.home, incident["id"], [victim_state(incident["id"], f"B-{i}", name=f"P {i}")
                                                   for i in range(5)], batch=True)
    cli.json("log", "checkpoint")
    return incident["id"], ids, batch


def _sql(home: Path, statement: str, **params: Any) -> None:
    from archive.context import Archive

    archive = Archive.open(home)
    try:
        with archive.engine.begin() as connection:
            connection.execute(text(statement), params)
    finally:
        archive.close()


def _verify(cli: Cli, *extra: str) -> tuple[int, str, dict[str, Any]]:
    code, _, err = cli("log", "verify", *extra, expect=None)
    _, out, _ = cli("log", "verify", "--json", *extra, expect=None)
    return code, err, json.loads(out)


def _named(report: dict[str, Any], record_id: str) -> list[str]:
    return [m["message"] for m in report["catalog"]["mismatches"] if m["item"] == record_id]


def test_edited_columns_are_caught_by_record(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    incident_id, ids, batch = _setup(cli)
    code, err, report = _verify(cli)
    assert code == 0, err
    assert report["catalog"]["records"] == 1 + 1 + 2 + 5

    for statement, value, record_id, column in (
        ("UPDATE victims SET civilian = :v WHERE id = :id", False, ids[0], "civilian"),
        ("UPDATE victims SET governorate_of_death = :v WHERE id = :id", "hama", batch[2], "governorate_of_death"),
        ("UPDATE incidents SET attribution = :v WHERE id = :id", "isis", incident_id, "attribution"),
        ("UPDATE victims SET child = :v WHERE id = :id", False, ids[0], "child"),
    ):
        restore = {"civilian": True, "governorate_of_death": "idlib", "attribution": "syrian_regime",
                   "child": True}[column]
        _sql(cli.home, statement, v=value, id=record_id)
        code, err, report = _verify(cli)
        assert code == 1
        assert f"FAIL catalog: record {record_id}: its {column} is not its latest change's state" in err, err
        assert _named(report, record_id) and report["ok"] is False
        _sql(cli.home, statement, v=restore, id=record_id)
        assert _verify(cli)[0] == 0, column


def test_sealed_fields_swapped_and_rows_behind_the_log(tmp_path: Path, catalog_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    incident_id, ids, batch = _setup(cli)
    # Two victims' sealed fields swapped (a name put on another person): bound to the row id, they do not open.
    _sql(cli.home, "UPDATE victims SET sealed = (SELECT sealed FROM victims WHERE id = :b) WHERE id = :a",
         a=ids[0], b=ids[1])
    code, err, report = _verify(cli)
    assert code == 1 and _named(report, ids[0]) and "sealed" in _named(report, ids[0])[0]

    # A change row deleted: the log's event has no row left, and the record's row follows no change.
    _sql(cli.home, "DELETE FROM record_changes WHERE record_id = :id", id=ids[1])
    code, err, report = _verify(cli)
    messages = _named(report, ids[1])
    assert code == 1 and any("catalog holds no change row" in m for m in messages)
    assert any("no change of it" in m for m in messages)


def test_change_rows_against_their_events(cli: Cli) -> None:
    incident_id, ids, batch = _setup(cli)
    # One row of an import batch with another commitment: the batch no longer gives the event's Merkle root.
    _sql(cli.home, "UPDATE record_changes SET commitment = :c WHERE record_id = :id", c="ab" * 32, id=batch[3])
    code, err, report = _verify(cli)
    assert code == 1 and any("Merkle root" in m for m in _named(report, batch[0]))
    _sql(cli.home, "UPDATE record_changes SET commitment = :c WHERE record_id = :id", c="cd" * 32, id=ids[0])
    code, err, report = _verify(cli)
    assert any("commitment is not the one the custody log's event" in m for m in _named(report, ids[0]))
    # A victim added by SQL, with no change at all.
    _sql(cli.home, "INSERT INTO victims (id, ref, incident_id, anonymous, name_withheld, sex, child, woman, civilian,"
         " professions, died_under_torture, date_documented, status, key_version, created_at, updated_at) VALUES "
         "('vic-00000000000000ff', 'X', :inc, true, false, 'male', false, false, true, '', false, '2023-01-01', "
         "'active', 0, '', '')", inc=incident_id)
    code, err, report = _verify(cli)
    assert any("no change of it" in m for m in _named(report, "vic-00000000000000ff"))


def test_without_the_catalog_key(cli: Cli, tmp_path: Path) -> None:
    incident_id, ids, batch = _setup(cli)
    vault = tmp_path / "vault"
    vault.mkdir()
    for name in ("catalog.key", "access.key", "custodian.key"):
        shutil.move(cli.home / "keys" / name, vault / name)
    code, err, report = _verify(cli)
    assert code == 1 and "not fully verified" in err and report["fully_verified"] is False
    # A clear column edited: it cannot be compared with the sealed state without the key (said, exit 1 above).
    _sql(cli.home, "UPDATE victims SET civilian = :v WHERE id = :id", v=False, id=ids[0])
    assert _verify(cli, "--copies-only")[0] == 0  # honestly: not detectable without the key
    # What holds without the key: commitments against events, rows against events.
    _sql(cli.home, "DELETE FROM record_changes WHERE record_id = :id", id=ids[1])
    code, err, report = _verify(cli, "--copies-only")
    assert code == 1 and _named(report, ids[1])
    for name in ("catalog.key", "access.key", "custodian.key"):
        shutil.move(vault / name, cli.home / "keys" / name)
    code, err, report = _verify(cli)
    assert any("civilian" in m for m in _named(report, ids[0]))


def test_pending_rows_are_mismatches(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A change row (or a record row) marked pending (key version 0) must not turn the checks of its record
    off: records are only ever written under the catalog key, so it is an edit, caught with or without the key."""
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    incident_id, ids, batch = _setup(cli)
    _sql(cli.home, "UPDATE record_changes SET key_version = 0 WHERE record_id = :id", id=ids[0])
    _sql(cli.home, "UPDATE victims SET civilian = :v, sex = 'female' WHERE id = :id", v=False, id=ids[0])
    code, err, report = _verify(cli)
    assert code == 1 and report["fully_verified"] is False
    assert any("marked pending (key version 0)" in m for m in _named(report, ids[0])), err
    # The latest change of an imported batch, and a record row itself.
    _sql(cli.home, "UPDATE record_changes SET key_version = 0 WHERE record_id = :id", id=batch[1])
    _sql(cli.home, "UPDATE victims SET key_version = 0 WHERE id = :id", id=batch[2])
    code, err, report = _verify(cli)
    assert any("pending" in m for m in _named(report, batch[1]))
    assert any("its victim row is marked pending" in m for m in _named(report, batch[2]))
    # Without the catalog key it is seen all the same (a pending flag needs no key to read).
    vault = tmp_path / "vault"
    vault.mkdir()
    for name in ("catalog.key", "access.key", "custodian.key"):
        shutil.move(cli.home / "keys" / name, vault / name)
    code, err, report = _verify(cli, "--copies-only")
    assert code == 1 and any("pending" in m for m in _named(report, ids[0]))


@pytest.mark.parametrize("value", ["2", "'true'", "-1"])
def test_booleans_that_are_neither_true_nor_false(cli: Cli, value: str) -> None:
    """SQLite keeps any value in a BOOLEAN column: the ORM reads 2 as true, `civilian = 1` does not count it."""
    incident_id, ids, batch = _setup(cli)
    for table, column, record_id in (("victims", "civilian", ids[0]), ("victims", "child", batch[0]),
                                     ("victims", "died_under_torture", ids[1])):
        _sql(cli.home, f"UPDATE {table} SET {column} = {value} WHERE id = :id", id=record_id)
        code, err, report = _verify(cli)
        assert code == 1, (column, err)
        assert f"its {column} column holds a value that is neither true nor false" in err
        assert _named(report, record_id)
        restore = {"civilian": 1, "child": 1, "died_under_torture": 0}[column]
        _sql(cli.home, f"UPDATE {table} SET {column} = {restore} WHERE id = :id", id=record_id)
        assert _verify(cli)[0] == 0, column


def _csv(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join((header, *rows)) + "\n", encoding="utf-8")
    return path


def _documented(cli: Cli, tmp_path: Path) -> dict[str, str]:
    """An import (incidents, victims with consents), attributions, a withdrawal, a link and an unlink."""
    _csv(tmp_path / "inc.csv", "ref,type,started_at,governorate,attribution",
         "I1,killing,2023-03-01,idlib,syrian_regime", "I2,explosion,2023-03-02,aleppo,isis")
    _csv(tmp_path / "vic.csv", "ref,incident_ref,name,sex,age,civilian,date_documented,family_consent,"
         "consent_date,consent_recorded_by",
         "V1,I1,Ahmad,male,15,true,2023-03-05,yes,2023-03-05,R", "V2,I1,Mariam,female,30,true,2023-03-05,yes,"
         "2023-03-05,R")
    cli("import", "--incidents", str(tmp_path / "inc.csv"), "--victims", str(tmp_path / "vic.csv"))
    cli("incident", "attribute", "I1", "russian_forces+syrian_regime", "--reason", "new evidence")
    cli("victim", "consent", "V2", "withdrawn", "--scope", "un_bodies", "--date", "2023-06-01", "--recorded-by", "Z")
    cli("victim", "edit", "V1", "--civilian", "false", "--reason", "was a fighter")
    cli("link", "V1", "--incident", "I2", "--certainty", "possible")
    cli("unlink", "V1", "--incident", "I2")
    cli("link", "V2", "--incident", "I2")
    cli.json("log", "checkpoint")

    from archive.context import Archive

    archive = Archive.open(cli.home)
    try:
        with archive.engine.connect() as connection:
            def one(statement: str) -> str:
                return str(connection.execute(text(statement)).scalar_one())

            return {"withdrawal": one("SELECT id FROM consents WHERE status = 'withdrawn'"),
                    "attribution": one("SELECT a.id FROM attributions a JOIN record_changes c ON c.record_id = a.id "
                                       "ORDER BY c.event_seq DESC LIMIT 1"),
                    "V1": one("SELECT id FROM victims WHERE ref = 'V1'"),
                    "I1": one("SELECT id FROM incidents WHERE ref = 'I1'"),
                    "unlinked": one("SELECT id FROM links WHERE active = false"),
                    "linked": one("SELECT id FROM links WHERE active = true")}
    finally:
        archive.close()


def test_bookkeeping_stamps_against_the_changes(tmp_path: Path, catalog_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Back-dating a withdrawal (`consent_for` takes the latest by `at`: the family's "yes" would be back),
    re-crediting an attribution, a victim's creation moved, a link's removal moved or undone: each is caught."""
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    ids = _documented(cli, tmp_path)
    code, err, _ = _verify(cli)
    assert code == 0, err
    for table, column, value, record_id in (
        ("consents", "at", "2000-01-01T00:00:00.000000Z", ids["withdrawal"]),
        ("consents", "by", "u-someoneelse000", ids["withdrawal"]),
        ("attributions", "by", "u-someoneelse000", ids["attribution"]),
        ("attributions", "at", "2030-01-01T00:00:00.000000Z", ids["attribution"]),
        ("victims", "created_at", "2020-01-01", ids["V1"]),
        ("victims", "updated_at", "2020-01-01", ids["V1"]),
        ("incidents", "updated_at", "2020-01-01", ids["I1"]),
        ("links", "removed_at", "2020-01-01", ids["unlinked"]),
        ("links", "removed_by", "u-someoneelse000", ids["unlinked"]),
        ("links", "removed_at", "2020-01-01", ids["linked"]),
        ("links", "created_by", "u-someoneelse000", ids["linked"]),
    ):
        _sql(cli.home, f"CREATE TABLE saved AS SELECT {column} AS v FROM {table} WHERE id = :id", id=record_id)
        _sql(cli.home, f"UPDATE {table} SET {column} = :v WHERE id = :id", v=value, id=record_id)
        code, err, report = _verify(cli)
        assert code == 1, (table, column)
        assert f"record {record_id}: its {column} is not what its changes say" in err, err
        _sql(cli.home, f"UPDATE {table} SET {column} = (SELECT v FROM saved) WHERE id = :id", id=record_id)
        _sql(cli.home, "DROP TABLE saved")
        assert _verify(cli)[0] == 0, (table, column)


def test_an_honest_rebuild_keeps_the_stamps(cli: Cli, tmp_path: Path) -> None:
    """The rebuild stamps every row from its changes as the archive did: both rebuilt catalogs verify clean."""
    from tests.test_records_journal import rebuild, snapshot

    _documented(cli, tmp_path)
    before = snapshot(cli.home)
    rebuild(cli, tmp_path)
    assert snapshot(tmp_path / "rebuilt")["stamps"] == before["stamps"]
    Cli(tmp_path / "rebuilt")("log", "verify", "--vkey", str(tmp_path / "log.vkey"))
    site = cli.home / "storage" / "site-a"
    (site / "log" / "signing-key.age").unlink()  # into a new log
    Cli(tmp_path / "nowhere").json("rebuild-catalog", "--from", "site-a", "--kind", "local", "--path", str(site),
                                   "--identity", str(cli.home / "keys" / "custodian.key"), "--into",
                                   str(tmp_path / "new-log"), expect=1)
    assert snapshot(tmp_path / "new-log")["stamps"] == before["stamps"]
    Cli(tmp_path / "new-log")("log", "verify")


def test_changes_not_yet_on_a_site_are_said(cli: Cli) -> None:
    """Committed record changes that no checkpoint published yet (an import killed after its commit): `log
    verify` and `status` say how many each site lacks, and that `evidence log checkpoint` publishes them."""
    incident = cli.json("incident", "add", "INC-1", "--type", "killing", "--started-at", "2023-12-09",
                        "--governorate", "idlib", "--attribution", "syrian_regime")
    code, err, report = _verify(cli)
    assert code == 0 and report["catalog"]["unpublished_record_changes"] == {}
    put_victims(cli.home, incident["id"], [victim_state(incident["id"], f"V-{i}") for i in range(3)], batch=True)
    code, err, report = _verify(cli)
    assert code == 0  # a warning, not a failure
    assert report["catalog"]["unpublished_record_changes"] == {"site-a": 3, "site-b": 3}
    assert "warning: 3 record changes are not on site site-a yet" in err and "evidence log checkpoint" in err
    status = cli.json("status")
    assert [b["unpublished_records"] for b in status["backends"] if b["name"] == "site-a"] == [3]
    _, out, _ = cli("status")
    assert "3 record changes are not on it yet" in out
    cli.json("log", "checkpoint")
    assert _verify(cli)[2]["catalog"]["unpublished_record_changes"] == {}
    assert [b["unpublished_records"] for b in cli.json("status")["backends"] if b["name"] == "site-a"] == [0]
