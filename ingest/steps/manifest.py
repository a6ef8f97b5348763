"""WriteManifest: an encrypted manifest beside each stored original, and an
encrypted addendum for each later arrival of the same bytes.

With the manifests, the addenda and the custodian key alone, the catalog and
every provenance row can be rebuilt from any one storage site
(`evidence rebuild-catalog`). The names and formats live in `archive.objects`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from archive.custody.log import INFORMATION_PACKAGE_CREATION, utc_now
from archive.objects import (
    arrival_document,
    arrival_name,
    manifest_document,
    manifest_name,
    provenance_fields,
    seal,
)
from ingest.pipeline import Ingestion, PendingEvent, Step
from storage.base import StorageError

if TYPE_CHECKING:
    from archive.context import Archive
    from ingest.steps.dedupe import DuplicateArrival
    from storage.base import StoredObject


def arrival_provenance(ingestion: Ingestion) -> dict[str, Any]:
    """This arrival's provenance, as sealed in its manifest or addendum."""
    incoming = ingestion.incoming
    fields = provenance_fields(source=incoming.source, note=incoming.note, original_name=incoming.original_name,
                               declared_type=incoming.declared_type, received_at=ingestion.results.get("received_at"),
                               actor=ingestion.actor)
    if incoming.channel or incoming.source_id:  # the structured provenance, only when given (older documents alike)
        fields.update(channel=incoming.channel, source_id=incoming.source_id)
    return fields


def _document_for_new_item(ingestion: Ingestion, stored: StoredObject) -> dict[str, Any]:
    assert ingestion.item_id is not None and ingestion.sha256 is not None and ingestion.size is not None
    return manifest_document(
        item_id=ingestion.item_id, sha256=ingestion.sha256, size=ingestion.size, salt=ingestion.salt,
        media_type=ingestion.media_type, object_name=stored.name, ciphertext_sha256=stored.sha256,
        ciphertext_size=stored.size, recipients=ingestion.recipients, provenance=arrival_provenance(ingestion),
    )


class WriteManifest(Step):
    name = "manifest"
    runs_on_duplicates = True  # a later arrival gets its addenda; restored copies their manifests

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        if ingestion.manifests or ingestion.arrivals:
            return
        ingestion.results.setdefault("received_at", utc_now())
        duplicate: DuplicateArrival | None = ingestion.results.get("deduplicate")
        if duplicate is None:
            for stored in ingestion.stored:
                self._put(ingestion, archive, stored.backend, manifest_name(stored.name),
                          _document_for_new_item(ingestion, stored), ingestion.manifests, "manifest")
            return
        self._duplicate(ingestion, archive, duplicate)

    def _duplicate(self, ingestion: Ingestion, archive: Archive, duplicate: DuplicateArrival) -> None:
        """Addenda beside every verified original; a restored copy gets the full set."""
        this_arrival = arrival_provenance(ingestion)
        for stored in ingestion.stored:  # copies restored from these bytes: described as the item, from its start
            document = manifest_document(
                item_id=duplicate.item_id, sha256=duplicate.sha256, size=duplicate.size,
                salt=duplicate.salt, media_type=duplicate.media_type, object_name=stored.name,
                ciphertext_sha256=stored.sha256,
                ciphertext_size=stored.size, recipients=ingestion.recipients, provenance=duplicate.arrivals[0],
            )
            self._put(ingestion, archive, stored.backend, manifest_name(stored.name), document,
                      ingestion.manifests, "manifest")
            for earlier in [*duplicate.arrivals[1:], this_arrival]:
                self._put(ingestion, archive, stored.backend, arrival_name(stored.name),
                          arrival_document(item_id=duplicate.item_id, sha256=duplicate.sha256,
                                           object_name=stored.name, provenance=earlier),
                          ingestion.arrivals, "arrival")
        for kept in duplicate.kept:
            self._put(ingestion, archive, kept.backend, arrival_name(kept.object_name),
                      arrival_document(item_id=duplicate.item_id, sha256=duplicate.sha256,
                                       object_name=kept.object_name, provenance=this_arrival),
                      ingestion.arrivals, "arrival")

    def _put(self, ingestion: Ingestion, archive: Archive, backend_name: str, name: str, document: dict[str, Any],
             into: list[StoredObject], what: str) -> None:
        backend = archive.backends.get(backend_name)
        try:
            if backend is None:
                raise StorageError("backend not configured")
            written = backend.put_bytes(name, seal(document, ingestion.recipients))
        except StorageError as exc:
            # The original is safe; a missing side object is repaired like a missing copy.
            ingestion.fail(self.name, f"{backend_name}: {what} not written ({exc})")
            return
        into.append(written)
        ingestion.events.append(
            PendingEvent(
                INFORMATION_PACKAGE_CREATION,
                "success",
                {"object": what, "role": what, "backend": written.backend, "ciphertext_sha256": written.sha256,
                 "verified": "sha256"},
                [f"{written.backend}:{written.name}"],
            )
        )
