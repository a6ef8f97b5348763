"""Builders for hostile and broken files (shared by the hostile-file tests)."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG that declares a huge picture: a few rows of zeros stand for 2.5 gigapixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * width) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b"")


def tiff_with_strings(strings: dict[int, bytes], next_ifd_self: bool = False) -> bytes:
    """A little-endian TIFF whose IFD0 holds the given ASCII tags (tag id -> value)."""
    entries = sorted(strings.items())
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries))
    data = b""
    for tag, value in entries:
        value = value + b"\x00"
        ifd += struct.pack("<HHII", tag, 2, len(value), data_offset + len(data))
        data += value
    ifd += struct.pack("<I", ifd_offset if next_ifd_self else 0)
    return b"II*\x00" + struct.pack("<I", ifd_offset) + ifd + data


def jpeg_with_app1(payload: bytes, sof: tuple[int, int] = (64, 48)) -> bytes:
    """A minimal JPEG: SOI, one APP1 segment, a baseline frame header, an empty scan, EOI."""
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, sof[1], sof[0], 1) + b"\x01\x11\x00"
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00\x00\x3f\x00"
    return b"\xff\xd8" + app1 + sof0 + sos + b"\x00" * 16 + b"\xff\xd9"


def xmp_packet(body: str) -> bytes:
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        + body
        + "</rdf:RDF></x:xmpmeta>"
    ).encode()


def nested_xmp(depth: int) -> bytes:
    opening = '<rdf:Description xmlns:a="urn:a">' + "<a:n>" * depth
    return xmp_packet(opening + "x" + "</a:n>" * depth + "</rdf:Description>")


def billion_laughs() -> bytes:
    names = "abcdefghij"
    entities = '<!ENTITY a "ha">' + "".join(
        f'<!ENTITY {names[i]} "' + f"&{names[i - 1]};" * 10 + '">' for i in range(1, 10)
    )
    return f"<?xml version=\"1.0\"?><!DOCTYPE x:xmpmeta [{entities}]>".encode() + xmp_packet(
        '<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>&j;</dc:title></rdf:Description>'
    )


def polyglot(jpeg: bytes) -> bytes:
    """A JPEG with a ZIP archive appended: image viewers show the picture, unzip lists the files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.txt", "hidden")
    return jpeg + buffer.getvalue()


def nested_boxes(depth: int) -> bytes:
    """An MP4 whose moov box holds `depth` nested udta boxes."""
    inner = b""
    for _ in range(depth):
        inner = struct.pack(">I4s", 8 + len(inner), b"udta") + inner
    moov = struct.pack(">I4s", 8 + len(inner), b"moov") + inner
    ftyp = struct.pack(">I4s4sI4s", 20, b"ftyp", b"isom", 512, b"mp41")
    return ftyp + moov


def nested_jumbf_jpeg(depth: int) -> bytes:
    """A JPEG whose APP11 carries a C2PA-labelled JUMBF superbox nesting `depth` superboxes."""
    inner = b""
    for _ in range(depth):
        inner = struct.pack(">I4s", 8 + len(inner), b"jumb") + inner
    label = struct.pack(">I4s", 8 + 17 + 5, b"jumd") + b"c2pa" + b"\x00" * 12 + b"\x03" + b"c2pa\x00"
    store = struct.pack(">I4s", 8 + len(label) + len(inner), b"jumb") + label + inner
    payload = b"JP" + struct.pack(">HI", 1, 1) + store
    app11 = b"\xff\xeb" + struct.pack(">H", len(payload) + 2) + payload
    plain = jpeg_with_app1(b"Exif\x00\x00" + tiff_with_strings({0x010F: b"Maker"}))
    return plain[:2] + app11 + plain[2:]
