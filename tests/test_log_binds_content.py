"""The custody log commits to the content (issue 9, section 1): the attack, tried as an attacker would.

Someone with the server's disk and database ingests nothing themselves: they
take an item the archive holds, encrypt *other* bytes of the same size to the
archive's public recipients (which anyone may have), overwrite every copy with
them and rewrite the catalog to match. The witness kept a checkpoint from
before. `log verify`, `fixity` and `get` must each catch it, on SQLite and
PostgreSQL, whether the attacker holds the catalog key (an insider re-sealing
the item's plaintext hash) or not (swapping only the clear ciphertext hashes).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.conftest import Cli

PHOTO = "media/jpg/Canon_40D.jpg"


@pytest.fixture()
def db_cli(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    runner = Cli(tmp_path / "home")
    runner("init", "--operator", "tester")
    return runner


def _engine(cli: Cli) -> Engine:
    from archive.db import make_engine

    return make_engine(os.environ.get("EVIDENCE_DATABASE_URL") or f"sqlite:///{cli.home / 'catalog.db'}")


def _sql(cli: Cli, statement: str, **params: Any) -> list[Any]:
    engine = _engine(cli)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def _originals(cli: Cli, item_id: str) -> list[tuple[int, str, str]]:
    """(replica id, backend, object name) of every live original."""
    return [tuple(r) for r in _sql(cli, "SELECT id, backend, object_name FROM replicas WHERE item_id = :i "
                                       "AND role = 'original' AND state = 'verified' ORDER BY id", i=item_id)]


def _recipients(cli: Cli) -> list[Any]:
    from archive.context import Archive

    archive = Archive.open(cli.home)
    try:
        return list(archive.recipients())
    finally:
        archive.close()


def _forge_copy(cli: Cli, backend: str, name: str, plaintext: bytes, update_row: int | None = None) -> str:
    """Overwrite one stored original with other plaintext encrypted to the public recipients."""
    from archive.age import encrypt_bytes

    sealed = encrypt_bytes(plaintext, _recipients(cli))
    path = cli.home / "storage" / backend / name
    path.chmod(0o644)
    path.write_bytes(sealed)
    digest = hashlib.sha256(sealed).hexdigest()
    if update_row is not None:
        _sql(cli, "UPDATE replicas SET ciphertext_sha256 = :h WHERE id = :i", h=digest, i=update_row)
    return digest


def _reseal_sha256(cli: Cli, item_id: str, sha256: str) -> None:
    """The insider: with the catalog key, re-seal the item's plaintext SHA-256 (and its lookup)."""
    from archive.keys.catalog import CATALOG_KEY_NAME, CatalogKeys

    keys = CatalogKeys.parse((cli.home / "keys" / CATALOG_KEY_NAME).read_text())
    [(version, blob)] = _sql(cli, "SELECT key_version, sealed FROM items WHERE id = :i", i=item_id)
    fields = keys.open("items", item_id, version, bytes(blob))
    fields["sha256"] = sha256
    new_version, new_blob = keys.seal("items", item_id, fields)
    _sql(cli, "UPDATE items SET sealed = :b, key_version = :v, lookup = :l WHERE id = :i", b=new_blob,
         v=new_version, l=keys.lookup("sha256", sha256), i=item_id)


def _ingest(cli: Cli, corpus: Path, relative: str = PHOTO) -> dict[str, Any]:
    report = cli.json_lines("ingest", str(corpus / relative))[0]
    assert report["status"] == "preserved"
    return dict(report)


def _witness(cli: Cli, tmp_path: Path) -> Path:
    note = tmp_path / "witness.note"
    note.write_text(cli.json("log", "checkpoint")["note"])
    return note


def _verify(cli: Cli) -> tuple[int, dict[str, Any], str]:
    code, out, err = cli("log", "verify", "--json", expect=None)
    _, _, text_err = cli("log", "verify", expect=None)
    return code, json.loads(out), text_err


def _other_bytes(size: int) -> bytes:
    return os.urandom(size)


@pytest.mark.parametrize("insider", [False, True], ids=["without-catalog-key", "with-catalog-key"])
def test_the_attack_is_caught_by_log_verify_fixity_and_get(db_cli: Cli, corpus: Path, tmp_path: Path,
                                                           insider: bool) -> None:
    cli = db_cli
    source = (corpus / PHOTO).read_bytes()
    item = _ingest(cli, corpus)
    item_id = item["id"]
    witness = _witness(cli, tmp_path)
    forged = _other_bytes(len(source))
    for replica_id, backend, name in _originals(cli, item_id):
        _forge_copy(cli, backend, name, forged, update_row=replica_id)
    if insider:
        _reseal_sha256(cli, item_id, hashlib.sha256(forged).hexdigest())

    code, report, err = _verify(cli)
    assert code == 1 and not report["ok"]
    assert report["problems"] == []  # the tree itself is intact: only the catalog no longer follows from it
    assert report["catalog"]["mismatches"] and all(m["item"] == item_id for m in report["catalog"]["mismatches"])
    assert item_id in err
    if insider:
        assert any("commitment" in m["message"] for m in report["catalog"]["mismatches"])
    # The witness's checkpoint still verifies against the log: nothing in the log was touched.
    assert cli.json("log", "verify", expect=1)["checked_size"] >= int(witness.read_text().split("\n")[1])

    fixity = cli.json("fixity", "--all", expect=1)
    assert fixity["corrupt"] == 2 and {p["item"] for p in fixity["problems"]} == {item_id}

    out = tmp_path / "out.jpg"
    code, _, err = cli("get", item_id, "-o", str(out), expect=None)
    assert code == 1 and not out.exists()
    assert "commitment" in err


def test_only_the_catalogs_plaintext_hash_changed(db_cli: Cli, corpus: Path, tmp_path: Path) -> None:
    item_id = _ingest(db_cli, corpus)["id"]
    _reseal_sha256(db_cli, item_id, hashlib.sha256(b"some other file").hexdigest())
    code, report, err = _verify(db_cli)
    assert code == 1 and item_id in err
    assert [m["item"] for m in report["catalog"]["mismatches"]] == [item_id]
    # The bytes are the ones the log committed to: get serves them, fixity finds nothing wrong.
    out = tmp_path / "out.jpg"
    db_cli("get", item_id, "-o", str(out))
    assert out.read_bytes() == (corpus / PHOTO).read_bytes()
    assert db_cli.json("fixity", "--all")["found_problems"] is False


def test_only_one_replicas_ciphertext_hash_changed(db_cli: Cli, corpus: Path) -> None:
    item_id = _ingest(db_cli, corpus)["id"]
    replica_id, _, _ = _originals(db_cli, item_id)[0]
    _sql(db_cli, "UPDATE replicas SET ciphertext_sha256 = :h WHERE id = :i", h="ab" * 32, i=replica_id)
    code, report, err = _verify(db_cli)
    assert code == 1 and item_id in err
    [mismatch] = report["catalog"]["mismatches"]
    assert mismatch["item"] == item_id and "ciphertext" in mismatch["message"]
    # Fixity holds the bytes against the log, not the rewritten row: the copy is fine.
    assert db_cli.json("fixity", "--all")["found_problems"] is False


def test_one_copy_and_its_row_replaced_together(db_cli: Cli, corpus: Path, tmp_path: Path) -> None:
    source = (corpus / PHOTO).read_bytes()
    item_id = _ingest(db_cli, corpus)["id"]
    replica_id, backend, name = _originals(db_cli, item_id)[0]
    _forge_copy(db_cli, backend, name, _other_bytes(len(source)), update_row=replica_id)
    code, _, err = _verify(db_cli)
    assert code == 1 and item_id in err
    fixity = db_cli.json("fixity", "--item", item_id, expect=1)
    assert [(p["backend"], p["result"]) for p in fixity["problems"]] == [(backend, "corrupt")]
    out = tmp_path / "out.jpg"
    db_cli("get", item_id, "-o", str(out))  # the other copy still matches the commitment
    assert out.read_bytes() == source


def test_a_second_commitment_properly_appended_fails_log_verify(db_cli: Cli, corpus: Path, tmp_path: Path) -> None:
    from archive.context import Archive
    from archive.custody.commit import commitment_details, new_salt
    from archive.custody.log import MESSAGE_DIGEST, append_event
    from archive.db import transaction

    source = (corpus / PHOTO).read_bytes()
    item_id = _ingest(db_cli, corpus)["id"]
    archive = Archive.open(db_cli.home)
    try:
        with transaction(archive.engine) as session:  # appended through the log itself: the tree stays valid
            append_event(session, MESSAGE_DIGEST, actor="archive", item_id=item_id,
                         details=commitment_details(item_id, new_salt(), hashlib.sha256(b"other").hexdigest()))
    finally:
        archive.close()
    db_cli("log", "checkpoint")
    code, report, err = _verify(db_cli)
    assert code == 1
    [problem] = report["problems"]
    assert problem["kind"] == "rule-broken" and item_id in problem["message"] and "second commitment" in err
    out = tmp_path / "out.jpg"
    db_cli("get", item_id, "-o", str(out))  # the first commitment is the one that counts
    assert out.read_bytes() == source


def test_editing_the_event_rows_fools_neither_fixity_nor_get(db_cli: Cli, corpus: Path, tmp_path: Path) -> None:
    """The attacker rewrites the commitment and the replication events too, leaf hashes recomputed."""
    from archive.custody.commit import commitment_details, new_salt
    from archive.custody.entry import encode, entry_fields, leaf_hash

    source = (corpus / PHOTO).read_bytes()
    item_id = _ingest(db_cli, corpus)["id"]
    db_cli("log", "checkpoint")
    forged = _other_bytes(len(source))
    hashes = {}
    for replica_id, backend, name in _originals(db_cli, item_id):
        hashes[f"{backend}:{name}"] = _forge_copy(db_cli, backend, name, forged, update_row=replica_id)
    salt = new_salt()
    rows = _sql(db_cli, "SELECT seq, occurred_at, actor, event_type, item_id, objects, outcome, details FROM events "
                        "WHERE item_id = :i ORDER BY seq", i=item_id)
    for seq, occurred_at, actor, event_type, _, objects, outcome, details in rows:
        objects = objects if isinstance(objects, list) else json.loads(objects)
        details = details if isinstance(details, dict) else json.loads(details)
        if "commitment" in details:
            details.update(commitment_details(item_id, salt, hashlib.sha256(forged).hexdigest()))
        elif objects and objects[0] in hashes and "ciphertext_sha256" in details:
            details["ciphertext_sha256"] = hashes[objects[0]]
        else:
            continue
        leaf = leaf_hash(encode(entry_fields(seq=seq, occurred_at=occurred_at, actor=actor, event_type=event_type,
                                             item_id=item_id, objects=objects, outcome=outcome, details=details)))
        _sql(db_cli, "UPDATE events SET details = :d, leaf_hash = :h WHERE seq = :s", d=json.dumps(details),
             h=leaf.hex(), s=seq)
    _, _, err = db_cli("get", item_id, "-o", str(tmp_path / "out.jpg"), expect=1)
    assert "not in the signed log" in err or "altered" in err
    fixity = db_cli.json("fixity", "--all", expect=1)
    assert fixity["unlogged"] == fixity["copies"] and fixity["corrupt"] == 0
    code, report, _ = _verify(db_cli)
    assert code == 1 and report["problems"]


def test_no_event_carries_a_size_and_every_copy_event_its_ciphertext_hash(cli: Cli, corpus: Path) -> None:
    source = corpus / PHOTO
    item_id = _ingest(cli, corpus)["id"]
    _ingest_duplicate = cli.json_lines("ingest", str(source))[0]
    assert _ingest_duplicate["duplicate"]
    size = str(source.stat().st_size)
    events = cli.json("log", "show", item_id)["events"]

    def keys(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [k for k, v in value.items() for k in [k, *keys(v)]]
        return [k for v in value for k in keys(v)] if isinstance(value, list) else []

    for event in events:
        assert not any("size" in k for k in keys(event["details"])), event
        assert size not in json.dumps(event["details"]), event
        if event["type"] in ("replication", "information package creation", "fixity check") and \
                event["outcome"] == "success":
            assert len(event["details"]["ciphertext_sha256"]) == 64 and event["details"]["role"], event
    commitments = [e for e in events if "commitment" in e["details"]]
    assert len(commitments) == 1  # the duplicate arrival did not commit the item again
    # Nor does any other event of the log: a refusal, say.
    empty = source.parent.parent.parent / "nonexistent-file.jpg"
    cli.json_lines("ingest", str(empty), expect=1)
    for (details,) in _sql(cli, "SELECT details FROM events"):
        details = details if isinstance(details, dict) else json.loads(details)
        assert not any("size" in k for k in keys(details)) and size not in json.dumps(details), details
    assert commitments[0]["details"]["commitment_format"] == "evidence-commit/1"


def test_the_commitment_checks_with_printf_and_sha256sum(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    """The oracle: the salt from the sealed manifest (opened with the real age tool), then coreutils."""
    if shutil.which("age") is None or shutil.which("sha256sum") is None:
        pytest.fail("the age and sha256sum tools are needed (scripts/test installs age)")
    item = _ingest(cli, corpus)
    manifest_name = next(m["object"] for m in cli.json("show", item["id"])["manifests"] if m["backend"] == "site-a")
    manifest = json.loads(subprocess.run(
        ["age", "-d", "-i", str(cli.home / "keys" / "custodian.key"),
         str(cli.home / "storage" / "site-a" / manifest_name)], check=True, capture_output=True).stdout)
    assert manifest["item_id"] == item["id"] and manifest["sha256"] == item["sha256"]
    line = subprocess.run(f"printf 'evidence-commit/1 %s %s %s\\n' {item['id']} {manifest['salt']} "
                          f"{hashlib.sha256((corpus / PHOTO).read_bytes()).hexdigest()} | sha256sum",
                          shell=True, check=True, capture_output=True, text=True).stdout.split()[0]
    [logged] = [e["details"]["commitment"] for e in cli.json("log", "show", item["id"])["events"]
                if "commitment" in e["details"]]
    assert line == logged
    assert item["sha256"] not in json.dumps(cli.json("log", "show", item["id"]))  # the hash itself is not logged


def _site(cli: Cli) -> Path:
    return cli.home / "storage" / "site-a"


def _rebuild(cli: Cli, tmp_path: Path, name: str = "rebuilt") -> tuple[dict[str, Any], Cli]:
    key = str(cli.home / "keys" / "custodian.key")
    vkey = str(cli.home / "keys" / "log.vkey")
    report = Cli(tmp_path / "nowhere").json("rebuild-catalog", "--from", "site-a", "--kind", "local", "--path",
                                            str(_site(cli)), "--identity", key, "--vkey", vkey, "--into",
                                            str(tmp_path / name), expect=None)
    return report, Cli(tmp_path / name)


def test_rebuild_rejects_a_forged_manifest_and_a_planted_item(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    from archive.custody.commit import new_salt
    from archive.objects import manifest_document, manifest_name, new_object_name, seal

    genuine = _ingest(cli, corpus, "media/jpg/gps/DSCN0010.jpg")
    victim = _ingest(cli, corpus)
    cli("log", "checkpoint")  # the site's copy of the log now covers both
    recipients = [str(r) for r in _recipients(cli)]
    forged = _other_bytes(len((corpus / PHOTO).read_bytes()))
    # 1. The victim's copy on site-a is replaced, with a well-formed manifest describing the new bytes.
    [(_, _, name)] = [o for o in _originals(cli, victim["id"]) if o[1] == "site-a"]
    ciphertext = _forge_copy(cli, "site-a", name, forged)
    document = manifest_document(
        item_id=victim["id"], sha256=hashlib.sha256(forged).hexdigest(), size=len(forged), salt=new_salt(),
        media_type="image/jpeg", object_name=name, ciphertext_sha256=ciphertext, ciphertext_size=None,
        recipients=recipients, provenance={"source": "forger", "note": None, "original_name": "x.jpg",
                                           "declared_type": None, "received_at": "2026-01-01T00:00:00.000000Z",
                                           "actor": "archive"})
    path = _site(cli) / manifest_name(name)
    path.chmod(0o644)
    path.write_bytes(seal(document, recipients))
    # 2. A whole item planted on the site, which the log never saw.
    from archive.age import encrypt_bytes

    planted_name = new_object_name()
    planted = encrypt_bytes(b"planted evidence", _recipients(cli))
    (_site(cli) / planted_name).parent.mkdir(parents=True, exist_ok=True)
    (_site(cli) / planted_name).write_bytes(planted)
    planted_id = "0badc0de-0000-4000-8000-000000000000"
    (_site(cli) / manifest_name(planted_name)).write_bytes(seal(manifest_document(
        item_id=planted_id, sha256=hashlib.sha256(b"planted evidence").hexdigest(), size=16, salt=new_salt(),
        media_type="image/jpeg", object_name=planted_name, ciphertext_sha256=hashlib.sha256(planted).hexdigest(),
        ciphertext_size=None, recipients=recipients, provenance=dict(document["provenance"])), recipients))

    report, rebuilt = _rebuild(cli, tmp_path)
    rejected = {r["item"]: r["problem"] for r in report["rejected"]}
    assert "forged manifest" in rejected[victim["id"]]
    assert "not recorded by the log" in rejected[planted_id]
    listed = {i["id"] for i in rebuilt.json("list")}
    assert listed == {genuine["id"]}  # neither the forged nor the planted item is evidence here
    out = tmp_path / "out.jpg"
    rebuilt("get", genuine["id"], "-o", str(out), "--identity", str(cli.home / "keys" / "custodian.key"))
    assert out.read_bytes() == (corpus / "media/jpg/gps/DSCN0010.jpg").read_bytes()
    assert rebuilt.json("fixity", "--all")["found_problems"] is False
    # The log still commits to the victim, whose only copy here was forged: lost from this catalog, and said so.
    [missing] = rebuilt.json("log", "verify", expect=1)["catalog"]["mismatches"]
    assert missing["item"] == victim["id"] and "does not hold it" in missing["message"]


def test_rebuild_marks_a_substituted_original_behind_a_genuine_manifest(cli: Cli, corpus: Path,
                                                                         tmp_path: Path) -> None:
    """Same-size other bytes behind the real manifest (which the attacker cannot read): a bad copy, not evidence."""
    item = _ingest(cli, corpus)
    cli("log", "checkpoint")
    [(_, _, name)] = [o for o in _originals(cli, item["id"]) if o[1] == "site-a"]
    _forge_copy(cli, "site-a", name, _other_bytes(len((corpus / PHOTO).read_bytes())))
    report, rebuilt = _rebuild(cli, tmp_path)
    assert any(p.get("item") == item["id"] and "corrupt" in p["problem"] for p in report["problems"])
    [shown] = rebuilt.json("list")
    assert shown["status"] == "degraded"
    _, _, err = rebuilt("get", item["id"], "-o", str(tmp_path / "o.jpg"), "--identity",
                        str(cli.home / "keys" / "custodian.key"), expect=1)
    assert "commitment" in err or "no copy" in err


def _entry(seq: int, kind: str, item: str | None, objects: list[str], details: dict[str, Any],
           outcome: str = "success") -> dict[str, Any]:
    return {"seq": seq, "type": kind, "item": item, "objects": objects, "outcome": outcome, "details": details}


def test_the_log_index_applies_the_copy_event_contract() -> None:
    """Each rule of the contract, on hand-made events: what may set or change a copy's hash, and what may not."""
    from archive.custody.expected import LogIndex

    h1, h2, h3 = "11" * 32, "22" * 32, "33" * 32
    base = [
        _entry(0, "message digest calculation", "I", [], {"algorithm": "SHA-256", "commitment": "c1"}),
        _entry(1, "replication", "I", ["a:o1"], {"backend": "a", "role": "original", "ciphertext_sha256": h1}),
        _entry(2, "information package creation", "I", ["a:o1.manifest"],
               {"object": "manifest", "role": "manifest", "ciphertext_sha256": h2}),
        _entry(3, "ingestion", "I", [], {"duplicate": False}),
    ]
    index = LogIndex.of(base)
    assert index.problems == [] and index.commitment("I") == "c1"
    assert index.copies["a:o1"].ciphertext_sha256 == h1 and index.copies["a:o1.manifest"].role == "manifest"

    def after(*extra: dict[str, Any]) -> LogIndex:
        return LogIndex.of([*base, *extra])

    repair = {"backend": "b", "role": "original", "ciphertext_sha256": h1, "from": "a", "from_object": "a:o1",
              "from_ciphertext_sha256": h1}
    assert after(_entry(4, "replication", "I", ["b:o2"], repair)).problems == []
    for wrong in ({"from_ciphertext_sha256": h3}, {"ciphertext_sha256": h3, "from_ciphertext_sha256": h3},
                  {"from_object": "a:nowhere"}):
        assert after(_entry(4, "replication", "I", ["b:o2"], repair | wrong)).problems, wrong
    # A new original after the ingestion must name its source or its arrival.
    fresh = {"backend": "b", "role": "original", "ciphertext_sha256": h3}
    assert after(_entry(4, "replication", "I", ["b:o2"], fresh)).problems
    restore = fresh | {"restored_from": "duplicate arrival", "arrival": 7}
    arriving = _entry(4, "message digest calculation", "I", [], {"duplicate": True, "arrival": 7})
    assert after(arriving, _entry(5, "replication", "I", ["b:o2"], restore)).problems == []
    # Only while the log ingests that later arrival: not a made-up one, nor after its ingestion.
    assert after(_entry(4, "replication", "I", ["b:o2"], restore)).problems
    assert after(arriving, _entry(5, "replication", "I", ["b:o2"], restore | {"arrival": "bogus"})).problems
    assert after(arriving, _entry(5, "ingestion", "I", [], {"duplicate": True}),
                 _entry(6, "replication", "I", ["b:o2"], restore)).problems
    # A hash is set once: no establishing event for a copy the log holds, a rewrap included.
    assert after(_entry(4, "replication", "I", ["a:o1"], fresh | {"backend": "a"})).problems
    rewrap = {"backend": "a", "role": "original", "ciphertext_sha256": h3, "rewrapped_from": "a:o1",
              "from_ciphertext_sha256": h1}
    assert after(_entry(4, "replication", "I", ["a:o1"], rewrap)).problems  # onto itself
    assert after(_entry(4, "replication", "I", ["a:o3"], rewrap | {"from_ciphertext_sha256": h2})).problems
    assert after(_entry(4, "replication", "I", ["a:o3"], rewrap | {"rewrapped_from": "a:o1.manifest",
                                                                  "from_ciphertext_sha256": h2})).problems
    assert after(_entry(4, "replication", "J", ["a:o3"], rewrap)).problems  # another item's copy
    moved = after(_entry(4, "replication", "I", ["a:o3"], rewrap),
                  _entry(5, "deletion", "I", ["a:o1"], {"backend": "a", "role": "original", "ciphertext_sha256": h1}))
    assert moved.problems == [] and moved.copy("a:o1") is None and moved.copies["a:o3"].ciphertext_sha256 == h3
    # A merge moves a copy, unchanged, from the merged item to the one holding the same bytes.
    merge = {"backend": "a", "role": "original", "ciphertext_sha256": h1, "merged_from": "I", "from_object": "a:o1",
             "from_ciphertext_sha256": h1}
    merged = after(_entry(4, "replication", "H", ["a:o1"], merge))
    assert merged.problems == [] and merged.copies["a:o1"].item == "H"
    assert after(_entry(4, "replication", "H", ["a:o1"], merge | {"merged_from": "X"})).problems
    assert after(_entry(4, "replication", "H", ["a:o1"], merge | {"ciphertext_sha256": h3})).problems
    # A baseline only for a copy the log has no hash for; a second commitment is never accepted.
    baseline = {"backend": "a", "role": "original", "ciphertext_sha256": h3, "baseline": True}
    assert after(_entry(4, "fixity check", "I", ["a:o1"], baseline)).problems
    assert after(_entry(4, "fixity check", "I", ["a:old"], baseline)).problems  # never named before
    named = _entry(4, "replication", "I", ["a:old"], {"backend": "a", "role": "original"})  # before hashes
    assert after(named, _entry(5, "fixity check", "I", ["a:old"], baseline)).problems == []
    # Only a manifest or an addendum is made by an information package creation.
    made = {"object": "original", "role": "original", "ciphertext_sha256": h3}
    assert after(_entry(4, "information package creation", "I", ["a:o9"], made)).problems
    second = after(_entry(4, "message digest calculation", "I", [], {"commitment": "c2"}))
    assert [p.seq for p in second.problems] == [4] and second.commitment("I") == "c1"


def test_a_duplicate_that_does_not_match_the_commitment_restores_nothing(cli: Cli, corpus: Path) -> None:
    """The catalog's lookup rewritten so other bytes find this item: they are not taken for its copies."""
    from archive.keys.catalog import CATALOG_KEY_NAME, CatalogKeys

    item_id = _ingest(cli, corpus)["id"]
    other = corpus / "media/jpg/gps/DSCN0010.jpg"
    keys = CatalogKeys.parse((cli.home / "keys" / CATALOG_KEY_NAME).read_text())
    other_sha = hashlib.sha256(other.read_bytes()).hexdigest()
    _reseal_sha256(cli, item_id, other_sha)  # the insider points the item at the other file's hash
    assert keys.lookup("sha256", other_sha)
    for _, backend, name in _originals(cli, item_id):  # and its copies are gone, so an arrival would restore them
        (cli.home / "storage" / backend / name).unlink()
    report = cli.json_lines("ingest", str(other), expect=None)[0]
    assert report["duplicate"] and report["id"] == item_id
    assert _originals(cli, item_id) == []  # no copy of the other file became this item's
    digest = [e for e in cli.json("log", "show", item_id)["events"] if e["type"] == "message digest calculation"]
    assert digest[-1]["details"].get("matches_commitment") is False and digest[-1]["outcome"] == "failure"


def test_a_later_arrival_holds_the_copies_against_the_log_not_the_catalog(db_cli: Cli, corpus: Path) -> None:
    """One copy and its row replaced together; the same file arrives again: the log's hash finds it bad."""
    source = (corpus / PHOTO).read_bytes()
    item_id = _ingest(db_cli, corpus)["id"]
    replica_id, backend, name = _originals(db_cli, item_id)[0]
    _forge_copy(db_cli, backend, name, _other_bytes(len(source)), update_row=replica_id)
    assert db_cli.json_lines("ingest", str(corpus / PHOTO))[0]["duplicate"]
    [(state,)] = _sql(db_cli, "SELECT state FROM replicas WHERE id = :i", i=replica_id)
    assert state == "replaced"  # found bad, and restored from the arrival's bytes
    assert {b for _, b, _ in _originals(db_cli, item_id)} == {"site-a", "site-b"}
    assert db_cli.json("fixity", "--all")["found_problems"] is False
    code, report, _ = _verify(db_cli)
    assert code == 0 and report["catalog"]["ok"], report["catalog"]["mismatches"]


def test_a_locked_log_verify_says_commitments_were_not_checked(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    from archive.keys.catalog import CATALOG_KEY_NAME

    item_id = _ingest(cli, corpus)["id"]
    _reseal_sha256(cli, item_id, hashlib.sha256(b"another file").hexdigest())
    assert cli("log", "verify", expect=1)[1]  # unlocked: the commitment mismatch is found
    key = cli.home / "keys" / CATALOG_KEY_NAME
    key.rename(tmp_path / CATALOG_KEY_NAME)  # a server that was never unlocked
    _, out, err = cli("log", "verify", expect=1)  # what it could not check, it does not call ok
    assert "not fully verified: commitments not checked (catalog key locked" in err and "ok:" not in out
    report = cli.json("log", "verify", expect=1)
    assert report["catalog"]["commitments_checked"] is False and report["fully_verified"] is False
    _, out, err = cli("log", "verify", "--copies-only")  # said so explicitly: the log and the copies hold
    assert "commitments were NOT checked" in err and "ok:" in out
    # What needs no key is still checked: a copy's rewritten hash fails it, locked or not.
    replica_id, _, _ = _originals(cli, item_id)[0]
    _sql(cli, "UPDATE replicas SET ciphertext_sha256 = :h WHERE id = :i", h="cd" * 32, i=replica_id)
    _, _, err = cli("log", "verify", expect=1)
    assert item_id in err


def test_an_item_from_before_commitments_is_rebuilt_checked_against_the_log(tmp_path: Path) -> None:
    """Made by the pre-sealing code: its manifests lack the salt. Once unlocked, fixity and the worker
    write them again with it, and a rebuild from the site checks the item against the log's commitment."""
    from archive.keys.catalog import CATALOG_KEY_NAME, CatalogKeys
    from tests.test_legacy_sealing import _old, _old_code

    code = _old_code(tmp_path)
    home = tmp_path / "home"
    _old(code, home, "init", "--operator", "oldtimer")
    evidence = tmp_path / "old.bin"
    evidence.write_bytes(os.urandom(100_000))
    _old(code, home, "ingest", str(evidence))
    (home / "keys" / CATALOG_KEY_NAME).write_text(CatalogKeys.generate().encode(), encoding="ascii")
    cli = Cli(home)
    [item] = cli.json("list")  # the first unlocked open seals the item and commits the log to it
    cli.json("fixity", "--all")  # baselines for the old copies; their salt-less manifests queue a repair
    cli("worker", "--once")
    cli("log", "checkpoint")
    cli("log", "verify")
    report, rebuilt = _rebuild(cli, tmp_path)
    assert report["superseded"] == 1 and report["rejected"] == [], report
    assert [i["id"] for i in rebuilt.json("list")] == [item["id"]]
    out = tmp_path / "out.bin"
    rebuilt("get", item["id"], "-o", str(out), "--identity", str(home / "keys" / "custodian.key"))
    assert out.read_bytes() == evidence.read_bytes()


def _append(cli: Cli, kind: str, item_id: str, objects: list[str], details: dict[str, Any]) -> None:
    """The attacker appends through the log itself: the tree stays valid, only the contract can refuse it."""
    from archive.context import Archive
    from archive.custody.log import append_event
    from archive.db import transaction

    archive = Archive.open(cli.home)
    try:
        with transaction(archive.engine) as session:
            append_event(session, kind, actor="archive", item_id=item_id, objects=objects, details=details)
    finally:
        archive.close()


def _logged_hash(cli: Cli, key: str) -> str:
    for (objects, details) in _sql(cli, "SELECT objects, details FROM events WHERE event_type = 'replication'"):
        objects = objects if isinstance(objects, list) else json.loads(objects)
        details = details if isinstance(details, dict) else json.loads(details)
        if objects == [key]:
            return str(details["ciphertext_sha256"])
    raise AssertionError(key)


@pytest.mark.parametrize("way", ["rewrap-of-itself", "bogus-arrival", "baseline-of-a-new-object",
                                 "package-creation-of-an-original"])
def test_a_forged_event_gives_no_copy_a_new_hash(db_cli: Cli, corpus: Path, way: str) -> None:
    """Each way an attacker could append an event that sets a hash for substituted bytes: a broken rule."""
    cli = db_cli
    item_id = _ingest(cli, corpus)["id"]
    replica_id, backend, name = _originals(cli, item_id)[0]
    old_key = f"{backend}:{name}"
    old_hash = _logged_hash(cli, old_key)
    new_name = name if way == "rewrap-of-itself" else name + ".forged"
    (cli.home / "storage" / backend / new_name).touch()
    forged = _forge_copy(cli, backend, new_name, _other_bytes(1000))
    key = f"{backend}:{new_name}"
    details: dict[str, Any] = {"backend": backend, "role": "original", "ciphertext_sha256": forged}
    kind = "replication"
    if way == "rewrap-of-itself":
        details.update(rewrapped_from=old_key, from_ciphertext_sha256=old_hash, reason="add access")
    elif way == "bogus-arrival":
        details.update(restored_from="duplicate arrival", arrival="bogus", verified="sha256")
    elif way == "baseline-of-a-new-object":
        kind = "fixity check"
        details.update(result="ok", algorithm="SHA-256", baseline=True)
    else:
        kind = "information package creation"
        details.update(object="original", verified="sha256")
    _append(cli, kind, item_id, [key], details)
    _sql(cli, "UPDATE replicas SET object_name = :n, ciphertext_sha256 = :h WHERE id = :i", n=new_name, h=forged,
         i=replica_id)
    cli("log", "checkpoint")
    code, report, err = _verify(cli)
    assert code == 1 and [p["kind"] for p in report["problems"]] == ["rule-broken"], report["problems"]
    assert item_id in err
    fixity = cli.json("fixity", "--all", expect=1)
    assert item_id in {p["item"] for p in fixity["problems"]}


def test_a_later_arrival_restores_only_while_the_log_ingests_it(cli: Cli, corpus: Path) -> None:
    """The real writer names its arrival in the digest event before the restore: the log can prove it."""
    item_id = _ingest(cli, corpus)["id"]
    for _, backend, name in _originals(cli, item_id):
        path = cli.home / "storage" / backend / name
        path.chmod(0o644)
        path.unlink()
    cli.json("fixity", "--all", expect=1)
    assert cli.json_lines("ingest", str(corpus / PHOTO))[0]["duplicate"]
    events = cli.json("log", "show", item_id)["events"]
    [digest] = [e for e in events if e["type"] == "message digest calculation" and e["details"].get("duplicate")]
    restores = [e for e in events if e["details"].get("restored_from") == "duplicate arrival"]
    assert restores and all(e["details"]["arrival"] == digest["details"]["arrival"] for e in restores)
    assert cli.json("log", "verify")["ok"] is True


def test_the_log_index_baselines_only_a_copy_a_rebuild_is_recovering() -> None:
    from archive.custody.expected import LogIndex

    commit = _entry(0, "message digest calculation", "R", [], {"commitment": "c", "note": "into a new log"})
    baseline = {"backend": "a", "role": "original", "ciphertext_sha256": "44" * 32, "baseline": True}
    recovered = _entry(2, "recovery", "R", ["a:m"], {"action": "item recreated from manifest"})
    assert LogIndex.of([commit, _entry(1, "fixity check", "R", ["a:o"], baseline), recovered]).problems == []
    assert LogIndex.of([commit, recovered, _entry(3, "fixity check", "R", ["a:o"], baseline)]).problems
    assert LogIndex.of([_entry(1, "fixity check", "R", ["a:o"], baseline)]).problems  # nothing commits to R


def _destroy_objects(cli: Cli, item_id: str) -> None:
    """Every stored object of the item gone from its site, as an attacker with the disk would do it."""
    for backend, name in _sql(cli, "SELECT backend, object_name FROM replicas WHERE item_id = :i", i=item_id):
        path = cli.home / "storage" / backend / name
        path.chmod(0o644)
        path.unlink()


def test_copies_removed_with_their_rows_and_no_deletion_event_fail_log_verify(db_cli: Cli, corpus: Path) -> None:
    cli = db_cli
    item_id = _ingest(cli, corpus)["id"]
    _destroy_objects(cli, item_id)
    _sql(cli, "DELETE FROM replicas WHERE item_id = :i", i=item_id)
    code, report, err = _verify(cli)
    assert code == 1
    assert any("the log holds was removed without a deletion event" in m["message"] and m["item"] == item_id
               for m in report["catalog"]["mismatches"])
    assert f"item {item_id}: copy " in err


@pytest.mark.parametrize("state", ["replaced", "pending"])
def test_copies_hidden_behind_a_history_state_fail_log_verify(db_cli: Cli, corpus: Path, state: str) -> None:
    """Rows kept but marked as history (or anything not live) hide no destroyed copy the log never saw fail."""
    cli = db_cli
    item_id = _ingest(cli, corpus)["id"]
    _destroy_objects(cli, item_id)
    _sql(cli, "UPDATE replicas SET state = :s WHERE item_id = :i", s=state, i=item_id)
    code, report, _ = _verify(cli)
    assert code == 1
    assert any("the log holds was removed without a deletion event" in m["message"] and m["item"] == item_id
               for m in report["catalog"]["mismatches"])


def test_an_access_event_carries_the_copys_ciphertext_hash(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    item_id = _ingest(cli, corpus)["id"]
    cli("get", item_id, "-o", str(tmp_path / "out.jpg"))
    events = cli.json("log", "show", item_id)["events"]
    [access] = [e for e in events if e["type"] == "access"]
    key = access["objects"][0]
    assert access["details"]["ciphertext_sha256"] == _logged_hash(cli, key)


@pytest.mark.parametrize(("column", "garbage"), [("details", "garbage{"), ("details", "null"), ("details", '"str"'),
                                                 ("objects", "garbage{"), ("objects", "null"), ("objects", "{}")])
def test_a_garbled_event_row_is_reported_altered_by_every_reader(cli: Cli, corpus: Path, tmp_path: Path,
                                                                 column: str, garbage: str) -> None:
    item_id = _ingest(cli, corpus)["id"]
    cli("log", "checkpoint")
    [(seq,)] = _sql(cli, "SELECT min(seq) FROM events WHERE item_id = :i AND event_type = 'replication'", i=item_id)
    _sql(cli, f"UPDATE events SET {column} = :g WHERE seq = :s", g=garbage, s=seq)
    for args in (["fixity", "--all"], ["get", item_id, "-o", str(tmp_path / "out.jpg")], ["log", "show", item_id],
                 ["log", "prove", str(seq)]):
        code, _, err = cli(*args, expect=None)
        assert code == 1 and f"custody event {seq} is altered" in err and "internal error" not in err, (args, err)
    assert cli("log", "verify", expect=None)[0] == 1


def test_log_verify_refuses_a_catalog_that_holds_no_archive(cli: Cli, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    code, out, err = cli("log", "verify", expect=None)
    assert code == 1 and "holds no archive" in err and "ok" not in out


def test_get_reports_the_sha256_it_computed_not_the_catalogs(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    source = (corpus / PHOTO).read_bytes()
    item_id = _ingest(cli, corpus)["id"]
    _reseal_sha256(cli, item_id, hashlib.sha256(b"another file").hexdigest())  # the catalog lies
    _, out, _ = cli("get", item_id, "-o", str(tmp_path / "out.jpg"))
    assert f"SHA-256 {hashlib.sha256(source).hexdigest()} verified" in out
    assert hashlib.sha256(b"another file").hexdigest() not in out


def test_an_arrivals_leaf_hash_does_not_tell_whether_the_file_was_held(tmp_path: Path, corpus: Path) -> None:
    """A contributor is given its arrival's leaf hash (the receipt's proof) and knows every field of the entry but
    the nonce: hashing both values of `duplicate` must match neither, for a new file and for a duplicate."""
    from sqlmodel import Session

    from archive.catalog.events import Event
    from archive.custody.entry import encode, entry_fields, leaf_hash
    from archive.custody.log import event_entry

    runner = Cli(tmp_path / "home")
    runner("init", "--operator", "tester")
    runner("ingest", str(corpus / PHOTO))
    runner("ingest", str(corpus / PHOTO))
    engine = _engine(runner)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, occurred_at, actor, item_id, details FROM events "
                                 "WHERE event_type = 'ingestion' ORDER BY seq")).all()
    assert len(rows) == 2
    nonces = set()
    for seq, occurred_at, actor, item_id, details in rows:
        details = details if isinstance(details, dict) else json.loads(details)
        nonces.add(details["nonce"])
        real = leaf_hash(encode(entry_fields(seq=seq, occurred_at=occurred_at, actor=actor, event_type="ingestion",
                                             item_id=item_id, objects=[], outcome="success", details=details)))
        with Session(engine) as session:
            stored = session.get(Event, seq)
            assert stored is not None and leaf_hash(encode(event_entry(stored))) == real  # the fields are right
        for duplicate in (False, True):
            guess = {"duplicate": duplicate, "status": details["status"]}
            assert leaf_hash(encode(entry_fields(seq=seq, occurred_at=occurred_at, actor=actor,
                                                 event_type="ingestion", item_id=item_id, objects=[],
                                                 outcome="success", details=guess))) != real
    assert len(nonces) == 2 and all(len(n) == 32 for n in nonces)
