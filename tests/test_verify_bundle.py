"""`evidence verify-bundle` and the bundled verify.py: a real export verifies, every tampering is caught by both.

The bundle comes from the real exporter (`evidence export --plaintext`); verify.py runs in a fresh
virtualenv holding only `cryptography`. Each tampering is tried as is and again after the manifests,
Payload-Oxum and tag manifests are recomputed (a forger's re-hash): the bundle signature still catches it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from archive.exports.verify_bundle import verify_bundle
from archive.exports.verify_script import TAG_FILES, verify_bag
from tests.conftest import CORPUS, Cli
from tests.test_links import add_incident, add_victim, ingest


def _export(cli: Cli, out: Path, *extra: str) -> dict[str, Any]:
    result: dict[str, Any] = cli.json("export", "--incident", "IDL-7", "--purpose", "court", "--out", str(out),
                                      *extra)
    return result


@pytest.fixture(scope="module")
def archive_home(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """An archive with two photos linked to an incident with one consenting victim."""
    cli = Cli(tmp_path_factory.mktemp("verify") / "home")
    cli("init", "--operator", "tester")
    jpg = CORPUS / "media" / "jpg"
    ids = ingest(cli, jpg / "Canon_40D.jpg", jpg / "Nikon_D70.jpg")
    add_incident(cli.home, "IDL-7")
    add_victim(cli.home, "V-1", "IDL-7")
    cli("victim", "consent", "V-1", "yes", "--scope", "courts", "--date", "2023-12-20", "--recorded-by", "field team")
    for item in ids.values():
        cli("link", item, "--incident", "IDL-7")
    return cli


@pytest.fixture(scope="module")
def bundle(archive_home: Cli, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "bundle.zip"
    _export(archive_home, out, "--plaintext")
    return out


@pytest.fixture(scope="module")
def bag(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    into = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(into)
    (top,) = list(into.iterdir())
    return top


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with only `cryptography` (nothing of this project)."""
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "cryptography"], capture_output=True,
                               text=True)
    if installed.returncode != 0:
        pytest.skip(f"cannot install cryptography in a fresh virtualenv: {installed.stderr[-300:]}")
    return python


def run_verify_py(python: Path, bag: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The bag's own verify.py, run from outside the project (cwd: the bag; no PYTHONPATH)."""
    return subprocess.run([str(python), str(bag / "verify.py"), *args], capture_output=True, text=True, cwd=bag,
                          env={"PATH": "/usr/bin:/bin"})


def log_vkey(cli: Cli) -> str:
    return (cli.home / "keys" / "log.vkey").read_text(encoding="ascii")


def rehash(bag: Path) -> None:
    """What a forger does after changing a file: both manifests, Payload-Oxum and both tag manifests anew."""
    files = sorted(p for p in (bag / "data").rglob("*") if p.is_file())
    for algo in ("sha256", "sha512"):
        lines = [f"{getattr(hashlib, algo)(p.read_bytes()).hexdigest()}  {p.relative_to(bag).as_posix()}"
                 for p in files]
        (bag / f"manifest-{algo}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    info = (bag / "bag-info.txt").read_text(encoding="utf-8").splitlines()
    oxum = f"{sum(p.stat().st_size for p in files)}.{len(files)}"
    info = [f"Payload-Oxum: {oxum}" if line.startswith("Payload-Oxum:") else line for line in info]
    (bag / "bag-info.txt").write_text("\n".join(info) + "\n", encoding="utf-8")
    for algo in ("sha256", "sha512"):
        lines = [f"{getattr(hashlib, algo)((bag / n).read_bytes()).hexdigest()}  {n}" for n in TAG_FILES]
        (bag / f"tagmanifest-{algo}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _flip(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if at is None else at
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_json(path: Path, change: Callable[[Any], None]) -> None:
    document = json.loads(path.read_bytes())
    change(document)
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def tamper_payload(bag: Path) -> str:
    original = sorted((bag / "data" / "originals").iterdir())[0]
    _flip(original)
    return original.relative_to(bag).as_posix()


def tamper_record(bag: Path) -> str:
    def change(document: dict[str, Any]) -> None:
        opened = next(r for r in document["records"] if r["state"] is not None)
        opened["state"]["tampered"] = "yes"
    _edit_json(bag / "data" / "records" / "changes.json", change)
    return "data/records/changes.json"


def tamper_items(bag: Path) -> str:
    def change(document: dict[str, Any]) -> None:
        document["records"][0]["sha256"] = "0" * 64
    _edit_json(bag / "data" / "records" / "items.json", change)
    return "data/records/items.json"


def tamper_incident(bag: Path) -> str:
    def change(document: dict[str, Any]) -> None:
        document["records"][0]["governorate"] = "elsewhere"
    _edit_json(bag / "data" / "records" / "incidents.json", change)
    return "data/records/incidents.json"


def tamper_event(bag: Path) -> str:
    event = sorted((bag / "data" / "custody" / "events").iterdir(), key=lambda p: int(p.stem))[0]
    event.write_bytes(event.read_bytes().replace(b'"actor":"', b'"actor":"x', 1))
    return event.relative_to(bag).as_posix()


def tamper_proof(bag: Path) -> str:
    proof = sorted((bag / "data" / "custody" / "proofs").iterdir(), key=lambda p: int(p.name.split(".")[0]))[0]
    head, sep, note = proof.read_text(encoding="utf-8").partition("\n\n")
    lines = head.split("\n")
    lines[-1] = base64.b64encode(hashlib.sha256(b"forged").digest()).decode("ascii")
    proof.write_text("\n".join(lines) + sep + note, encoding="utf-8")
    return proof.relative_to(bag).as_posix()


def tamper_salt(bag: Path) -> str:
    def change(document: dict[str, Any]) -> None:
        item = sorted(document["items"])[0]
        salt = document["items"][item]
        document["items"][item] = salt[:-1] + ("0" if salt[-1] != "0" else "1")
    _edit_json(bag / "data" / "custody" / "salts.json", change)
    return "data/custody/salts.json"


def tamper_checkpoint(bag: Path) -> str:
    path = bag / "data" / "custody" / "checkpoint.txt"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[1] = str(int(lines[1]) + 1)  # claim a bigger tree
    path.write_text("\n".join(lines), encoding="utf-8")
    return "data/custody/checkpoint.txt"


def tamper_signature(bag: Path) -> str:
    path = bag / "signature.note"
    text = path.read_text(encoding="utf-8")
    head, _, blob = text.rstrip("\n").rpartition(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 0x01
    path.write_text(f"{head} {base64.b64encode(bytes(raw)).decode('ascii')}\n", encoding="utf-8")
    return "signature.note"


def tamper_bag_info(bag: Path) -> str:
    path = bag / "bag-info.txt"
    path.write_text(path.read_text(encoding="utf-8").replace("Evidence-Purpose: court", "Evidence-Purpose: un"),
                    encoding="utf-8")
    return "bag-info.txt"


TAMPERINGS = {"payload": tamper_payload, "record": tamper_record, "item record": tamper_items,
              "incident record": tamper_incident,
              "event": tamper_event, "proof": tamper_proof, "salt": tamper_salt, "checkpoint": tamper_checkpoint,
              "signature": tamper_signature, "bag-info": tamper_bag_info}


def test_a_real_bundle_verifies_but_says_authenticity_is_not_established(bundle: Path, bag: Path,
                                                                         fresh_python: Path) -> None:
    for target in (bundle, bag):
        report = verify_bundle(target)
        assert report.ok, report.failures
        assert not report.authenticity and "authenticity NOT established" in report.verdict()
        for kind in ("payload files (sha256)", "payload files (sha512)", "tag files (sha256)", "bundle signature",
                     "checkpoint signature", "events proven in the log", "item commitments",
                     "originals against their records", "record commitments", "export-started event"):
            assert report.checked.get(kind, 0) >= 1, (kind, report.checked)
    assert (bag / "verify.py").read_bytes() == Path("archive/exports/verify_script.py").read_bytes()
    ran = run_verify_py(fresh_python, bag)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "authenticity NOT established" in ran.stdout
    ran = subprocess.run([str(fresh_python), "verify.py", "--json"], capture_output=True, text=True, cwd=bag)
    assert ran.returncode == 0 and json.loads(ran.stdout)["ok"] is True  # default folder: verify.py's own


def test_the_cli_reports_and_exits(archive_home: Cli, bundle: Path, tmp_path: Path) -> None:
    code, out, _ = archive_home("verify-bundle", str(bundle), expect=0)
    assert "events proven in the log" in out and "authenticity NOT established" in out
    vkey = tmp_path / "log.vkey"
    vkey.write_text(log_vkey(archive_home), encoding="ascii")
    report = archive_home.json("verify-bundle", str(bundle), "--vkey", str(vkey))
    assert report["ok"] and report["authenticity_established"] is True
    (tmp_path / "bad.vkey").write_text("not a key\n", encoding="ascii")
    archive_home("verify-bundle", str(bundle), "--vkey", str(tmp_path / "bad.vkey"), expect=2)
    archive_home("verify-bundle", str(tmp_path / "missing.zip"), expect=2)
    (tmp_path / "junk.zip").write_bytes(b"junk" * 100)
    archive_home("verify-bundle", str(tmp_path / "junk.zip"), expect=2)


def test_another_log_key_fails(archive_home: Cli, bag: Path, tmp_path: Path) -> None:
    from archive.custody.checkpoint import Signer

    origin = log_vkey(archive_home).split("+")[0]
    report = verify_bag(str(bag), vkey_text=Signer.generate(origin).verifier.encode())
    assert not report.ok and any("checkpoint.txt" in f or "log.vkey" in f for f in report.failures)


@pytest.mark.parametrize("rehashed", [False, True], ids=["as-is", "rehashed"])
@pytest.mark.parametrize("what", sorted(TAMPERINGS))
def test_tampering_is_detected_by_both(what: str, rehashed: bool, bag: Path, fresh_python: Path,
                                       tmp_path: Path) -> None:
    copy = tmp_path / bag.name
    shutil.copytree(bag, copy)
    tampered = TAMPERINGS[what](copy)
    if rehashed:
        rehash(copy)
    report = verify_bundle(copy)
    assert not report.ok, f"{what} not detected"
    if what == "incident record":  # also by its content: not the state the log commits to
        assert any("differ from its committed state" in f for f in report.failures), report.failures
    if not rehashed:
        assert any(f.startswith(tampered) or tampered in f for f in report.failures), report.failures
    else:  # the re-hashed tag manifest is no longer what signature.note signs
        assert any(f.startswith("signature.note") for f in report.failures) or what in {"signature"}, \
            report.failures
    ran = run_verify_py(fresh_python, copy)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "FAIL " in ran.stdout
    # and in a zip, as received
    zipped = tmp_path / "tampered.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        for path in sorted(copy.rglob("*")):
            if path.is_file():
                archive.write(path, f"{copy.name}/{path.relative_to(copy).as_posix()}")
    assert not verify_bundle(zipped).ok


def test_a_forger_who_re_signs_with_a_new_bundle_key_is_caught(bag: Path, tmp_path: Path) -> None:
    """Replacing bundle.vkey and signature.note: the proven export-started event names the real bundle key."""
    from archive.custody.checkpoint import Signer
    from archive.exports.verify_script import signature_text

    copy = tmp_path / bag.name
    shutil.copytree(bag, copy)
    tamper_payload(copy)
    rehash(copy)
    info = dict(line.split(": ", 1) for line in (copy / "bag-info.txt").read_text(encoding="utf-8").splitlines())
    origin = info["Evidence-Origin"]
    forger = Signer.generate(f"{origin}/bundles")
    vkey = forger.verifier.encode()
    (copy / "data" / "custody" / "bundle.vkey").write_text(vkey + "\n", encoding="ascii")
    rehash(copy)
    digest = hashlib.sha256((copy / "tagmanifest-sha256.txt").read_bytes()).hexdigest()
    (copy / "signature.note").write_text(forger.sign_note(signature_text(origin, info["Evidence-Export-Id"], 1, 1,
                                                                         digest)), encoding="utf-8")
    report = verify_bundle(copy)
    assert report.checked.get("bundle signature") == 1  # the forged signature itself opens
    assert any("bundle key it names is not bundle.vkey" in f for f in report.failures), report.failures
    assert any("originals" in f for f in report.failures)


def test_extra_and_missing_files_fail(bag: Path, tmp_path: Path) -> None:
    copy = tmp_path / bag.name
    shutil.copytree(bag, copy)
    (copy / "data" / "records" / "extra.txt").write_text("hello\n", encoding="utf-8")
    (copy / "notes.txt").write_text("hello\n", encoding="utf-8")
    next((copy / "data" / "records" / "certificates").iterdir()).unlink()
    failures = verify_bundle(copy).failures
    assert any(f.startswith("data/records/extra.txt") for f in failures), failures
    assert any(f.startswith("notes.txt") for f in failures)
    assert any("missing" in f and "certificates" in f for f in failures)
    assert any("Payload-Oxum" in f for f in failures)


def test_a_newer_checkpoint_checks_consistency(archive_home: Cli, bag: Path, tmp_path: Path) -> None:
    size = int((bag / "data" / "custody" / "checkpoint.txt").read_text(encoding="utf-8").split("\n")[1])
    same = tmp_path / "same.txt"
    same.write_text((bag / "data" / "custody" / "checkpoint.txt").read_text(encoding="utf-8"), encoding="utf-8")
    report = verify_bag(str(bag), checkpoint_text=same.read_text(encoding="utf-8"))
    assert report.ok and not report.authenticity and not report.rests_on_checkpoint  # its own copy adds nothing
    assert any("adds nothing" in n for n in report.notes), report.notes
    assert report.as_dict()["authenticity"] == "not established"
    assert "outside the bundle" not in report.text()
    latest = archive_home.json("log", "checkpoint")["tree_size"]
    assert latest > size  # the export's transfer event came after the bundle's checkpoint
    newer = archive_home.json("log", "consistency", str(size), str(latest))
    assert "old_note" in newer and "new_note" in newer, newer
    newer_note = tmp_path / "newer.txt"
    newer_note.write_text(newer["new_note"], encoding="utf-8")
    code, out, _ = archive_home("verify-bundle", str(bag), "--checkpoint", str(newer_note), expect=1)
    assert "consistency" in out  # a bigger tree needs the proof: the JSON document
    document = tmp_path / "consistency.json"
    document.write_text(json.dumps(newer), encoding="utf-8")
    code, out, _ = archive_home("verify-bundle", str(bag), "--checkpoint", str(document), "--json")
    result = json.loads(out)
    assert code == 0 and result["consistency_checked"] is True, result
    # signed by the bundle's own log.vkey only: authenticity rests on where the checkpoint came from
    assert result["authenticity_established"] is False and result["authenticity"] == "rests on the checkpoint you gave"
    assert "outside the bundle" not in result["verdict"] and "rests on the checkpoint you gave" in result["verdict"]
    vkey = tmp_path / "log.vkey"
    vkey.write_text(log_vkey(archive_home), encoding="ascii")
    result = archive_home.json("verify-bundle", str(bag), "--checkpoint", str(document), "--vkey", str(vkey))
    assert result["authenticity_established"] is True and result["consistency_checked"] is True, result
    forged = dict(newer, consistency_proof=[hashlib.sha256(b"x").hexdigest()] * len(newer["consistency_proof"]))
    report = verify_bag(str(bag), consistency=forged)
    assert not report.ok and any(f.startswith("--checkpoint") for f in report.failures)


def test_encrypted_and_tar_bundles(archive_home: Cli, tmp_path: Path) -> None:
    from archive.age import Identity

    identity = Identity.generate()
    key = tmp_path / "key.txt"
    key.write_text(str(identity) + "\n", encoding="ascii")
    encrypted = tmp_path / "sealed.zip.age"
    _export(archive_home, encrypted, "--recipient", str(identity.recipient))
    assert encrypted.read_bytes().startswith(b"age-encryption.org/v1")
    report = verify_bundle(encrypted, identity_path=key)
    assert report.ok, report.failures
    archive_home("verify-bundle", str(encrypted), expect=2)  # no identity
    other = tmp_path / "other.txt"
    other.write_text(str(Identity.generate()) + "\n", encoding="ascii")
    archive_home("verify-bundle", str(encrypted), "--identity", str(other), expect=2)
    tar = tmp_path / "bundle.tar"
    _export(archive_home, tar, "--plaintext", "--format", "tar")
    assert verify_bundle(tar).ok


def test_each_part_of_a_split_export_verifies_on_its_own(archive_home: Cli, tmp_path: Path) -> None:
    result: dict[str, Any] = {}
    for kib in range(160, 400, 6):  # the smallest limit the planner accepts: one original a part
        out = tmp_path / f"split-{kib}.zip"
        code, text, _ = archive_home("export", "--incident", "IDL-7", "--purpose", "court", "--out", str(out),
                                     "--plaintext", "--split-size", f"{kib}K", "--json", expect=None)
        if code == 0:
            result = json.loads(text)
            break
    files = [Path(f["path"]) for f in result["files"]]
    assert len(files) >= 2, result
    for path in files:
        report = verify_bundle(path)
        assert report.ok, (path, report.failures)
        assert report.checked.get("item commitments") == result["counts"]["items"]


def test_a_checkpoint_alone_does_not_establish_authenticity(archive_home: Cli, bundle: Path, bag: Path,
                                                            tmp_path: Path, fresh_python: Path) -> None:
    """Without --vkey a checkpoint opens under the bundle's own log.vkey, which a forger controls: the bag's own
    checkpoint.txt, copied out, must not make it authentic (a forged bundle looks exactly like this)."""
    own = tmp_path / "own.txt"
    own.write_bytes((bag / "data" / "custody" / "checkpoint.txt").read_bytes())
    code, out, _ = archive_home("verify-bundle", str(bundle), "--checkpoint", str(own), expect=0)
    assert "outside the bundle" not in out and "adds nothing" in out and "authenticity NOT established" in out
    result = archive_home.json("verify-bundle", str(bundle), "--checkpoint", str(own))
    assert result["authenticity_established"] is False and result["authenticity"] == "not established", result
    ran = run_verify_py(fresh_python, bag, "--checkpoint", str(own), "--json")
    assert ran.returncode == 0 and json.loads(ran.stdout)["authenticity_established"] is False, ran.stdout
    vkey = tmp_path / "log.vkey"
    vkey.write_text(log_vkey(archive_home), encoding="ascii")
    result = archive_home.json("verify-bundle", str(bundle), "--checkpoint", str(own), "--vkey", str(vkey))
    assert result["authenticity_established"] is True and "outside the bundle" in result["verdict"], result


def test_a_container_with_a_duplicate_member_name_is_refused(archive_home: Cli, bundle: Path, tmp_path: Path) -> None:
    """A forged copy first, the genuine one after: an extractor keeping the first would get the forgery."""
    with zipfile.ZipFile(bundle) as source:
        infos = source.infolist()
        original = next(i for i in infos if "/data/originals/" in i.filename and not i.is_dir())
        doubled = tmp_path / "doubled.zip"
        contents = {i.filename: source.read(i) for i in infos if not i.is_dir()}
        with zipfile.ZipFile(doubled, "w") as target, pytest.warns(UserWarning, match="Duplicate name"):
            target.writestr(original.filename, b"FORGED")
            for name, data in contents.items():
                target.writestr(name, data)
        tar_path = tmp_path / "doubled.tar"
        with tarfile.open(tar_path, "w") as tar:
            member = tarfile.TarInfo(original.filename)
            member.size = 6
            tar.addfile(member, io.BytesIO(b"FORGED"))
            for name, data in contents.items():
                member = tarfile.TarInfo(name)
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
    for path in (doubled, tar_path):
        report = verify_bundle(path)
        assert not report.ok and any(f.startswith(original.filename) and "more than one member" in f
                                     for f in report.failures), (path, report.failures)
        code, out, _ = archive_home("verify-bundle", str(path), expect=1)
        assert original.filename in out


def test_a_bag_folder_entry_that_is_not_a_regular_file_is_refused_unopened(bag: Path, tmp_path: Path,
                                                                          fresh_python: Path) -> None:
    copy = tmp_path / bag.name
    shutil.copytree(bag, copy)
    records = copy / "data" / "records"
    os.mkfifo(records / "pipe")
    (records / "zero").symlink_to("/dev/zero")
    (records / "elsewhere").symlink_to(tmp_path)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(records / "sock"))
    except OSError:  # the path may be too long for a unix socket
        pass
    original = sorted((copy / "data" / "originals").iterdir())[0]
    outside = tmp_path / "outside.bin"
    shutil.copyfile(original, outside)
    original.unlink()
    original.symlink_to(outside)  # the identical bytes, through a symlink
    try:
        report = verify_bundle(copy)  # would hang on the FIFO or /dev/zero if opened
        failures = report.failures
        assert not report.ok
        for name, kind in (("data/records/pipe", "a FIFO"), ("data/records/zero", "a symlink"),
                           ("data/records/elsewhere", "a symlink"),
                           (original.relative_to(copy).as_posix(), "a symlink")):
            assert any(f.startswith(f"{name}: is {kind}") for f in failures), (name, failures)
        ran = subprocess.run([str(fresh_python), str(copy / "verify.py"), str(copy)], capture_output=True,
                             text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
        assert ran.returncode == 1 and "data/records/pipe: is a FIFO" in ran.stdout, ran.stdout + ran.stderr
    finally:
        sock.close()


def test_the_vkey_help_and_unusable_checkpoint_input(archive_home: Cli, bundle: Path, tmp_path: Path,
                                                     fresh_python: Path, bag: Path) -> None:
    _, out, _ = archive_home("verify-bundle", "--help", expect=0)
    assert "`evidence log key`" in out and "log vkey" not in out
    archive_home("log", "key", expect=0)
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"old_note": ', encoding="utf-8")
    wrong_json = tmp_path / "wrong.json"
    wrong_json.write_text('{"old_note": 1}', encoding="utf-8")
    for path in (empty, bad_json, wrong_json, tmp_path / "missing.txt"):
        code, out, err = archive_home("verify-bundle", str(bundle), "--checkpoint", str(path), expect=2)
        assert "checkpoint" in out + err
        ran = run_verify_py(fresh_python, bag, "--checkpoint", str(path))
        assert ran.returncode == 2, (path, ran.stdout + ran.stderr)
