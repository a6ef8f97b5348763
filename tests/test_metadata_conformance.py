"""Metadata agrees with ExifTool 12.57 on every corpus file, broken ones included.

Two checks per file: the normalized fields against ExifTool's own choice
(`expected-exiftool.json`), and every value ExifTool reads from a standard
group (`expected-exiftool-groups.json`) against the raw group we kept.
Values only in a vendor's MakerNote group (Pentax, Reconyx ...) are optional.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from ingest.media import MediaMetadata, extract
from ingest.media.normalize import _dms

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
STANDARD = re.compile(r"^(File|IFD0|IFD1|ExifIFD|GPS|Composite|XMP-\w+|QuickTime|Track\d+|Matroska|RIFF|PNG)$")
# ExifTool tag -> exifread's name for the same EXIF tag.
EXIFREAD_NAMES = {"CreateDate": "DateTimeDigitized", "ImageHeight": "ImageLength"}


def _load(name: str) -> dict[str, dict[str, Any]]:
    return {entry["SourceFile"]: entry for entry in json.loads((CORPUS / name).read_text())}


EXPECTED = _load("expected-exiftool.json") if CORPUS.is_dir() else {}
GROUPS = _load("expected-exiftool-groups.json") if CORPUS.is_dir() else {}


@cache
def extracted(relative: str) -> MediaMetadata:
    return extract(CORPUS / "media" / relative)


def exiftool_date(value: str) -> str:
    """Any date form (EXIF, XMP, ISO 8601) in ExifTool's print form, for comparison."""
    match = re.match(r"^(\d{4})[-:](\d{2})[-:](\d{2})(?:[T ](.*))?$", value.strip())
    assert match, value
    year, month, day, rest = match.groups()
    return f"{year}:{month}:{day}" + (f" {rest}" if rest else "")


def seconds(value: Any) -> float:
    if isinstance(value, str) and ":" in value:
        h, m, s = value.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    return float(value)


def agrees(tag: str, expected: Any, actual: Any) -> bool:
    if actual is None:
        return False
    if "Date" in tag:
        return exiftool_date(str(expected)) == exiftool_date(str(actual))
    if tag == "Duration":
        return abs(seconds(expected) - seconds(actual)) <= 0.05
    if tag.startswith("GPS"):
        return abs(float(expected) - float(actual)) <= 1e-5
    if isinstance(expected, int | float) and not isinstance(expected, bool):
        try:
            return float(actual) == float(expected)
        except (TypeError, ValueError):
            return False
    return str(expected).strip() == str(actual).strip()


def raw_value(meta: MediaMetadata, group: str, tag: str) -> Any:
    """Our value for ExifTool's Group:Tag, from the raw groups kept (or, for Composite, the fields)."""
    groups = meta.raw.get("groups", {})
    n = meta.normalized
    if group == "File" and tag == "MIMEType":
        return meta.detected.mime
    if group == "Composite":
        return {"GPSLatitude": n.latitude, "GPSLongitude": n.longitude, "GPSAltitude": n.altitude,
                "Duration": n.duration}[tag]
    values = groups.get(group, {})
    if group in ("IFD0", "IFD1", "ExifIFD", "GPS"):
        value = values.get(EXIFREAD_NAMES.get(tag, tag))
        if group == "GPS" and tag in ("GPSLatitude", "GPSLongitude"):
            return _dms(value) if value is not None else None
        if group == "GPS" and tag == "GPSAltitude" and isinstance(value, str) and "/" in value:
            num, den = value.split("/")
            return int(num) / int(den)
        return value
    if group == "XMP-tiff" and tag == "ImageHeight":
        tag = "ImageLength"  # the XMP property's own name; ExifTool renames it
    return values.get(tag)


def corpus_files() -> list[str]:
    return sorted(EXPECTED)


@pytest.mark.parametrize("relative", corpus_files())
def test_every_standard_group_value_agrees(relative: str) -> None:
    meta = extracted(relative)
    disagreements = []
    for key, expected in GROUPS[relative].items():
        if key == "SourceFile":
            continue
        group, tag = key.split(":", 1)
        if not STANDARD.match(group):
            continue  # a vendor MakerNote group: optional
        actual = raw_value(meta, group, tag)
        if not agrees(tag, expected, actual):
            disagreements.append(f"{key}: ExifTool {expected!r}, ours {actual!r}")
    assert not disagreements, disagreements


def _from_standard_group(relative: str, tag: str) -> bool:
    return any(k.endswith(":" + tag) and STANDARD.match(k.split(":")[0]) for k in GROUPS[relative])


@pytest.mark.parametrize("relative", corpus_files())
def test_normalized_fields_agree_with_exiftool(relative: str) -> None:
    meta = extracted(relative)
    n = meta.normalized
    flat = EXPECTED[relative]
    assert n.media_type == flat["MIMEType"]
    date_tag = next((t for t in ("DateTimeOriginal", "CreateDate") if t in flat and _from_standard_group(relative, t)),
                    None)
    if date_tag is None:
        assert n.captured_at is None
    elif flat[date_tag].startswith("0000"):
        assert n.captured_at is None, "a zero date means no date"
    else:
        assert n.captured_at is not None and agrees("Date", flat[date_tag], n.captured_at), (flat[date_tag], n)
        assert n.captured_at == n.captured_at.strip() and " " not in n.captured_at  # ISO 8601
    checks = {
        "latitude": "GPSLatitude", "longitude": "GPSLongitude", "altitude": "GPSAltitude", "make": "Make",
        "model": "Model", "orientation": "Orientation", "width": "ImageWidth", "height": "ImageHeight",
        "duration": "Duration",
    }
    for field, tag in checks.items():
        actual = getattr(n, field)
        if tag in flat and _from_standard_group(relative, tag):
            assert agrees(tag, flat[tag], actual), f"{field}: ExifTool {flat[tag]!r}, ours {actual!r}"
        elif tag not in flat:
            assert actual is None, f"{field}: ExifTool has none, ours {actual!r}"


def test_captured_at_keeps_an_offset_only_when_the_file_states_one() -> None:
    assert extracted("jpg/Canon_40D.jpg").normalized.captured_at == "2008-05-30T15:56:01"
    assert extracted("jpg/xmp/BlueSquare.jpg").normalized.captured_at == "2005-09-07T15:07:40-07:00"
    assert extracted("jpg/tests/30-type_error.jpg").normalized.captured_at == "2013-07-05T03:18:27Z"
    assert extracted("exiftool/Matroska.mkv").normalized.captured_at == "2010-02-03T21:17:48Z"
    assert extracted("exiftool/RIFF.avi").normalized.captured_at == "2003-03-10T15:04:43"  # the IDIT chunk
    assert extracted("video/reshare_gradients_clip.mp4").normalized.captured_at is None  # 0000:00:00 00:00:00


def test_parser_failures_on_broken_files_are_recorded_and_values_still_agree() -> None:
    broken = extracted("jpg/tests/30-type_error.jpg")  # ExifOffset stored as a string
    assert any("exifread" in e.reason for e in broken.errors)
    assert broken.normalized.width == 3872
    mkv = extracted("exiftool/Matroska.mkv")  # PyAV cannot open it; MediaInfo can
    assert any(e.reason.startswith("pyav") for e in mkv.errors)
    assert mkv.normalized.duration == pytest.approx(148.608)
    for relative in corpus_files():
        for failure in extracted(relative).errors:
            assert failure.step and failure.reason


def test_raw_metadata_keeps_what_normalization_drops() -> None:
    nikon = extracted("jpg/Nikon_D70.jpg")
    groups = nikon.raw["groups"]
    assert groups["XMP-tiff"]["ImageWidth"] == "3008"  # the original's size, not the stored 100 px
    assert groups["XMP-exif"]["DateTimeOriginal"] == "2008-03-15T09:52:01-04:00"
    assert "ExposureTime" in groups["ExifIFD"]
    photoshop = extracted("jpg/tests/30-type_error.jpg")
    assert photoshop.raw["IPTC"]["size"] > 0  # IPTC-IIM kept raw
    mov = extracted("exiftool/QuickTime.mov")
    assert {c["codec"] for c in mov.raw["codecs"]} >= {"mjpeg"}


def test_normalized_values_are_json_ready() -> None:
    for relative in corpus_files():
        fields = extracted(relative).normalized.to_dict()
        json.dumps(fields, allow_nan=False)
        assert all(not isinstance(v, float) or math.isfinite(v) for v in fields.values())


def test_exif_offset_tags_complete_the_date() -> None:
    from ingest.media.model import Detected
    from ingest.media.normalize import normalize

    jpeg = Detected(file_type="JPEG", mime="image/jpeg", kind="photo")
    stated = {"ExifIFD": {"DateTimeOriginal": "2024:03:01 10:00:00", "OffsetTimeOriginal": "+03:00"}}
    assert normalize(stated, jpeg).captured_at == "2024-03-01T10:00:00+03:00"
    unstated = {"ExifIFD": {"DateTimeOriginal": "2024:03:01 10:00:00", "OffsetTimeOriginal": "   :  "}}
    assert normalize(unstated, jpeg).captured_at == "2024-03-01T10:00:00"


def test_riff_dates_in_the_forms_exiftool_converts() -> None:
    from ingest.media.riff import riff_date

    assert riff_date("Mon Mar 10 15:04:43 2003\n\x00") == "2003:03:10 15:04:43"
    assert riff_date("10 Mar 2003 15:04:43") == "2003:03:10 15:04:43"
    assert riff_date("2003-03-10 15:04:43") == "2003:03:10 15:04:43"
    assert riff_date("sometime") is None


def test_avi_capture_time_survives_lying_chunk_sizes() -> None:
    import struct

    from ingest.media import extract

    idit = b"IDIT" + struct.pack("<I", 26) + b"Mon Mar 10 15:04:43 2003\n\x00"
    movi = b"LIST" + struct.pack("<I", 0x7FFFFFF0) + b"movi"  # claims 2 GiB of media data that is not there
    body = b"AVI " + b"LIST" + struct.pack("<I", 4 + len(idit)) + b"hdrl" + idit + movi
    avi = b"RIFF" + struct.pack("<I", 0xFFFFFFF0) + body
    meta = extract(avi)
    assert meta.normalized.captured_at == "2003-03-10T15:04:43"
    assert any("runs past the end" in e.reason for e in meta.errors)
