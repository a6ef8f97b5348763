"""Identify: the format from the bytes themselves, never from the name or declared type."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest.pipeline import Ingestion, Step

if TYPE_CHECKING:
    from archive.context import Archive

_SIGNATURES: list[tuple[int, bytes, str]] = [
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"GIF8", "image/gif"),
    (0, b"\x1a\x45\xdf\xa3", "video/x-matroska"),
    (0, b"%PDF", "application/pdf"),
    (0, b"PK\x03\x04", "application/zip"),
]


def sniff(head: bytes) -> str:
    for offset, magic, mime in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis"):
            return "image/heic" if brand != b"mif1" else "image/heif"
        if brand == b"qt  ":
            return "video/quicktime"
        return "video/mp4"
    return "application/octet-stream"


class Identify(Step):
    name = "identify"

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        if ingestion.media_type is not None:
            return
        with ingestion.open_plaintext() as stream:
            head = stream.read(64)
        ingestion.media_type = sniff(head)
