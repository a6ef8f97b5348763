"""The catalog's tables. Importing this package registers every table."""

from archive.catalog.events import Event, LogHead
from archive.catalog.items import Item, Provenance, Replica

__all__ = ["Event", "Item", "LogHead", "Provenance", "Replica"]
