"""What each item says about itself: normalized fields as columns, the rest as JSON."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


class ItemMetadata(SQLModel, table=True):
    """One row per item: the normalized fields (searchable columns), complete raw metadata,
    C2PA manifest and validation, and every analysis failure recorded during ingest.

    The declared type (from the sender) is kept beside the detected one (from the bytes);
    `type_mismatch` says why they disagree, or is null.
    """

    __tablename__ = "item_metadata"

    item_id: str = Field(primary_key=True, foreign_key="items.id", max_length=36)
    media_type: str | None = Field(default=None, max_length=255)
    captured_at: str | None = Field(default=None, max_length=40, index=True)
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    make: str | None = Field(default=None, max_length=255)
    model: str | None = Field(default=None, max_length=255)
    orientation: int | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    detected_type: str | None = Field(default=None, max_length=64)  # ExifTool's FileType
    declared_type: str | None = Field(default=None, max_length=255)
    type_mismatch: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    c2pa: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    errors: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    parsers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    extracted_at: str = Field(max_length=32)


NORMALIZED = (
    "media_type", "captured_at", "latitude", "longitude", "altitude",
    "make", "model", "orientation", "width", "height", "duration",
)


def normalized_view(row: ItemMetadata | None) -> dict[str, Any] | None:
    """The normalized fields as `evidence show` gives them under `metadata` (None: never extracted)."""
    if row is None:
        return None
    return {name: getattr(row, name) for name in NORMALIZED}
