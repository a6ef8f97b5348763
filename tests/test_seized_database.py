"""A seized catalog: whoever takes the database (file, WAL, `pg_dump`) learns nothing that endangers people.

Attacks the promise as a thief would: real ingests of generated files with a
distinctive source, note and original name, and a JPEG carrying a GPS
position, a body serial number and an owner name (written by exiftool); then
a byte search of the raw SQLite file with its WAL, or of a `pg_dump`, for
every one of those values, for each file's SHA-256 (hex, raw, base64), its
exact size (text and the integer as SQLite or PostgreSQL store it), its
commitment salt and its fingerprints. The archive itself, unlocked, still
deduplicates, shows, lists and finds near-duplicates. Last, the thief holds a
known file: nothing the dump holds can be computed from it without the
catalog key (which must not be in the dump either).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli

SOURCE = "Kestrel-Valley-Contact-4471"
NOTE = "Handed over by Amira Haddad at the Zarqa checkpoint"
PHOTO_NAME = "witness_Yusuf_Mansour_2291.jpg"
BLOB_NAME = "ledger_Oksana_Melnyk_8812.bin"
SERIAL = "SN-7Q4X99ZK31"
OWNER = "Rahel Tesfaye Gebremedhin"
LATITUDE, LONGITUDE = 36.201234, 37.163456  # a street corner, not a region


def _photo(path: Path) -> None:
    """A noisy JPEG (fingerprintable, > 1 MB so its size is a 7-digit number) with GPS, serial and owner."""
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool is needed to write the EXIF fields")
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(4471)
    image = Image.effect_noise((1600, 1200), 90).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rng.randrange(1100), rng.randrange(800)
        draw.rectangle((x, y, x + rng.randrange(20, 200), y + rng.randrange(20, 200)),
                       fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    image.save(path, quality=97)
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", f"-BodySerialNumber={SERIAL}", f"-OwnerName={OWNER}",
         f"-SerialNumber={SERIAL}", f"-GPSLatitude={LATITUDE}", "-GPSLatitudeRef=N",
         f"-GPSLongitude={LONGITUDE}", "-GPSLongitudeRef=E", "-Make=Canon", "-Model=Canon EOS 40D", str(path)],
        check=True,
    )


def _dump(catalog_url: str) -> bytes:
    """What a thief gets: the raw SQLite file with its WAL, or a `pg_dump` of the database."""
    if catalog_url.startswith("sqlite"):
        db = Path(catalog_url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
    return subprocess.run(["pg_dump", "--dbname", catalog_url], check=True, capture_output=True).stdout


def forms_of_digest(hex_digest: str) -> list[bytes]:
    """Every way a SHA-256 could sit in a dump: hex either case, raw bytes, base64 (both alphabets)."""
    raw = bytes.fromhex(hex_digest)
    return [hex_digest.encode(), hex_digest.upper().encode(), raw, base64.b64encode(raw),
            base64.b64encode(raw).rstrip(b"="), base64.urlsafe_b64encode(raw).rstrip(b"="),
            b"\\x" + hex_digest.encode()]  # pg_dump's bytea form


def forms_of_size(size: int) -> list[bytes]:
    """A size as text, and as the 4- and 8-byte big-endian integers SQLite and PostgreSQL store."""
    return [str(size).encode(), struct.pack(">I", size), struct.pack(">Q", size), struct.pack("<Q", size)]


def forms_of_float(value: float) -> list[bytes]:
    text = f"{value:.6f}"
    return [text.encode(), text[:-1].encode(), struct.pack(">d", value), struct.pack("<d", value)]


def forms_of_hash(value: int) -> list[bytes]:
    signed = value - (1 << 64) if value >= 1 << 63 else value
    raw = struct.pack(">Q", value)
    return [str(value).encode(), str(signed).encode(), f"{value:016x}".encode(), raw, raw[::-1],
            base64.b64encode(raw).rstrip(b"=")]


def sensitive_texts() -> list[bytes]:
    texts = [SOURCE, NOTE, PHOTO_NAME, BLOB_NAME, SERIAL, OWNER, "Yusuf_Mansour", "Oksana_Melnyk", "Amira Haddad",
             "tester"]
    return [t.encode() for t in texts] + [t.encode("utf-16-le") for t in texts[:6]]


def _held(home: Path) -> dict[str, Any]:
    """What the unlocked archive itself holds, per item: secrets, salt, fingerprints (for the search)."""
    from sqlmodel import Session, select

    from archive.catalog.items import Item
    from archive.catalog.secrets import item_secret
    from archive.context import Archive
    from archive.similarity import item_hashes

    archive = Archive.open(home)
    try:
        keys = archive.runtime.keys.catalog()
        with Session(archive.engine) as session:
            items = session.exec(select(Item)).all()
            return {
                "secrets": {item.id: item_secret(keys, item) for item in items},
                "hashes": [h.value for item in items for h in item_hashes(session, keys, item.id)],
                "key": keys.encode(),
            }
    finally:
        archive.close()


@pytest.fixture()
def seized(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Cli, str, dict[str, Path]]:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    folder = tmp_path / "incoming"
    folder.mkdir()
    files = {"photo": folder / PHOTO_NAME, "blob": folder / BLOB_NAME}
    _photo(files["photo"])
    files["blob"].write_bytes(hashlib.sha256(b"ledger").digest() * 40_000 + b"tail")  # 1 280 004 bytes
    reports = cli.json_lines("ingest", "--source", SOURCE, "--note", NOTE, *map(str, files.values()))
    assert [r["status"] for r in reports] == ["preserved", "preserved"], reports
    return cli, catalog_url, files


def test_a_seized_catalog_holds_no_value_that_identifies_a_file_or_a_person(
    seized: tuple[Cli, str, dict[str, Path]],
) -> None:
    cli, catalog_url, files = seized
    held = _held(cli.home)
    digests = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()}
    # Each value searched for is really in the catalog, sealed: the search means something.
    assert {s.sha256 for s in held["secrets"].values()} == set(digests.values())
    assert {s.size for s in held["secrets"].values()} == {p.stat().st_size for p in files.values()}
    assert all(len(str(p.stat().st_size)) >= 7 for p in files.values())
    assert len(held["hashes"]) >= 6, "the photo has fingerprints"
    shown = [cli.json("show", item_id) for item_id in held["secrets"]]
    provenance = [p for s in shown for p in s["provenance"]]
    assert {p["source"] for p in provenance} == {SOURCE} and {p["note"] for p in provenance} == {NOTE}
    assert {p["original_name"] for p in provenance} == {PHOTO_NAME, BLOB_NAME}
    assert {p["actor_name"] for p in provenance} == {"tester"}
    assert all(p["actor"].startswith("u-") for p in provenance)

    dump = _dump(catalog_url)
    assert len(dump) > 10_000
    wanted: dict[str, list[bytes]] = {"text": sensitive_texts(),
                                      "position": forms_of_float(LATITUDE) + forms_of_float(LONGITUDE),
                                      "catalog key": [line.split()[-1].encode() for line in held["key"].splitlines()
                                                      if line.startswith("catalog-key")]}
    for name, path in files.items():
        wanted[f"{name} sha256"] = forms_of_digest(digests[name])
        wanted[f"{name} size"] = forms_of_size(path.stat().st_size)
    for item_id, secret in held["secrets"].items():
        assert secret.salt is not None
        wanted[f"{item_id} salt"] = forms_of_digest(secret.salt)
    wanted["fingerprints"] = [form for value in held["hashes"] for form in forms_of_hash(value)]
    found = {what: [f for f in forms if f in dump] for what, forms in wanted.items()}
    assert {what: f for what, f in found.items() if f} == {}, "in clear in the seized catalog"


def test_the_archive_still_works_and_the_dump_cannot_confirm_a_known_file(
    seized: tuple[Cli, str, dict[str, Path]], tmp_path: Path,
) -> None:
    from PIL import Image

    cli, catalog_url, files = seized
    listed = cli.json("list")
    assert {i["sha256"] for i in listed} == {hashlib.sha256(p.read_bytes()).hexdigest() for p in files.values()}
    assert {i["size"] for i in listed} == {p.stat().st_size for p in files.values()}
    from archive.catalog.secrets import size_bucket

    assert {i["size_bucket"] for i in listed} == {size_bucket(p.stat().st_size) for p in files.values()}
    assert {i["size_bucket"] for i in listed} <= {"1-2 MiB", "2-4 MiB"}
    photo_id = next(i["id"] for i in listed if i["size"] == files["photo"].stat().st_size)

    # Deduplication by keyed hash: the same bytes under another name are one item with two arrivals.
    again = tmp_path / "renamed.jpg"
    shutil.copy(files["photo"], again)
    [report] = cli.json_lines("ingest", "--source", "second-source", str(again))
    assert report["duplicate"] is True and report["id"] == photo_id
    shown = cli.json("show", photo_id)
    assert [p["source"] for p in shown["provenance"]] == [SOURCE, "second-source"]
    assert shown["metadata"] is not None and shown["metadata"]["latitude"] == pytest.approx(LATITUDE, abs=1e-4)

    # A near-duplicate (resized re-post) is still found after unlock.
    repost = tmp_path / "repost.png"
    with Image.open(files["photo"]) as im:
        im.resize((400, 300)).save(repost)
    [posted] = cli.json_lines("ingest", str(repost))
    assert photo_id in [m["id"] for m in cli.json("similar", posted["id"])]

    # The thief holds the known file: its hash, size and name are nowhere, nor anything keyed on them.
    known = files["photo"].read_bytes()
    dump = _dump(catalog_url)
    digest = hashlib.sha256(known).hexdigest()
    guesses = forms_of_digest(digest) + forms_of_size(len(known)) + [PHOTO_NAME.encode()]
    guesses += forms_of_digest(hashlib.sha256(digest.encode()).hexdigest())  # an unkeyed "lookup" hash
    guesses += forms_of_digest(hashlib.sha256(known).hexdigest().upper())
    assert [g for g in guesses if g in dump] == []
    # Only the keyed hash finds it, and the key is not in the dump (checked above): with the key, it does.
    from sqlmodel import Session

    from archive.catalog.secrets import find_item_by_sha256
    from archive.context import Archive
    from archive.keys.catalog import CatalogKeys

    archive = Archive.open(cli.home)
    try:
        with Session(archive.engine) as session:
            found = find_item_by_sha256(session, archive.runtime.keys.catalog(), digest)
            assert found is not None and found.id == photo_id
            assert find_item_by_sha256(session, CatalogKeys.generate(), digest) is None  # a thief's own key
    finally:
        archive.close()
