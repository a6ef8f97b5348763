"""A hostile-media corpus, generated into a folder: each file attacks a parser or a decoder.

`write_corpus(folder)` writes them all and returns {name: what it attacks}.
Kept small on disk (the largest is the 4 MiB XMP packet) so tests stay fast.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from tests import hostile_files as h

XMP_SIG = b"http://ns.adobe.com/xap/1.0/\x00"


def quadratic_xmp_png(size: int = 4 * 1024 * 1024 - 4096) -> bytes:
    """The allowed 4 MiB of XMP in a PNG, one value made of ~500,000 text nodes.

    Every comment ends a text node, so expat calls back once per node: re-summing
    the text held so far on each callback took hours on this packet.
    """
    head = '<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>'
    tail = "</dc:title></rdf:Description>"
    node = "ab<!---->"
    count = (size - len(head) - len(tail) - 200) // len(node)
    packet = h.xmp_packet(head + node * count + tail)
    return _png_with_xmp(packet)


def _png_with_xmp(packet: bytes) -> bytes:
    """A 64 x 64 grey PNG carrying `packet` in an iTXt chunk (JPEG segments stop at 64 KiB)."""
    ihdr = struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + bytes((x * 4 + y) % 256 for x in range(64)) for y in range(64))
    itxt = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + packet
    return (
        b"\x89PNG\r\n\x1a\n" + h.png_chunk(b"IHDR", ihdr) + h.png_chunk(b"iTXt", itxt)
        + h.png_chunk(b"IDAT", zlib.compress(rows)) + h.png_chunk(b"IEND", b"")
    )


def nested_xmp_png(depth: int = 100_000) -> bytes:
    """XMP nested 100,000 elements deep (a recursive walker would overflow its stack)."""
    return _png_with_xmp(h.nested_xmp(depth))


def huge_jpeg(side: int = 60_000) -> bytes:
    """A JPEG whose frame header declares side x side pixels (3.6 gigapixels) over a few bytes."""
    return h.jpeg_with_app1(b"Exif\x00\x00" + h.tiff_with_strings({0x010F: b"Bomb"}), sof=(side, side))


def huge_png(side: int = 60_000) -> bytes:
    return h.png_bomb(side, side)


def lying_mp4() -> bytes:
    """An MP4 whose boxes claim sizes they do not have: a moov of 4 GiB, an mdat past the end."""
    ftyp = struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"isom", 512, b"isom", b"mp41")
    mvhd = struct.pack(">I4sB3xIIII", 108, b"mvhd", 0, 0, 0, 1000, 5000) + b"\x00" * 80
    moov = struct.pack(">I4s", 0xFFFFFFF0, b"moov") + mvhd
    mdat = struct.pack(">I4s", 1, b"mdat") + struct.pack(">Q", 1 << 62) + b"\x00" * 64
    trak = struct.pack(">I4s", 7, b"trak")  # smaller than its own header
    return ftyp + moov + trak + mdat


def zero_length_video() -> bytes:
    """An MP4 with a movie header and a video track that holds zero frames (empty sample tables)."""
    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(body), kind) + body

    mvhd = box(b"mvhd", struct.pack(">B3xIIII", 0, 0, 0, 1000, 0) + b"\x00" * 80)
    size = struct.pack(">II", 64 << 16, 64 << 16)
    tkhd = box(b"tkhd", struct.pack(">B3xIIIII", 0, 0, 0, 1, 0, 0) + b"\x00" * 52 + size)
    mdhd = box(b"mdhd", struct.pack(">B3xIIII", 0, 0, 0, 1000, 0) + b"\x00" * 4)
    hdlr = box(b"hdlr", b"\x00" * 8 + b"vide" + b"\x00" * 12 + b"v\x00")
    stsd = box(b"stsd", struct.pack(">B3xI", 0, 0))
    empty = b"".join(box(k, struct.pack(">B3xI", 0, 0)) for k in (b"stts", b"stsc", b"stco"))
    stsz = box(b"stsz", struct.pack(">B3xII", 0, 0, 0))
    stbl = box(b"stbl", stsd + empty + stsz)
    minf = box(b"minf", stbl)
    trak = box(b"trak", tkhd + box(b"mdia", mdhd + hdlr + minf))
    ftyp = box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isommp41")
    return ftyp + box(b"moov", mvhd + trak) + box(b"mdat", b"")


def zero_length_frame_jpeg() -> bytes:
    """A JPEG whose frame header declares 0 x 0 pixels."""
    return h.jpeg_with_app1(b"Exif\x00\x00" + h.tiff_with_strings({0x010F: b"Zero"}), sof=(0, 0))


CORPUS = {
    "quadratic-xmp.png": (quadratic_xmp_png, "4 MiB of XMP in ~500,000 text nodes"),
    "nested-xmp.png": (nested_xmp_png, "XMP nested 100,000 deep"),
    "huge.jpg": (huge_jpeg, "JPEG declaring 60,000 x 60,000 pixels"),
    "huge.png": (huge_png, "PNG declaring 60,000 x 60,000 pixels"),
    "lying-boxes.mp4": (lying_mp4, "MP4 whose box sizes lie"),
    "zero-length.mp4": (zero_length_video, "MP4 with a zero-length video stream"),
    "zero-frame.jpg": (zero_length_frame_jpeg, "JPEG with a 0 x 0 frame"),
}


def write_corpus(folder: Path) -> dict[str, str]:
    """Write every hostile file into `folder`; returns {file name: what it attacks}."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (make, what) in CORPUS.items():
        (folder / name).write_bytes(make())
        out[name] = what
    return out
