"""`log verify` holds every record against the log: a column edited in the database is caught, by record id.

Attacks: a victim's clear `civilian` or `governorate_of_death`, or an
incident's attribution, changed with SQL (every statistic would follow); a
derived column (`child`) changed; sealed fields swapped between two rows; a
change row deleted, or its commitment altered, or a record row added behind
the log's back; one row of an imported batch altered. On SQLite and
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
