"""The typed result of metadata extraction: normalized fields, raw metadata, failures."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MAX_FAILURES = 50  # failures recorded per file

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
        """Record a failure; past MAX_FAILURES only a count is kept (a hostile file can cause millions)."""
        if len(self.errors) < MAX_FAILURES:
            self.errors.append(Failure(step, reason[:500]))
        elif len(self.errors) == MAX_FAILURES:
            self.errors.append(Failure(step, "more failures than this were found: the rest were not recorded"))

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as it crosses the sandbox's process boundary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MediaMetadata:
        """The inverse of `to_dict`, keeping only known fields (the data came from a sandboxed child)."""
        detected = data.get("detected") or {}
        return cls(
            detected=Detected(
                file_type=detected.get("file_type"),
                mime=str(detected.get("mime") or "application/octet-stream"),
                kind=str(detected.get("kind") or "other"),
                also=[str(a) for a in detected.get("also") or []],
            ),
            normalized=Normalized(**{k: v for k, v in (data.get("normalized") or {}).items() if k in FIELDS}),
            raw=dict(data.get("raw") or {}),
            errors=[Failure(str(e["step"]), str(e["reason"])[:500]) for e in data.get("errors") or []],
            parsers=[str(p) for p in data.get("parsers") or []],
            c2pa=data.get("c2pa"),
        )
