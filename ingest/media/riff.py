"""AVI (RIFF) chunks ExifTool reads and MediaInfo does not: the capture time, INFO text, XMP.

ExifTool's RIFF:DateTimeOriginal comes from the `IDIT` chunk (cameras write
"Mon Mar 10 15:04:43 2003"); `INFO` holds ICRD (date created), ISFT
(software) and friends; `_PMX` holds XMP. The walk reads chunk headers only
and seeks over `movi` (the media data), so a 4 GiB AVI costs a few reads; it
stops at the chunk-count and depth limits.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ingest.media.limits import MAX_BOX_DEPTH, MAX_CHUNKS, MAX_STRING, MAX_XMP, clip

_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                       "Nov", "Dec"), start=1)}
_INFO = {b"ICRD": "DateCreated", b"ISFT": "Software", b"IART": "Artist", b"ICMT": "Comment", b"INAM": "Title",
         b"ICOP": "Copyright", b"IPRD": "Product", b"IENG": "Engineer", b"ISRC": "Source"}
_TEXT_CHUNKS = 4096  # bytes read of a text chunk
_NUMERIC = re.compile(r"^(\d{4})[-:/](\d{2})[-:/](\d{2})[ T](\d{2}:\d{2}:\d{2})")


@dataclass
class Riff:
    """What the chunks say, grouped as ExifTool groups it (RIFF)."""

    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    xmp: list[bytes] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def riff_date(text: str) -> str | None:
    """An AVI date as ExifTool prints it ("2003:03:10 15:04:43"), or None when it is no date we know.

    The forms ExifTool converts: "Mon Mar 10 15:04:43 2003" (ctime, the usual
    IDIT), "10 Mar 2003 15:04:43", and numeric "2003-03-10 15:04:43".
    """
    text = text.strip("\x00 \r\n")
    parts = text.split()
    if len(parts) >= 5 and parts[1][:3].title() in _MONTHS and parts[2].isdigit() and parts[4].isdigit():
        return f"{int(parts[4]):04d}:{_MONTHS[parts[1][:3].title()]:02d}:{int(parts[2]):02d} {parts[3]}"
    if len(parts) >= 4 and parts[0].isdigit() and parts[1][:3].title() in _MONTHS and parts[2].isdigit():
        return f"{int(parts[2]):04d}:{_MONTHS[parts[1][:3].title()]:02d}:{int(parts[0]):02d} {parts[3]}"
    match = _NUMERIC.match(text)
    if match:
        return f"{match.group(1)}:{match.group(2)}:{match.group(3)} {match.group(4)}"
    return None


def read_riff(stream: BinaryIO, size: int) -> Riff:
    """Walk an AVI's chunks (the stream may be a file of any size)."""
    riff = Riff()
    stream.seek(0)
    head = stream.read(12)
    if len(head) < 12 or head[:4] != b"RIFF":
        riff.problems.append("not a RIFF file")
        return riff
    count = 0
    pending = [(12, min(size, 8 + struct.unpack("<I", head[4:8])[0]), 0)]
    group = riff.groups.setdefault("RIFF", {})
    while pending:
        pos, end, depth = pending.pop()
        while pos + 8 <= end:
            count += 1
            if count > MAX_CHUNKS:
                riff.problems.append(f"more than {MAX_CHUNKS} RIFF chunks: the rest were not read")
                return riff
            stream.seek(pos)
            header = stream.read(12)
            if len(header) < 8:
                riff.problems.append(f"RIFF chunk header at byte {pos} is truncated")
                break
            kind, length = header[:4], struct.unpack("<I", header[4:8])[0]
            body = pos + 8
            if body + length > end:
                riff.problems.append(f"RIFF chunk {kind!r} at byte {pos} runs past the end of its container")
                length = end - body
            if kind == b"LIST" and len(header) >= 12:
                if header[8:12] != b"movi" and depth < MAX_BOX_DEPTH:  # movi is media data: never read
                    pending.append((body + 4, body + length, depth + 1))
            elif kind == b"IDIT":
                text = _text(stream, body, length)
                date = riff_date(text)
                if date:
                    group["DateTimeOriginal"] = date
                elif text:
                    riff.problems.append(f"IDIT date not understood: {clip(text, 64)!r}")
            elif kind in _INFO:
                group[_INFO[kind]] = clip(_text(stream, body, length), MAX_STRING)
            elif kind == b"_PMX" and length <= MAX_XMP:
                stream.seek(body)
                riff.xmp.append(stream.read(length))
            pos = body + length + (length & 1)
    if not group:
        del riff.groups["RIFF"]
    return riff


def _text(stream: BinaryIO, offset: int, length: int) -> str:
    stream.seek(offset)
    return stream.read(min(length, _TEXT_CHUNKS)).split(b"\x00", 1)[0].decode("latin-1").strip()
