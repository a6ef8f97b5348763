"""The hostile-media corpus through a real ingest: each file is kept, fast, with its failure recorded."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from ingest.media.xmp import parse_xmp
from tests import hostile_media
from tests.conftest import Cli

# What each generated file must leave on the item (step, a word of the reason); None: nothing required.
EXPECTED: dict[str, tuple[str, str] | None] = {
    "quadratic-xmp.png": None,
    "nested-xmp.png": ("metadata", "nested deeper"),
    "huge.jpg": ("fingerprint", "decompression bomb"),
    "huge.png": ("fingerprint", "decompression bomb"),
    "lying-boxes.mp4": ("metadata", "box"),
    "zero-length.mp4": ("fingerprint", "video"),
    "zero-frame.jpg": ("fingerprint", "cannot decode"),
}
SHARED_HOSTILE = ["jpg/corrupted.jpg", "jpg/invalid", "jpg/tests"]


def test_the_quadratic_xmp_packet_parses_in_well_under_a_second() -> None:
    data = hostile_media.quadratic_xmp_png()
    packet = data[data.index(b"<x:xmpmeta") : data.rindex(b"</x:xmpmeta>") + 12]
    assert len(packet) > 4_000_000
    start = time.perf_counter()
    groups = parse_xmp(packet)
    assert time.perf_counter() - start < 1.0  # was hours: the text held was re-summed per callback
    assert "more characters cut" in groups["XMP-dc"]["title"]


def ingest_timed(cli: Cli, path: Path) -> tuple[dict, float]:
    start = time.perf_counter()
    (report,) = cli.json_lines("ingest", str(path))
    return report, time.perf_counter() - start


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_generated_hostile_file_is_kept_with_its_failure(cli: Cli, tmp_path: Path, name: str) -> None:
    folder = tmp_path / "corpus"
    hostile_media.write_corpus(folder)
    report, elapsed = ingest_timed(cli, folder / name)
    assert elapsed < 30, f"{name} took {elapsed:.1f} s"
    assert report["status"] == "preserved", report
    out = tmp_path / "back"
    cli("get", report["id"], "-o", str(out))
    assert out.read_bytes() == (folder / name).read_bytes()
    expected = EXPECTED[name]
    if expected is not None:
        errors = cli.json("show", report["id"])["errors"]
        step, word = expected
        assert any(e["step"] == step and word in e["reason"] for e in errors), errors


def test_shared_hostile_files_are_all_kept(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    for entry in SHARED_HOSTILE:
        source = corpus / "media" / entry
        for path in [source] if source.is_file() else sorted(source.iterdir()):
            shutil.copy(path, folder / path.name)
    start = time.perf_counter()
    reports = cli.json_lines("ingest", str(folder))
    assert time.perf_counter() - start < 30 * len(reports)
    assert len(reports) == len(list(folder.iterdir()))
    assert all(r["status"] == "preserved" for r in reports), reports
    out = tmp_path / "back.jpg"
    cli("get", next(r["id"] for r in reports if r["path"].endswith("corrupted.jpg")), "-o", str(out))
    assert out.read_bytes() == (folder / "corrupted.jpg").read_bytes()
