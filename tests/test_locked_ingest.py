"""Ingest while locked: the evidence is kept and acknowledged, its rows hold no plaintext, and settle on unlock.

A server that was never unlocked holds public keys only. It must keep
ingesting (an original is encrypted to public recipients; the log's
commitment needs no key), write rows a thief could read nothing from, and
leave deduplication for later. Once a custodian unlocks, the first use case
settles those rows: sealed under the catalog key, lookups filled, and a file
that arrived again while locked merged into the item that already held it,
with every arrival and copy kept.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli

LOCKED_SOURCE = "Courier-Nightjar-5520"
SECRET_NAME = "statement_Leila_Osman_6604.bin"
VAULT = ("catalog.key", "access.key", "custodian.key")  # what a custodian takes away: the server is locked


def _lock(home: Path, vault: Path) -> None:
    vault.mkdir(exist_ok=True)
    for name in VAULT:
        shutil.move(home / "keys" / name, vault / name)


def _unlock(home: Path, vault: Path) -> None:
    for name in VAULT:
        shutil.move(vault / name, home / "keys" / name)


def _rows(catalog_url: str, query: str) -> list[Any]:
    from sqlalchemy import text

    from archive.db import make_engine

    engine = make_engine(catalog_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(query)).all())
    finally:
        engine.dispose()


def _dump(catalog_url: str) -> bytes:
    if catalog_url.startswith("sqlite"):
        db = Path(catalog_url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
    return subprocess.run(["pg_dump", "--dbname", catalog_url], check=True, capture_output=True).stdout


@pytest.fixture()
def db_cli(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    return cli


def test_locked_ingest_is_kept_sealed_pending_and_settled_on_unlock(
    db_cli: Cli, catalog_url: str, tmp_path: Path
) -> None:
    cli = db_cli
    known = tmp_path / "known.bin"
    known.write_bytes(os.urandom(70_000) + b"known")
    secret = tmp_path / SECRET_NAME
    secret.write_bytes(os.urandom(1_234_321))
    [first] = cli.json_lines("ingest", "--source", "first-source", str(known))
    held_id = first["id"]

    vault = tmp_path / "vault"
    _lock(cli.home, vault)
    reports = cli.json_lines("ingest", "--source", LOCKED_SOURCE, "--note", "while locked", str(secret), str(known))
    # Kept and acknowledged all the same; the duplicate cannot be recognised yet, so it is its own item for now.
    assert [r["status"] for r in reports] == ["preserved", "preserved"], reports
    new_id, again_id = reports[0]["id"], reports[1]["id"]
    assert again_id != held_id and reports[1]["duplicate"] is False

    # Pending rows: version 0, no lookups, and nothing a thief could read or match.
    pending = _rows(catalog_url, "SELECT id, key_version, lookup FROM items WHERE key_version = 0 ORDER BY id")
    assert sorted(r[0] for r in pending) == sorted([new_id, again_id]) and all(r[2] is None for r in pending)
    assert len(_rows(catalog_url, "SELECT id FROM provenance WHERE key_version = 0")) == 2
    dump = _dump(catalog_url)
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    for value in (LOCKED_SOURCE.encode(), SECRET_NAME.encode(), b"while locked", digest.encode(),
                  bytes.fromhex(digest), b"1234321", hashlib.sha256(known.read_bytes()).hexdigest().encode()):
        assert value not in dump, value

    # Locked, the archive still lists and shows what is in clear, and says the rest is sealed.
    listed = {i["id"]: i for i in cli.json("list")}
    assert listed[new_id]["sha256"] is None and listed[new_id]["size_bucket"] == "1-2 MiB"
    shown = cli.json("show", new_id)
    assert shown["sha256"] is None and shown["provenance"][0]["source"] is None and shown["locked"]
    code, _, _ = cli("get", new_id, "-o", str(tmp_path / "out.bin"), expect=None)
    assert code == 1

    _unlock(cli.home, vault)
    listed = {i["id"]: i for i in cli.json("list")}  # the first unlocked use case settles
    assert _rows(catalog_url, "SELECT id FROM items WHERE key_version = 0") == []
    assert _rows(catalog_url, "SELECT id FROM provenance WHERE key_version = 0") == []
    assert _rows(catalog_url, "SELECT id FROM users WHERE key_version = 0") == []
    assert listed[new_id]["sha256"] == digest and listed[new_id]["size"] == 1_234_321
    assert again_id not in listed, "the duplicate that arrived while locked is merged, not listed"
    merged = _rows(catalog_url, f"SELECT status, lookup FROM items WHERE id = '{again_id}'")
    assert merged == [("merged", None)]
    assert cli.json("show", again_id)["merged_into"] == held_id

    # The merge lost nothing: both arrivals and every copy are the held item's now.
    held = cli.json("show", held_id)
    assert [p["source"] for p in held["provenance"]] == ["first-source", LOCKED_SOURCE]
    assert {p["actor_name"] for p in held["provenance"]} == {"tester"}
    assert len(held["replicas"]) == 4 and all(r["state"] == "verified" for r in held["replicas"])
    assert _rows(catalog_url, f"SELECT count(*) FROM replicas WHERE item_id = '{again_id}'") == [(0,)]
    events = _rows(catalog_url, "SELECT details FROM events WHERE event_type = 'replication' "
                                f"AND item_id = '{held_id}'")
    moved = [e for (e,) in events if "merged_from" in (e if isinstance(e, str) else str(e))]
    assert len(moved) >= 2, "each moved copy is a custody event on the item that holds it now"
    cli("get", held_id, "-o", str(tmp_path / "known.out"))
    assert (tmp_path / "known.out").read_bytes() == known.read_bytes()
    cli("get", new_id, "-o", str(tmp_path / "secret.out"))
    assert (tmp_path / "secret.out").read_bytes() == secret.read_bytes()

    # Deduplication works again for the settled item, and the log accounts for every copy.
    [later] = cli.json_lines("ingest", str(secret))
    assert later["duplicate"] is True and later["id"] == new_id
    cli("log", "verify")


def test_settlement_cut_short_resumes_and_loses_nothing(
    db_cli: Cli, catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed between two batches (here: a failure opening the third row), a settlement continues later."""
    import archive.services.settle as settle_module
    from archive.context import Archive

    cli = db_cli
    files = []
    for n in range(4):
        path = tmp_path / f"f{n}.bin"
        path.write_bytes(os.urandom(20_000 + n))
        files.append(path)
    [held] = cli.json_lines("ingest", str(files[0]))
    vault = tmp_path / "vault"
    _lock(cli.home, vault)
    reports = cli.json_lines("ingest", "--source", LOCKED_SOURCE, *map(str, files))  # files[0] again: a duplicate
    assert all(r["status"] == "preserved" for r in reports)
    _unlock(cli.home, vault)

    real_open, calls = settle_module._open, []

    def failing(*args: Any) -> dict[str, Any]:
        calls.append(args[1])
        if len(calls) == 3:
            raise RuntimeError("power cut")
        return real_open(*args)

    monkeypatch.setattr(settle_module, "_open", failing)
    monkeypatch.setattr(settle_module, "BATCH", 1)
    archive = Archive.open(cli.home)  # its first catalog use settles: cut short, only a warning
    try:
        archive.engine  # noqa: B018
        assert any("power cut" in w for w in archive.runtime.warnings)
        done = _rows(catalog_url, "SELECT count(*) FROM items WHERE key_version = 0")
        assert done == [(2,)], "two batches of one committed before the cut, the rest still pending"
        monkeypatch.setattr(settle_module, "_open", real_open)
        report = settle_module.settle(archive, batch=1)
    finally:
        archive.close()
    assert report.total >= 2
    for table in ("items", "provenance", "users"):
        assert _rows(catalog_url, f"SELECT count(*) FROM {table} WHERE key_version = 0") == [(0,)], table
    listed = {i["sha256"] for i in cli.json("list")}
    assert listed == {hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    shown = cli.json("show", held["id"])
    assert [p["source"] for p in shown["provenance"]] == [None, LOCKED_SOURCE]
    merged = _rows(catalog_url, "SELECT count(*) FROM items WHERE status = 'merged'")
    assert merged == [(1,)]


def _reseal_pending(catalog_url: str, access_key: Path, recipient: str, table: str, row_id: str) -> None:
    """Seal a pending row again to `recipient` only, as a locked process did before pending rows always
    went to the access identity (an archive older than it, or its recipient edited out)."""
    import json

    from sqlalchemy import text

    from archive.age import Identity, Recipient, encrypt_bytes
    from archive.catalog.secrets import _open_pending
    from archive.db import make_engine

    engine = make_engine(catalog_url)
    try:
        with engine.begin() as conn:
            blob = conn.execute(text(f"SELECT sealed FROM {table} WHERE id = :id AND key_version = 0"),
                                {"id": row_id}).scalar_one()
            fields = _open_pending(Identity.read(access_key), table, row_id, bytes(blob))
            document = {"format": "evidence-pending/1", "table": table, "id": row_id, "fields": fields}
            sealed = encrypt_bytes(json.dumps(document).encode(), [Recipient.parse(recipient)])
            conn.execute(text(f"UPDATE {table} SET sealed = :s WHERE id = :id"), {"s": sealed, "id": row_id})
    finally:
        engine.dispose()


def test_a_row_the_access_identity_cannot_open_stops_no_settlement_and_the_custodian_settles_it(
    db_cli: Cli, catalog_url: str, tmp_path: Path
) -> None:
    cli = db_cli
    files = [tmp_path / "stuck.bin", tmp_path / "fine.bin"]
    for path in files:
        path.write_bytes(os.urandom(30_000))
    vault = tmp_path / "vault"
    custodian = (cli.home / "keys" / "custodian.pub").read_text().strip()
    _lock(cli.home, vault)
    stuck, fine = (r["id"] for r in cli.json_lines("ingest", *map(str, files)))
    users = [r[0] for r in _rows(catalog_url, "SELECT id FROM users WHERE key_version = 0")]
    _reseal_pending(catalog_url, vault / "access.key", custodian, "items", stuck)
    for user in users:
        _reseal_pending(catalog_url, vault / "access.key", custodian, "users", user)
    for name in ("catalog.key", "access.key"):  # unlocked; the custodian's key stays offline
        shutil.move(vault / name, cli.home / "keys" / name)

    _, _, err = cli("list")  # settles what opens, says what does not, and goes on
    assert "keys settle" in err and stuck in err, err
    assert _rows(catalog_url, f"SELECT key_version FROM items WHERE id = '{fine}'") != [(0,)]
    assert _rows(catalog_url, "SELECT id FROM items WHERE key_version = 0") == [(stuck,)]
    assert _rows(catalog_url, "SELECT count(*) FROM provenance WHERE key_version = 0") == [(0,)]
    cli("get", fine, "-o", str(tmp_path / "fine.out"))
    assert (tmp_path / "fine.out").read_bytes() == files[1].read_bytes()
    code, _, err = cli("get", stuck, "-o", str(tmp_path / "stuck.out"), expect=1)
    assert "internal error" not in err and "keys settle" in err, err
    status = cli.json("status")
    assert status["pending"] == {"items": 1, "users": len(users)}, status
    assert "keys settle" in status["unsettled"][0], status

    report = cli.json("keys", "settle", "--identity", str(vault / "custodian.key"))
    assert report["skipped"] == [] and report["settled"]["items"] == 1
    assert report["settled"]["users"] == len(users)
    for table in ("items", "provenance", "users"):
        assert _rows(catalog_url, f"SELECT count(*) FROM {table} WHERE key_version = 0") == [(0,)], table
    cli("get", stuck, "-o", str(tmp_path / "stuck.out"))
    assert (tmp_path / "stuck.out").read_bytes() == files[0].read_bytes()
    assert {p["actor_name"] for p in cli.json("show", stuck)["provenance"]} == {"tester"}
    cli("log", "verify")


def test_pending_rows_open_with_the_access_identity_whatever_the_recipients_say(
    db_cli: Cli, catalog_url: str, tmp_path: Path
) -> None:
    from tests.conftest import drop_recipient

    cli = db_cli
    keys = cli.home / "keys"
    access = (keys / "access.pub").read_text().strip()
    drop_recipient(cli.home, access)  # an archive whose recipients lack it (made before it existed)
    vault = tmp_path / "vault"
    _lock(cli.home, vault)
    data = tmp_path / "late.bin"
    data.write_bytes(os.urandom(25_000))
    [report] = cli.json_lines("ingest", "--source", LOCKED_SOURCE, str(data))
    pending = _rows(catalog_url, "SELECT sealed FROM items WHERE key_version = 0")
    pending += _rows(catalog_url, "SELECT sealed FROM provenance WHERE key_version = 0")
    pending += _rows(catalog_url, "SELECT sealed FROM users WHERE key_version = 0")
    assert len(pending) >= 3  # the item, its arrival, the user acting
    for (blob,) in pending:  # the age tool itself, with the access identity alone
        sealed = tmp_path / "row.age"
        sealed.write_bytes(bytes(blob))
        subprocess.run(["age", "-d", "-i", str(vault / "access.key"), str(sealed)], check=True,
                       capture_output=True)
    for name in ("catalog.key", "access.key"):  # the custodian's key stays offline
        shutil.move(vault / name, keys / name)
    shown = cli.json("show", report["id"])
    assert shown["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert shown["provenance"][0]["source"] == LOCKED_SOURCE
    assert _rows(catalog_url, "SELECT count(*) FROM items WHERE key_version = 0") == [(0,)]


def test_of_two_pending_items_with_the_same_bytes_the_earlier_holds_them(
    db_cli: Cli, catalog_url: str, tmp_path: Path
) -> None:
    """Settled oldest first: the later arrival is merged into the earlier, whatever their random ids' order."""
    cli = db_cli
    data = tmp_path / "twice.bin"
    data.write_bytes(os.urandom(22_000))
    vault = tmp_path / "vault"
    _lock(cli.home, vault)
    [first] = cli.json_lines("ingest", "--source", "first", str(data))
    later = None
    # Until a later arrival's id sorts before the first's: each try succeeds with the first id's quantile q, so
    # N tries fail with probability 1/(N + 1) over q (30 tries flaked 3 % of runs); the expected cost is ln N tries.
    for attempt in range(400):
        [report] = cli.json_lines("ingest", "--source", f"again-{attempt}", str(data))
        if report["id"] < first["id"]:
            later = report["id"]
            break
    assert later is not None
    _unlock(cli.home, vault)
    listed = [i["id"] for i in cli.json("list")]
    assert listed == [first["id"]], "the earliest arrival holds the bytes; every later one is merged into it"
    assert cli.json("show", later)["merged_into"] == first["id"]
    sources = [p["source"] for p in cli.json("show", first["id"])["provenance"]]
    assert sources[0] == "first" and len(sources) == attempt + 2
    cli("log", "verify")


def _merged_pair(cli: Cli, tmp_path: Path, corpus: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A photo ingested unlocked, then again while locked; settled on unlock: (holder, merged) reports."""
    picture = corpus / "media" / "jpg" / "Canon_40D.jpg"
    [held] = cli.json_lines("ingest", str(picture))
    vault = tmp_path / "vault"
    _lock(cli.home, vault)
    [again] = cli.json_lines("ingest", str(picture))
    _unlock(cli.home, vault)
    cli("list")  # settles: merged
    return held, again


def test_similar_to_a_merged_item_names_the_item_it_was_merged_into(
    db_cli: Cli, catalog_url: str, tmp_path: Path, corpus: Path
) -> None:
    cli = db_cli
    held, again = _merged_pair(cli, tmp_path, corpus)
    assert cli.json("show", again["id"])["merged_into"] == held["id"]
    _, _, err = cli("similar", again["id"], expect=1)
    assert "merged into" in err and held["id"] in err and "no fingerprint" not in err, err


def test_fixity_leaves_a_merged_item_merged(db_cli: Cli, catalog_url: str, tmp_path: Path, corpus: Path) -> None:
    """Its copies went to the holder: a fixity pass must not call it degraded and queue a repair forever."""
    cli = db_cli
    held, again = _merged_pair(cli, tmp_path, corpus)
    cli("fixity", "--all")
    shown = cli.json("show", again["id"])
    assert shown["status"] == "merged" and shown["merged_into"] == held["id"], shown
    assert cli.json("show", held["id"])["status"] == "preserved"


def test_reading_commands_while_locked_write_no_users_row(db_cli: Cli, catalog_url: str, tmp_path: Path) -> None:
    cli = db_cli
    before = _rows(catalog_url, "SELECT id FROM users ORDER BY id")
    vault = tmp_path / "vault"
    _lock(cli.home, vault)
    for _ in range(3):
        cli("status")
        cli("list")
        cli("encrypt-to", "list")
    assert _rows(catalog_url, "SELECT id FROM users ORDER BY id") == before, "nothing recorded, nobody written"
    data = tmp_path / "one.bin"
    data.write_bytes(os.urandom(21_000))
    [report] = cli.json_lines("ingest", str(data))  # records an actor: its pending row commits with it
    added = _rows(catalog_url, "SELECT id, key_version FROM users WHERE key_version = 0")
    assert len(added) == 1
    actors = {r[0] for r in _rows(catalog_url, f"SELECT actor FROM events WHERE item_id = '{report['id']}'")}
    assert added[0][0] in actors
    _unlock(cli.home, vault)
    assert {p["actor_name"] for p in cli.json("show", report["id"])["provenance"]} == {"tester"}
