"""DeferAnalysis: metadata and fingerprints of a stream too large to analyse in the request.

Why: the sandbox children that read metadata and decode frames take the file
as bytes or as a path. A large upload has neither: its plaintext never touches
a disk and is too large to hold in memory. So the item is committed with an
`analysis` job (`archive.services.backfill.run_analysis`), which the worker
runs on the original decrypted into a sealed in-memory file. `Identify` still
runs at ingest, on the stream's first and last bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest.pipeline import Ingestion, Step

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive


class DeferAnalysis(Step):
    name = "deferred-analysis"

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        from archive.services.backfill import ANALYSIS_QUEUED, STEPS

        ingestion.event(ANALYSIS_QUEUED, steps=list(STEPS), jobs=1, only_missing=True, deferred=True)

    def save(self, ingestion: Ingestion, session: Session) -> None:
        from archive.catalog.jobs import ANALYSIS, enqueue
        from archive.services.backfill import STEPS

        if ingestion.item_id is None or ingestion.duplicate:
            return
        enqueue(session, ANALYSIS, item_id=ingestion.item_id, payload={"steps": list(STEPS), "only_missing": True})
