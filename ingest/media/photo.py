"""Photos (JPEG, PNG, WebP, TIFF, HEIC/HEIF): EXIF, XMP, IPTC and C2PA blocks, and the stored size."""

from __future__ import annotations

import base64
import io
import struct
from pathlib import Path
from typing import Any

from ingest.media.containers import Blocks, walk_jpeg, walk_png, walk_webp
from ingest.media.exif import read_exif, read_exif_bytes, scan_tiff
from ingest.media.limits import MAX_SEGMENT
from ingest.media.model import MediaMetadata

Data = bytes | Any  # bytes, or an mmap of the file (same slicing and find)


def _heif(data: Data, path: Path | None, meta: MediaMetadata, native: bool) -> Blocks:
    """HEIC/HEIF: EXIF and XMP through pillow-heif; the stored size from the primary item's ispe box."""
    from ingest.media.isobmff import read_bmff

    blocks = Blocks()
    with io.BytesIO(data) if path is None else open(path, "rb") as stream:
        movie = read_bmff(stream, len(data))
    blocks.problems += movie.problems
    blocks.jumbf += movie.c2pa
    if movie.heif_size:
        blocks.width, blocks.height = movie.heif_size
    if not native:  # libheif brought the sandbox child down on this file before: exifread alone
        groups, warnings = read_exif(io.BytesIO(bytes(data[:MAX_SEGMENT])))
        meta.raw.setdefault("groups", {}).update(groups)
        blocks.problems += [f"exifread: {w}" for w in warnings]
        return blocks
    meta.parsers.append("pillow-heif")
    try:
        import pillow_heif

        heif = pillow_heif.open_heif(str(path) if path is not None else io.BytesIO(data), convert_hdr_to_8bit=False)
        info = heif.info
        if info.get("exif"):
            blocks.exif.append(info["exif"])
        if info.get("xmp"):
            blocks.xmp.append(info["xmp"])
        if blocks.width is None:
            # pillow-heif reports the size after rotation; ExifTool reports the stored one.
            blocks.width, blocks.height = heif.size
            blocks.problems.append("no ispe box for the primary image: size from the decoder")
    except Exception as exc:  # noqa: BLE001 - fall back on exifread, which reads HEIC itself
        blocks.problems.append(f"pillow-heif: {type(exc).__name__}: {exc}")
        groups, warnings = read_exif(io.BytesIO(bytes(data[:MAX_SEGMENT])))
        meta.raw.setdefault("groups", {}).update(groups)
        blocks.problems += [f"exifread: {w}" for w in warnings]
    return blocks


def _tiff(data: Data, meta: MediaMetadata) -> Blocks:
    blocks = Blocks(size_group="IFD0")
    head = bytes(data[:MAX_SEGMENT])
    groups, warnings = read_exif(io.BytesIO(head))
    meta.parsers.append("exifread")
    meta.raw.setdefault("groups", {}).update(groups)
    blocks.problems += [f"exifread: {w}" for w in warnings]
    _, packet = scan_tiff(head)  # tag 700, which exifread skips
    if packet:
        blocks.xmp.append(packet)
    return blocks


def _gif(data: Data) -> Blocks:
    blocks = Blocks()
    if len(data) >= 10:
        blocks.width, blocks.height = struct.unpack("<HH", data[6:10])
    return blocks


def extract_photo(data: Data, path: Path | None, meta: MediaMetadata, native: bool = True) -> Blocks:
    """Fill `meta.raw` with the photo's groups; returns the blocks found (for XMP and C2PA)."""
    file_type = meta.detected.file_type
    if file_type == "JPEG":
        blocks = walk_jpeg(data)
    elif file_type == "PNG":
        blocks = walk_png(data)
    elif file_type in ("WEBP", "Extended WEBP"):
        blocks = walk_webp(data)
    elif file_type == "TIFF":
        return _tiff(data, meta)
    elif file_type in ("HEIC", "HEIF", "AVIF"):
        blocks = _heif(data, path, meta, native)
    elif file_type == "GIF":
        blocks = _gif(data)
    else:
        return Blocks()
    meta.parsers.append(f"container:{file_type.lower()}")
    groups = meta.raw.setdefault("groups", {})
    if blocks.width is not None:
        groups.setdefault(blocks.size_group, {}).update(ImageWidth=blocks.width, ImageHeight=blocks.height)
    if blocks.exif:
        meta.parsers.append("exifread")
        exif_groups, warnings = read_exif_bytes(blocks.exif[0])
        for group, values in exif_groups.items():
            groups.setdefault(group, {}).update(values)
        blocks.problems += [f"exifread: {w}" for w in warnings]
        if len(blocks.exif) > 1:
            blocks.problems.append(f"{len(blocks.exif)} EXIF blocks: only the first was read, as ExifTool does")
    if blocks.iptc:
        meta.raw["IPTC"] = {"size": len(blocks.iptc), "base64": base64.b64encode(blocks.iptc).decode()}
    return blocks
