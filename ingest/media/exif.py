"""EXIF through exifread, with its complaints captured as recorded failures.

exifread logs what it cannot read instead of raising; those warnings are the
parser failures an investigator must see, so they are collected per call
(thread-locally: several ingest threads may parse at once).
"""

from __future__ import annotations

import io
import logging
import struct
import threading
from typing import Any, BinaryIO

from ingest.media.limits import MAX_EXIF_VALUES, MAX_LIST, MAX_SEGMENT, MAX_STRING, MAX_TAGS, MAX_XMP, clip

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
_SUB_IFDS = {0x8769, 0x8825, 0xA005}  # ExifIFD, GPS, Interop pointers
_XMP_TAG = 700
_SKIPPED = {700, 0x927C, 0x9286}  # exifread skips XMP, MakerNote and UserComment when not detailed


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


def scan_tiff(tiff: bytes) -> tuple[int, bytes | None]:
    """How many values exifread would decode one by one, and IFD0's XMP packet (tag 700).

    exifread decodes every value of a tag whose count is under 1000, one seek
    and read each: an EXIF block of 5,000 such tags (60 KB) costs it seconds.
    This walk costs microseconds and lets us refuse such a block up front.
    """
    if len(tiff) < 8 or tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return 0, None
    endian = "<" if tiff[:2] == b"II" else ">"
    total, xmp = 0, None
    pending = [(struct.unpack(endian + "I", tiff[4:8])[0], True)]
    seen: set[int] = set()
    while pending and len(seen) < 64:
        offset, chained = pending.pop()
        if offset in seen or offset + 2 > len(tiff):
            continue
        seen.add(offset)
        count = struct.unpack(endian + "H", tiff[offset : offset + 2])[0]
        for i in range(min(count, (len(tiff) - offset - 2) // 12)):
            tag, kind, n, value = struct.unpack(endian + "HHII", tiff[offset + 2 + 12 * i : offset + 14 + 12 * i])
            if tag in _SUB_IFDS:
                pending.append((value, False))
            elif tag == _XMP_TAG and len(seen) == 1 and n <= MAX_XMP:
                xmp = tiff[value : value + n] if n > 4 else None
            if kind != _ASCII and tag not in _SKIPPED and n < 1000:
                total += n
        end = offset + 2 + 12 * count
        if chained and end + 4 <= len(tiff):
            pending.append((struct.unpack(endian + "I", tiff[end : end + 4])[0], True))
    return total, xmp


def read_exif(stream: BinaryIO) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """EXIF tags grouped as ExifTool groups them, and exifread's warnings.

    `stream` holds a TIFF structure (a JPEG's APP1 payload after "Exif\\0\\0",
    a TIFF file) or any container exifread recognises (HEIC).
    """
    import exifread

    warnings: list[str] = []
    head = stream.read(MAX_SEGMENT)
    stream.seek(0)
    values, _ = scan_tiff(head)
    if values > MAX_EXIF_VALUES:
        return {}, [f"EXIF declares {values} values, more than {MAX_EXIF_VALUES}: not parsed (corrupt or hostile)"]
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
