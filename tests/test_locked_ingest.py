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
