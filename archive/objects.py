"""What the archive keeps on a storage site: object names, their roles, and the
sealed documents that sit beside each original.

One home for the naming rules, so ingest, repair, fixity and rebuild agree on
them. Every name is random (`o/<2 hex>/<32 hex>`) and every side object is
named after its original plus a suffix, so a site can be read back without a
catalog while its names reveal nothing about content, source or arrival:

- `<original>.manifest` (or `<original>.r<hex>.manifest` when a repair writes one
  beside an older copy): the item and its first arrival, sealed with age.
- `<original>.<hex>.arrival`: one later arrival of the same bytes (an addendum),
  sealed the same way, so `rebuild-catalog` restores every provenance row.

Names are never reused, even for an object since lost: a side object written
later always gets fresh random characters.
"""

from __future__ import annotations

import json
import secrets
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archive.age import Identity

OBJECT_PREFIX = "o/"
MANIFEST_SUFFIX = ".manifest"
ARRIVAL_SUFFIX = ".arrival"
MANIFEST_FORMAT = "evidence-manifest/1"
ARRIVAL_FORMAT = "evidence-arrival/1"


class Role(StrEnum):
    """What a stored object (a replica row) is to its item."""

    ORIGINAL = "original"  # the age-encrypted original bytes
    MANIFEST = "manifest"  # the sealed description of the original and its first arrival
    ARRIVAL = "arrival"  # a sealed addendum for one later arrival of the same bytes


def new_object_name() -> str:
    """An opaque, random object name: it reveals nothing about the content or its source."""
    token = secrets.token_hex(16)
    return f"{OBJECT_PREFIX}{token[:2]}/{token}"


def manifest_name(original: str, *, fresh: bool = True) -> str:
    """The manifest's name beside `original`; a fresh random one when that original is older."""
    if fresh:
        return original + MANIFEST_SUFFIX
    return f"{original}.r{secrets.token_hex(4)}{MANIFEST_SUFFIX}"


def arrival_name(original: str) -> str:
    """A new, never-used addendum name beside `original`: random, so it says nothing about the arrival."""
    return f"{original}.{secrets.token_hex(8)}{ARRIVAL_SUFFIX}"


def is_beside(original: str, name: str) -> bool:
    """Whether `name` is a side object (manifest or addendum) of the object `original`."""
    return name.startswith(original + ".") and name.endswith((MANIFEST_SUFFIX, ARRIVAL_SUFFIX))


def role_of(name: str) -> Role:
    """The role an object's name gives it (for reading a site back without a catalog)."""
    if name.endswith(MANIFEST_SUFFIX):
        return Role.MANIFEST
    if name.endswith(ARRIVAL_SUFFIX):
        return Role.ARRIVAL
    return Role.ORIGINAL


def provenance_fields(
    *, source: str | None, note: str | None, original_name: str | None, declared_type: str | None,
    received_at: str | None, actor: str,
) -> dict[str, Any]:
    """One arrival's provenance, as sealed in manifests and addenda."""
    return {"source": source, "note": note, "original_name": original_name, "declared_type": declared_type,
            "received_at": received_at, "actor": actor}


def manifest_document(
    *, item_id: str, sha256: str, size: int, salt: str | None, media_type: str | None, object_name: str,
    ciphertext_sha256: str, ciphertext_size: int | None, recipients: list[str], provenance: dict[str, Any],
) -> dict[str, Any]:
    """The manifest of one stored original: enough to recreate the item and its first arrival.

    It carries the commitment's salt (sealed, like everything here), so a
    catalog rebuilt from one site can check the manifest against the log's
    commitment: age authenticates no sender, and anyone holding the public
    recipient can write a well-formed manifest.
    """
    return {
        "format": MANIFEST_FORMAT,
        "item_id": item_id,
        "sha256": sha256,
        "size": size,
        "salt": salt,
        "original_name": provenance.get("original_name"),
        "media_type": media_type,
        "received_at": provenance.get("received_at"),
        "object": object_name,
        "ciphertext_sha256": ciphertext_sha256,
        "ciphertext_size": ciphertext_size,
        "recipients": list(recipients),
        # Who handed the archive these bytes: sealed here too, so a catalog rebuilt
        # from storage alone still knows the source of the first arrival.
        "provenance": provenance,
    }


def arrival_document(*, item_id: str, sha256: str, object_name: str, provenance: dict[str, Any]) -> dict[str, Any]:
    """The addendum for one later arrival, beside the original `object_name`."""
    return {"format": ARRIVAL_FORMAT, "item_id": item_id, "sha256": sha256, "object": object_name,
            "provenance": provenance}


def seal(document: dict[str, Any], recipients: list[str]) -> bytes:
    """A side document encrypted with age to `recipients` (the configured ones, as for originals)."""
    from archive.age import Recipient, encrypt_bytes

    return encrypt_bytes(json.dumps(document, sort_keys=True).encode(), [Recipient.parse(r) for r in recipients])


def unseal(data: bytes, identities: list[Identity], expected_format: str) -> dict[str, Any]:
    """Decrypt a side document and check its format; raises `AgeError` or `ValueError`."""
    from archive.age import decrypt_bytes

    document = json.loads(decrypt_bytes(data, identities))
    if not isinstance(document, dict) or document.get("format") != expected_format:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ValueError(f"not a {expected_format} document (format {found!r})")
    return dict(document)
