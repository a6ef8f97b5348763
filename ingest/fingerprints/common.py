"""Types shared by the photo and video fingerprinters."""

from __future__ import annotations

from dataclasses import dataclass

MIN_SIDE = 64  # smaller pictures carry too little to fingerprint without false matches


class NoFingerprint(Exception):
    """The file cannot be fingerprinted; the message is the reason recorded on the item."""


@dataclass(frozen=True)
class Hash:
    """One 64-bit perceptual hash of a picture, or of one variant of it, or of one video frame.

    `kind` is the algorithm ("phash" or "dhash"); `variant` says which view of the
    picture was hashed (the whole picture, a centre crop, a sampled frame);
    `offset_ms` is the frame's time in a video (0 for photos).
    """

    kind: str
    variant: str
    value: int  # unsigned, 0 <= value < 2**64
    offset_ms: int = 0


def to_signed(value: int) -> int:
    """An unsigned 64-bit hash as the signed integer a BIGINT column holds."""
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned(value: int) -> int:
    """The inverse of `to_signed`."""
    return value + (1 << 64) if value < 0 else value
