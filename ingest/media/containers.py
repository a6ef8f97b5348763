"""Walking photo containers to find their metadata blocks and stored pixel size.

Only headers are read, never pixels: a file that declares 50,000 x 50,000
pixels costs the same as one that declares 50 x 50. Each walker collects the
blocks the metadata parsers need (EXIF, XMP, IPTC, C2PA/JUMBF) and the size
ExifTool reports (File:ImageWidth for JPEG, PNG:ImageWidth, RIFF:ImageWidth).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from ingest.media.limits import MAX_CHUNKS, MAX_HEADER_SCAN, MAX_SEGMENT, MAX_XMP

XMP_SIG = b"http://ns.adobe.com/xap/1.0/\x00"
XMP_EXT_SIG = b"http://ns.adobe.com/xmp/extension/\x00"


@dataclass
class Blocks:
    """Metadata blocks found in a container, and its stored pixel size."""

    width: int | None = None
    height: int | None = None
    size_group: str = "File"  # which ExifTool group reports the size
    exif: list[bytes] = field(default_factory=list)
    xmp: list[bytes] = field(default_factory=list)
    iptc: bytes | None = None  # Photoshop IRB resource 0x0404 (IPTC-IIM), kept raw
    jumbf: list[bytes] = field(default_factory=list)  # C2PA manifest store boxes
    info: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _iptc_from_irb(data: bytes) -> bytes | None:
    """The IPTC-IIM resource (0x0404) from a Photoshop image-resource block."""
    pos = 0
    while pos + 12 <= len(data) and data[pos : pos + 4] == b"8BIM":
        rid = struct.unpack(">H", data[pos + 4 : pos + 6])[0]
        name_len = data[pos + 6]
        pos += 7 + name_len + ((name_len + 1) % 2)  # Pascal name, padded to even
        if pos + 4 > len(data):
            return None
        size = struct.unpack(">I", data[pos : pos + 4])[0]
        pos += 4
        if rid == 0x0404:
            return data[pos : pos + size]
        pos += size + (size % 2)
    return None


def walk_jpeg(data: bytes) -> Blocks:
    """JPEG markers up to the first scan: APP1 EXIF/XMP, APP13 IPTC, APP11 JUMBF, SOF size."""
    blocks = Blocks()
    extended: dict[bytes, dict[int, bytes]] = {}
    jumbf: dict[int, dict[int, bytes]] = {}
    # Running totals per block: re-summing what was collected on every segment was quadratic.
    held: dict[bytes, int] = {}
    jumbf_held: dict[int, int] = {}
    iptc_parts: list[bytes] = []
    iptc_size = 0
    pos, end = 2, min(len(data), MAX_HEADER_SCAN)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            blocks.problems.append(f"JPEG marker expected at byte {pos}, found 0x{data[pos]:02x}")
            nxt = data.find(b"\xff", pos)
            if nxt < 0:
                break
            pos = nxt
            continue
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xD9:
            break
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        payload = data[pos + 4 : pos + 2 + length]
        if length < 2 or pos + 2 + length > len(data):
            blocks.problems.append(f"JPEG segment 0x{marker:02x} at byte {pos} runs past the end of the file")
        if marker in _SOF and len(payload) >= 5 and blocks.width is None:
            blocks.height, blocks.width = struct.unpack(">HH", payload[1:5])
            blocks.info["jpeg_sof"] = f"0x{marker:02x}"
        elif marker == 0xE1 and payload.startswith(b"Exif"):
            blocks.exif.append(payload)
        elif marker == 0xE1 and payload.startswith(XMP_SIG):
            blocks.xmp.append(payload[len(XMP_SIG) :])
        elif marker == 0xE1 and payload.startswith(XMP_EXT_SIG) and len(payload) > len(XMP_EXT_SIG) + 40:
            body = payload[len(XMP_EXT_SIG) :]
            guid, offset = body[:32], struct.unpack(">I", body[36:40])[0]
            chunks = extended.setdefault(guid, {})
            if held.get(guid, 0) < MAX_XMP and offset not in chunks:
                chunks[offset] = body[40:]
                held[guid] = held.get(guid, 0) + len(body) - 40
        elif marker == 0xED and payload.startswith(b"Photoshop 3.0\x00"):
            iptc = _iptc_from_irb(payload[14:])
            if iptc and iptc_size < MAX_SEGMENT:
                iptc_parts.append(iptc)  # joined once below: adding bytes to bytes per segment was quadratic
                iptc_size += len(iptc)
        elif marker == 0xEB and payload[:2] == b"JP" and len(payload) > 16:
            # JPEG XT / JUMBF: CI "JP", box instance (2), sequence number (4), then the box;
            # every segment repeats the box header, which continuation segments drop.
            instance, sequence = struct.unpack(">HI", payload[2:8])
            pieces = jumbf.setdefault(instance, {})
            if jumbf_held.get(instance, 0) < MAX_SEGMENT and sequence not in pieces:
                pieces[sequence] = payload[8:]
                jumbf_held[instance] = jumbf_held.get(instance, 0) + len(payload) - 8
        if marker == 0xDA:
            break
        pos += 2 + length
    if iptc_parts:
        blocks.iptc = b"".join(iptc_parts)
    for chunks in extended.values():
        blocks.xmp.append(b"".join(chunks[k] for k in sorted(chunks)))
    for pieces in jumbf.values():
        ordered = [pieces[k] for k in sorted(pieces)]
        header = 16 if ordered[0][:4] == b"\x00\x00\x00\x01" else 8  # LBox/TBox (+ XLBox)
        blocks.jumbf.append(ordered[0] + b"".join(p[header:] for p in ordered[1:]))
    if blocks.width is None:
        blocks.problems.append("no JPEG frame header (SOF): image size unknown")
    return blocks


def walk_png(data: bytes) -> Blocks:
    """PNG chunks: IHDR size, eXIf, XMP in iTXt, legacy 'Raw profile' EXIF in text chunks, caBX (C2PA)."""
    blocks = Blocks(size_group="PNG")
    pos, chunks = 8, 0
    while pos + 8 <= len(data) and chunks < MAX_CHUNKS:  # chunks are skipped, not read: size does not matter
        chunks += 1
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + min(length, MAX_SEGMENT)]
        if pos + 12 + length > len(data):
            blocks.problems.append(f"PNG chunk {ctype!r} runs past the end of the file")
        if ctype == b"IHDR" and len(body) >= 8:
            blocks.width, blocks.height = struct.unpack(">II", body[:8])
        elif ctype == b"eXIf":
            blocks.exif.append(body)
        elif ctype == b"iTXt" and body.startswith(b"XML:com.adobe.xmp\x00"):
            rest = body[len(b"XML:com.adobe.xmp\x00") :]
            compressed = rest[:1] == b"\x01"
            # compression flag, method, language\0, translated keyword\0, text
            parts = rest[2:].split(b"\x00", 2)
            if len(parts) == 3:
                text = parts[2]
                if compressed:
                    text = _inflate(text, blocks)
                blocks.xmp.append(text)
        elif ctype in (b"zTXt", b"tEXt") and body.startswith(b"Raw profile type exif\x00"):
            raw = body.split(b"\x00", 1)[1]
            if ctype == b"zTXt":
                raw = _inflate(raw[1:], blocks)
            exif = _hex_profile(raw)
            if exif:
                blocks.exif.append(exif)
        elif ctype == b"caBX":
            blocks.jumbf.append(body)
        elif ctype == b"IEND":
            break
        pos += 12 + length
    if blocks.width is None:
        blocks.problems.append("no PNG header chunk (IHDR): image size unknown")
    return blocks


def _inflate(data: bytes, blocks: Blocks) -> bytes:
    """zlib with an output cap: a compressed chunk must not become a memory bomb."""
    try:
        out = zlib.decompressobj().decompress(data, MAX_XMP)
    except zlib.error as exc:
        blocks.problems.append(f"compressed PNG text chunk is corrupt: {exc}")
        return b""
    return out


def _hex_profile(raw: bytes) -> bytes | None:
    """ImageMagick's 'Raw profile type exif': a newline, a name, a length, then hex."""
    lines = raw.strip().split(b"\n", 2)
    if len(lines) < 3:
        return None
    try:
        return bytes.fromhex(lines[2].decode("ascii", "replace").replace("\n", "").strip())
    except ValueError:
        return None


def walk_webp(data: bytes) -> Blocks:
    """WebP RIFF chunks: VP8X/VP8/VP8L size, EXIF, XMP, C2PA."""
    blocks = Blocks(size_group="RIFF")
    pos, chunks = 12, 0
    while pos + 8 <= len(data) and chunks < MAX_CHUNKS:
        chunks += 1
        ctype = data[pos : pos + 4]
        length = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + min(length, MAX_SEGMENT)]
        if ctype == b"VP8X" and len(body) >= 10:
            blocks.width = 1 + int.from_bytes(body[4:7], "little")
            blocks.height = 1 + int.from_bytes(body[7:10], "little")
        elif ctype == b"VP8 " and len(body) >= 10 and blocks.width is None:
            w, h = struct.unpack("<HH", body[6:10])
            blocks.width, blocks.height = w & 0x3FFF, h & 0x3FFF
        elif ctype == b"VP8L" and len(body) >= 5 and blocks.width is None:
            bits = int.from_bytes(body[1:5], "little")
            blocks.width, blocks.height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        elif ctype == b"EXIF":
            blocks.exif.append(body)
        elif ctype == b"XMP ":
            blocks.xmp.append(body)
        elif ctype == b"C2PA":
            blocks.jumbf.append(body)
        pos += 8 + length + (length % 2)
    if blocks.width is None:
        blocks.problems.append("no WebP image chunk: image size unknown")
    return blocks
