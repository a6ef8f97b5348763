"""Sealed metadata and fingerprints: a stolen catalog holds no place, device, owner, signer or fingerprint.

Attacks the promise directly: real ingests of corpus files that carry GPS
positions, serial numbers, an owner name and a C2PA signature, then a byte
search of the raw SQLite file (and its WAL) or a `pg_dump`; the coarse cell
checked against its size on the ground; the box search against positions
chosen on both sides of its edges; the near-duplicate search with and
without the key; sealed values swapped between rows.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import math
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text as sa_text

from tests.conftest import Cli

SIGNER_CN = "Kestrel Witness 7731"
SIGNER_ORG = "Zanzibar Media Collective"


def _signed_jpeg(corpus: Path) -> bytes:
    """A corpus JPEG signed with C2PA by a throwaway certificate naming a distinctive signer."""
    c2pa = pytest.importorskip("c2pa")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, SIGNER_ORG)])

    now = datetime.datetime.now(datetime.UTC)
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=9)
    root = (
        x509.CertificateBuilder(subject_name=name("Root CA 7731"), issuer_name=name("Root CA 7731"),
                                not_valid_before=start, not_valid_after=end)
        .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder(subject_name=name(SIGNER_CN), issuer_name=root.subject,
                                not_valid_before=start, not_valid_after=end)
        .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    chain = leaf.public_bytes(pem) + root.public_bytes(pem)
    key = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", chain, key, None))
    manifest = {"claim_generator_info": [{"name": "evidence-test", "version": "1"}], "title": "x.jpg",
                "format": "image/jpeg", "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.created",
                     "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"}]}}]}
    out = io.BytesIO()
    with c2pa.Builder(json.dumps(manifest)) as builder:
        builder.sign(signer, "image/jpeg", io.BytesIO((corpus / "media/jpg/Canon_40D.jpg").read_bytes()), out)
    return out.getvalue()


# (corpus file, values it carries that identify a person or a device)
SENSITIVE = {
    "exiftool/GPS.jpg": ["FUJIFILM", "FinePixS1Pro"],
    "jpg/gps/DSCN0010.jpg": ["COOLPIX"],
}
OWNER, SERIAL = "Amina Okonkwo-Qadir", "SN7731QX0042"


def _owned_jpeg(corpus: Path) -> bytes:
    """A corpus photo (with GPS) whose EXIF names its owner (Artist, CameraOwnerName) and body serial number."""
    from PIL import Image

    with Image.open(corpus / "media/jpg/gps/DSCN0021.jpg") as image:
        exif = image.getexif()
        exif[0x013B] = OWNER
        exif.get_ifd(0x8769).update({0xA430: OWNER, 0xA431: SERIAL})
        out = io.BytesIO()
        image.save(out, "JPEG", exif=exif, quality=90)
    return out.getvalue()
POSITIONS = {"exiftool/GPS.jpg": (54.9896666666667, -1.91416666666667),
             "jpg/gps/DSCN0010.jpg": (43.4674483333333, 11.8851266666639)}


def _ingest_sensitive(cli: Cli, corpus: Path, tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in SENSITIVE:
        shutil.copy(corpus / "media" / name, folder / Path(name).name)
    (folder / "signed.jpg").write_bytes(_signed_jpeg(corpus))
    (folder / "owned.jpg").write_bytes(_owned_jpeg(corpus))
    ids = {}
    for report in cli.json_lines("ingest", *sorted(str(p) for p in folder.iterdir())):
        assert report["status"] == "preserved", report
        ids[Path(report["path"]).name if "path" in report else report["id"]] = report["id"]
    return ids


def _dump(cli: Cli, catalog_url: str) -> bytes:
    """What a thief gets: the raw SQLite file with its WAL, or a pg_dump of the database."""
    if catalog_url.startswith("sqlite"):
        db = Path(catalog_url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
    return subprocess.run(["pg_dump", "--dbname", catalog_url], check=True, capture_output=True).stdout


def _forms_of_float(value: float) -> list[bytes]:
    text = repr(value)
    return [text[: text.index(".") + 6].encode(), struct.pack(">d", value), struct.pack("<d", value)]


def _forms_of_hash(value: int) -> list[bytes]:
    signed = value - (1 << 64) if value >= 1 << 63 else value
    raw = struct.pack(">Q", value)
    return [str(value).encode(), str(signed).encode(), f"{value:016x}".encode(), raw, raw[::-1],
            base64.b64encode(raw).rstrip(b"=")]


def test_a_stolen_catalog_holds_no_metadata_nor_fingerprint(
    tmp_path: Path, corpus: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    ids = _ingest_sensitive(cli, corpus, tmp_path)
    shown = {item["id"]: cli.json("show", item["id"]) for item in cli.json("list")}
    # The archive itself still knows everything: show opens the sealed fields.
    makes = {s["metadata"]["make"] for s in shown.values() if s["metadata"]}
    assert {"FUJIFILM", "Canon", "NIKON"} <= makes  # Canon: the C2PA-signed Canon_40D.jpg
    located = [s["metadata"] for s in shown.values() if s["metadata"] and s["metadata"]["latitude"] is not None]
    assert any(abs(m["latitude"] - 54.98966) < 1e-4 for m in located)

    from sqlmodel import Session, select

    from archive.catalog.metadata import ItemMetadata, metadata_fields
    from archive.context import Archive
    from archive.similarity import item_hashes

    archive = Archive.open(cli.home)
    try:
        keys = archive.runtime.keys.catalog()
        with Session(archive.engine) as session:
            per_item = {item_id: item_hashes(session, keys, item_id) for item_id in shown}
            hashes = [h for found in per_item.values() for h in found]
            opened = json.dumps([metadata_fields(keys, row) for row in session.exec(select(ItemMetadata))])
    finally:
        archive.close()
    # Each value searched for below is really held by the catalog (sealed), so the search means something.
    for value in [SIGNER_CN, OWNER, SERIAL, *(v for values in SENSITIVE.values() for v in values)]:
        assert value in opened, value
    assert sum(1 for found in per_item.values() if found) >= 3, "the photos have fingerprints"

    dump = _dump(cli, catalog_url)
    secrets: list[bytes] = [SIGNER_CN.encode(), SIGNER_ORG.encode(), OWNER.encode(), SERIAL.encode()]
    secrets += [v.encode() for values in SENSITIVE.values() for v in values]
    for lat, lon in POSITIONS.values():
        secrets += _forms_of_float(lat) + _forms_of_float(lon)
    found = [s for s in secrets if s in dump]
    assert found == [], f"in clear in the stolen catalog: {found}"
    leaked = [h for h in hashes if any(form in dump for form in _forms_of_hash(h.value))]
    assert leaked == [], f"{len(leaked)} fingerprints in clear in the stolen catalog"
    assert len(ids) == len(SENSITIVE) + 2


def test_the_clear_location_cell_is_no_finer_than_10_km() -> None:
    import random

    from archive.catalog.metadata import cell_bounds, coarse_cell

    def km_east_west(lat: float, west: float, east: float) -> float:
        return 6371.0 * math.radians(east - west) * math.cos(math.radians(lat))

    rng = random.Random(9)
    points = [(rng.uniform(-90, 90), rng.uniform(-180, 180)) for _ in range(20000)]
    points += [(54.9896666666667, -1.91416666666667), (89.99, 3.0), (-89.99, -179.99), (0.0, 0.0), (69.6, 18.9)]
    for lat, lon in points:
        cell = coarse_cell(lat, lon)
        assert cell is not None
        south, west, north, east = cell_bounds(cell)
        assert south - 1e-9 <= lat <= north + 1e-9 and west - 1e-9 <= lon <= east + 1e-9
        assert 6371.0 * math.radians(north - south) >= 10.0
        poleward = max(abs(south), abs(north))
        if poleward < 89.9:  # the polar caps: one cell round the pole, wider than any
            assert km_east_west(min(poleward, 90.0), west, east) >= 10.0, (lat, lon, cell)
    assert coarse_cell(None, 3.0) is None and coarse_cell(91.0, 0.0) is None


def _set_positions(home: Path, positions: dict[str, tuple[float, float] | None]) -> None:
    """Give items chosen positions (their rows rewritten as ingest writes them, sealed)."""
    from archive.catalog.metadata import ItemMetadata, metadata_fields, new_metadata
    from archive.catalog.sealing import Sealer
    from archive.context import Archive
    from archive.db import transaction

    archive = Archive.open(home)
    try:
        keys = archive.runtime.keys.catalog()
        with transaction(archive.engine) as session:
            for item_id, position in positions.items():
                row = session.get(ItemMetadata, item_id)
                assert row is not None
                fields = metadata_fields(keys, row)
                fields["latitude"], fields["longitude"] = position or (None, None)
                fresh = new_metadata(Sealer(keys), item_id, fields, detected_type=row.detected_type)
                session.delete(row)
                session.flush()
                session.add(fresh)
    finally:
        archive.close()


def test_box_search_finds_exactly_the_items_inside(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    for n in range(7):
        (folder / f"note{n}.txt").write_text(f"statement {n}\n")
    ids = [r["id"] for r in cli.json_lines("ingest", *sorted(str(p) for p in folder.iterdir()))]
    box = (43.4670, 11.8840, 43.4680, 11.8860)
    positions: dict[str, tuple[float, float] | None] = {
        ids[0]: (43.4674, 11.8851),  # inside
        ids[1]: (43.4670, 11.8840),  # on the corner: inside
        ids[2]: (43.4681, 11.8851),  # 11 m north of the box, same coarse cell
        ids[3]: (43.4674, 11.8839),  # 8 m west of it, same cell
        ids[4]: (-33.9, 18.4),  # far away
        ids[5]: None,  # no position
        ids[6]: (43.4680, 11.8860),  # the opposite corner: inside
    }
    _set_positions(cli.home, positions)
    from archive.catalog.metadata import coarse_cell

    assert coarse_cell(43.4681, 11.8851) == coarse_cell(43.4674, 11.8851)  # the cell alone cannot tell them apart
    inside = sorted([ids[0], ids[1], ids[6]])
    text = ",".join(map(str, box))
    assert sorted(item["id"] for item in cli.json("list", "--box", text)) == inside
    swapped = f"{box[2]},{box[1]},{box[0]},{box[3]}"  # latitudes in the other order: the same box
    assert sorted(item["id"] for item in cli.json("list", "--box", swapped)) == inside
    # A box spanning far more cells than are listed opens every located item and still filters exactly.
    assert sorted(item["id"] for item in cli.json("list", "--box", "-60,-20,60,20")) == sorted([*inside, ids[2],
                                                                                              ids[3], ids[4]])
    _, _, err = cli("list", "--box", "43.4,11.8,43.5", expect=2)
    assert "LAT1,LON1,LAT2,LON2" in err


def test_a_box_across_the_antimeridian_is_refused_not_turned_inside_out(cli: Cli, tmp_path: Path) -> None:
    """`36,179,37,-179` once had its corners sorted: -179 to 179, the whole band but the box meant."""
    folder = tmp_path / "files"
    folder.mkdir()
    for n in range(3):
        (folder / f"note{n}.txt").write_text(f"statement {n}\n")
    ids = [r["id"] for r in cli.json_lines("ingest", *sorted(str(p) for p in folder.iterdir()))]
    _set_positions(cli.home, {ids[0]: (36.5, 37.13), ids[1]: (36.5, 179.5), ids[2]: (36.5, -179.5)})
    for across in ("36,179,37,-179", "37,179,36,-179", "43.4680,11.8860,43.4670,11.8840"):  # west east of east
        code, out, err = cli("list", "--box", across, expect=1)
        assert "a box across the antimeridian is not supported; search each side" in err and not out.strip(), across
    assert [item["id"] for item in cli.json("list", "--box", "36,179,37,180")] == [ids[1]]  # each side alone
    assert [item["id"] for item in cli.json("list", "--box", "36,-180,37,-179")] == [ids[2]]
    assert sorted(item["id"] for item in cli.json("list", "--box", "36,-180,37,180")) == sorted(ids)  # the band


def _lock(home: Path) -> Path:
    """Take the catalog key away (as `evidence lock` would); returns where it went."""
    aside = home.parent / "catalog.key.aside"
    (home / "keys" / "catalog.key").rename(aside)
    return aside


def test_similar_works_after_unlock_and_says_when_locked(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    from PIL import Image

    source = corpus / "media/jpg/gps/DSCN0010.jpg"
    smaller = tmp_path / "reshared.jpg"
    with Image.open(source) as image:
        image.convert("RGB").resize((image.width // 2, image.height // 2)).save(smaller, quality=70)
    original, copy = (r["id"] for r in cli.json_lines("ingest", str(source), str(smaller)))
    assert [c["id"] for c in cli.json("show", copy)["candidates"]] == [original]
    assert [m["id"] for m in cli.json("similar", original)] == [copy]
    aside = _lock(cli.home)
    code, out, err = cli("similar", original, expect=None)
    assert code != 0 and "unlock" in err and copy not in out
    code, _, err = cli("similar", "--file", str(smaller), expect=None)
    assert code != 0 and "unlock" in err
    aside.rename(cli.home / "keys" / "catalog.key")
    assert [m["id"] for m in cli.json("similar", "--file", str(smaller))][:1] in ([original], [copy])
    assert {m["id"] for m in cli.json("similar", "--file", str(smaller))} == {original, copy}


def test_a_sealed_value_moved_to_another_row_does_not_open(cli: Cli, corpus: Path) -> None:
    from sqlmodel import Session, select

    from archive.catalog.fingerprints import ItemFingerprints, open_hashes
    from archive.catalog.metadata import ItemMetadata, metadata_fields
    from archive.context import Archive
    from archive.keys.catalog import CatalogKeyError

    a, b = (r["id"] for r in cli.json_lines(
        "ingest", str(corpus / "media/jpg/gps/DSCN0010.jpg"), str(corpus / "media/jpg/gps/DSCN0012.jpg")))
    archive = Archive.open(cli.home)
    try:
        keys = archive.runtime.keys.catalog()
        with Session(archive.engine) as session:
            rows: dict[str, Any] = {r.item_id: r for r in session.exec(select(ItemMetadata))}
            prints = {r.item_id: r for r in session.exec(select(ItemFingerprints))}
            assert metadata_fields(keys, rows[a])["make"] == "NIKON"
            rows[b].sealed, rows[b].key_version = rows[a].sealed, rows[a].key_version  # the thief's swap
            with pytest.raises(CatalogKeyError):
                metadata_fields(keys, rows[b])
            assert open_hashes(keys, a, prints[a].key_version, prints[a].sealed)
            with pytest.raises(CatalogKeyError):
                open_hashes(keys, b, prints[a].key_version, prints[a].sealed)
            session.rollback()
    finally:
        archive.close()


def test_legacy_plaintext_rows_are_sealed_resumably_and_cleared(
    tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catalog analysed before sealing: migration 0008 sets the plaintext aside, the unlocked run seals it."""
    from alembic import command
    from alembic.config import Config

    import archive.catalog.fingerprints as fingerprints
    from archive.catalog.metadata import ItemMetadata, coarse_cell, metadata_fields
    from archive.db import MIGRATIONS, make_engine, migrate
    from archive.keys.catalog import CatalogKeys
    from archive.services.legacy_analysis import seal_legacy_analysis

    engine = make_engine(catalog_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        for revision in ("0002", "0003", "0004", "0005", "0006"):
            command.upgrade(config, revision)
    items = [f"00000000-0000-4000-8000-00000000000{n}" for n in range(3)]
    with engine.begin() as conn:
        for n, item_id in enumerate(items):
            conn.execute(sa_text("INSERT INTO items (id, sha256, size, media_type, status, created_at) "
                                 "VALUES (:i, :h, 10, 'image/jpeg', 'preserved', '2024-01-01T00:00:00Z')"),
                         {"i": item_id, "h": f"{n:064x}"})
            conn.execute(sa_text(
                "INSERT INTO item_metadata (item_id, media_type, captured_at, latitude, longitude, make, raw, errors, "
                "parsers, extracted_at) VALUES (:i, 'image/jpeg', '2023-05-06T07:08:09', :lat, 11.885, :make, :raw, "
                "'[]', '[\"exifread\"]', '2024-01-01T00:00:00Z')"),
                {"i": item_id, "lat": 43.4674 + n, "make": f"LegacyMake{n}", "raw": json.dumps({"Owner": OWNER})})
            for k, kind in enumerate(("phash", "dhash")):
                conn.execute(sa_text("INSERT INTO fingerprints (item_id, kind, variant, offset_ms, value) "
                                     "VALUES (:i, :k, 'full', 0, :v)"),
                             {"i": item_id, "k": kind, "v": -(7 + n * 10 + k)})
    migrate(engine)
    keys = CatalogKeys.generate()
    calls = 0
    real = fingerprints.replace_hashes

    def dies_on_the_second(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("killed")
        real(*args)

    monkeypatch.setattr(fingerprints, "replace_hashes", dies_on_the_second)
    with pytest.raises(RuntimeError):
        seal_legacy_analysis(engine, keys, batch=1)
    assert seal_legacy_analysis(engine, keys, batch=1) >= 2  # resumes where the first run stopped
    from sqlmodel import Session, select

    from archive.similarity import item_hashes

    with Session(engine) as session:
        rows = {r.item_id: r for r in session.exec(select(ItemMetadata))}
        for n, item_id in enumerate(items):
            fields = metadata_fields(keys, rows[item_id])
            assert fields["make"] == f"LegacyMake{n}" and fields["raw"] == {"Owner": OWNER}
            assert rows[item_id].captured_day == "2023-05-06"
            assert rows[item_id].location_cell == coarse_cell(43.4674 + n, 11.885)
            got = sorted((h.kind, h.value) for h in item_hashes(session, keys, item_id))
            assert got == sorted([("phash", (1 << 64) - (7 + n * 10)), ("dhash", (1 << 64) - (8 + n * 10))])
    tables = set(sa_inspect(engine).get_table_names())
    assert not tables & {"legacy_item_metadata", "legacy_fingerprints", "fingerprints"}
    with engine.connect() as conn:
        columns = {c["name"] for c in sa_inspect(conn).get_columns("item_metadata")}
    assert not columns & {"latitude", "longitude", "make", "raw", "captured_at"}
    engine.dispose()


def test_a_locked_ingest_keeps_metadata_and_fingerprints_pending_then_settled(cli: Cli, corpus: Path) -> None:
    """Locked: the rows are sealed to the recipients (no lookup, no index); unlocked: settled and searchable."""
    import sqlite3

    source = corpus / "media/jpg/gps/DSCN0010.jpg"
    (first,) = cli.json_lines("ingest", str(source))
    aside = _lock(cli.home)
    copy = cli.home.parent / "copy.jpg"
    from PIL import Image

    with Image.open(source) as image:  # a re-shared copy, its EXIF (device, place) kept
        image.convert("RGB").resize((image.width // 2, image.height // 2)).save(
            copy, quality=70, exif=image.info["exif"])
    (locked,) = cli.json_lines("ingest", str(copy))
    assert locked["status"] == "preserved"
    with sqlite3.connect(cli.home / "catalog.db") as db:
        meta = db.execute("SELECT key_version, location_cell, captured_day FROM item_metadata WHERE item_id = ?",
                          (locked["id"],)).fetchone()
        prints = db.execute("SELECT key_version FROM item_fingerprints WHERE item_id = ?", (locked["id"],)).fetchone()
    from archive.catalog.metadata import coarse_cell

    assert meta == (0, coarse_cell(43.4674483333333, 11.8851266666639), "2008-10-22")
    assert prints == (0,)
    dump = (cli.home / "catalog.db").read_bytes() + (cli.home / "catalog.db-wal").read_bytes()
    assert b"COOLPIX" not in dump and b"NIKON" not in dump
    aside.rename(cli.home / "keys" / "catalog.key")  # unlocked: the next use case settles
    shown = cli.json("show", locked["id"])
    assert shown["metadata"]["make"] == "NIKON" and abs(shown["metadata"]["latitude"] - 43.46744833) < 1e-6
    with sqlite3.connect(cli.home / "catalog.db") as db:
        versions = {v for (v,) in db.execute("SELECT key_version FROM item_metadata UNION "
                                             "SELECT key_version FROM item_fingerprints")}
    assert versions == {1}
    assert [m["id"] for m in cli.json("similar", first["id"])] == [locked["id"]]
    # No candidate could be suggested while locked; once settled, the search runs for the item.
    assert cli.json("show", locked["id"])["candidates"] == []
    from archive.context import Archive
    from archive.db import transaction
    from archive.similarity import suggest_for_settled

    archive = Archive.open(cli.home)
    try:
        with transaction(archive.engine) as session:
            assert suggest_for_settled(session, archive.runtime.keys.catalog(), locked["id"]) == [first["id"]]
        with transaction(archive.engine) as session:
            assert suggest_for_settled(session, archive.runtime.keys.catalog(), locked["id"]) == []  # once only
    finally:
        archive.close()
    assert [c["id"] for c in cli.json("show", locked["id"])["candidates"]] == [first["id"]]
