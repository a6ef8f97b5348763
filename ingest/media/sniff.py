"""Identify a file's format from its bytes, as ExifTool names it (FileType, MIMEType).

Names and declared types are what the sender says; the bytes are what the file
is. A file can be two things at once (a JPEG with a ZIP archive appended
reads as both): the extra identities go in `Detected.also`.
"""

from __future__ import annotations

import struct

from ingest.media.model import Detected

HEAD_SIZE = 4096  # bytes needed to identify

# ftyp major brand -> (FileType, MIMEType), after ExifTool's QuickTime.pm lookup.
_BRANDS: dict[bytes, tuple[str, str]] = {
    b"qt  ": ("MOV", "video/quicktime"),
    b"mqt ": ("MQV", "video/quicktime"),
    b"heic": ("HEIC", "image/heic"),
    b"heix": ("HEIF", "image/heif"),
    b"mif1": ("HEIF", "image/heif"),
    b"hevc": ("HEICS", "image/heic-sequence"),
    b"msf1": ("HEIFS", "image/heif-sequence"),
    b"avif": ("AVIF", "image/avif"),
    b"M4V ": ("M4V", "video/x-m4v"),
    b"M4VH": ("M4V", "video/x-m4v"),
    b"M4VP": ("M4V", "video/x-m4v"),
    b"M4A ": ("M4A", "audio/mp4"),
    b"M4B ": ("M4B", "audio/mp4"),
    b"M4P ": ("M4P", "audio/mp4"),
    b"F4V ": ("F4V", "video/mp4"),
    b"jp2 ": ("JP2", "image/jp2"),
    b"crx ": ("CRX", "video/x-canon-crx"),
}
_QT_TOP = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot", b"PICT", b"uuid"}
_KINDS = {"image": "photo", "video": "video"}


def _ftyp(head: bytes) -> tuple[str, str]:
    size = struct.unpack(">I", head[:4])[0]
    major = head[8:12]
    if major.startswith(b"3g2"):
        return "3G2", "video/3gpp2"
    if major[:3] in (b"3gp", b"3ge", b"3gs"):
        return "3GP", "video/3gpp"
    if major in _BRANDS:
        return _BRANDS[major]
    brands = head[16 : min(size, len(head))]
    compatible = {brands[i : i + 4] for i in range(0, len(brands) - 3, 4)}
    if compatible & {b"mp41", b"mp42", b"avc1"}:
        return "MP4", "video/mp4"
    if b"qt  " in compatible:
        return "MOV", "video/quicktime"
    return "MP4", "video/mp4"


def _matroska(head: bytes) -> tuple[str, str]:
    # The EBML header's DocType element (0x4282) says matroska or webm.
    at = head.find(b"\x42\x82", 4, 64)
    if at > 0 and head[at + 3 : at + 7] == b"webm":
        return "WEBM", "video/webm"
    return "MKV", "video/x-matroska"


def _identify(head: bytes) -> tuple[str | None, str]:
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG", "image/jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG", "image/png"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF", "image/tiff"
    if head[:4] == b"RIFF":
        form = head[8:12]
        if form == b"WEBP":
            return ("Extended WEBP" if head[12:16] == b"VP8X" else "WEBP"), "image/webp"
        if form == b"AVI ":
            return "AVI", "video/x-msvideo"
        if form == b"WAVE":
            return "WAV", "audio/x-wav"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _ftyp(head)
    if len(head) >= 8 and head[4:8] in _QT_TOP and struct.unpack(">I", head[:4])[0] >= 8:
        return "MOV", "video/quicktime"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return _matroska(head)
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF", "image/gif"
    if head[:2] == b"BM":
        return "BMP", "image/bmp"
    if head[:4] == b"%PDF":
        return "PDF", "application/pdf"
    if head[:4] == b"PK\x03\x04":
        return "ZIP", "application/zip"
    return None, "application/octet-stream"


def _zip_end(tail: bytes) -> bool:
    """Whether the bytes end with a ZIP end-of-central-directory record (its comment reaching the end)."""
    at = tail.rfind(b"PK\x05\x06")
    while at >= 0:
        if len(tail) >= at + 22 and at + 22 + struct.unpack("<H", tail[at + 20 : at + 22])[0] == len(tail):
            return True
        at = tail.rfind(b"PK\x05\x06", 0, at)
    return False


def identify(head: bytes, tail: bytes = b"") -> Detected:
    """The format from the first bytes; `tail` (the last 64 KiB) reveals an appended archive."""
    file_type, mime = _identify(head)
    kind = _KINDS.get(mime.split("/")[0], "other")
    if file_type == "MOV" and mime.startswith("video"):
        kind = "video"
    also: list[str] = []
    # A ZIP is read from its end (the end-of-central-directory record), so any file
    # with one near its end opens as an archive too: the classic JPEG+ZIP polyglot.
    if file_type != "ZIP" and _zip_end(tail):
        also.append("application/zip")
    return Detected(file_type=file_type, mime=mime, kind=kind, also=also)


# Extensions a sender's file name may carry, and the MIME types they claim.
EXTENSIONS: dict[str, str] = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "jpe": "image/jpeg",
    "png": "image/png",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heic",
    "gif": "image/gif",
    "mp4": "video/mp4",
    "m4v": "video/x-m4v",
    "mov": "video/quicktime",
    "qt": "video/quicktime",
    "3gp": "video/3gpp",
    "3g2": "video/3gpp2",
    "mkv": "video/x-matroska",
    "webm": "video/webm",
    "avi": "video/x-msvideo",
    "zip": "application/zip",
    "pdf": "application/pdf",
    "bmp": "image/bmp",
    "avif": "image/avif",
}
_EQUIVALENT = {"image/heif": "image/heic", "image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}


def mismatch(detected: str, declared_type: str | None, name: str | None) -> str | None:
    """Why the sender's claim (declared MIME type, then file extension) disagrees with the bytes, or None."""

    def same(a: str, b: str) -> bool:
        return _EQUIVALENT.get(a, a) == _EQUIVALENT.get(b, b)

    reasons = []
    if declared_type:
        claimed = declared_type.split(";")[0].strip().lower()
        if claimed and claimed != "application/octet-stream" and not same(claimed, detected):
            reasons.append(f"declared type {claimed}")
    if name and "." in name:
        ext = name.rsplit(".", 1)[1].lower()
        by_name = EXTENSIONS.get(ext)
        if by_name is not None and not same(by_name, detected):
            reasons.append(f"name ends .{ext} ({by_name})")
    if not reasons:
        return None
    return f"{' and '.join(reasons)}, but the bytes are {detected}"
