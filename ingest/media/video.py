"""Video container metadata: the probe runs in a bounded child process.

A process per video is affordable (videos are few and large); a process per
photo is not, which is why photos are parsed in-process (see `limits`). If the
child dies, runs out of time or memory, the pure-Python box walker still reads
MP4/MOV headers in-process, and the failure is recorded.
"""

from __future__ import annotations

import base64
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from ingest.media.limits import VIDEO_CPU, VIDEO_MEMORY, VIDEO_TIMEOUT
from ingest.media.model import MediaMetadata


def _limit_child() -> None:
    """Runs in the child before exec: cap its address space and CPU time."""
    resource.setrlimit(resource.RLIMIT_AS, (VIDEO_MEMORY, VIDEO_MEMORY))
    resource.setrlimit(resource.RLIMIT_CPU, (VIDEO_CPU, VIDEO_CPU + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_probe(source: bytes | Path, file_type: str) -> dict[str, Any]:
    """The child's report; raises RuntimeError when the child fails as a whole."""
    arg = "-" if isinstance(source, bytes) else str(source)
    try:
        done = subprocess.run(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "ingest.media.videoprobe", arg, file_type],
            input=source if isinstance(source, bytes) else None,
            capture_output=True,
            timeout=VIDEO_TIMEOUT,
            preexec_fn=_limit_child,  # noqa: PLW1509 - only setrlimit, no locks taken
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"video probe took longer than {VIDEO_TIMEOUT:.0f} s and was stopped") from exc
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise RuntimeError(f"video probe exited with status {done.returncode}: {tail[0][:300]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


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


def extract_video(source: bytes | Path, meta: MediaMetadata) -> tuple[list[bytes], list[bytes]]:
    """Fill `meta.raw` with the video's groups; returns XMP packets and C2PA boxes found."""
    file_type = meta.detected.file_type or ""
    try:
        report = run_probe(source, file_type)
    except (RuntimeError, ValueError, OSError) as exc:
        meta.fail("metadata", str(exc))
        report = _fallback(source, file_type, meta)
    meta.parsers += [f"video:{p}" for p in report.get("parsers", [])]
    for problem in report.get("problems", []):
        meta.fail("metadata", problem)
    general: dict[str, Any] = next((t for t in report.get("mediainfo") or [] if t.get("track_type") == "General"), {})
    if str(general.get("istruncated", "")).lower() == "yes":
        meta.fail("metadata", "mediainfo: the file is truncated (the container declares more data than it holds)")
    groups: dict[str, dict[str, Any]] = report.get("groups", {})
    if file_type in ("MKV", "WEBM", "AVI"):
        groups.update(_mediainfo_groups(report, file_type))
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


def _fallback(source: bytes | Path, file_type: str, meta: MediaMetadata) -> dict[str, Any]:
    """In-process, pure Python: the box walker alone (bounded by its own limits)."""
    if file_type in ("MKV", "WEBM", "AVI"):
        return {}
    import io

    from ingest.media.isobmff import read_bmff

    if isinstance(source, bytes):
        movie = read_bmff(io.BytesIO(source), len(source))
    else:
        with open(source, "rb") as stream:
            movie = read_bmff(stream, source.stat().st_size)
    return {
        "groups": movie.groups,
        "parsers": ["bmff"],
        "problems": [f"bmff: {p}" for p in movie.problems],
        "xmp": [base64.b64encode(p).decode() for p in movie.xmp],
        "c2pa": [base64.b64encode(p).decode() for p in movie.c2pa],
    }
