"""Media metadata: what a photo or video says about itself, read as ExifTool reads it.

`extract(source)` is a pure function over the bytes (or a path for large
files): it identifies the format from the bytes, runs the parsers that fit,
and returns a `MediaMetadata` with the normalized fields, the complete raw
groups, and every parser failure. It never raises on bad input.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

from ingest.media.limits import MAX_XMP_PACKETS
from ingest.media.model import FIELDS, Detected, Failure, MediaMetadata, Normalized
from ingest.media.sniff import HEAD_SIZE, identify, mismatch

__all__ = ["FIELDS", "Detected", "Failure", "MediaMetadata", "Normalized", "extract", "identify", "mismatch"]

TAIL_SIZE = 65_536 + 22  # a ZIP's end record sits within the last 64 KiB + 22 bytes
C2PA_IN_MEMORY = 256 * 1024 * 1024


def _head_tail(source: bytes | Path) -> tuple[bytes, bytes, int]:
    if isinstance(source, bytes):
        return source[:HEAD_SIZE], source[-TAIL_SIZE:], len(source)
    size = source.stat().st_size
    with open(source, "rb") as stream:
        head = stream.read(HEAD_SIZE)
        stream.seek(max(0, size - TAIL_SIZE))
        return head, stream.read(), size


def extract(
    source: bytes | Path,
    *,
    detected: Detected | None = None,
    declared_type: str | None = None,
    name: str | None = None,
    native: bool = True,
) -> MediaMetadata:
    """Everything the file says about itself; failures are recorded on the result, never raised.

    Pass `detected` when the format was already identified (the pipeline's Identify step
    records the sender's claims itself); otherwise identification and the comparison with
    `declared_type` and `name` happen here. With `native` False only the pure-Python
    parsers run (no MediaInfo, PyAV, libheif or c2pa-rs): the second try after a
    native library brought the sandbox child down.
    """
    from ingest.media.normalize import normalize

    head, tail, size = _head_tail(source)
    claims = detected is None
    if detected is None:
        detected = identify(head, tail)
    meta = MediaMetadata(detected=detected, normalized=Normalized())
    meta.raw["file"] = {"file_type": detected.file_type, "mime": detected.mime, "size": size, "also": detected.also}
    if claims:
        for other in detected.also:
            meta.fail("identify", f"the bytes are also a valid {other} (polyglot file)")
        claim = mismatch(detected.mime, declared_type, name)
        if claim:
            meta.fail("identify", claim)
    if size == 0:
        meta.fail("metadata", "empty file")
    elif detected.file_type is None:
        meta.fail("metadata", "unknown format: no metadata parser applies")
    else:
        try:
            _parse(source, size, meta, native)
        except Exception as exc:  # noqa: BLE001 - a parser bug must never lose the file
            meta.fail("metadata", f"extraction failed: {type(exc).__name__}: {exc}")
    try:
        meta.normalized = normalize(meta.raw.get("groups", {}), detected)
    except Exception as exc:  # noqa: BLE001
        meta.normalized = Normalized(media_type=detected.mime if detected.file_type else None)
        meta.fail("metadata", f"normalization failed: {type(exc).__name__}: {exc}")
    return meta


def _parse(source: bytes | Path, size: int, meta: MediaMetadata, native: bool) -> None:
    from ingest.media.c2pa import read_c2pa
    from ingest.media.photo import extract_photo
    from ingest.media.video import extract_video
    from ingest.media.xmp import XMPError, parse_xmp

    path = source if isinstance(source, Path) else None
    xmp_packets: list[bytes] = []
    c2pa_boxes: list[bytes] = []
    data: Any = source
    mapped: mmap.mmap | None = None
    if path is not None:
        with open(path, "rb") as stream:
            mapped = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
        data = mapped
    try:
        if meta.detected.kind == "video":
            xmp_packets, c2pa_boxes = extract_video(source, meta, native)
        else:
            blocks = extract_photo(data, path, meta, native)
            xmp_packets, c2pa_boxes = blocks.xmp, blocks.jumbf
            for problem in blocks.problems:
                meta.fail("metadata", problem)
        groups = meta.raw.setdefault("groups", {})
        if len(xmp_packets) > MAX_XMP_PACKETS:
            meta.fail("metadata", f"{len(xmp_packets)} XMP packets: only the first {MAX_XMP_PACKETS} were read")
        for packet in xmp_packets[:MAX_XMP_PACKETS]:
            meta.parsers.append("xmp")
            try:
                for group, values in parse_xmp(packet).items():
                    groups.setdefault(group, {}).update(values)
            except XMPError as exc:
                meta.fail("metadata", f"xmp: {exc}")
        if c2pa_boxes:
            meta.parsers.append("c2pa")
            whole = bytes(data) if path is None or size <= C2PA_IN_MEMORY else None
            meta.c2pa = read_c2pa(
                whole if isinstance(whole, bytes) else None, meta.detected.mime, c2pa_boxes, validate=native
            )
    finally:
        if mapped is not None:
            mapped.close()
