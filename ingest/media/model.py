"""The typed result of metadata extraction: normalized fields, raw metadata, failures."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# The normalized fields, in the order `evidence show` prints them.
FIELDS = (
    "media_type",
    "captured_at",
    "latitude",
    "longitude",
    "altitude",
    "make",
    "model",
    "orientation",
    "width",
    "height",
    "duration",
)


@dataclass
class Normalized:
    """What a file says about itself, in ExifTool's terms; None when the file does not say."""

    media_type: str | None = None  # ExifTool's MIMEType
    captured_at: str | None = None  # ISO 8601; an offset only when the file states one
    latitude: float | None = None  # signed decimal degrees
    longitude: float | None = None
    altitude: float | None = None  # metres, negative below sea level
    make: str | None = None
    model: str | None = None
    orientation: int | None = None  # EXIF orientation 1-8
    width: int | None = None  # stored pixels, before orientation is applied
    height: int | None = None
    duration: float | None = None  # seconds

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Failure:
    """One parser that could not read (all of) the file, and why."""

    step: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"step": self.step, "reason": self.reason}


@dataclass
class Detected:
    """The format as the bytes show it (never the name), and anything else the bytes also are."""

    file_type: str | None  # ExifTool's FileType, e.g. JPEG, MOV, WEBM
    mime: str  # ExifTool's MIMEType, or application/octet-stream
    kind: str  # photo | video | other
    also: list[str] = field(default_factory=list)  # polyglot: other formats found in the same bytes


@dataclass
class MediaMetadata:
    """Everything extraction learned about one file.

    `raw` keeps what the parsers returned, grouped as ExifTool groups them
    (IFD0, ExifIFD, GPS, XMP-xmp, QuickTime, Track1 ...) plus each library's
    own dump, so nothing is lost to normalization.
    """

    detected: Detected
    normalized: Normalized
    raw: dict[str, Any] = field(default_factory=dict)
    errors: list[Failure] = field(default_factory=list)
    parsers: list[str] = field(default_factory=list)  # which parsers ran, for the custody event
    c2pa: dict[str, Any] | None = None  # manifest store and validation result, when present

    def fail(self, step: str, reason: str) -> None:
        self.errors.append(Failure(step, reason[:500]))
