"""Bounds on what metadata parsing may cost, whatever the file claims about itself.

Two layers. Structurally, here: parsers only ever see the metadata segments,
capped in size, never decode pixels, and stop at counts and depths below. And
as processes: every parser runs in a sandbox child (`ingest.sandbox`) with an
address-space, CPU-time and wall-clock limit, so whatever slips past these
bounds (a native crash, a loop) costs one child and is recorded on the item.
"""

from __future__ import annotations

MAX_HEADER_SCAN = 16 * 1024 * 1024  # bytes of a photo walked to find its metadata segments
MAX_SEGMENT = 16 * 1024 * 1024  # one metadata block (EXIF, XMP, ICC, JUMBF) handed to a parser
MAX_XMP = 4 * 1024 * 1024  # an XMP packet (extended XMP included)
MAX_XMP_PACKETS = 4  # standard + extended packets read from one file
MAX_XMP_DEPTH = 64  # XML element nesting; deeper is refused as hostile
MAX_XMP_VALUES = 20_000  # properties kept from one packet
MAX_STRING = 4096  # characters kept of one raw value; the rest is cut and marked
MAX_LIST = 256  # items kept of one multi-valued raw value
MAX_TAGS = 5_000  # EXIF tags kept from one file
MAX_EXIF_VALUES = 100_000  # values exifread may decode one by one (real files: a few thousand)
MAX_BOXES = 10_000  # ISO-BMFF boxes walked
MAX_CHUNKS = 100_000  # PNG / RIFF chunks walked
MAX_BOX_DEPTH = 16
MAX_C2PA = 8 * 1024 * 1024  # raw manifest bytes kept
MAX_JUMBF_DEPTH = 32  # nesting of C2PA/JUMBF boxes handed to the C2PA library
MAX_JUMBF_BOXES = 20_000


def clip(value: str, limit: int = MAX_STRING) -> str:
    """A string no longer than `limit`, marked when cut, so raw JSON stays bounded."""
    if len(value) <= limit:
        return value
    return value[:limit] + f"…[{len(value) - limit} more characters cut]"
