"""ExtractMetadata: what the file says about itself (dates, place, device, size, duration).

Runs after Identify on the plaintext (bytes in memory, or the temporary
plaintext file for large originals). Extraction never refuses a file: each
parser failure becomes an item failure, and the original is kept regardless.
The custody event names the parsers and the outcome only: no coordinates,
no device names, nothing personal.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from archive.custody.log import METADATA_EXTRACTION, utc_now
from ingest.pipeline import Ingestion, Step

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive
    from ingest.media.model import MediaMetadata


def _json_safe(value: Any) -> Any:
    """Raw metadata as plain JSON (strings for anything exotic), whatever a parser returned."""
    return json.loads(json.dumps(value, default=str, allow_nan=False) if _finite(value) else "{}")


def _finite(value: Any) -> bool:
    try:
        json.dumps(value, default=str, allow_nan=False)
    except ValueError:
        return False
    return True


class ExtractMetadata(Step):
    name = "metadata"

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        if "metadata" in ingestion.results:
            return
        from ingest.media import extract

        source = ingestion.plaintext if ingestion.plaintext is not None else ingestion.plaintext_path
        if source is None:
            ingestion.fail(self.name, "no plaintext available to read metadata from")
            return
        identified = ingestion.results.get("identify") or {}
        meta = extract(source, detected=identified.get("detected"))
        ingestion.results["metadata"] = meta
        for failure in meta.errors:
            ingestion.fail(failure.step, failure.reason)
        details: dict[str, Any] = {"parsers": sorted(set(meta.parsers)), "failures": len(meta.errors)}
        if meta.c2pa is not None:
            details["c2pa"] = meta.c2pa["validation"]["state"]
        ingestion.event(METADATA_EXTRACTION, "warning" if meta.errors else "success", **details)

    def save(self, ingestion: Ingestion, session: Session) -> None:
        from archive.catalog.metadata import ItemMetadata

        meta: MediaMetadata | None = ingestion.results.get("metadata")
        if meta is None or ingestion.item_id is None:
            return
        identified = ingestion.results.get("identify") or {}
        fields = meta.normalized.to_dict()
        raw = meta.raw if _finite(meta.raw) else {"error": "raw metadata was not representable as JSON"}
        session.add(
            ItemMetadata(
                item_id=ingestion.item_id,
                **fields,
                detected_type=meta.detected.file_type,
                declared_type=ingestion.incoming.declared_type,
                type_mismatch=identified.get("mismatch"),
                raw=_json_safe(raw),
                c2pa=_json_safe(meta.c2pa) if meta.c2pa is not None else None,
                # Every analysis failure on the item (this step's and the others'), for `evidence show`.
                errors=list(ingestion.errors),
                parsers=sorted(set(meta.parsers)),
                extracted_at=utc_now(),
            )
        )
