"""End-to-end through the CLI: init, ingest, list, show, get, and the `age` tool as oracle."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored_files(home: Path) -> list[Path]:
    """The stored objects (originals, manifests), not the site's own marker or log copy."""
    return sorted(p for p in (home / "storage").glob("*/o/**/*") if p.is_file())


def test_init_creates_home_keys_and_roots(cli: Cli) -> None:
    home = cli.home
    key = home / "keys" / "custodian.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    config = tomllib.loads((home / "config.toml").read_text())
    assert "recipients" not in config and "storage" not in config  # run-time configuration is in the catalog
    keys = home / "keys"
    assert cli.json("encrypt-to", "list")["recipients"] == [(keys / name).read_text().strip()
                                                            for name in ("custodian.pub", "access.pub")]
    assert [s["name"] for s in cli.json("storage", "list")] == ["site-a", "site-b"]
    assert (home / "catalog.db").is_file()
    assert all((home / "storage" / s).is_dir() for s in ("site-a", "site-b"))
    code, _, err = cli("init", expect=None)
    assert code != 0 and "already exists" in err


def test_init_warns_that_the_custodian_key_belongs_offline(tmp_path: Path) -> None:
    _, _, err = Cli(tmp_path / "h")("init")
    assert "offline" in err


def test_ingest_corpus_folder_and_read_back(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    folder = corpus / "media" / "jpg" / "gps"
    reports = cli.json_lines("ingest", str(folder), "--source", "field team 3")
    assert len(reports) == 4
    for report in reports:
        assert set(report) == {"path", "id", "sha256", "size", "status", "duplicate", "error", "code"}
        assert report["status"] == "preserved" and report["duplicate"] is False and report["error"] is None
        assert report["sha256"] == sha256(Path(report["path"]))
    listed = cli.json("list")
    assert {i["id"] for i in listed} == {r["id"] for r in reports}
    assert set(listed[0]) == {"id", "sha256", "size", "size_bucket", "status", "duplicate"}

    first = reports[0]
    shown = cli.json("show", first["id"][:8])
    assert shown["id"] == first["id"]
    assert len(shown["replicas"]) == 2
    assert {r["backend"] for r in shown["replicas"]} == {"site-a", "site-b"}
    for replica in shown["replicas"]:
        assert set(replica) >= {"backend", "object", "ciphertext_sha256", "recipients"}
        assert "size" not in replica  # the catalog keeps no exact ciphertext size: it would identify the file
        path = cli.home / "storage" / replica["backend"] / replica["object"]
        assert sha256(path) == replica["ciphertext_sha256"]
    assert shown["provenance"][0]["source"] == "field team 3"
    assert shown["provenance"][0]["original_name"] == Path(first["path"]).name
    assert shown["provenance"][0]["actor_name"] == "tester"

    out = tmp_path / "out.jpg"
    cli("get", first["id"][:10], "-o", str(out))
    assert out.read_bytes() == Path(first["path"]).read_bytes()


def test_every_stored_object_opens_with_the_age_tool(cli: Cli, corpus: Path) -> None:
    report = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    key = cli.home / "keys" / "custodian.key"
    objects = stored_files(cli.home)
    assert len(objects) == 4  # an original and its manifest on each of two roots
    for path in objects:
        plain = subprocess.run(["age", "-d", "-i", str(key), str(path)], capture_output=True, check=True).stdout
        if path.name.endswith(".manifest"):
            manifest = json.loads(plain)
            assert manifest["item_id"] == report["id"] and manifest["sha256"] == report["sha256"]
            assert manifest["original_name"] == "Canon_40D.jpg" and manifest["media_type"] == "image/jpeg"
        else:
            assert hashlib.sha256(plain).hexdigest() == report["sha256"]


def test_no_plaintext_and_no_revealing_names_at_rest(cli: Cli, corpus: Path) -> None:
    source = corpus / "media" / "jpg" / "Canon_40D.jpg"
    cli("ingest", str(source))
    original = source.read_bytes()
    for path in stored_files(cli.home):
        data = path.read_bytes()
        assert data.startswith(b"age-encryption.org/v1\n")
        assert original[:64] not in data and b"Canon" not in data
        assert "Canon" not in str(path) and sha256(source)[:8] not in str(path)


def test_duplicate_is_stored_once_with_second_provenance(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    source = corpus / "media" / "jpg" / "Nikon_D70.jpg"
    copy = tmp_path / "renamed.jpg"
    copy.write_bytes(source.read_bytes())
    first = cli.json_lines("ingest", str(source), "--source", "a")[0]
    before = stored_files(cli.home)
    second = cli.json_lines("ingest", str(copy), "--source", "b", "--note", "re-sent")[0]
    assert second["duplicate"] is True and second["id"] == first["id"]
    # No second copy of the bytes: only an encrypted addendum beside each original, for rebuild-catalog.
    added = sorted(set(stored_files(cli.home)) - set(before))
    assert set(before) <= set(stored_files(cli.home)) and len(added) == 2
    originals = {r["object"] for r in cli.json("show", first["id"])["replicas"]}
    for path in added:
        original, _, suffix = path.relative_to(path.parents[2]).as_posix().partition(".")  # o/xx/<object>.<r>.arrival
        assert suffix.endswith(".arrival") and original in originals
    shown = cli.json("show", first["id"])
    assert [p["source"] for p in shown["provenance"]] == ["a", "b"]
    assert shown["provenance"][1]["original_name"] == "renamed.jpg"
    assert shown["provenance"][1]["note"] == "re-sent"
    assert not list((cli.home / "storage" / "site-a" / ".staging").glob("*"))


def test_ids_are_random_uuids_and_prefixes_resolve(cli: Cli, corpus: Path) -> None:
    import uuid

    reports = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "orientation"))
    for report in reports:
        assert uuid.UUID(report["id"]).version == 4
    code, _, err = cli("show", reports[0]["id"][:5], expect=None)
    assert code == 2 and "at least 8" in err
    code, _, err = cli("show", "ffffffff-ffff", expect=None)
    assert code == 2 and "no item" in err


def test_bad_inputs_get_clear_reasons(cli: Cli, tmp_path: Path, corpus: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    good = corpus / "media" / "jpg" / "Canon_40D.jpg"
    reports = cli.json_lines(
        "ingest", str(tmp_path / "missing.jpg"), str(empty), str(loop), str(fifo), str(good), expect=1
    )
    by_path = {Path(r["path"]).name: r for r in reports}
    assert by_path["missing.jpg"]["status"] == "refused" and "no such file" in by_path["missing.jpg"]["error"]
    assert by_path["empty.jpg"]["status"] == "refused" and "zero-byte" in by_path["empty.jpg"]["error"]
    assert by_path["loop"]["status"] == "refused" and "symlink loop" in by_path["loop"]["error"]
    assert by_path["fifo"]["status"] == "refused" and "not a regular file" in by_path["fifo"]["error"]
    assert by_path["Canon_40D.jpg"]["status"] == "preserved"
    assert len(cli.json("list")) == 1


def test_folder_with_symlink_loop_terminates(cli: Cli, tmp_path: Path, corpus: Path) -> None:
    folder = tmp_path / "drop"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "up").symlink_to(folder)  # a directory loop
    (folder / "sub" / "a.jpg").write_bytes((corpus / "media" / "jpg" / "Canon_40D.jpg").read_bytes())
    reports = cli.json_lines("ingest", str(folder))
    assert [r["status"] for r in reports] == ["preserved"]


def test_dotdot_names_are_labels_not_paths(cli: Cli, tmp_path: Path) -> None:
    from archive.services.ingest import safe_name

    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("..\\..\\evil.jpg") == "evil.jpg"
    assert safe_name("../") == "unnamed"
    assert safe_name("a\x00b\nc.jpg") == "abc.jpg"
    weird = tmp_path / "..weird..jpg"
    weird.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    report = cli.json_lines("ingest", str(weird))[0]
    shown = cli.json("show", report["id"])
    assert shown["provenance"][0]["original_name"] == "weird..jpg"
    assert not (cli.home.parent / "weird..jpg").exists()


def test_get_refuses_loudly_when_every_copy_is_corrupt(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    report = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    shown = cli.json("show", report["id"])
    for replica in shown["replicas"]:
        path = cli.home / "storage" / replica["backend"] / replica["object"]
        data = bytearray(path.read_bytes())
        data[-20] ^= 0xFF
        path.write_bytes(bytes(data))
    out = tmp_path / "out.jpg"
    code, _, err = cli("get", report["id"], "-o", str(out), expect=None)
    assert code == 1 and "REFUSED" in err
    assert not out.exists() and not list(tmp_path.glob(".evidence-get-*"))


def test_get_falls_back_to_a_good_copy(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    source = corpus / "media" / "jpg" / "Canon_40D.jpg"
    report = cli.json_lines("ingest", str(source))[0]
    first = cli.json("show", report["id"])["replicas"][0]
    (cli.home / "storage" / first["backend"] / first["object"]).unlink()
    out = tmp_path / "out.jpg"
    _, _, err = cli("get", report["id"], "-o", str(out))
    assert out.read_bytes() == source.read_bytes() and "skipped" in err


def test_get_with_wrong_identity_is_refused(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    from archive.age import Identity

    report = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    other = tmp_path / "other.key"
    other.write_text(str(Identity.generate()) + "\n")
    (cli.home / "keys" / "access.key").rename(tmp_path / "access.key")  # only the identity given is tried
    code, _, err = cli("get", report["id"], "-o", str(tmp_path / "o"), "--identity", str(other), expect=None)
    assert code == 1 and "no identity matches" in err


def test_extra_recipients_can_open_originals(tmp_path: Path, corpus: Path) -> None:
    from archive.age import Identity

    escrow = Identity.generate()
    (tmp_path / "escrow.key").write_text(str(escrow) + "\n")
    cli = Cli(tmp_path / "home")
    cli("init", "--recipient", str(escrow.recipient))
    report = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    replica = cli.json("show", report["id"])["replicas"][0]
    assert str(escrow.recipient) in replica["recipients"] and len(replica["recipients"]) == 3  # + access
    (cli.home / "keys" / "access.key").rename(tmp_path / "access.key")  # the escrow key alone opens it
    out = tmp_path / "o.jpg"
    cli("get", report["id"], "-o", str(out), "--identity", str(tmp_path / "escrow.key"))
    assert sha256(out) == report["sha256"]


def test_every_step_is_a_custody_event_without_personal_details(cli: Cli, corpus: Path) -> None:
    from sqlmodel import Session, col, select

    from archive.catalog.events import Event
    from archive.context import Archive

    cli("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"), "--source", "Witness Name", "--note", "secret note")
    archive = Archive.open(cli.home)
    with Session(archive.engine) as session:
        events = session.exec(select(Event).order_by(col(Event.seq))).all()
    archive.close()
    assert [e.seq for e in events] == list(range(len(events)))
    types = [e.event_type for e in events]
    for expected in ("creation", "message digest calculation", "encryption", "replication", "ingestion"):
        assert expected in types
    text = json.dumps([e.model_dump() for e in events])
    assert "Witness Name" not in text and "secret note" not in text and "Canon_40D" not in text
    # Events name a random user id, never the operator's name (it is sealed in `users`).
    assert "tester" not in text
    actors = {e.actor for e in events}
    assert len(actors) == 1 and actors.pop().startswith("u-")


def test_global_as_option(cli: Cli, corpus: Path) -> None:
    from click.testing import CliRunner

    from api.cli.main import cli as command

    result = CliRunner().invoke(
        command, ["--home", str(cli.home), "--as", "alice", "ingest", "--json", str(corpus / "media/jpg/Canon_40D.jpg")]
    )
    assert result.exit_code == 0
    item = json.loads(result.stdout)["id"]
    arrival = cli.json("show", item)["provenance"][0]
    assert arrival["actor_name"] == "alice" and arrival["actor"].startswith("u-")


def test_an_unexpected_failure_refuses_that_file_and_the_batch_goes_on(
    cli: Cli, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest.steps.manifest import WriteManifest

    original = WriteManifest.run

    def flaky(self: WriteManifest, ingestion: Any, archive: Any) -> None:
        if ingestion.incoming.original_name == "Canon_40D.jpg":
            raise RuntimeError("disk controller on fire")
        original(self, ingestion, archive)

    monkeypatch.setattr(WriteManifest, "run", flaky)
    files = [corpus / "media/jpg/Canon_40D.jpg", corpus / "media/jpg/Nikon_D70.jpg"]
    reports = cli.json_lines("ingest", *map(str, files), expect=1)
    assert [r["status"] for r in reports] == ["refused", "preserved"]
    assert "internal error (RuntimeError)" in reports[0]["error"] and "not acknowledged" in reports[0]["error"]
    assert [i["id"] for i in cli.json("list")] == [reports[1]["id"]]
