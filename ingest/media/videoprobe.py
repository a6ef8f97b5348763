"""The video probe: native parsers meet hostile containers here.

MediaInfo (through pymediainfo) and FFmpeg (through PyAV) are C/C++ walking
whatever the file claims; a crash, a runaway allocation or an endless loop
must cost one sandbox child (`ingest.sandbox`, where all metadata extraction
runs), not the ingest process. The report is JSON-safe data.

Each library fills the ExifTool groups it agrees with ExifTool on:
the ISO-BMFF walker for MP4/MOV/3GP (movie-header duration, zero dates, the
3GPP location PyAV drops), the RIFF walker for AVI (the IDIT capture time),
MediaInfo for Matroska/WebM and AVI (PyAV cannot open some Matroska files and
has no AVI duration), PyAV for codecs.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any, BinaryIO

_PRIVATE_MEDIAINFO_KEYS = ("complete_name", "folder_name", "file_name", "file_extension", "file_last_modification")


def _mediainfo(source: Path | bytes, out: dict[str, Any]) -> None:
    from pymediainfo import MediaInfo

    parsed = MediaInfo.parse(io.BytesIO(source) if isinstance(source, bytes) else source)
    tracks = []
    for track in parsed.tracks:
        data = {k: v for k, v in track.to_data().items() if not k.startswith(_PRIVATE_MEDIAINFO_KEYS)}
        tracks.append({k: v if isinstance(v, int | float | str) else str(v) for k, v in data.items()})
    out["mediainfo"] = tracks


def _pyav(source: Path | bytes, out: dict[str, Any]) -> None:
    import av

    target = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    container: Any = av.open(target, metadata_errors="replace")
    try:
        streams = []
        for stream in container.streams:
            ctx: Any = stream.codec_context
            entry: dict[str, Any] = {"type": stream.type, "codec": ctx.name if ctx else None}
            if stream.type == "video":
                entry.update(width=ctx.width, height=ctx.height)
            if stream.duration is not None and stream.time_base is not None:
                entry["duration"] = float(stream.duration * stream.time_base)
            if stream.frames:
                entry["frames"] = stream.frames
            streams.append(entry)
        out["pyav"] = {
            "format": container.format.name,
            "duration": container.duration / 1_000_000 if container.duration is not None else None,
            "metadata": {str(k): str(v)[:4096] for k, v in container.metadata.items()},
            "streams": streams,
        }
    finally:
        container.close()


def _bmff(stream: BinaryIO, size: int, out: dict[str, Any]) -> None:
    from ingest.media.isobmff import read_bmff

    movie = read_bmff(stream, size)
    out["groups"].update(movie.groups)
    out["xmp"] = [base64.b64encode(p).decode() for p in movie.xmp]
    out["c2pa"] = [base64.b64encode(p).decode() for p in movie.c2pa]
    out["problems"] += [f"bmff: {p}" for p in movie.problems]


def _riff(stream: BinaryIO, size: int, out: dict[str, Any]) -> None:
    from ingest.media.riff import read_riff

    riff = read_riff(stream, size)
    out["groups"].update(riff.groups)
    out["xmp"] = [base64.b64encode(p).decode() for p in riff.xmp]
    out["problems"] += [f"riff: {p}" for p in riff.problems]


def probe(source: Path | bytes, file_type: str, native: bool = True) -> dict[str, Any]:
    """Everything the video parsers say, as JSON-safe data; each parser's failure is noted, not raised.

    `native` False runs the pure-Python box walker only.
    """
    out: dict[str, Any] = {"groups": {}, "problems": [], "parsers": []}
    stream: BinaryIO = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    size = len(source) if isinstance(source, bytes) else source.stat().st_size
    steps: list[tuple[str, Any]] = []
    if file_type == "AVI":
        steps.append(("riff", lambda: _riff(stream, size, out)))
    elif file_type not in ("MKV", "WEBM"):
        steps.append(("bmff", lambda: _bmff(stream, size, out)))
    if native:
        steps += [("mediainfo", lambda: _mediainfo(source, out)), ("pyav", lambda: _pyav(source, out))]
    with stream:
        for name, run in steps:
            out["parsers"].append(name)
            try:
                run()
            except Exception as exc:  # noqa: BLE001 - one parser failing must not hide the others' results
                message = str(exc).replace(str(source), "<file>") if isinstance(source, Path) else str(exc)
                out["problems"].append(f"{name}: {type(exc).__name__}: {message[:300]}")
    return out
