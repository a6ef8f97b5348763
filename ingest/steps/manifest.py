"""WriteManifest: an encrypted manifest beside each stored original.

With the manifests and the custodian key alone, the catalog can be rebuilt
from any one storage site (`evidence rebuild-catalog`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from archive.age import Recipient, decrypt_bytes, encrypt_bytes
from archive.custody.log import INFORMATION_PACKAGE_CREATION, utc_now
from ingest.pipeline import Ingestion, PendingEvent, Step
from storage.base import StorageError

if TYPE_CHECKING:
    from archive.age import Identity
    from archive.context import Archive

MANIFEST_SUFFIX = ".manifest"
FORMAT = "evidence-manifest/1"


def manifest_document(ingestion: Ingestion, object_name: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "item_id": ingestion.item_id,
        "sha256": ingestion.sha256,
        "size": ingestion.size,
        "original_name": ingestion.incoming.original_name,
        "media_type": ingestion.media_type,
        "received_at": ingestion.results.get("received_at"),
        "object": object_name,
        "ciphertext_sha256": ingestion.ciphertext_sha256,
        "ciphertext_size": ingestion.ciphertext_size,
        "recipients": ingestion.recipients,
        # Who handed the archive these bytes: sealed here too, so a catalog rebuilt
        # from storage alone still knows the source of the first arrival.
        "provenance": {
            "source": ingestion.incoming.source,
            "note": ingestion.incoming.note,
            "original_name": ingestion.incoming.original_name,
            "declared_type": ingestion.incoming.declared_type,
            "received_at": ingestion.results.get("received_at"),
            "actor": ingestion.actor,
        },
    }


def read_manifest(data: bytes, identities: list[Identity]) -> dict[str, Any]:
    document = json.loads(decrypt_bytes(data, identities))
    if document.get("format") != FORMAT:
        raise ValueError(f"unknown manifest format {document.get('format')!r}")
    return dict(document)


class WriteManifest(Step):
    name = "manifest"

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        if ingestion.manifests:
            return
        ingestion.results.setdefault("received_at", utc_now())
        recipients = [Recipient.parse(r) for r in ingestion.recipients]
        for stored in ingestion.stored:
            document = manifest_document(ingestion, stored.name)
            sealed = encrypt_bytes(json.dumps(document, sort_keys=True).encode(), recipients)
            try:
                manifest = archive.backends[stored.backend].put_bytes(stored.name + MANIFEST_SUFFIX, sealed)
            except StorageError as exc:
                # The original is safe; a missing manifest is repaired like a missing copy.
                ingestion.fail(self.name, f"{stored.backend}: manifest not written ({exc})")
                continue
            ingestion.manifests.append(manifest)
            ingestion.events.append(
                PendingEvent(
                    INFORMATION_PACKAGE_CREATION,
                    "success",
                    {"object": "manifest", "backend": manifest.backend, "verified": "sha256"},
                    [f"{manifest.backend}:{manifest.name}"],
                )
            )
