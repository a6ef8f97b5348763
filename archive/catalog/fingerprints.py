"""Perceptual fingerprints of items, and the near-duplicate candidates they suggest."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel


class Fingerprint(SQLModel, table=True):
    """One 64-bit perceptual hash of one view of a photo, or of one sampled video frame.

    `value` is the unsigned hash stored as a signed 64-bit integer (a BIGINT on
    every database); `variant` names the view ("full", "c94", "tfull" …, "frame"),
    `offset_ms` the frame's time in a video (0 for photos).
    """

    __tablename__ = "fingerprints"

    id: int | None = Field(default=None, primary_key=True)
    item_id: str = Field(foreign_key="items.id", index=True, max_length=36)
    kind: str = Field(max_length=16)  # phash | dhash
    variant: str = Field(max_length=16)
    offset_ms: int = 0
    value: int = Field(sa_column=Column(BigInteger, nullable=False))


class Candidate(SQLModel, table=True):
    """A suggested near-duplicate, found when `item_id` was ingested; an investigator
    confirms or rejects it. Items are never merged automatically."""

    __tablename__ = "candidates"

    id: int | None = Field(default=None, primary_key=True)
    item_id: str = Field(foreign_key="items.id", index=True, max_length=36)
    other_id: str = Field(foreign_key="items.id", index=True, max_length=36)
    distance: int
    frame_match_share: float | None = None
    state: str = Field(default="candidate", max_length=16)  # candidate | confirmed | rejected
    created_at: str = Field(max_length=32)
