"""rebuild-catalog: the catalog recreated from one site's manifests and the custodian key."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.test_worker import rows

GPS = "media/jpg/gps"


def test_rebuild_catalog_round_trip(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    from archive.catalog.events import Event

    reports = cli.json_lines("ingest", str(corpus / GPS), "--source", "field team 3", "--note", "via Signal")
    before = {item["id"]: item for item in cli.json("list")}
    witnessed = cli.json("log", "checkpoint")  # what a witness keeps, with the verifier key
    (tmp_path / "log.vkey").write_text((cli.home / "keys" / "log.vkey").read_text())
    old_events = rows(cli.home, Event)
    key = cli.home / "keys" / "custodian.key"
    # The custodian key lives offline; the old catalog is lost.
    offline = tmp_path / "usb" / "custodian.key"
    offline.parent.mkdir()
    shutil.copy(key, offline)
    (cli.home / "catalog.db").unlink()
    shutil.rmtree(cli.home / "keys")  # and the server's keys with it

    new_home = tmp_path / "rebuilt"
    site = cli.home / "storage" / "site-a"
    # Nothing of the old home is needed: the site is described on the command line.
    result = Cli(tmp_path / "nowhere").json("rebuild-catalog", "--from", "site-a", "--kind", "local",
                                           "--path", str(site), "--identity", str(offline), "--into", str(new_home),
                                           "--vkey", str(tmp_path / "log.vkey"))
    assert result["items"] == 4 and result["manifests"] == 4 and result["problems"] == []

    rebuilt = Cli(new_home)
    after = {item["id"]: item for item in rebuilt.json("list")}
    assert {k: (v["sha256"], v["size"]) for k, v in after.items()} == {
        k: (v["sha256"], v["size"]) for k, v in before.items()
    }
    assert all(item["status"] == "preserved" for item in after.values())
    sites = rebuilt.json("storage", "list")
    assert [s["name"] for s in sites] == ["site-a"] and sites[0]["answers"]
    assert Path(sites[0]["options"]["path"]) == site
    policy = rebuilt.json("policy", "show")
    assert (policy["copies"], policy["minimum"], policy["backends"]) == (1, 1, ["site-a"])
    # The same archive: its id comes from the site's marker, and the log continues under the same origin.
    marker = json.loads((site / ".evidence-root.json").read_text())
    config = tomllib.loads((new_home / "config.toml").read_text())
    assert config["log"]["origin"] == f"evidence-archive/{marker['archive_id']}"
    assert tomllib.loads((cli.home / "config.toml").read_text())["log"]["origin"] == config["log"]["origin"]
    assert not (new_home / "keys" / "custodian.key").exists()  # the private key is not copied in

    first = reports[0]
    shown = rebuilt.json("show", first["id"])
    assert shown["provenance"][0]["original_name"] == Path(first["path"]).name
    sealed = shown["provenance"][0]  # who sent it survives the loss of the catalog
    assert (sealed["source"], sealed["note"]) == ("field team 3", "via Signal")
    assert sealed["actor"].startswith("u-")  # a user id; the name stayed in the lost catalog's users table
    out = tmp_path / "out.jpg"
    rebuilt("get", first["id"], "-o", str(out), "--identity", str(offline))
    assert out.read_bytes() == Path(first["path"]).read_bytes()
    assert rebuilt.json("fixity", "--all")["ok"] == 8

    # The same log goes on: every witnessed event is there under its sequence number, the same key signs on.
    events = rows(new_home, Event)
    size = witnessed["tree_size"]
    assert result["log_events"] == size and result["log_key"] == "given"
    assert [(e.seq, e.leaf_hash) for e in events[:size]] == [(e.seq, e.leaf_hash) for e in old_events[:size]]
    assert events[size].event_type == "recovery" and events[size].details["phase"] == "start"
    assert sum(1 for e in events if e.event_type == "recovery" and e.item_id) == 4
    vkey = str(tmp_path / "log.vkey")
    rebuilt("log", "verify", "--vkey", vkey)
    mirrored = [int(p.name) for p in (site / "log" / "checkpoints").iterdir()]
    assert max(mirrored) > size  # the continued log is back on the site, signed over the recovery
    latest = rebuilt.json("log", "checkpoint")["tree_size"]
    proof = rebuilt.json("log", "consistency", str(size), str(latest))
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(json.dumps(proof))
    assert rebuilt.json("log", "check", str(proof_file), "--vkey", vkey)["ok"]  # the witness's key, offline
    checked = [e.details["role"] for e in events if e.event_type == "fixity check" and e.details.get("against")]
    assert sorted(checked) == ["manifest"] * 4 + ["original"] * 4  # each copy recovered, with its hash


def test_rebuild_reports_a_corrupt_original_and_refuses_an_existing_home(cli: Cli, corpus: Path,
                                                                         tmp_path: Path) -> None:
    report = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    shown = cli.json("show", report["id"])
    obj = next(r["object"] for r in shown["replicas"] if r["backend"] == "site-b")
    path = cli.home / "storage" / "site-b" / obj
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    key = str(cli.home / "keys" / "custodian.key")
    new_home = tmp_path / "rebuilt"
    code, out, _ = cli("rebuild-catalog", "--from", "site-b", "--identity", key, "--home", str(new_home), expect=1)
    assert "original corrupt" in out
    rebuilt = Cli(new_home)
    item = rebuilt.json("show", report["id"])
    assert item["status"] == "degraded" and item["replicas"][0]["state"] == "corrupt"

    _, _, err = cli("rebuild-catalog", "--from", "site-a", "--identity", key, "--home", str(new_home), expect=2)
    assert "already holds an archive" in err
    _, _, err = cli("rebuild-catalog", "--from", "nowhere", "--identity", key, "--home", str(tmp_path / "x"),
                    expect=2)
    assert "no storage site named 'nowhere'" in err


def test_rebuild_with_the_wrong_key_rebuilds_nothing(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    from archive.age import Identity

    cli("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))
    wrong = tmp_path / "wrong.key"
    wrong.write_text(str(Identity.generate()) + "\n")
    _, _, err = cli("rebuild-catalog", "--from", "site-a", "--identity", str(wrong), "--home",
                    str(tmp_path / "r"), expect=2)
    assert "cannot be opened" in err and "no identity matches" in err
    assert not (tmp_path / "r").exists()  # refused before anything was made


def test_rebuild_survives_copies_left_by_an_unacknowledged_ingest(
    cli: Cli, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between publishing and the catalog commit leaves a second manifest for the same bytes."""
    from ingest.steps.catalog import CommitToCatalog

    source = corpus / GPS / "DSCN0010.jpg"
    real_run = CommitToCatalog.run

    def crash(self: CommitToCatalog, ingestion: Any, archive: Any) -> None:
        raise OSError("catalog disk vanished")

    monkeypatch.setattr(CommitToCatalog, "run", crash)
    assert cli.json_lines("ingest", str(source), expect=1)[0]["status"] == "refused"
    monkeypatch.setattr(CommitToCatalog, "run", real_run)
    kept = cli.json_lines("ingest", str(source))[0]
    assert kept["status"] == "preserved"
    manifests = list((cli.home / "storage" / "site-a").rglob("*.manifest"))
    assert len(manifests) == 2  # the unacknowledged ingest's copies stay (its commit outcome was unknown)

    new_home = tmp_path / "rebuilt"
    key = cli.home / "keys" / "custodian.key"
    result = cli.json("rebuild-catalog", "--from", "site-a", "--identity", str(key), "--home", str(new_home), expect=1)
    assert result["items"] == 1 and result["manifests"] == 2
    # The unacknowledged ingest's manifest names an item the log never committed to: rejected, not recovered.
    [rejected] = result["rejected"]
    assert rejected["item"] != kept["id"] and "not recorded by the log" in rejected["problem"]
    rebuilt = Cli(new_home)
    [item] = rebuilt.json("list")
    assert item["sha256"] == kept["sha256"]
    out = tmp_path / "out.jpg"
    rebuilt("get", item["id"], "-o", str(out), "--identity", str(key))
    assert out.read_bytes() == source.read_bytes()


def test_an_operator_name_that_is_not_text_is_refused_before_anything_is_written(cli: Cli, corpus: Path) -> None:
    code, _, err = cli("--as", "op\udcff", "ingest", str(corpus / GPS / "DSCN0010.jpg"), expect=None)
    assert code == 2 and "not valid text" in err
    code, _, err = cli("--as", "op\nerator", "ingest", str(corpus / GPS / "DSCN0010.jpg"), expect=None)
    assert code == 2 and "control characters" in err
    assert cli.json("list") == []
    assert not list((cli.home / "storage").rglob("o/*/*"))


def test_rebuild_refuses_a_site_whose_copy_of_the_log_was_altered(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    """An attacker with the bucket rewrites an event in the site's log: the rebuild will not take it over."""
    cli("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))
    site = cli.home / "storage" / "site-a"
    bundles = sorted((site / "log" / "tile" / "entries").rglob("*"))
    bundle = next(p for p in bundles if p.is_file())
    data = bundle.read_bytes()
    bundle.chmod(0o644)
    bundle.write_bytes(data.replace(b"tester", b"someone", 1) if b"tester" in data else data[:-1] + b"x")
    key = str(cli.home / "keys" / "custodian.key")
    result = Cli(tmp_path / "nowhere").json("rebuild-catalog", "--from", "site-a", "--kind", "local", "--path",
                                            str(site), "--identity", key, "--into", str(tmp_path / "r"), expect=1)
    assert any("does not verify" in p.get("log", "") for p in result["problems"])
    assert result["log_events"] == 0 and result["items"] == 1  # the evidence is recovered all the same
    origin = tomllib.loads((tmp_path / "r" / "config.toml").read_text())["log"]["origin"]
    assert "-rebuilt-" in origin  # a new log, under a name of its own: never mistaken for the old one


def test_rebuild_does_not_take_over_a_log_rolled_back_behind_a_witnessed_checkpoint(
    cli: Cli, corpus: Path, tmp_path: Path
) -> None:
    cli("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))
    early = cli.json("log", "checkpoint")["tree_size"]
    cli("ingest", str(corpus / "media" / "jpg" / "Nikon_D70.jpg"))
    witnessed = tmp_path / "witnessed.txt"
    witnessed.write_text(cli.json("log", "checkpoint")["note"])
    site = cli.home / "storage" / "site-a"
    for path in (site / "log" / "checkpoints").iterdir():  # the attacker rolls the site's log back
        if int(path.name) > early:
            path.unlink()
    key = str(cli.home / "keys" / "custodian.key")
    vkey = str(cli.home / "keys" / "log.vkey")
    args = ["rebuild-catalog", "--from", "site-a", "--kind", "local", "--path", str(site), "--identity", key,
            "--vkey", vkey]
    _, _, err = Cli(tmp_path / "nowhere")(*args, "--into", str(tmp_path / "r"), "--checkpoint", str(witnessed),
                                          expect=1)
    assert "does not extend the witnessed checkpoint" in err and "--accept-unchecked" in err
    assert not (tmp_path / "r").exists()  # refused before anything was made
    # The custodian may accept the manifests alone: recovered, each said to be unchecked.
    result = Cli(tmp_path / "nowhere").json(*args, "--into", str(tmp_path / "r"), "--checkpoint", str(witnessed),
                                            "--accept-unchecked", expect=1)
    assert any("does not extend the witnessed checkpoint" in p.get("log", "") for p in result["problems"])
    assert result["log_events"] == 0 and result["items"] == 2 and len(result["unchecked"]) == 2
    # Without the witness's checkpoint the shorter log is taken over, and the report says how much.
    plain = Cli(tmp_path / "nowhere").json(*args, "--into", str(tmp_path / "r2"), expect=1)
    assert plain["log_events"] == early
    # The item the rolled-back log never saw is not taken for evidence on the site's word alone.
    assert plain["items"] == 1 and ["not recorded by the log" in r["problem"] for r in plain["rejected"]] == [True]


def test_rebuild_with_a_swapped_sealed_key_recovers_the_items_and_takes_over_no_log(
    cli: Cli, corpus: Path, tmp_path: Path
) -> None:
    """The site's sealed signing key was replaced (another key, sealed to the custodian): nothing crashes."""
    from archive.age import Identity, Recipient
    from archive.custody.checkpoint import Signer
    from archive.custody.recover import seal_signing_key

    cli("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))
    site = cli.home / "storage" / "site-a"
    key = cli.home / "keys" / "custodian.key"
    custodian = Identity.read(key)[0].recipient
    sealed = site / "log" / "signing-key.age"
    sealed.chmod(0o644)
    other = Signer.generate(tomllib.loads((cli.home / "config.toml").read_text())["log"]["origin"])
    sealed.write_bytes(seal_signing_key(other, [Recipient.parse(str(custodian))]))
    result = Cli(tmp_path / "nowhere").json("rebuild-catalog", "--from", "site-a", "--kind", "local", "--path",
                                            str(site), "--identity", str(key), "--into", str(tmp_path / "r"),
                                            expect=1)
    assert result["items"] == 1 and result["log_events"] == 0
    assert any("cannot be continued" in p.get("log", "") for p in result["problems"])


def test_rebuild_keeps_the_name_the_site_marker_gives_it(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    report = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    site = cli.home / "storage" / "site-b"
    key = str(cli.home / "keys" / "custodian.key")
    result = Cli(tmp_path / "nowhere").json("rebuild-catalog", "--from", "whatever", "--kind", "local", "--path",
                                            str(site), "--identity", key, "--into", str(tmp_path / "r"))
    assert result["backend"] == "site-b" and result["items"] == 1
    rebuilt = Cli(tmp_path / "r")
    assert [s["name"] for s in rebuilt.json("storage", "list")] == ["site-b"]
    assert rebuilt.json("fixity", "--all")["found_problems"] is False
    assert rebuilt.json("show", report["id"])["status"] == "preserved"


def _plant(cli: Cli) -> str:
    """An item the archive never held: bytes encrypted to the public recipients, and a well-formed manifest."""
    import hashlib

    from archive.age import encrypt_bytes
    from archive.context import Archive
    from archive.custody.commit import new_salt
    from archive.objects import manifest_document, manifest_name, new_object_name, seal

    opened = Archive.open(cli.home)
    try:
        recipients = list(opened.recipients())
    finally:
        opened.close()
    site = cli.home / "storage" / "site-a"
    name = new_object_name()
    planted = encrypt_bytes(b"planted evidence", recipients)
    (site / name).parent.mkdir(parents=True, exist_ok=True)
    (site / name).write_bytes(planted)
    item_id = "0badc0de-0000-4000-8000-000000000000"
    texts = [str(r) for r in recipients]
    (site / manifest_name(name)).write_bytes(seal(manifest_document(
        item_id=item_id, sha256=hashlib.sha256(b"planted evidence").hexdigest(), size=16, salt=new_salt(),
        media_type="image/jpeg", object_name=name, ciphertext_sha256=hashlib.sha256(planted).hexdigest(),
        ciphertext_size=None, recipients=texts,
        provenance={"source": "planter", "note": None, "original_name": "x.jpg", "declared_type": None,
                    "received_at": "2026-01-01T00:00:00.000000Z", "actor": "archive"}), texts))
    return item_id


def _setting(home: Path, key: str) -> Any:
    from sqlmodel import Session

    from archive.catalog.settings import ArchiveSetting
    from archive.context import Archive

    opened = Archive.open(home)
    try:
        with Session(opened.engine) as session:
            row = session.get(ArchiveSetting, key)
            return None if row is None else row.value
    finally:
        opened.close()


def test_a_deleted_log_launders_no_planted_item_when_a_witness_is_given(cli: Cli, corpus: Path,
                                                                         tmp_path: Path) -> None:
    from archive.catalog.events import Event

    cli("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))
    witnessed = tmp_path / "witnessed.txt"
    witnessed.write_text(cli.json("log", "checkpoint")["note"])
    site = cli.home / "storage" / "site-a"
    for path in (site / "log" / "checkpoints").iterdir():  # the attacker deletes the site's checkpoints …
        path.unlink()
    planted = _plant(cli)  # … and plants an item
    key = str(cli.home / "keys" / "custodian.key")
    vkey = str(cli.home / "keys" / "log.vkey")
    args = ["rebuild-catalog", "--from", "site-a", "--kind", "local", "--path", str(site), "--identity", key,
            "--vkey", vkey]
    for witness in (["--checkpoint", str(witnessed)], []):  # the witness's key alone suffices
        code, out, err = Cli(tmp_path / "nowhere")(*args, *witness, "--into", str(tmp_path / "r"), expect=1)
        assert "holds no copy of the custody log" in err and "--accept-unchecked" in err
        assert "rebuilt" not in out and not (tmp_path / "r").exists()  # nothing recovered, nothing created

    result = Cli(tmp_path / "nowhere").json(*args, "--checkpoint", str(witnessed), "--accept-unchecked",
                                            "--into", str(tmp_path / "r"), expect=1)
    assert result["items"] == 2 and planted in result["unchecked"] and len(result["unchecked"]) == 2
    assert planted in _setting(tmp_path / "r", "unchecked_items")  # marked in the catalog …
    events = rows(tmp_path / "r", Event)
    start = next(e for e in events if e.details.get("phase") == "start")
    assert start.details["checked"] is False and "accepted by the custodian" in start.details["unchecked"]
    [recovered] = [e for e in events if e.item_id == planted and e.details.get("action") ==
                   "item recreated from manifest"]
    assert recovered.details["checked"] is False  # … and in the log


def test_without_a_witness_unchecked_items_are_said_loudly_and_stay_unchecked_in_a_later_rebuild(
    cli: Cli, corpus: Path, tmp_path: Path
) -> None:
    cli("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))
    site = cli.home / "storage" / "site-a"
    shutil.rmtree(site / "log")  # no copy of the log at all
    planted = _plant(cli)
    key = str(cli.home / "keys" / "custodian.key")
    args = ["rebuild-catalog", "--from", "site-a", "--kind", "local", "--path", str(site), "--identity", key]
    _, out, _ = Cli(tmp_path / "nowhere")(*args, "--into", str(tmp_path / "r1"), expect=1)
    assert "WARNING: 2 of 2 items were NOT CHECKED against any custody log" in out
    assert "log key given" not in out and "no log was checked" in out
    assert planted in _setting(tmp_path / "r1", "unchecked_items")
    # The first rebuild put its new log on the site; a second rebuild takes it over, but that log vouches
    # for the items only on their manifests' word: they stay unchecked.
    again = Cli(tmp_path / "nowhere").json(*args, "--into", str(tmp_path / "r2"), expect=1)
    assert again["log_events"] > 0 and again["rebuilds"] == 1 and again["rebuild_events"] == again["log_events"]
    assert planted in again["unchecked"] and len(again["unchecked"]) == 2
    assert any("earlier rebuild" in p.get("problem", "") for p in again["problems"])


def test_a_second_rebuild_of_the_same_site_counts_the_first_ones_events_apart(cli: Cli, corpus: Path,
                                                                              tmp_path: Path) -> None:
    cli("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))
    site = cli.home / "storage" / "site-a"
    key = str(cli.home / "keys" / "custodian.key")
    vkey = str(cli.home / "keys" / "log.vkey")
    args = ["rebuild-catalog", "--from", "site-a", "--kind", "local", "--path", str(site), "--identity", key,
            "--vkey", vkey]
    first = Cli(tmp_path / "nowhere").json(*args, "--into", str(tmp_path / "r1"))
    assert first["rebuilds"] == 0 and first["rebuild_events"] == 0 and first["unchecked"] == []
    second = Cli(tmp_path / "nowhere").json(*args, "--into", str(tmp_path / "r2"))
    assert second["rebuilds"] == 1 and second["unchecked"] == [] and second["items"] == 1
    assert second["log_events"] - second["rebuild_events"] == first["log_events"]  # the archive's own events
    assert second["rebuild_events"] > 0
    _, out, _ = Cli(tmp_path / "nowhere")(*args, "--into", str(tmp_path / "r3"))  # each rebuild continues the log
    assert f": {first['log_events']} of the archive, " in out and "by 2 earlier rebuild(s) of this site" in out
    assert "checked with the log key given" in out


def test_a_bad_or_foreign_witness_is_refused_before_anything_is_made(cli: Cli, corpus: Path,
                                                                     tmp_path: Path) -> None:
    cli("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))
    cli("log", "checkpoint")
    other = Cli(tmp_path / "other")
    other("init", "--operator", "someone")
    other("ingest", str(corpus / "media" / "jpg" / "Nikon_D70.jpg"))
    foreign = tmp_path / "foreign.txt"
    foreign.write_text(other.json("log", "checkpoint")["note"])
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("this is no checkpoint\n")
    site = cli.home / "storage" / "site-a"
    key = str(cli.home / "keys" / "custodian.key")
    vkey = str(cli.home / "keys" / "log.vkey")
    foreign_vkey = str(other.home / "keys" / "log.vkey")
    args = ["rebuild-catalog", "--from", "site-a", "--kind", "local", "--path", str(site), "--identity", key,
            "--into", str(tmp_path / "r")]
    for extra, says in ((["--vkey", vkey, "--checkpoint", str(garbage)], "not a checkpoint signed with the key"),
                        (["--vkey", vkey, "--checkpoint", str(foreign)], "not a checkpoint signed with the key"),
                        (["--vkey", foreign_vkey, "--checkpoint", str(foreign)], "not this site's archive"),
                        (["--vkey", foreign_vkey], "not this site's archive"),
                        (["--vkey", str(garbage)], "not a log key"),
                        (["--checkpoint", str(foreign)], "--checkpoint needs --vkey")):
        _, _, err = Cli(tmp_path / "nowhere")(*args, *extra, expect=2)
        assert says in err, (extra, err)
        assert not (tmp_path / "r").exists()
    # The genuine log is not abandoned: with the right witness the same site is taken over.
    assert Cli(tmp_path / "nowhere").json(*args, "--vkey", vkey)["log_events"] > 0
