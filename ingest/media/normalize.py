"""From raw groups to the normalized fields, choosing among groups as ExifTool does.

ExifTool prefers EXIF over XMP in photos (XMP over QuickTime in videos) and
reports dates as the file wrote them; we do the same, so that `captured_at`
is the value ExifTool shows, in ISO 8601, with an offset only when the file
states one. Vendor MakerNote groups are not read.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ingest.media.isobmff import iso6709
from ingest.media.model import Detected, Normalized

Groups = dict[str, dict[str, Any]]

_DATE = re.compile(
    r"^\s*(\d{4})[:\-](\d{2})[:\-](\d{2})"  # date, EXIF (:) or XMP (-) style
    r"(?:[ T](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?"  # time, seconds and fraction optional
    r"\s*(Z|[+\-]\d{2}:?\d{2})?\s*$"  # offset, only when stated
)
_ORIENTATION_WORDS = {
    "top-left": 1, "top-right": 2, "bottom-right": 3, "bottom-left": 4,
    "left-top": 5, "right-top": 6, "right-bottom": 7, "left-bottom": 8,
}


def iso_date(value: Any) -> str | None:
    """An EXIF/XMP/QuickTime date as ISO 8601; None for a zero or unreadable date."""
    if not isinstance(value, str):
        return None
    match = _DATE.match(value)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if int(year) == 0 or int(month) == 0 or int(day) == 0:
        return None  # "0000:00:00 00:00:00" means no date at all
    out = f"{year}-{month}-{day}"
    if hour is not None:
        out += f"T{hour}:{minute}:{second or '00'}{fraction or ''}"
        if offset:
            out += offset if offset == "Z" or ":" in offset else f"{offset[:3]}:{offset[3:]}"
    return out


_EXIF_OFFSETS = {"ExifIFD:DateTimeOriginal": "OffsetTimeOriginal", "ExifIFD:DateTimeDigitized": "OffsetTimeDigitized"}
_OFFSET = re.compile(r"^[+\-]\d{2}:\d{2}$")


def _with_exif_offset(iso: str, path: str, groups: Groups) -> str:
    """An EXIF date with the offset EXIF 2.31 states beside it (OffsetTimeOriginal ...), if any.

    ExifTool keeps the two tags apart; the date and its stated offset together are
    the ISO 8601 moment, and a date with no stated offset stays without one.
    """
    tag = _EXIF_OFFSETS.get(path)
    offset = groups.get("ExifIFD", {}).get(tag) if tag else None
    if "T" not in iso or not isinstance(offset, str) or not _OFFSET.match(offset.strip()):
        return iso
    if re.search(r"(Z|[+\-]\d{2}:\d{2})$", iso):
        return iso
    return iso + offset.strip()


def _get(groups: Groups, path: str) -> Any:
    group, _, tag = path.partition(":")
    value = groups.get(group, {}).get(tag)
    return None if value in (None, "", []) else value


def _first(groups: Groups, paths: list[str]) -> Any:
    for path in paths:
        value = _get(groups, path)
        if value is not None:
            return value
    return None


def _number(value: Any) -> float | None:
    """A number from an int, float, 'num/den' string or one-element list."""
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        try:
            if "/" in text:
                num, den = text.split("/", 1)
                return float(num) / float(den) if float(den) else None
            result = float(text)
        except ValueError:
            return None
        return result if math.isfinite(result) else None
    return None


def _dms(value: Any) -> float | None:
    """EXIF degrees/minutes/seconds (three rationals) as decimal degrees."""
    parts = value if isinstance(value, list) else [value]
    numbers = [_number(p) for p in parts[:3]]
    if not numbers or any(n is None for n in numbers):
        return None
    total = 0.0
    for n, scale in zip(numbers, (1, 60, 3600), strict=False):
        total += (n or 0.0) / scale
    return total


def _xmp_coordinate(value: Any) -> float | None:
    """XMP's 'DDD,MM.mmmmN' or 'DDD,MM,SSN' as signed decimal degrees."""
    if not isinstance(value, str) or not value or value[-1].upper() not in "NSEW":
        return _number(value)
    parts = [_number(p) for p in value[:-1].split(",")]
    if any(p is None for p in parts):
        return None
    degrees = sum((p or 0.0) / s for p, s in zip(parts, (1, 60, 3600), strict=False))
    return -degrees if value[-1].upper() in "SW" else degrees


def _gps(groups: Groups) -> tuple[float | None, float | None, float | None]:
    exif = groups.get("GPS", {})
    alt = _number(exif.get("GPSAltitude"))
    if alt is not None and str(exif.get("GPSAltitudeRef", "0")).strip() in ("1", "[1]"):
        alt = -alt
    if exif.get("GPSLatitude") is not None and exif.get("GPSLongitude") is not None:
        lat, lon = _dms(exif["GPSLatitude"]), _dms(exif["GPSLongitude"])
        if lat is not None and str(exif.get("GPSLatitudeRef", "")).strip().upper().startswith("S"):
            lat = -lat
        if lon is not None and str(exif.get("GPSLongitudeRef", "")).strip().upper().startswith("W"):
            lon = -lon
        return lat, lon, alt
    if alt is not None:
        return None, None, alt
    xmp = groups.get("XMP-exif", {})
    if xmp.get("GPSLatitude") and xmp.get("GPSLongitude"):
        alt = _number(xmp.get("GPSAltitude"))
        if alt is not None and str(xmp.get("GPSAltitudeRef", "0")).strip() == "1":
            alt = -alt
        return _xmp_coordinate(xmp["GPSLatitude"]), _xmp_coordinate(xmp["GPSLongitude"]), alt
    # QuickTime: ISO 6709 strings (Apple keys, ©xyz), then the 3GPP location box.
    text = _first(groups, ["Keys:location.ISO6709", "Keys:location", "UserData:GPSCoordinates", "ItemList:©xyz"])
    loci = _get(groups, "UserData:LocationInformation")
    if isinstance(text, str) and (point := iso6709(text)):
        alt = point[2]
        if alt is None and isinstance(loci, dict):
            alt = _number(loci.get("Altitude"))
        return point[0], point[1], alt
    if isinstance(loci, dict):
        return _number(loci.get("Latitude")), _number(loci.get("Longitude")), _number(loci.get("Altitude"))
    return None, None, None


def _text(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    text = str(value).strip().strip("\x00").strip()
    return text[:255] or None


def _orientation(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().lower() in _ORIENTATION_WORDS:
        return _ORIENTATION_WORDS[value.strip().lower()]
    number = _number(value)
    return int(number) if number is not None and number == int(number) and 1 <= number <= 8 else None


def _size(groups: Groups, detected: Detected) -> tuple[int | None, int | None]:
    candidates = ["File", "PNG", "RIFF"]
    if detected.kind == "video":
        # The first track that is a picture (ExifTool's Track1 is usually it).
        tracks = sorted((g for g in groups if g.startswith("Track")), key=lambda g: int(g[5:] or 0))
        candidates += [t for t in tracks if groups[t].get("HandlerType", "vide") == "vide"]
    if detected.file_type == "TIFF":
        candidates.append("IFD0")
    for group in candidates:
        values = groups.get(group, {})
        width = _number(values.get("ImageWidth"))
        height = _number(values.get("ImageHeight", values.get("ImageLength")))
        if width and height:
            return int(width), int(height)
    return None, None


def normalize(groups: Groups, detected: Detected) -> Normalized:
    """The normalized fields from ExifTool-named groups; a field nothing states is None."""
    video = detected.kind == "video"
    originals = ["ExifIFD:DateTimeOriginal", "XMP-exif:DateTimeOriginal", "Matroska:DateTimeOriginal",
                 "RIFF:DateTimeOriginal"]
    created = ["ExifIFD:DateTimeDigitized", "XMP-xmp:CreateDate", "QuickTime:CreateDate"]
    if video:
        originals = ["XMP-exif:DateTimeOriginal", "Matroska:DateTimeOriginal", "RIFF:DateTimeOriginal",
                     "ExifIFD:DateTimeOriginal"]
        created = ["XMP-xmp:CreateDate", "QuickTime:CreateDate", "ExifIFD:DateTimeDigitized"]
    captured = None
    for path in originals + created:
        captured = iso_date(_get(groups, path))
        if captured:
            captured = _with_exif_offset(captured, path, groups)
            break
    lat, lon, alt = _gps(groups)
    if lat is not None and not -90 <= lat <= 90:
        lat = None
    if lon is not None and not -180 <= lon <= 180:
        lon = None
    width, height = _size(groups, detected)
    duration = _number(_first(groups, ["QuickTime:Duration", "Matroska:Duration", "Composite:Duration"]))
    return Normalized(
        media_type=detected.mime if detected.file_type else None,
        captured_at=captured,
        latitude=lat,
        longitude=lon,
        altitude=alt,
        make=_text(_first(groups, ["IFD0:Make", "XMP-tiff:Make", "XMP-exif:Make", "UserData:Make", "Keys:make"])),
        model=_text(_first(groups, ["IFD0:Model", "XMP-tiff:Model", "XMP-exif:Model", "UserData:Model",
                                    "Keys:model"])),
        orientation=_orientation(_first(groups, ["IFD0:Orientation", "XMP-tiff:Orientation",
                                                 "XMP-exif:Orientation"])),
        width=width,
        height=height,
        duration=duration if duration is None or duration >= 0 else None,
    )
