"""Metadata through the pipeline: `evidence ingest`, then `evidence show --json`."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests import hostile_files as h
from tests.conftest import Cli


def ingest_one(cli: Cli, path: Path) -> dict:
    (report,) = cli.json_lines("ingest", str(path))
    assert report["status"] == "preserved", report
    return cli.json("show", report["id"])


def test_show_gives_normalized_metadata_and_errors(cli: Cli, corpus: Path) -> None:
    shown = ingest_one(cli, corpus / "media" / "exiftool" / "GPS.jpg")
    assert shown["metadata"] == {
        "media_type": "image/jpeg", "captured_at": "2002-07-13T15:58:28",
        "latitude": shown["metadata"]["latitude"], "longitude": shown["metadata"]["longitude"], "altitude": None,
        "make": "FUJIFILM", "model": "FinePixS1Pro", "orientation": 1, "width": 120, "height": 80, "duration": None,
    }
    assert abs(shown["metadata"]["latitude"] - 54.9896666666667) < 1e-5
    assert abs(shown["metadata"]["longitude"] + 1.91416666666667) < 1e-5
    assert [e for e in shown["errors"] if e["step"] in ("identify", "metadata")] == []


def test_video_metadata_and_parser_failures_reach_the_item(cli: Cli, corpus: Path) -> None:
    mkv = ingest_one(cli, corpus / "media" / "exiftool" / "Matroska.mkv")
    assert mkv["metadata"]["duration"] == 148.608 and mkv["metadata"]["width"] == 704
    assert any(e["step"] == "metadata" and e["reason"].startswith("pyav") for e in mkv["errors"])
    mp4 = ingest_one(cli, corpus / "media" / "video" / "phone_gradients.mp4")
    assert mp4["metadata"]["captured_at"] == "2021-02-14T11:20:00" and mp4["metadata"]["duration"] == 12.0


def test_custody_event_names_parsers_but_no_personal_details(cli: Cli, corpus: Path) -> None:
    shown = ingest_one(cli, corpus / "media" / "jpg" / "gps" / "DSCN0010.jpg")
    with sqlite3.connect(cli.home / "catalog.db") as db:
        rows = db.execute(
            "SELECT outcome, details FROM events WHERE event_type = 'metadata extraction' AND item_id = ?",
            (shown["id"],),
        ).fetchall()
    assert len(rows) == 1
    outcome, details = rows[0][0], json.loads(rows[0][1])
    assert outcome == "success" and "exifread" in details["parsers"]
    text = json.dumps(details)
    assert "43.46" not in text and "NIKON" not in text and "COOLPIX" not in text


def test_hostile_files_are_preserved_with_reasons(cli: Cli, tmp_path: Path, corpus: Path) -> None:
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(h.png_bomb())
    (folder / "polyglot.jpg").write_bytes(h.polyglot((corpus / "media" / "jpg" / "Canon_40D.jpg").read_bytes()))
    video = (corpus / "media" / "video" / "phone_gradients.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(video[: len(video) - 300])
    (folder / "nested.jpg").write_bytes(h.jpeg_with_app1(b"http://ns.adobe.com/xap/1.0/\x00" + h.nested_xmp(5_000)))
    shutil.copy(corpus / "media" / "jpg" / "Canon_40D.jpg", folder / "renamed.png")
    reports = {Path(r["path"]).name: r for r in cli.json_lines("ingest", str(folder))}
    assert all(r["status"] == "preserved" for r in reports.values()), reports
    shown = {name: cli.json("show", r["id"]) for name, r in reports.items()}
    assert shown["bomb.png"]["metadata"]["width"] == 50_000
    assert any("polyglot" in e["reason"] for e in shown["polyglot.jpg"]["errors"])
    assert shown["truncated.mp4"]["errors"]
    assert any("nested deeper" in e["reason"] for e in shown["nested.jpg"]["errors"])
    renamed = shown["renamed.png"]
    assert renamed["media_type"] == "image/jpeg" and renamed["metadata"]["media_type"] == "image/jpeg"
    assert any(e["step"] == "identify" and ".png" in e["reason"] for e in renamed["errors"])


def test_metadata_round_trips_on_each_database(
    tmp_path: Path, catalog_url: str, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    # Unicode, control characters and a NUL inside EXIF strings: the raw JSON must store them all.
    odd = h.jpeg_with_app1(b"Exif\x00\x00" + h.tiff_with_strings({0x010F: "Ça\x01v\u00e9".encode(), 0x010E: b"a\x00b"}))
    (tmp_path / "odd.jpg").write_bytes(odd)
    for path in (corpus / "media" / "heic" / "mobile" / "HMD_Nokia_8.3_5G.heif", tmp_path / "odd.jpg"):
        shown = ingest_one(cli, path)
        assert shown["metadata"]["media_type"] in ("image/heic", "image/jpeg")
    assert shown["metadata"]["make"] == "Ça\x01vé"
