"""Video container metadata: the probe's report turned into ExifTool's groups.

The native parsers (MediaInfo, PyAV) run in the same sandbox child as the
rest of metadata extraction (see `ingest.sandbox`): the ingest process never
calls them, and a crash or a hang there is one child's end and a failure
recorded on the item.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from ingest.media.model import MediaMetadata


def _mi_date(text: str | None) -> str | None:
    """MediaInfo's '2010-02-03 21:17:48 UTC' as ExifTool prints it ('2010:02:03 21:17:48Z')."""
    if not text:
        return None
    text = text.strip()
    utc = text.endswith(" UTC")
    text = text.removesuffix(" UTC").replace("-", ":", 2)
    return text + ("Z" if utc else "")


def _mediainfo_groups(report: dict[str, Any], file_type: str) -> dict[str, dict[str, Any]]:
    """The Matroska and RIFF groups ExifTool reports, from MediaInfo's tracks."""
    tracks = report.get("mediainfo") or []
    general: dict[str, Any] = next((t for t in tracks if t.get("track_type") == "General"), {})
    video: dict[str, Any] = next((t for t in tracks if t.get("track_type") == "Video"), {})
    groups: dict[str, dict[str, Any]] = {}
    duration = general.get("duration")
    seconds = float(duration) / 1000 if duration not in (None, "") else None
    size = {k: int(video[m]) for k, m in (("ImageWidth", "width"), ("ImageHeight", "height")) if video.get(m)}
    if file_type in ("MKV", "WEBM"):
        matroska: dict[str, Any] = {"Duration": seconds}
        date = _mi_date(general.get("encoded_date"))
        if date:
            matroska["DateTimeOriginal"] = date
        groups["Matroska"] = matroska
        groups["Track1"] = size
    elif file_type == "AVI":
        riff: dict[str, Any] = dict(size)
        date = _mi_date(general.get("mastered_date"))
        if date:
            riff["DateTimeOriginal"] = date
        groups["RIFF"] = riff
        groups["File"] = dict(size)  # ExifTool reads the video stream's BITMAPINFOHEADER into File
        groups["Composite"] = {"Duration": seconds}
    return groups


def _pyav_groups(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A last resort when MediaInfo read nothing: PyAV's container duration and first video size."""
    pyav = report.get("pyav") or {}
    video: dict[str, Any] = next((s for s in pyav.get("streams", []) if s.get("type") == "video"), {})
    out: dict[str, dict[str, Any]] = {}
    if pyav.get("duration"):
        out["Composite"] = {"Duration": pyav["duration"]}
    if video.get("width"):
        out["Track1"] = {"ImageWidth": video["width"], "ImageHeight": video["height"]}
    return out


def extract_video(source: bytes | Path, meta: MediaMetadata, native: bool = True) -> tuple[list[bytes], list[bytes]]:
    """Fill `meta.raw` with the video's groups; returns XMP packets and C2PA boxes found."""
    from ingest.media.videoprobe import probe

    file_type = meta.detected.file_type or ""
    report = probe(source, file_type, native)
    meta.parsers += [f"video:{p}" for p in report.get("parsers", [])]
    for problem in report.get("problems", []):
        meta.fail("metadata", problem)
    general: dict[str, Any] = next((t for t in report.get("mediainfo") or [] if t.get("track_type") == "General"), {})
    if str(general.get("istruncated", "")).lower() == "yes":
        meta.fail("metadata", "mediainfo: the file is truncated (the container declares more data than it holds)")
    groups: dict[str, dict[str, Any]] = report.get("groups", {})
    if file_type in ("MKV", "WEBM", "AVI"):
        for name, values in _mediainfo_groups(report, file_type).items():
            # What the chunk walker read (the IDIT capture time) is what ExifTool reads: it wins.
            groups[name] = {**values, **groups.get(name, {})}
    if not any(g in groups for g in ("QuickTime", "Matroska", "RIFF")):
        for name, values in _pyav_groups(report).items():
            groups.setdefault(name, values)
    meta.raw.setdefault("groups", {}).update(groups)
    for key in ("mediainfo", "pyav"):
        if key in report:
            meta.raw[key] = report[key]
    meta.raw["codecs"] = [
        {"type": s.get("type"), "codec": s.get("codec")} for s in (report.get("pyav") or {}).get("streams", [])
    ]
    xmp = [base64.b64decode(p) for p in report.get("xmp", [])]
    c2pa = [base64.b64decode(p) for p in report.get("c2pa", [])]
    return xmp, c2pa
