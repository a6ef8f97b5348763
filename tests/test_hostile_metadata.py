"""Hostile and broken files: extraction stays fast and bounded, and says what went wrong."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from ingest.media import extract
from ingest.media.limits import MAX_STRING
from ingest.media.xmp import XMPError, parse_xmp
from tests import hostile_files as h

# Bounds are for input that would stall a parser for minutes or hours; the slack keeps a loaded
# 2-core machine (parallel suites, CI neighbours) from failing them while a real stall still fails.
SLACK = 4.0

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "media"


def timed(source: bytes | Path) -> tuple[object, float, int]:
    tracemalloc.start()
    start = time.perf_counter()
    meta = extract(source)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return meta, elapsed, peak


def test_decompression_bomb_is_read_from_its_header_only() -> None:
    bomb = h.png_bomb()
    assert len(bomb) < 200_000
    meta, elapsed, peak = timed(bomb)
    assert meta.normalized.media_type == "image/png"  # type: ignore[attr-defined]
    assert (meta.normalized.width, meta.normalized.height) == (50_000, 50_000)  # type: ignore[attr-defined]
    assert elapsed < 1.0 * SLACK and peak < 20 * 1024 * 1024


def test_truncated_video_records_failures_and_keeps_what_it_can(tmp_path: Path) -> None:
    whole = (CORPUS / "video" / "phone_gradients.mp4").read_bytes()
    cut = whole[: len(whole) - 300]  # the movie header sits at the end (no faststart): cut into it
    meta = extract(cut)
    assert meta.normalized.media_type == "video/mp4"
    assert meta.errors, "a truncated container must leave a recorded failure"
    webm = (CORPUS / "video" / "other_sierpinski.webm").read_bytes()
    assert any("truncated" in e.reason for e in extract(webm[: len(webm) // 2]).errors)
    head_only = extract(whole[:4000])  # only the start of the media data: no movie header at all
    assert head_only.normalized.media_type == "video/mp4" and head_only.normalized.duration is None
    assert head_only.errors


def test_jpeg_zip_polyglot_is_identified_as_both() -> None:
    jpeg = (CORPUS / "jpg" / "Canon_40D.jpg").read_bytes()
    meta = extract(h.polyglot(jpeg))
    assert meta.detected.mime == "image/jpeg" and meta.detected.also == ["application/zip"]
    assert any(e.step == "identify" and "polyglot" in e.reason for e in meta.errors)
    assert meta.normalized.make == "Canon"  # the JPEG's own metadata is still read


def test_enormous_exif_strings_are_cut_to_a_bound() -> None:
    huge = b"A" * 60_000
    jpeg = h.jpeg_with_app1(b"Exif\x00\x00" + h.tiff_with_strings({0x010F: huge, 0x010E: huge[:1000]}))
    meta, elapsed, _ = timed(jpeg)
    assert elapsed < 1.0 * SLACK
    assert len(meta.raw["groups"]["IFD0"]["Make"]) < MAX_STRING + 100  # type: ignore[attr-defined]
    assert len(meta.normalized.make) <= 255  # type: ignore[attr-defined]
    tiff = h.tiff_with_strings({0x0110: b"M" * 5_000_000, 0x010F: b"Maker"})
    meta, elapsed, peak = timed(tiff)
    assert elapsed < 2.0 * SLACK and peak < 64 * 1024 * 1024
    assert meta.normalized.make == "Maker"  # type: ignore[attr-defined]


def test_exif_ifd_loop_ends() -> None:
    meta, elapsed, _ = timed(h.tiff_with_strings({0x010F: b"Loop"}, next_ifd_self=True))
    assert elapsed < 1.0 * SLACK and meta.normalized.make == "Loop"  # type: ignore[attr-defined]


@pytest.mark.parametrize("depth", [200, 100_000])
def test_deeply_nested_xmp_is_refused_not_recursed(depth: int) -> None:
    with pytest.raises(XMPError, match="nested deeper"):
        parse_xmp(h.nested_xmp(depth))
    jpeg = h.jpeg_with_app1(b"http://ns.adobe.com/xap/1.0/\x00" + h.nested_xmp(min(depth, 5000)))
    meta = extract(jpeg)
    assert any("xmp" in e.reason for e in meta.errors)
    assert meta.normalized.width == 64


def test_entity_expansion_is_refused() -> None:
    start = time.perf_counter()
    with pytest.raises(XMPError):
        parse_xmp(h.billion_laughs())
    assert time.perf_counter() - start < 1.0


def test_deeply_nested_boxes_stop_at_the_depth_limit() -> None:
    meta, elapsed, _ = timed(h.nested_boxes(5000))
    assert elapsed < 5.0 * SLACK
    assert any("deeper" in e.reason for e in meta.errors)  # type: ignore[attr-defined]


GARBAGE = [
    b"", b"\x00" * 100, b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBP",
    b"II*\x00\xff\xff\xff\xff", b"\x00\x00\x00\x18ftypheic" + b"\xff" * 40,
]


@pytest.mark.parametrize("data", GARBAGE)
def test_garbage_never_raises(data: bytes) -> None:
    meta = extract(data)
    assert meta.errors or meta.normalized.width is None


def test_pure_python_retry_still_reads_the_movie_header() -> None:
    # The second try after a native parser brought the sandbox child down runs no native library.
    meta = extract(CORPUS / "video" / "phone_gradients.mp4", native=False)
    assert meta.parsers.count("video:bmff") == 1 and not any(p.endswith(("mediainfo", "pyav")) for p in meta.parsers)
    assert meta.normalized.duration == 12.0 and meta.normalized.captured_at == "2021-02-14T11:20:00"


def test_declared_type_and_name_mismatch_is_recorded() -> None:
    jpeg = (CORPUS / "jpg" / "Canon_40D.jpg").read_bytes()
    meta = extract(jpeg, declared_type="video/mp4", name="holiday.png")
    reasons = [e.reason for e in meta.errors if e.step == "identify"]
    assert reasons and "video/mp4" in reasons[0] and ".png" in reasons[0] and "image/jpeg" in reasons[0]
    assert not extract(jpeg, declared_type="image/jpeg", name="x.JPG").errors


def test_exif_that_would_keep_exifread_busy_for_seconds_is_refused_up_front() -> None:
    import struct

    entries = 5000  # each a LONG tag of 999 values: 5 million one-by-one reads in exifread
    tags = b"".join(struct.pack("<HHII", 0x9000 + i % 100, 4, 999, 8) for i in range(entries))
    ifd = struct.pack("<H", entries) + tags
    tiff = b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)
    meta, elapsed, _ = timed(h.jpeg_with_app1(b"Exif\x00\x00" + tiff))
    assert elapsed < 0.5 * SLACK
    assert any("not parsed" in e.reason for e in meta.errors)  # type: ignore[attr-defined]
    assert meta.normalized.width == 64  # type: ignore[attr-defined]


def test_deeply_nested_c2pa_boxes_never_reach_the_native_library() -> None:
    meta, elapsed, _ = timed(h.nested_jumbf_jpeg(5000))
    assert elapsed < 1.0 * SLACK
    assert meta.c2pa is not None  # type: ignore[attr-defined]
    assert meta.c2pa["validation"]["state"] == "refused"  # type: ignore[attr-defined]
    assert "nested deeper" in meta.c2pa["validation"]["reason"]  # type: ignore[attr-defined]
    assert meta.c2pa["raw_size"] > 40_000 and meta.normalized.make == "Maker"  # type: ignore[attr-defined]
