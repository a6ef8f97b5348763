"""Deduplicate: the same bytes are kept once; a second arrival is more provenance."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from archive.catalog.items import Item
from archive.db import read_only
from ingest.pipeline import Ingestion, Step

if TYPE_CHECKING:
    from archive.context import Archive


class Deduplicate(Step):
    name = "deduplicate"
    runs_on_duplicates = True

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        if ingestion.item_id is not None:
            return
        with Session(read_only(archive.engine)) as session:
            existing = session.exec(select(Item).where(Item.sha256 == ingestion.sha256)).first()
        if existing is None:
            ingestion.item_id = str(uuid.uuid4())  # random: an id says nothing about the file
            return
        ingestion.item_id = existing.id
        ingestion.duplicate = True
        ingestion.status = existing.status
        ingestion.media_type = existing.media_type
        for entry in ingestion.staged:  # never published, so nothing acknowledged is touched
            entry.writer.abort()
        ingestion.staged.clear()
