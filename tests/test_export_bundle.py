"""`evidence export`: bags the reference tools accept, opened by `age -d`, split into valid parts, bounded memory.

The oracles are the Library of Congress `bagit` tool (`python -m bagit --validate`) and the `age` command;
what `verify-bundle` and `verify.py` check is tests/test_verify_bundle.py's.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.test_links import add_incident, add_victim, ingest


def unpack(bundle: Path, into: Path) -> Path:
    """Unzip a plaintext bundle; the one top folder it holds."""
    with zipfile.ZipFile(bundle) as archive:
        names = archive.namelist()
        archive.extractall(into)
    tops = {name.split("/", 1)[0] for name in names}
    assert len(tops) == 1, tops
    return into / tops.pop()


def bagit_validate(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bagit", "--validate", str(folder)], capture_output=True, text=True)


def events_of(home: Path, event_type: str) -> list[Any]:
    from sqlmodel import Session, col, select

    from archive.catalog.events import Event
    from archive.context import Archive

    archive = Archive.open(home)
    try:
        with Session(archive.engine) as session:
            query = select(Event).where(Event.event_type == event_type).order_by(col(Event.seq))
            return list(session.exec(query).all())
    finally:
        archive.close()


@pytest.fixture()
def documented(cli: Cli, corpus: Path) -> dict[str, Any]:
    """Two photos linked to an incident with one consenting victim."""
    jpg = corpus / "media" / "jpg"
    ids = ingest(cli, jpg / "Canon_40D.jpg", jpg / "Nikon_D70.jpg")
    add_incident(cli.home, "IDL-7")
    add_victim(cli.home, "V-1", "IDL-7")
    for scope in ("un_bodies", "courts"):
        cli("victim", "consent", "V-1", "yes", "--scope", scope, "--date", "2023-12-20", "--recorded-by", "team 2")
    for item in ids.values():
        cli("link", item, "--incident", "IDL-7")
    return {"ids": ids, "files": {jpg / name: item for name, item in ids.items()}}


def test_plaintext_bundle_is_a_valid_bag_with_every_original(cli: Cli, documented: dict[str, Any],
                                                               tmp_path: Path) -> None:
    out = tmp_path / "bundle.zip"
    result = cli.json("export", "--incident", "IDL-7", "--purpose", "court", "--out", str(out), "--plaintext")
    assert result["encrypted"] is False and len(result["files"]) == 1
    assert result["files"][0]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    bag = unpack(out, tmp_path / "unpacked")
    checked = bagit_validate(bag)
    assert checked.returncode == 0, checked.stderr
    for source, item in documented["files"].items():
        copies = list((bag / "data" / "originals").glob(f"{item}.*"))
        assert len(copies) == 1 and copies[0].read_bytes() == source.read_bytes()  # bit for bit
        assert (bag / "data" / "records" / "certificates" / f"{item}.pdf").read_bytes().startswith(b"%PDF")
    for name in ("bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt", "tagmanifest-sha256.txt",
                 "tagmanifest-sha512.txt", "signature.note", "README.txt", "verify.py", "withheld.txt",
                 "bagit-profile.json", "data/custody/checkpoint.txt", "data/custody/log.vkey",
                 "data/custody/bundle.vkey", "data/custody/salts.json", "data/records/items.json"):
        assert (bag / name).is_file(), name
    info = (bag / "bag-info.txt").read_text()
    for field in ("Source-Organization", "Contact-Name", "Contact-Email", "External-Description",
                  "External-Identifier", "Bagging-Date", "Payload-Oxum", "Bag-Size", "BagIt-Profile-Identifier"):
        assert f"{field}:" in info, field
    # Nothing in the bag's names says what it holds: originals are named by item id.
    assert not any("Canon" in p.name or "Nikon" in p.name for p in bag.rglob("*"))


def test_two_custody_events_bind_the_export(cli: Cli, documented: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "b.zip"
    result = cli.json("export", "--incident", "IDL-7", "--purpose", "un", "--out", str(out), "--plaintext")
    started = events_of(cli.home, "dissemination")[-1]
    transfer = events_of(cli.home, "transfer")[-1]
    assert started.seq == result["started_event"] and transfer.seq == result["transfer_event"]
    assert started.details["export"] == result["export"] and started.details["purpose"] == "un"
    assert sorted(started.details["items"]) == sorted(documented["ids"].values())
    assert transfer.outcome == "success"
    assert transfer.details["files"] == [{"part": 1, "of": 1, "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}]
    assert str(out) not in json.dumps(transfer.details)  # no file names in the log
    bag = unpack(out, tmp_path / "u")
    assert (bag / "data" / "custody" / "events" / f"{started.seq}.json").is_file()  # covered by the bundle's checkpoint
    assert not (bag / "data" / "custody" / "events" / f"{transfer.seq}.json").exists()


def test_encrypted_to_a_registered_recipient_opens_with_age(cli: Cli, documented: dict[str, Any],
                                                            tmp_path: Path) -> None:
    key = tmp_path / "iiim.key"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    public = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True).stdout.strip()
    cli("recipients", "add", "IIIM", "--age", public, "--kind", "un")
    out = tmp_path / "bundle.zip.age"
    code, _, err = cli("export", "--incident", "IDL-7", "--purpose", "court", "--to", "IIIM", "--out", str(out),
                       expect=2)
    assert "un recipient" in err and not out.exists()  # the recipient's kind fixes the rules
    result = cli.json("export", "--incident", "IDL-7", "--purpose", "un", "--to", "IIIM", "--out", str(out))
    assert result["encrypted"] is True and result["recipients"] == [hashlib.sha256(public.encode()).hexdigest()]
    assert out.read_bytes().startswith(b"age-encryption.org/v1")
    plain = tmp_path / "bundle.zip"
    subprocess.run(["age", "-d", "-i", str(key), "-o", str(plain), str(out)], check=True)
    checked = bagit_validate(unpack(plain, tmp_path / "u"))
    assert checked.returncode == 0, checked.stderr


def test_no_recipient_needs_plaintext_and_nothing_is_overwritten(cli: Cli, documented: dict[str, Any],
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "b.zip"
    _, _, err = cli("export", "--incident", "IDL-7", "--purpose", "un", "--out", str(out), expect=2)
    assert "--plaintext" in err and not out.exists()
    out.write_bytes(b"keep me")
    _, _, err = cli("export", "--incident", "IDL-7", "--purpose", "un", "--out", str(out), "--plaintext", expect=2)
    assert out.read_bytes() == b"keep me"
    _, _, err = cli("export", "--purpose", "un", "--out", str(tmp_path / "c.zip"), "--plaintext", expect=2)
    assert "--incident" in err
    assert list(tmp_path.glob("c*")) == []


def test_tar_serialization_validates(cli: Cli, documented: dict[str, Any], tmp_path: Path) -> None:
    import tarfile

    out = tmp_path / "bundle.tar"
    cli("export", "--incident", "IDL-7", "--purpose", "partner", "--out", str(out), "--plaintext", "--format", "tar")
    with tarfile.open(out) as archive:
        archive.extractall(tmp_path / "t", filter="data")
    (top,) = list((tmp_path / "t").iterdir())
    checked = bagit_validate(top)
    assert checked.returncode == 0, checked.stderr


def test_split_export_makes_parts_each_a_valid_bag(cli: Cli, tmp_path: Path) -> None:
    files = []
    for n in range(5):
        path = tmp_path / f"clip-{n}.bin"
        path.write_bytes(os.urandom(300 * 1024 + n))
        files.append(path)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1400 * 1024))
    ids = ingest(cli, *files, big)
    args = [arg for item in ids.values() for arg in ("--item", item)]
    out = tmp_path / "split.zip"
    limit = 1024 * 1024
    result = cli.json("export", *args, "--purpose", "internal", "--out", str(out), "--plaintext",
                      "--split-size", "1M")
    parts = result["files"]
    assert len(parts) >= 3
    seen: dict[str, int] = {}
    groups = set()
    for written in parts:
        path = Path(written["path"])
        assert path.name.startswith("split-") and f"-of-{len(parts)}.zip" in path.name
        bag = unpack(path, tmp_path / f"p{written['part']}")
        checked = bagit_validate(bag)
        assert checked.returncode == 0, checked.stderr
        originals = list((bag / "data" / "originals").iterdir())
        for original in originals:
            seen[original.stem] = seen.get(original.stem, 0) + 1
        holds_big = any(o.stem == ids["big.bin"] for o in originals)
        if holds_big:
            assert len(originals) == 1  # larger than the limit: alone in its own bag
        else:
            assert path.stat().st_size <= limit, (path, path.stat().st_size)
        info = dict(line.split(": ", 1) for line in (bag / "bag-info.txt").read_text().splitlines() if ": " in line)
        groups.add(info["Bag-Group-Identifier"])
        assert info["Bag-Count"] == f"{written['part']} of {len(parts)}"
    assert seen == {item: 1 for item in ids.values()}  # every original exactly once across the group
    assert groups == {result["export"]}


PEAK = ("import resource, sys\n"
        "from api.cli.main import cli\n"
        "try:\n    cli(sys.argv[1:])\n"
        "except SystemExit as exit:\n    code = exit.code or 0\n"
        "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(code)\n")


def _export_peak(home: Path, item: str, out: Path) -> int:
    done = subprocess.run([sys.executable, "-c", PEAK, "--home", str(home), "export", "--item", item, "--purpose",
                           "internal", "--out", str(out), "--plaintext"], capture_output=True, text=True,
                          env={**os.environ, "EVIDENCE_DEBUG": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    peak = [line for line in done.stderr.splitlines() if line.startswith("PEAK ")]
    return int(peak[-1].split()[1]) * 1024


def _generated(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as stream:
        for n in range(size >> 20):
            stream.write(n.to_bytes(8, "big") + block[8:])


@pytest.mark.slow
def test_memory_does_not_grow_with_the_export(cli: Cli, tmp_path: Path) -> None:
    small, large = tmp_path / "small.bin", tmp_path / "large.bin"
    _generated(small, 256 << 20)
    _generated(large, 2 << 30)
    ids = ingest(cli, small, large)
    small.unlink()
    large.unlink()
    first = _export_peak(cli.home, ids["small.bin"], tmp_path / "small.zip")
    (tmp_path / "small.zip").unlink()
    second = _export_peak(cli.home, ids["large.bin"], tmp_path / "large.zip")
    assert (tmp_path / "large.zip").stat().st_size > 2 << 30
    assert second - first < 20 << 20, (first, second)


def _replicas(home: Path, item: str) -> list[Any]:
    from sqlmodel import Session, col, select

    from archive.catalog.items import Replica
    from archive.context import Archive

    archive = Archive.open(home)
    try:
        with Session(archive.engine) as session:
            query = select(Replica).where(Replica.item_id == item, Replica.role == "original").order_by(col(Replica.id))
            return list(session.exec(query).all())
    finally:
        archive.close()


def test_a_damaged_copy_is_recorded_and_the_good_one_exported(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "clip.bin"
    source.write_bytes(os.urandom(300_000))
    item = ingest(cli, source)["clip.bin"]
    first = _replicas(cli.home, item)[0]
    stored = cli.home / "storage" / first.backend / first.object_name
    data = bytearray(stored.read_bytes())
    data[1000] ^= 1  # inside the first payload chunk: fails before a byte reaches the bag
    stored.write_bytes(bytes(data))
    out = tmp_path / "b.zip"
    cli("export", "--item", item, "--purpose", "internal", "--plaintext", "--out", str(out))
    bag = unpack(out, tmp_path / "u")
    (copy,) = list((bag / "data" / "originals").iterdir())
    assert copy.read_bytes() == source.read_bytes()
    states = {r.backend: r.state for r in _replicas(cli.home, item)}
    assert states[first.backend] == "corrupt"  # found by the read, repaired by the worker
    assert events_of(cli.home, "fixity check")[-1].outcome == "failure"


def test_sigterm_leaves_no_partial_file_and_logs_a_failed_transfer(cli: Cli, tmp_path: Path) -> None:
    import signal
    import time

    big = tmp_path / "big.bin"
    _generated(big, 768 << 20)
    item = ingest(cli, big)["big.bin"]
    big.unlink()
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "b.zip"
    command = [sys.executable, "-c", "from api.cli.main import main; main()", "--home", str(cli.home), "export",
               "--item", item, "--purpose", "internal", "--plaintext", "--out", str(out)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size > (8 << 20) for p in folder.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the partial file holds plaintext
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2, err
    assert "stopped by signal" in err
    assert list(folder.iterdir()) == []  # no partial file with decrypted originals
    transfer = events_of(cli.home, "transfer")[-1]
    assert transfer.outcome == "failure"
