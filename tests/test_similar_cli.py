"""`evidence similar` and candidate links at ingest, end to end through the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from tests.conftest import Cli


def _tree(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_size for p in path.rglob("*") if p.is_file() and "-wal" not in p.name
            and "-shm" not in p.name and not p.name.endswith(".db")}


def test_ingest_records_candidates_and_similar_finds_them(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    media = corpus / "media"
    photo = media / "jpg/gps/DSCN0010.jpg"
    mirrored = tmp_path / "reposted.png"
    with Image.open(photo) as im:
        ImageOps.mirror(im.resize((320, 240))).save(mirrored)
    files = [photo, media / "jpg/gps/DSCN0012.jpg", media / "video/phone_gradients.mp4",
             media / "video/other_sierpinski.webm", media / "video/reshare_gradients_clip.mp4", mirrored]
    reports = cli.json_lines("ingest", *map(str, files))
    ids = {Path(r["path"]).name: r["id"] for r in reports}
    assert all(r["status"] == "preserved" for r in reports)

    # The mirrored re-post is linked to the photo (a candidate, not merged), in both items' views.
    shown = cli.json("show", ids["reposted.png"])
    assert [c["id"] for c in shown["candidates"]] == [ids["DSCN0010.jpg"]]
    assert 0 <= shown["candidates"][0]["distance"] <= 11
    assert [c["id"] for c in cli.json("show", ids["DSCN0010.jpg"])["candidates"]] == [ids["reposted.png"]]
    assert cli.json("show", ids["DSCN0012.jpg"])["candidates"] == []

    # The re-shared clip is linked to its source, not to the unrelated video.
    clip = cli.json("show", ids["reshare_gradients_clip.mp4"])
    assert [c["id"] for c in clip["candidates"]] == [ids["phone_gradients.mp4"]]

    # By item: the item itself excluded; videos report the share of frames that match.
    found = cli.json("similar", ids["phone_gradients.mp4"][:8])
    assert [m["id"] for m in found] == [ids["reshare_gradients_clip.mp4"]]
    assert found[0]["frame_match_share"] >= 0.5 and 0 <= found[0]["distance"] <= 64
    found = cli.json("similar", ids["DSCN0010.jpg"])
    assert [m["id"] for m in found] == [ids["reposted.png"]]

    # One custody event per fingerprinted item, with counts and item ids only.
    from sqlmodel import Session, select

    from archive.catalog.events import Event
    from archive.context import Archive

    archive = Archive.open(cli.home)
    try:
        with Session(archive.engine) as session:
            events = session.exec(select(Event).where(Event.event_type == "fingerprint")).all()
    finally:
        archive.close()
    assert len(events) == len(files)
    for event in events:
        coverage = {"covered_share", "complete"}  # videos: how much was fingerprinted, coarsely
        assert set(event.details) <= {"medium", "candidates", "fingerprinted", "nonce", *coverage}  # arrivals: a nonce
        assert all(c in ids.values() for c in event.details.get("candidates", []))


def test_similar_path_is_compared_never_ingested(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    media = corpus / "media"
    cli("ingest", str(media / "jpg/gps/DSCN0021.jpg"), str(media / "jpg/exif-org/canon-ixus.jpg"))
    before_items = cli.json("list")
    before_files = _tree(cli.home)
    query = tmp_path / "copy.jpg"
    with Image.open(media / "jpg/gps/DSCN0021.jpg") as im:
        im.crop((20, 15, 620, 465)).save(query, quality=35)
    found = cli.json("similar", "--file", str(query))
    assert [m["id"] for m in found] == [next(i["id"] for i in before_items if i["size"] == os.path.getsize(
        media / "jpg/gps/DSCN0021.jpg"))]
    assert cli.json("list") == before_items
    assert _tree(cli.home) == before_files
    assert cli.json("similar", "--file", str(query), "--max-distance", "0") == []
    _, out, _ = cli("similar", "--file", str(query))
    assert "distance" in out


def test_similar_never_reads_a_server_path_named_as_a_target(cli: Cli, corpus: Path) -> None:
    """A target is an item reference, never a file on the server (over HTTP that would probe its files)."""
    cli("ingest", str(corpus / "media/jpg/gps/DSCN0021.jpg"))
    code, _, err = cli("similar", str(corpus / "media/jpg/gps/DSCN0021.jpg"), expect=2)
    assert "no item" in err.lower() or "not an item" in err.lower()
    from archive.context import Archive
    from archive.services.errors import ServiceError
    from archive.similarity import similar_to_item

    archive = Archive.open(cli.home)
    try:
        with pytest.raises(ServiceError):
            similar_to_item(archive, "/etc/passwd")
    finally:
        archive.close()


def test_unfingerprintable_item_records_the_reason(cli: Cli, corpus: Path) -> None:
    report = cli.json_lines("ingest", str(corpus / "media/exiftool/PNG.png"))[0]
    shown = cli.json("show", report["id"])
    assert any(e["step"] == "fingerprint" and "64 px" in e["reason"] for e in shown["errors"])
    assert shown["candidates"] == []
    code, _, err = cli("similar", report["id"], expect=None)
    assert code != 0 and "no fingerprint" in err


def test_fingerprints_and_candidates_on_each_database(
    tmp_path: Path, catalog_url: str, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """64-bit hashes with the top bit set survive sealing; candidates link both ways."""
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    video = corpus / "media/video"
    reports = cli.json_lines("ingest", str(video / "phone_gradients.mp4"), str(video / "reshare_gradients_clip.mp4"))
    source, clip = (r["id"] for r in reports)
    assert [c["id"] for c in cli.json("show", clip)["candidates"]] == [source]
    assert [m["id"] for m in cli.json("similar", source)] == [clip]

    from sqlmodel import Session

    from archive.context import Archive
    from archive.similarity import item_hashes
    from ingest.fingerprints.video import video_hashes

    archive = Archive.open(cli.home)
    try:
        with Session(archive.engine) as session:
            stored = item_hashes(session, archive.runtime.keys.catalog(), source)  # sealed, opened
        assert any(h.value >= 1 << 63 for h in stored)
    finally:
        archive.close()
    assert sorted((h.kind, h.variant, h.offset_ms, h.value) for h in stored) == sorted(
        (h.kind, h.variant, h.offset_ms, h.value) for h in video_hashes(video / "phone_gradients.mp4")
    )


def test_ingest_with_worker_processes(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    """`--workers 2`: reports in input order, the same bytes twice become one item and a duplicate,
    near-duplicates ingested side by side are linked."""
    import shutil

    folder = tmp_path / "batch"
    folder.mkdir()
    names = ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    for name, source in zip(names, ["jpg/gps/DSCN0010.jpg", "jpg/gps/DSCN0012.jpg", "jpg/gps/DSCN0010.jpg",
                                    "jpg/exif-org/canon-ixus.jpg"], strict=True):
        shutil.copy(corpus / "media" / source, folder / name)
    with Image.open(folder / "a.jpg") as im:
        ImageOps.mirror(im).save(folder / "e.png")  # a near-duplicate in flight beside its original
    names.append("e.png")
    reports = cli.json_lines("ingest", "--workers", "2", str(folder))
    assert [Path(r["path"]).name for r in reports] == names
    assert all(r["status"] == "preserved" for r in reports)
    assert reports[0]["id"] == reports[2]["id"]
    assert sorted(r["duplicate"] for r in reports) == [False, False, False, False, True]
    assert len(cli.json("list")) == 4
    # Candidates are searched inside each item's transaction: concurrent near-duplicates still link.
    assert [c["id"] for c in cli.json("show", reports[4]["id"])["candidates"]] == [reports[0]["id"]]
