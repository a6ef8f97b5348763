"""What each item says about itself: a few coarse fields in clear, everything else sealed.

Why so little in clear: precise coordinates, device make, model and serial
numbers, owner names, C2PA signers and the raw metadata identify the people
who filmed; a stolen database must not. What stays in clear is what
statistics and search need and endangers no one:

- `media_type` and `detected_type`: the format (image/jpeg, JPEG), already
  implied by the kind of item and needed for counts by kind;
- `captured_day`: the capture date to the day (YYYY-MM-DD, as the file states
  it), for timelines; the exact time is sealed;
- `location_cell`: a grid cell of 0.1 degree of latitude (11.1 km) by at least
  11.1 km of longitude everywhere in the cell (cells widen in degrees towards
  the poles), so no cell is finer than ~10 km; it lets a search by a precise
  box open only the candidates of the cells it touches;
- `complete`: whether extraction ran to the end (False when a sandbox child
  died), so back-fill finds what to redo without opening rows.

The sealed fields (`SEALED_TABLE`, bound to the item id): the exact capture
time, latitude, longitude, altitude, make, model, orientation, width, height,
duration, declared type, type mismatch, raw metadata, the C2PA manifest and
its validation (signer identities), the analysis failures, the parsers and the
extraction time. Width, height and duration are sealed too: an exact
resolution hints at the device and an exact duration identifies a known video.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, SQLModel

from archive.catalog.sealing import PENDING, SealedTable, open_row, register

if TYPE_CHECKING:
    from archive.catalog.sealing import Sealer
    from archive.keys.catalog import CatalogKeys

SEALED_TABLE = "item_metadata"
register(SealedTable(SEALED_TABLE, "item_id"))

CELL_DEGREES = 0.1  # of latitude: 11.1 km north to south
CELL_KM = 111.32 * CELL_DEGREES  # the least east-west width of a cell


class ItemMetadata(SQLModel, table=True):
    """One row per item: the clear columns of the module docstring, and the sealed fields.

    Rows written before the catalog was sealed also hold the old plaintext
    columns (latitude, make, raw …), outside this model; `archive.services.seal_analysis`
    seals them and clears those columns.
    """

    __tablename__ = "item_metadata"

    item_id: str = Field(primary_key=True, foreign_key="items.id", max_length=36)
    media_type: str | None = Field(default=None, max_length=255)
    detected_type: str | None = Field(default=None, max_length=64)  # ExifTool's FileType
    captured_day: str | None = Field(default=None, max_length=10, index=True)
    location_cell: str | None = Field(default=None, max_length=16, index=True)
    complete: bool = True
    key_version: int = Field(default=0, index=True)
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))


NORMALIZED = (
    "media_type", "captured_at", "latitude", "longitude", "altitude",
    "make", "model", "orientation", "width", "height", "duration",
)
SEALED_FIELDS = (
    "captured_at", "latitude", "longitude", "altitude", "make", "model", "orientation", "width", "height",
    "duration", "declared_type", "type_mismatch", "raw", "c2pa", "errors", "parsers", "extracted_at",
)
SANDBOX_DIED = ("sandbox:failed", "sandbox:pure-python-retry")


def _band(lat: float) -> int:
    return min(int(math.floor((lat + 90.0) / CELL_DEGREES)), round(180 / CELL_DEGREES) - 1)


def _columns(band: int) -> int:
    """How many cells band `band` has around the globe: each at least CELL_KM wide at its poleward edge."""
    south = band * CELL_DEGREES - 90.0
    poleward = max(abs(south), abs(south + CELL_DEGREES))
    return max(1, int(math.floor(360.0 * 111.32 * math.cos(math.radians(min(poleward, 90.0))) / CELL_KM)))


def _column(band: int, lon: float) -> int:
    n = _columns(band)
    return min(int(math.floor((lon + 180.0) / 360.0 * n)), n - 1)


def coarse_cell(latitude: float | None, longitude: float | None) -> str | None:
    """The clear location cell of a position ("band.column"), None without a valid position."""
    if latitude is None or longitude is None or not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None
    band = _band(latitude)
    return f"{band}.{_column(band, longitude)}"


def cell_bounds(cell: str) -> tuple[float, float, float, float]:
    """(south, west, north, east) of a cell, in degrees: what its clear name reveals, no more."""
    band, column = (int(part) for part in cell.split("."))
    n = _columns(band)
    south = band * CELL_DEGREES - 90.0
    return south, column * 360.0 / n - 180.0, south + CELL_DEGREES, (column + 1) * 360.0 / n - 180.0


def cells_in_box(south: float, west: float, north: float, east: float, limit: int = 4096) -> list[str] | None:
    """Every cell a box touches (None: more than `limit`, search every located row instead)."""
    cells: list[str] = []
    for band in range(_band(south), _band(north) + 1):
        first, last = _column(band, west), _column(band, east)
        if len(cells) + last - first + 1 > limit:
            return None
        cells += [f"{band}.{column}" for column in range(first, last + 1)]
    return cells


def capture_day(captured_at: str | None) -> str | None:
    """The date part of an ISO 8601 capture time, as the file states it (no time zone conversion)."""
    if not captured_at or len(captured_at) < 10 or captured_at[4] != "-" or captured_at[7] != "-":
        return None
    return captured_at[:10]


def new_metadata(sealer: Sealer, item_id: str, fields: dict[str, Any], *, detected_type: str | None) -> ItemMetadata:
    """The row for an item: clear columns derived from `fields`, the sensitive ones sealed to the item id."""
    sealed = {name: fields.get(name) for name in SEALED_FIELDS}
    version, blob = sealer.seal(SEALED_TABLE, item_id, sealed)
    parsers = fields.get("parsers") or []
    return ItemMetadata(
        item_id=item_id,
        media_type=fields.get("media_type"),
        detected_type=detected_type,
        captured_day=capture_day(fields.get("captured_at")),
        location_cell=coarse_cell(fields.get("latitude"), fields.get("longitude")),
        complete=not any(mark in parsers for mark in SANDBOX_DIED),
        key_version=version,
        sealed=blob,
    )


def reseal(row: ItemMetadata, sealer: Sealer, fields: dict[str, Any]) -> None:
    """Seal changed fields (e.g. the failures after the worker finished a video) back into the row."""
    row.key_version, row.sealed = sealer.seal(SEALED_TABLE, row.item_id, {n: fields.get(n) for n in SEALED_FIELDS})


def metadata_fields(keys: CatalogKeys, row: ItemMetadata) -> dict[str, Any]:
    """The row's sealed fields opened, with its clear media type (`Locked` for a row not settled yet)."""
    fields = open_row(keys, SEALED_TABLE, row.item_id, row.key_version, row.sealed)
    return {**{name: None for name in SEALED_FIELDS}, **fields, "media_type": row.media_type}


def normalized_view(row: ItemMetadata | None, keys: CatalogKeys | None = None) -> dict[str, Any] | None:
    """The normalized fields as `evidence show` gives them under `metadata` (None: never extracted).

    Without the catalog key (or for a row written while locked and not settled
    yet) only the clear columns are known: the capture day stands for the time
    and the rest is None.
    """
    if row is None:
        return None
    if keys is None or row.key_version == PENDING:
        view = dict.fromkeys(NORMALIZED)
        view.update(media_type=row.media_type, captured_at=row.captured_day)
        return view
    fields = metadata_fields(keys, row)
    return {name: fields.get(name) for name in NORMALIZED}


def errors_of(row: ItemMetadata | None, keys: CatalogKeys | None = None) -> list[dict[str, str]]:
    """The analysis failures recorded on an item (sealed: a reason may quote a name); [] without the key."""
    if row is None or keys is None or row.key_version == PENDING:
        return []
    return list(metadata_fields(keys, row).get("errors") or [])
