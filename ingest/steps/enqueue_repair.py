"""EnqueueRepair: an item acknowledged short of its policy gets a repair job, atomically.

Its `save` runs inside the transaction that commits the item, so a degraded
item (or one whose manifest could not be written) can never be acknowledged
without the job that will heal it: both commit, or neither does. A later
arrival gets one too when its restore fell short or an addendum was not written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archive.catalog.jobs import REPAIR, enqueue
from ingest.pipeline import Ingestion, Step

if TYPE_CHECKING:
    from sqlmodel import Session


class EnqueueRepair(Step):
    name = "enqueue-repair"
    runs_on_duplicates = True

    def save(self, ingestion: Ingestion, session: Session) -> None:
        duplicate = ingestion.results.get("deduplicate")
        side_objects_failed = any(error["step"] == "manifest" for error in ingestion.errors)
        short = (ingestion.status == "degraded" or len(ingestion.manifests) < len(ingestion.stored)
                 or side_objects_failed
                 or bool(duplicate is not None and (duplicate.unanswered or duplicate.vanished)))
        if short and ingestion.item_id is not None:
            reasons = sorted(ingestion.storage_errors)
            enqueue(session, REPAIR, item_id=ingestion.item_id, payload={"reason": "ingest", "failed": reasons})
