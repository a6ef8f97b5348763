"""The catalog's tables. Importing this package registers every table."""

from archive.catalog.checkpoints import Checkpoint, LogState, LogTile
from archive.catalog.events import Event, LogHead
from archive.catalog.exports import Export, ExportRecipient
from archive.catalog.fingerprints import Candidate, ItemFingerprints
from archive.catalog.items import Item, Provenance, Replica
from archive.catalog.jobs import Cursor, Job
from archive.catalog.metadata import ItemMetadata
from archive.catalog.settings import ArchiveSetting, StorageSite
from archive.catalog.web import Credential, Preview, WebSession

__all__ = [
    "ArchiveSetting", "Candidate", "Checkpoint", "Credential", "Cursor", "Event", "Export", "ExportRecipient",
    "Item", "ItemFingerprints", "ItemMetadata", "Job", "LogHead", "LogState", "LogTile", "Preview", "Provenance",
    "Replica", "StorageSite", "WebSession",
]
