"""Structured provenance: each arrival of an item names its channel and the source record that handed it over.

At ingest (`--channel`, `--source-record`, beside the free-text `--source`),
also on a locked ingest-only server (both are clear: a vocabulary key and a
source id found by its clear ref); later for an existing arrival (`evidence
provenance ITEM`), as a record change whose custody event is in the item's
timeline. A bad channel or an unknown source ingests nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli

VAULT = ("catalog.key", "access.key", "custodian.key")


def _file(tmp_path: Path, name: str, size: int = 20_000) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def _rows(home: Path, query: str) -> list[Any]:
    from sqlalchemy import text

    from archive.context import Archive

    archive = Archive.open(home, "tester")
    try:
        with archive.engine.connect() as conn:
            return list(conn.execute(text(query)).all())
    finally:
        archive.close()


@pytest.fixture()
def db_cli(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    cli("source", "add", "w-1", "--kind", "filmer", "--alias", "Abu Omar")
    cli("source", "add", "tg-1", "--kind", "open_source", "--url", "https://t.me/example/1")
    return cli


def test_ingest_records_channel_and_source_record_beside_the_free_text_source(db_cli: Cli, tmp_path: Path) -> None:
    cli = db_cli
    clip = _file(tmp_path, "clip.bin")
    [report] = cli.json_lines("ingest", "--source", "field team 3", "--note", "USB stick", "--channel",
                              "field_researcher", "--source-record", "w-1", str(clip))
    [arrival] = cli.json("show", report["id"])["provenance"]
    source_id = cli.json("source", "show", "w-1")["id"]
    assert (arrival["source"], arrival["note"]) == ("field team 3", "USB stick")
    assert (arrival["channel"], arrival["source_id"], arrival["source_ref"]) == ("field_researcher", source_id, "w-1")
    _, text_out, _ = cli("show", report["id"])
    assert "channel: field_researcher" in text_out and "source_ref: w-1" in text_out
    # The same bytes again, by another channel: a second arrival with its own provenance.
    [again] = cli.json_lines("ingest", "--channel", "social_media", "--source-record", "tg-1", str(clip))
    assert again["duplicate"] is True
    arrivals = cli.json("show", report["id"])["provenance"]
    assert [(a["channel"], a["source_ref"]) for a in arrivals] == [("field_researcher", "w-1"),
                                                                  ("social_media", "tg-1")]
    # No structured provenance given: the columns stay empty, as before.
    [plain] = cli.json_lines("ingest", "--source", "someone", str(_file(tmp_path, "plain.bin")))
    [arrival] = cli.json("show", plain["id"])["provenance"]
    assert (arrival["channel"], arrival["source_id"], arrival["source_ref"]) == (None, None, None)
    # The manifest beside the original carries it too (sealed), so a catalog rebuilt from storage can know it.
    from archive.age import Identity, decrypt_bytes

    custodian = Identity.read(cli.home / "keys" / "custodian.key")
    documents = [json.loads(decrypt_bytes(p.read_bytes(), custodian)) for p in cli.home.rglob("*.manifest")]
    [manifest] = [d for d in documents if d["item_id"] == report["id"]][:1]
    assert manifest["provenance"]["channel"] == "field_researcher"
    assert manifest["provenance"]["source_id"] == source_id


@pytest.mark.parametrize(("args", "message"), [
    (["--channel", "carrier_pigeon"], "channel: 'carrier_pigeon' is not one of upload, email"),
    (["--source-record", "nobody"], "no source 'nobody'"),
    (["--channel", "email", "--source-record", "nobody"], "no source 'nobody'"),
])
def test_a_bad_channel_or_source_ingests_nothing(db_cli: Cli, tmp_path: Path, args: list[str],
                                                 message: str) -> None:
    _, _, err = db_cli("ingest", *args, str(_file(tmp_path, "x.bin")), expect=2)
    assert message in err
    assert db_cli.json("list") == []
    assert _rows(db_cli.home, "SELECT count(*) FROM provenance")[0][0] == 0


def test_an_existing_arrival_gets_its_provenance_as_a_change_in_the_item_timeline(db_cli: Cli,
                                                                                  tmp_path: Path) -> None:
    cli = db_cli
    clip = _file(tmp_path, "clip.bin")
    [report] = cli.json_lines("ingest", "--source", "legacy", str(clip))
    item = report["id"]
    events_before = len(cli.json("log", "show", item)["events"])
    done = cli.json("provenance", item, "--channel", "legacy_disk", "--source-record", "w-1", "--reason",
                    "found in the 2019 disk inventory")
    assert (done["channel"], done["source_ref"], done["changed"]) == ("legacy_disk", "w-1", True)
    [arrival] = cli.json("show", item)["provenance"]
    assert (arrival["channel"], arrival["source_ref"], arrival["source"]) == ("legacy_disk", "w-1", "legacy")
    timeline = cli.json("log", "show", item)["events"]
    assert len(timeline) == events_before + 1
    last = timeline[-1]
    details = last["details"]
    assert last["type"] == "metadata modification"
    from archive.records.provenance import record_id_for

    assert details["record"] == record_id_for(item, arrival["received_at"])  # not the catalog's arrival counter
    assert details["record_kind"] == "provenance"
    assert set(details) == {"record", "record_kind", "change", "commitment", "commitment_format"}
    assert "Abu Omar" not in json.dumps(timeline) and "w-1" not in json.dumps(details)
    # The change is held like a record's: sealed state bound to the log's commitment.
    from sqlmodel import select

    from archive.catalog.sealing import catalog_keys
    from archive.context import Archive
    from archive.db import transaction
    from archive.records.changes import history, holds
    from archive.records.tables import RecordChange

    archive = Archive.open(cli.home, "tester")
    try:
        keys = catalog_keys(archive, "test")
        with transaction(archive.engine) as session:
            [change] = history(session, keys, details["record"])
            assert change["after"]["channel"] == "legacy_disk" and change["reason"].startswith("found in")
            rows = session.exec(select(RecordChange).where(RecordChange.record_id == details["record"])).all()
            assert len(rows) == 1 and holds(keys, rows[0])
    finally:
        archive.close()
    # The same again changes nothing and logs nothing; only the channel keeps the source record.
    assert cli.json("provenance", item, "--channel", "legacy_disk")["changed"] is False
    assert len(cli.json("log", "show", item)["events"]) == events_before + 1
    assert cli.json("provenance", item, "--channel", "upload")["source_ref"] == "w-1"


def test_an_item_with_several_arrivals_says_which(db_cli: Cli, tmp_path: Path) -> None:
    cli = db_cli
    clip = _file(tmp_path, "clip.bin")
    [first] = cli.json_lines("ingest", str(clip))
    cli.json_lines("ingest", str(clip))
    before = _rows(cli.home, "SELECT count(*) FROM record_changes")[0][0]
    _, _, err = cli("provenance", first["id"], "--channel", "email", expect=2)
    assert "arrived 2 times" in err and "--arrival" in err
    for args, message in ((["--arrival", "999", "--channel", "email"], "has no arrival 999"),
                          (["--channel", "pigeon"], "channel: 'pigeon'"),
                          (["--source-record", "nobody", "--arrival", "1"], "no source 'nobody'"),
                          ([], "give a channel, a source record, or both")):
        _, _, err = cli("provenance", first["id"], *args, expect=2)
        assert message in err
    _, _, err = cli("provenance", "00000000-no-such-item", "--channel", "email", expect=2)
    assert _rows(cli.home, "SELECT count(*) FROM record_changes")[0][0] == before
    second = cli.json("show", first["id"])["provenance"][1]["arrival"]
    cli("provenance", first["id"], "--arrival", str(second), "--channel", "email", "--source-record", "tg-1")
    arrivals = cli.json("show", first["id"])["provenance"]
    assert [(a["channel"], a["source_ref"]) for a in arrivals] == [(None, None), ("email", "tg-1")]


def test_a_locked_ingest_server_still_ingests_with_channel_and_source(db_cli: Cli, tmp_path: Path) -> None:
    cli = db_cli
    vault = tmp_path / "vault"
    vault.mkdir()
    for name in VAULT:
        shutil.move(cli.home / "keys" / name, vault / name)
    [report] = cli.json_lines("ingest", "--channel", "messaging", "--source-record", "w-1",
                              str(_file(tmp_path, "locked.bin")))
    assert report["status"] in ("preserved", "degraded")
    [(channel, source_id, sealed_version)] = _rows(cli.home, "SELECT channel, source_id, key_version FROM provenance")
    assert channel == "messaging" and source_id.startswith("src-") and sealed_version == 0  # pending: sealed with age
    # Recording a change later needs the catalog key: refused while locked, and nothing is written.
    _, _, err = cli("provenance", report["id"], "--channel", "email", expect=1)
    assert "locked" in err
    for name in VAULT:
        shutil.move(vault / name, cli.home / "keys" / name)
    [arrival] = cli.json("show", report["id"])["provenance"]
    assert (arrival["channel"], arrival["source_ref"]) == ("messaging", "w-1")


def test_structured_provenance_is_verified_and_survives_a_rebuild(cli: Cli, tmp_path: Path) -> None:
    """Given at ingest (in the manifest) or later (a journalled record change), it comes back from one site;
    `log verify` holds the later change against the log and catches an arrival edited in the database."""
    from tests.test_records_journal import rebuild

    cli("source", "add", "w-1", "--kind", "filmer", "--alias", "Abu Omar")
    [at_ingest] = cli.json_lines("ingest", "--channel", "messaging", "--source-record", "w-1",
                                 str(_file(tmp_path, "a.bin")))
    [later] = cli.json_lines("ingest", str(_file(tmp_path, "b.bin")))
    cli("provenance", later["id"], "--channel", "legacy_disk", "--source-record", "w-1", "--reason", "inventory")
    assert cli("log", "verify")[0] == 0
    source_id = cli.json("source", "show", "w-1")["id"]
    cli("log", "checkpoint")
    rebuilt = Cli(tmp_path / "rebuilt")
    rebuild(cli, tmp_path)
    for item, channel in ((at_ingest["id"], "messaging"), (later["id"], "legacy_disk")):
        [arrival] = rebuilt.json("show", item)["provenance"]
        assert (arrival["channel"], arrival["source_id"]) == (channel, source_id)
    assert rebuilt("log", "verify")[0] == 0

    [arrival] = cli.json("show", later["id"])["provenance"]
    from archive.context import Archive

    archive = Archive.open(cli.home, "tester")
    try:
        with archive.engine.begin() as conn:
            from sqlalchemy import text

            conn.execute(text("UPDATE provenance SET channel = 'email' WHERE id = :id"), {"id": arrival["arrival"]})
    finally:
        archive.close()
    from archive.records.provenance import record_id_for

    record = record_id_for(later["id"], arrival["received_at"])
    code, out, err = cli("log", "verify", expect=None)
    assert code == 1 and f"record {record}" in out
    assert f"record {record}: its channel is not its latest change's state" in err
