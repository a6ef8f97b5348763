"""The bag writer, the bundle output and the part planner (issue 12), without a catalog.

Bags made here must validate with the Library of Congress `bagit` package;
zip and tar; an encrypted output must open with `age -d` and with
archive.age; memory must stay bounded whatever the payload size.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive.age import Identity, decrypt_stream
from archive.custody.checkpoint import Signer
from archive.exports.bag import BagFile, write_bag
from archive.exports.output import open_output
from archive.exports.packing import estimate_overhead, plan_parts
from archive.exports.verify_script import signature_text
from archive.services.errors import ServiceError

bagit = pytest.importorskip("bagit")

NAME = "evidence-bundle-exp-0123456789abcdef"
INFO = {"Source-Organization": "Test archive", "Contact-Name": "Custodian", "Contact-Email": "c@example.org",
        "External-Description": "A test bundle.\nSecond line.", "External-Identifier": "exp-0123456789abcdef",
        "Bagging-Date": "2026-12-01", "Evidence-Export-Id": "exp-0123456789abcdef",
        "Evidence-Origin": "evidence-archive/test", "Evidence-Export-Event": "7"}
TAGS = {"README.txt": b"read me\n", "verify.py": b"print('hi')\n", "withheld.txt": b"nothing\n",
        "bagit-profile.json": b"{}\n"}


def _payload(sizes: dict[str, int], seed: int = 1) -> tuple[list[BagFile], dict[str, bytes]]:
    blobs = {path: hashlib.shake_256(f"{seed}{path}".encode()).digest(size) for path, size in sizes.items()}
    files = [BagFile(path, len(data), lambda data=data: (data[i:i + 70000] for i in range(0, len(data), 70000)))  # type: ignore[misc]
             for path, data in blobs.items()]
    return files, blobs


def _unpack(archive: Path, into: Path) -> Path:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(into)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(into, filter="data")
    (top,) = list(into.iterdir())
    return top


@pytest.fixture()
def signer() -> Signer:
    return Signer.generate("evidence-archive/test/bundles")


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_bag_validates_with_bagit(tmp_path: Path, fmt: str, signer: Signer) -> None:
    files, blobs = _payload({"data/originals/itm-a.jpg": 3 * (1 << 20) + 5, "data/originals/itm-b.bin": 0,
                             "data/records/items.json": 100, "data/custody/events/12.json": 300})
    out = tmp_path / f"bundle.{fmt}"
    with open_output(out) as sink:
        result = write_bag(sink, name=NAME, fmt=fmt, payload=files, bag_info=INFO, tag_files=TAGS,
                           sign=signer.sign_note)
    assert out.read_bytes() and hashlib.sha256(out.read_bytes()).hexdigest() == sink.sha256
    assert sink.size == out.stat().st_size
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert result.files == 4 and result.payload_oxum == f"{sum(map(len, blobs.values()))}.4"
    top = _unpack(out, tmp_path / "x")
    assert top.name == NAME
    bag = bagit.Bag(str(top))
    bag.validate()  # raises on any problem
    assert bag.info["Payload-Oxum"] == result.payload_oxum
    assert bag.info["External-Description"].startswith("A test bundle.")
    assert set(bag.algorithms) == {"sha256", "sha512"}
    for path, data in blobs.items():
        assert (top / path).read_bytes() == data
        assert result.manifest[path] == (hashlib.sha256(data).hexdigest(), hashlib.sha512(data).hexdigest())
    tm = (top / "tagmanifest-sha256.txt").read_bytes()
    assert "signature.note" not in tm.decode() and "tagmanifest-sha512" not in tm.decode()
    note = (top / "signature.note").read_text()
    text = signature_text("evidence-archive/test", "exp-0123456789abcdef", 1, 1, hashlib.sha256(tm).hexdigest())
    assert note.startswith(text + "\n")
    for tag in TAGS:
        assert f"  {tag}\n" in tm.decode()


def test_split_part_signature_and_bag_count(tmp_path: Path, signer: Signer) -> None:
    files, _ = _payload({"data/originals/itm-a.jpg": 10})
    out = tmp_path / "b.zip"
    info = {**INFO, "Bag-Group-Identifier": "exp-0123456789abcdef", "Bag-Count": "2 of 3"}
    with open_output(out) as sink:
        write_bag(sink, name=NAME + "-2-of-3", fmt="zip", payload=files, bag_info=info, tag_files=TAGS,
                  sign=signer.sign_note)
    top = _unpack(out, tmp_path / "x")
    bagit.Bag(str(top)).validate()
    assert "part 2 of 3\n" in (top / "signature.note").read_text()


def test_zip_written_to_a_pipe_like_stream(signer: Signer) -> None:
    class Pipe:  # write only: no seek, no tell
        def __init__(self) -> None:
            self.buf = io.BytesIO()

        def write(self, data: bytes) -> int:
            return self.buf.write(data)

    files, blobs = _payload({"data/a.bin": 5000, "data/b.bin": 2 * (1 << 20)})
    pipe = Pipe()
    with open_output(None, stream=pipe) as sink:  # type: ignore[arg-type]
        write_bag(sink, name=NAME, fmt="zip", payload=files, bag_info=INFO, tag_files=TAGS, sign=signer.sign_note)
    raw = pipe.buf.getvalue()
    assert sink.sha256 == hashlib.sha256(raw).hexdigest() and sink.size == len(raw)
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        assert zf.testzip() is None
        assert zf.read(f"{NAME}/data/b.bin") == blobs["data/b.bin"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())


def test_encrypted_output_opens_with_archive_age(tmp_path: Path, signer: Signer) -> None:
    identity = Identity.generate()
    files, blobs = _payload({"data/a.bin": 200_000})
    out = tmp_path / "b.zip.age"
    with open_output(out, recipients=[identity.recipient]) as sink:
        write_bag(sink, name=NAME, fmt="zip", payload=files, bag_info=INFO, tag_files=TAGS, sign=signer.sign_note)
    raw = out.read_bytes()
    assert raw.startswith(b"age-encryption.org/v1\n")
    assert sink.sha256 == hashlib.sha256(raw).hexdigest()
    with out.open("rb") as stream:
        plain = b"".join(decrypt_stream(stream, [identity]))
    with zipfile.ZipFile(io.BytesIO(plain)) as zf:
        assert zf.read(f"{NAME}/data/a.bin") == blobs["data/a.bin"]


@pytest.mark.skipif(shutil.which("age") is None or shutil.which("age-keygen") is None, reason="age not installed")
@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_encrypted_output_opens_with_age_cli(tmp_path: Path, fmt: str, signer: Signer) -> None:
    from archive.age import Recipient

    key = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    public = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True).stdout.strip()
    files, _ = _payload({"data/originals/itm-a.mp4": 1_500_000, "data/records/items.json": 10})
    out = tmp_path / f"b.{fmt}.age"
    with open_output(out, recipients=[Recipient.parse(public)]) as sink:
        write_bag(sink, name=NAME, fmt=fmt, payload=files, bag_info=INFO, tag_files=TAGS, sign=signer.sign_note)
    plain = tmp_path / f"b.{fmt}"
    subprocess.run(["age", "-d", "-i", str(key), "-o", str(plain), str(out)], check=True)
    bagit.Bag(str(_unpack(plain, tmp_path / "x"))).validate()


def test_output_refuses_existing_and_cleans_up(tmp_path: Path, signer: Signer) -> None:
    out = tmp_path / "b.zip"
    out.write_bytes(b"keep")
    with pytest.raises(ServiceError, match="already exists"), open_output(out):
        pass
    assert out.read_bytes() == b"keep"

    def broken() -> Iterator[bytes]:
        yield b"x" * 1000
        raise RuntimeError("storage went away")

    fresh = tmp_path / "c.zip"
    with pytest.raises(RuntimeError), open_output(fresh) as sink:
        write_bag(sink, name=NAME, fmt="zip", payload=[BagFile("data/a", None, broken)], bag_info=INFO,
                  tag_files=TAGS, sign=signer.sign_note)
    assert sorted(os.listdir(tmp_path)) == ["b.zip"]


def test_declared_size_is_enforced(tmp_path: Path, signer: Signer) -> None:
    for fmt in ("zip", "tar"):
        with pytest.raises(ServiceError, match="declared"), open_output(tmp_path / f"d.{fmt}") as sink:
            write_bag(sink, name=NAME, fmt=fmt, payload=[BagFile("data/a", 5, lambda: iter((b"123456",)))],
                      bag_info=INFO, tag_files=TAGS, sign=signer.sign_note)
    with pytest.raises(ServiceError, match="size"), open_output(tmp_path / "e.tar") as sink:
        write_bag(sink, name=NAME, fmt="tar", payload=[BagFile("data/a", None, lambda: iter((b"1",)))],
                  bag_info=INFO, tag_files=TAGS, sign=signer.sign_note)
    with pytest.raises(ServiceError, match="data/"), open_output(tmp_path / "f.zip") as sink:
        write_bag(sink, name=NAME, fmt="zip", payload=[BagFile("../x", 1, lambda: iter((b"1",)))],
                  bag_info=INFO, tag_files=TAGS, sign=signer.sign_note)
    assert not list(tmp_path.iterdir())


def test_plan_parts() -> None:
    sizes = {"a": 60, "b": 50, "c": 40, "d": 30, "e": 500, "f": 5}
    parts = plan_parts(sizes, overhead=10, per_file=0, limit=100)
    assert parts == [["e"], ["a", "d"], ["b", "c"], ["f"]]  # e alone (over the limit), then first fit
    for part in parts:
        if part != ["e"]:
            assert 10 + sum(sizes[i] for i in part) <= 100
    assert plan_parts(sizes, overhead=10, per_file=0, limit=None) == [sorted(sizes)]
    assert plan_parts({}, overhead=10, per_file=0, limit=100) == [[]]
    with pytest.raises(ServiceError):
        plan_parts(sizes, overhead=100, per_file=1, limit=100)
    assert estimate_overhead("zip", {"data/records/items.json": 100}, name=NAME) > 100
    assert estimate_overhead("zip", {"x": 100}, recipients=1) > estimate_overhead("zip", {"x": 100})


def _peak_rss_of(size: int, tmp_path: Path) -> int:
    """Write a bag with one generated original of `size` bytes (encrypted, zip) in a child; its peak RSS (KiB)."""
    script = f"""
import resource, sys
from archive.age import Identity
from archive.custody.checkpoint import Signer
from archive.exports.bag import BagFile, write_bag
from archive.exports.output import open_output
block = bytes(range(256)) * 256
def chunks():
    left = {size}
    while left:
        n = min(left, len(block)); left -= n
        yield block[:n]
signer = Signer.generate("o/bundles")
with open_output(__import__("pathlib").Path(sys.argv[1]), recipients=[Identity.generate().recipient]) as sink:
    write_bag(sink, name="b", fmt="zip", payload=[BagFile("data/big.bin", {size}, chunks)], bag_info={{}},
              tag_files={{}}, sign=signer.sign_note)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    out = tmp_path / f"big-{size}.zip.age"
    done = subprocess.run([sys.executable, "-c", script, str(out)], check=True, capture_output=True, text=True)
    assert out.stat().st_size > size
    out.unlink()
    return int(done.stdout.strip())


def test_memory_bounded(tmp_path: Path) -> None:
    small = _peak_rss_of(32 << 20, tmp_path)
    large = _peak_rss_of(512 << 20, tmp_path)
    assert large - small < 20 * 1024, (small, large)
