"""Search by a precise GPS box: candidates from the clear coarse cells, decrypted, filtered exactly.

Why this shape: precise coordinates are sealed (`archive.catalog.metadata`),
so no SQL condition can compare them. Each item keeps in clear only the cell
(about 11 km on a side) it falls in; the cells a box touches select a
superset, whose sealed coordinates are opened and compared with the box. A
box larger than a few thousand cells opens every located item instead.

A box runs east from its first longitude to its second. One whose first is
east of its second would cross the antimeridian; sorting its corners (as
once done) silently searched the rest of the world instead, so it is refused:
search each side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from archive.services.errors import ServiceError

if TYPE_CHECKING:
    from archive.context import Archive


class AcrossAntimeridian(ServiceError):
    """A box whose western longitude is east of its eastern one: not supported (the caller exits 1)."""


@dataclass(frozen=True)
class Box:
    """A latitude/longitude box: latitudes in either order, the western longitude first (none across 180°)."""

    south: float
    west: float
    north: float
    east: float

    @classmethod
    def parse(cls, text: str) -> Box:
        """`LAT1,LON1,LAT2,LON2` in decimal degrees, LON1 the western edge and LON2 the eastern."""
        try:
            lat1, lon1, lat2, lon2 = (float(part) for part in text.split(","))
        except ValueError:
            raise ServiceError(f"a box is LAT1,LON1,LAT2,LON2 in decimal degrees, not {text!r}") from None
        for lat in (lat1, lat2):
            if not -90 <= lat <= 90:
                raise ServiceError(f"latitude {lat} is not between -90 and 90")
        for lon in (lon1, lon2):
            if not -180 <= lon <= 180:
                raise ServiceError(f"longitude {lon} is not between -180 and 180")
        if lon1 > lon2:
            raise AcrossAntimeridian(f"longitude {lon1} is east of {lon2}: a box across the antimeridian is not "
                                     "supported; search each side (LON1 is the western edge, LON2 the eastern)")
        return cls(min(lat1, lat2), lon1, max(lat1, lat2), lon2)

    def holds(self, latitude: float, longitude: float) -> bool:
        return self.south <= latitude <= self.north and self.west <= longitude <= self.east


def items_in_box(archive: Archive, box: Box) -> list[str]:
    """The ids of the items whose capture position lies inside the box (edges included), sorted.

    Needs the catalog key (`Locked` otherwise). Rows written while locked and
    not settled yet cannot be opened and are left out.
    """
    from sqlmodel import Session, col, select

    from archive.catalog.metadata import ItemMetadata, cells_in_box, metadata_fields
    from archive.catalog.sealing import PENDING, catalog_keys
    from archive.db import read_only

    keys = catalog_keys(archive, "a search by position (coordinates are sealed in the catalog)")
    cells = cells_in_box(box.south, box.west, box.north, box.east)
    query = select(ItemMetadata).where(col(ItemMetadata.key_version) != PENDING)
    if cells is None:
        query = query.where(col(ItemMetadata.location_cell).is_not(None))
    else:
        query = query.where(col(ItemMetadata.location_cell).in_(cells))
    found: list[str] = []
    with Session(read_only(archive.engine)) as session:
        for row in session.exec(query):
            fields = metadata_fields(keys, row)
            lat, lon = fields.get("latitude"), fields.get("longitude")
            if lat is not None and lon is not None and box.holds(float(lat), float(lon)):
                found.append(row.item_id)
    return sorted(found)
