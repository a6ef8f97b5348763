"""EXIF through exifread, with its complaints captured as recorded failures.

exifread logs what it cannot read instead of raising; those warnings are the
parser failures an investigator must see, so they are collected per call
(thread-locally: several ingest threads may parse at once).
"""

from __future__ import annotations

import io
import logging
import threading
from typing import Any, BinaryIO

from ingest.media.limits import MAX_LIST, MAX_STRING, MAX_TAGS, clip

# exifread's IFD names -> ExifTool's group names.
_GROUPS = {
    "Image": "IFD0",
    "EXIF": "ExifIFD",
    "GPS": "GPS",
    "Thumbnail": "IFD1",
    "Interoperability": "InteropIFD",
    "MakerNote": "MakerNotes",
}
_ASCII = 2
_UNDEFINED = 7


class _Collector(logging.Handler):
    """Routes exifread's warnings to whichever thread is parsing."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        sink = getattr(self.local, "sink", None)
        if sink is not None and len(sink) < 20:
            sink.append(record.getMessage())


_collector = _Collector()
_logger = logging.getLogger("exifread")
_logger.addHandler(_collector)
_logger.propagate = False  # recorded on the item instead of cluttering the console


def _value(tag: Any) -> Any:
    """A JSON-safe rendering of one exifread tag that loses nothing readable."""
    values = getattr(tag, "values", tag)
    field_type = getattr(tag, "field_type", None)
    if field_type == _ASCII or isinstance(values, str):
        return clip(str(values).strip("\x00"))
    if isinstance(values, bytes):
        return clip(values.hex(), MAX_STRING)
    if not isinstance(values, list):
        return clip(str(values))
    if field_type == _UNDEFINED:
        data = bytes(v & 0xFF for v in values[:MAX_STRING] if isinstance(v, int))
        text = data.rstrip(b"\x00")
        if text and all(32 <= b < 127 for b in text):
            return text.decode("ascii")
        return data.hex()
    out: list[Any] = []
    for v in values[:MAX_LIST]:
        if hasattr(v, "numerator") and hasattr(v, "denominator") and not isinstance(v, int):
            out.append(f"{v.numerator}/{v.denominator}")
        elif isinstance(v, tuple):
            out.append(v[0] if len(v) == 1 else list(v))
        elif isinstance(v, int | float | str):
            out.append(v)
        else:
            out.append(str(v))
    return out[0] if len(out) == 1 else out


def read_exif(stream: BinaryIO) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """EXIF tags grouped as ExifTool groups them, and exifread's warnings.

    `stream` holds a TIFF structure (a JPEG's APP1 payload after "Exif\\0\\0",
    a TIFF file) or any container exifread recognises (HEIC).
    """
    import exifread

    warnings: list[str] = []
    _collector.local.sink = warnings
    try:
        tags = exifread.process_file(stream, details=False, extract_thumbnail=False, truncate_tags=True)
    except Exception as exc:  # noqa: BLE001 - any parser crash is a recorded failure, never a lost file
        warnings.append(f"exifread failed: {type(exc).__name__}: {exc}")
        tags = {}
    finally:
        _collector.local.sink = None
    groups: dict[str, dict[str, Any]] = {}
    for count, (key, tag) in enumerate(tags.items()):
        if count >= MAX_TAGS:
            warnings.append(f"more than {MAX_TAGS} EXIF tags: the rest were not kept")
            break
        prefix, _, name = key.partition(" ")
        group = _GROUPS.get(prefix, prefix.replace(" ", ""))
        if not name or key == "JPEGThumbnail":
            continue
        try:
            groups.setdefault(group, {})[name] = _value(tag)
        except Exception as exc:  # noqa: BLE001 - one odd value must not lose the rest
            warnings.append(f"EXIF {key}: {type(exc).__name__}")
    return groups, [w for w in warnings if w != "File format not recognized."]


def read_exif_bytes(block: bytes) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """EXIF from an APP1/eXIf/EXIF-chunk payload, with or without its "Exif\\0\\0" prefix."""
    if block.startswith(b"Exif\x00\x00"):
        block = block[6:]
    elif block.startswith(b"Exif"):
        block = block[4:].lstrip(b"\x00")
    # HEIF's Exif item starts with a 4-byte offset to the TIFF header.
    if block[:4] not in (b"II*\x00", b"MM\x00*") and len(block) > 8:
        for start in (4, 10):
            if block[start : start + 4] in (b"II*\x00", b"MM\x00*"):
                block = block[start:]
                break
    if block[:4] not in (b"II*\x00", b"MM\x00*"):
        return {}, ["EXIF block has no TIFF header"]
    return read_exif(io.BytesIO(block))
