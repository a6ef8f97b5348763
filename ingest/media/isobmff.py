"""ISO base media files (MP4, MOV, 3GP, HEIF): the boxes ExifTool reads, read the same way.

PyAV reports a stream's duration, not the movie header's, and drops the
3GPP `loci` location and zero dates; this walker reads `mvhd`, `tkhd`, `mdhd`,
`hdlr`, `stsd`, the QuickTime/ISO 6709 locations (`©xyz`, Apple `keys`,
3GPP `loci`), XMP, C2PA, and for HEIF the primary item's stored size
(`pitm` + `ipma` + `ispe`). It seeks over media data, so a 4 GiB video costs a
few reads, and stops at a box-count and depth limit.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from ingest.media.limits import MAX_BOX_DEPTH, MAX_BOXES, MAX_C2PA, MAX_SEGMENT, MAX_STRING, MAX_XMP, clip

XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
_EPOCH = datetime(1904, 1, 1, tzinfo=UTC)
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta", b"edts", b"dinf", b"iprp", b"ipco", b"mvex"}
_ISO6709 = re.compile(r"^([-+]\d{1,2}(?:\.\d*)?)([-+]\d{1,3}(?:\.\d*)?)([-+]\d+(?:\.\d*)?)?")


@dataclass
class Movie:
    """What the boxes say, grouped as ExifTool groups it (QuickTime, Track1, Keys, UserData)."""

    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    xmp: list[bytes] = field(default_factory=list)
    c2pa: list[bytes] = field(default_factory=list)
    exif: list[bytes] = field(default_factory=list)
    heif_size: tuple[int, int] | None = None
    problems: list[str] = field(default_factory=list)


def qt_date(seconds: int) -> str:
    """A QuickTime date (seconds since 1904, UTC by the spec) as ExifTool prints it: no offset."""
    if seconds == 0:
        return "0000:00:00 00:00:00"
    try:
        return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y:%m:%d %H:%M:%S")
    except OverflowError:
        return "0000:00:00 00:00:00"


def iso6709(text: str) -> tuple[float, float, float | None] | None:
    """Latitude, longitude and altitude from an ISO 6709 string such as +32.6189+036.1021/."""
    match = _ISO6709.match(text.strip())
    if not match:
        return None
    alt = float(match.group(3)) if match.group(3) else None
    return float(match.group(1)), float(match.group(2)), alt


class _Walker:
    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream = stream
        self.size = size
        self.movie = Movie()
        self.boxes = 0
        self.track = 0
        self.keys: list[str] = []
        self.heif: dict[str, Any] = {"ispe": {}, "ipma": {}, "pitm": None, "index": 0}

    def read(self, offset: int, length: int) -> bytes:
        self.stream.seek(offset)
        return self.stream.read(max(0, min(length, MAX_SEGMENT)))

    def walk(self, start: int, end: int, depth: int, parent: bytes = b"") -> None:
        pos = start
        while pos + 8 <= end:
            self.boxes += 1
            if self.boxes > MAX_BOXES:
                self.movie.problems.append(f"more than {MAX_BOXES} boxes: the rest were not read")
                return
            header = self.read(pos, 16)
            if len(header) < 8:
                self.movie.problems.append(f"box header at byte {pos} is truncated")
                return
            size, kind = struct.unpack(">I4s", header[:8])
            body = pos + 8
            if size == 1 and len(header) >= 16:
                size = struct.unpack(">Q", header[8:16])[0]
                body = pos + 16
            elif size == 0:
                size = end - pos
            if size < body - pos:
                self.movie.problems.append(f"box {kind!r} at byte {pos} has an impossible size {size}")
                return
            if pos + size > end:
                self.movie.problems.append(f"box {kind!r} at byte {pos} runs past the end of its container")
                size = end - pos
            self.box(kind, body, pos + size, depth, parent)
            pos += size

    def box(self, kind: bytes, start: int, end: int, depth: int, parent: bytes) -> None:
        if depth >= MAX_BOX_DEPTH:
            self.movie.problems.append(f"boxes nested deeper than {MAX_BOX_DEPTH} levels: not read")
            return
        if kind in _CONTAINERS:
            if kind == b"trak":
                self.track += 1
            self.walk(start, end, depth + 1, kind)
            return
        if kind == b"meta":
            # ISO 'meta' is a full box (4 bytes of version and flags); QuickTime's is not.
            peek = self.read(start, 8)
            offset = 0 if peek[4:8] in (b"hdlr", b"keys", b"ilst") else 4
            self.walk(start + offset, end, depth + 1, kind)
            return
        data = self.read(start, min(end - start, MAX_SEGMENT))
        try:
            self.leaf(kind, data, parent, depth)
        except (struct.error, IndexError, ValueError) as exc:
            self.movie.problems.append(f"box {kind.decode('latin-1')!r} is malformed: {exc}")

    def group(self, name: str) -> dict[str, Any]:
        return self.movie.groups.setdefault(name, {})

    def leaf(self, kind: bytes, data: bytes, parent: bytes, depth: int) -> None:
        track = f"Track{self.track}"
        if kind == b"mvhd":
            version = data[0]
            if version == 1:
                ctime, mtime, scale, duration = struct.unpack(">QQIQ", data[4:32])
            else:
                ctime, mtime, scale, duration = struct.unpack(">IIII", data[4:20])
            qt = self.group("QuickTime")
            qt.update(CreateDate=qt_date(ctime), ModifyDate=qt_date(mtime), TimeScale=scale)
            if scale:
                qt["Duration"] = duration / scale
        elif kind == b"tkhd":
            version = data[0]
            if version == 1:
                ctime, mtime, track_id, _, duration = struct.unpack(">QQIIQ", data[4:36])
                rest = data[36:]
            else:
                ctime, mtime, track_id, _, duration = struct.unpack(">IIIII", data[4:24])
                rest = data[24:]
            width, height = struct.unpack(">II", rest[52:60])
            self.group(track).update(
                TrackCreateDate=qt_date(ctime), TrackID=track_id,
                ImageWidth=width >> 16, ImageHeight=height >> 16,
            )
        elif kind == b"mdhd":
            version = data[0]
            if version == 1:
                scale, duration = struct.unpack(">IQ", data[20:32])
            else:
                scale, duration = struct.unpack(">II", data[12:20])
            self.group(track).update(MediaTimeScale=scale, MediaDuration=duration / scale if scale else None)
        elif kind == b"hdlr" and parent in (b"mdia", b"meta"):
            handler = data[8:12].decode("latin-1")
            if parent == b"mdia":
                self.group(track)["HandlerType"] = handler
        elif kind == b"stsd" and len(data) >= 16:
            self.group(track)["CompressorID"] = data[12:16].decode("latin-1").strip()
        elif kind in (b"\xa9xyz", b"\xa9mak", b"\xa9mod", b"\xa9day", b"\xa9swr") and parent == b"udta":
            length = struct.unpack(">H", data[:2])[0]
            text = data[4 : 4 + length].decode("utf-8", "replace")
            name = {b"\xa9xyz": "GPSCoordinates", b"\xa9mak": "Make", b"\xa9mod": "Model",
                    b"\xa9day": "ContentCreateDate", b"\xa9swr": "SoftwareVersion"}[kind]
            self.group("UserData")[name] = clip(text)
        elif kind == b"loci":
            self.loci(data)
        elif kind == b"keys":
            count = struct.unpack(">I", data[4:8])[0]
            pos = 8
            for _ in range(min(count, 1000)):
                size = struct.unpack(">I", data[pos : pos + 4])[0]
                if size < 8:
                    break
                self.keys.append(data[pos + 8 : pos + size].decode("utf-8", "replace"))
                pos += size
        elif kind == b"ilst":
            self.ilst(data)
        elif kind == b"XMP_" or (kind == b"uuid" and data[:16] == XMP_UUID):
            packet = data[16:] if kind == b"uuid" else data
            self.movie.xmp.append(packet[:MAX_XMP])
        elif kind == b"uuid" and data[:16] == C2PA_UUID:
            self.movie.c2pa.append(data[:MAX_C2PA])
        elif kind == b"pitm":
            short = data[0] == 0
            self.heif["pitm"] = struct.unpack(">H" if short else ">I", data[4:6] if short else data[4:8])[0]
        elif kind == b"ispe" and parent == b"ipco":
            self.heif["index"] += 1
            self.heif["ispe"][self.heif["index"]] = struct.unpack(">II", data[4:12])
        elif parent == b"ipco":
            self.heif["index"] += 1  # any other property still takes an index
        elif kind == b"ipma":
            self.ipma(data)

    def loci(self, data: bytes) -> None:
        """3GPP location: name, role, then longitude, latitude, altitude as signed 16.16."""
        pos = 6
        if data[pos : pos + 2] in (b"\xfe\xff", b"\xff\xfe"):
            while pos + 1 < len(data) and data[pos : pos + 2] != b"\x00\x00":
                pos += 2
            pos += 2
        else:
            pos = data.index(b"\x00", pos) + 1
        role = data[pos]
        lon, lat, alt = struct.unpack(">iii", data[pos + 1 : pos + 13])
        self.group("UserData")["LocationInformation"] = {
            # ExifTool prints these with five decimals, and its Composite GPS tags use that text.
            "Role": role, "Longitude": round(lon / 65536, 5), "Latitude": round(lat / 65536, 5),
            "Altitude": round(alt / 65536, 2),
        }

    def ilst(self, data: bytes) -> None:
        pos = 0
        while pos + 8 <= len(data):
            size, kind = struct.unpack(">I4s", data[pos : pos + 8])
            if size < 8:
                return
            item = data[pos + 8 : pos + size]
            if item[4:8] == b"data" and len(item) >= 16:
                value_type = struct.unpack(">I", item[8:12])[0] & 0xFFFFFF
                raw = item[16 : struct.unpack(">I", item[:4])[0]]
                value: Any = raw.decode("utf-8", "replace") if value_type in (1, 0) else raw.hex()[:MAX_STRING]
                index = struct.unpack(">I", kind)[0]
                if self.keys and 1 <= index <= len(self.keys):
                    name = self.keys[index - 1].removeprefix("com.apple.quicktime.")
                    self.group("Keys")[name] = clip(value) if isinstance(value, str) else value
                else:
                    self.group("ItemList")[kind.decode("latin-1")] = clip(value) if isinstance(value, str) else value
            pos += size

    def ipma(self, data: bytes) -> None:
        version, flags = data[0], int.from_bytes(data[1:4], "big")
        count = struct.unpack(">I", data[4:8])[0]
        pos = 8
        for _ in range(min(count, 10_000)):
            if version < 1:
                item_id = struct.unpack(">H", data[pos : pos + 2])[0]
                pos += 2
            else:
                item_id = struct.unpack(">I", data[pos : pos + 4])[0]
                pos += 4
            n = data[pos]
            pos += 1
            indices = []
            for _ in range(n):
                if flags & 1:
                    indices.append(struct.unpack(">H", data[pos : pos + 2])[0] & 0x7FFF)
                    pos += 2
                else:
                    indices.append(data[pos] & 0x7F)
                    pos += 1
            self.heif["ipma"][item_id] = indices


def read_bmff(stream: BinaryIO, size: int) -> Movie:
    """Walk the boxes of an ISO base media file (the stream may be a file of any size)."""
    walker = _Walker(stream, size)
    walker.walk(0, size, 0)
    heif = walker.heif
    if heif["pitm"] is not None:
        for index in heif["ipma"].get(heif["pitm"], []):
            if index in heif["ispe"]:
                walker.movie.heif_size = heif["ispe"][index]
                break
    return walker.movie
