"""ExtractMetadata: what the file says about itself (dates, place, device, size, duration).

Runs after Identify on the plaintext (bytes in memory, or the temporary
plaintext file for large originals), inside a sandbox child (`ingest.sandbox`):
a parser that crashes, hangs or exhausts memory costs that child only. Extraction never refuses a file: each
parser failure becomes an item failure, and the original is kept regardless.
The custody event names the parsers and the outcome only: no coordinates,
no device names, nothing personal; the catalog row keeps them sealed
(`archive.catalog.metadata`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive.custody.log import METADATA_EXTRACTION, utc_now
from ingest.media.model import Detected, MediaMetadata, Normalized
from ingest.pipeline import Ingestion, Step

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.catalog.sealing import Sealer
    from archive.context import Archive

SEALER = "sealer"  # ingestion.results key: the catalog sealer of the process (`archive.catalog.sealing`)


def _plain(value: Any) -> Any:
    """Raw metadata as plain JSON, whatever a parser returned (NaN, bytes, NUL characters,
    which PostgreSQL's text cannot hold, included)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if value is None or isinstance(value, int | bool):
        return value
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def sandboxed_extract(source: bytes | Path, detected: Detected | None, ingestion: Ingestion) -> MediaMetadata:
    """`ingest.media.extract` in a sandbox child; a child that dies is recorded and a second,
    pure-Python-only try keeps what can still be read (a movie header's date, EXIF)."""
    from dataclasses import asdict

    from ingest import sandbox

    if detected is not None and detected.file_type is None:
        # No parser applies to an unknown format: extraction only notes that, from the head and tail
        # the Identify step already read here. Nothing untrusted is parsed, so no child is needed.
        from ingest.media import extract

        return extract(source, detected=detected)
    options: dict[str, Any] = {"detected": asdict(detected) if detected is not None else None}
    tasks = [("metadata", options, sandbox.METADATA)]
    if (ingestion.media_type or "").startswith("image/"):
        # A photo's fingerprint decode rides in the same request: its bytes cross the pipe once.
        # The fingerprint step takes the outcome from there (each task keeps its own limits).
        tasks.append(("photo_fingerprint", {}, sandbox.PHOTO_DECODE))
    outcomes = sandbox.run_many(tasks, source)
    if len(outcomes) > 1:
        ingestion.results[sandbox.PREFETCHED] = {"photo_fingerprint": outcomes[1]}
    if not isinstance(outcomes[0], sandbox.SandboxFailure):
        return MediaMetadata.from_dict(outcomes[0])
    failure = outcomes[0]
    ingestion.fail("metadata", failure.reason)
    if failure.kind in ("crash", "memory"):  # a hang or a CPU loop has spent the file's time already
        options["native"] = False
        try:
            meta = MediaMetadata.from_dict(sandbox.run("metadata", source, options, sandbox.METADATA))
            meta.parsers.append("sandbox:pure-python-retry")
            return meta
        except sandbox.SandboxFailure as again:
            ingestion.fail("metadata", f"pure-Python parsers alone: {again.reason}")
    detected = detected or Detected(file_type=None, mime="application/octet-stream", kind="other")
    meta = MediaMetadata(detected, Normalized(media_type=detected.mime if detected.file_type else None))
    meta.parsers.append("sandbox:failed")
    return meta


class ExtractMetadata(Step):
    name = "metadata"
    analysis = True

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        remember_sealer(ingestion, archive)
        if "metadata" in ingestion.results:
            return
        source = ingestion.plaintext if ingestion.plaintext is not None else ingestion.plaintext_path
        if source is None:
            ingestion.fail(self.name, "no plaintext available to read metadata from")
            return
        identified = ingestion.results.get("identify") or {}
        detected = identified.get("detected")
        try:
            meta = sandboxed_extract(source, detected, ingestion)
        except OSError as exc:  # the plaintext itself unreadable; the original is kept all the same
            ingestion.fail(self.name, f"cannot read the file to extract metadata: {exc.strerror or exc}")
            ingestion.event(METADATA_EXTRACTION, "failure", parsers=[], failures=1)
            return
        ingestion.results["metadata"] = meta
        for failure in meta.errors:
            ingestion.fail(failure.step, failure.reason)
        details: dict[str, Any] = {"parsers": sorted(set(meta.parsers)), "failures": len(meta.errors)}
        if meta.c2pa is not None:
            details["c2pa"] = meta.c2pa["validation"]["state"]
        ingestion.event(METADATA_EXTRACTION, "warning" if meta.errors else "success", **details)

    def save(self, ingestion: Ingestion, session: Session) -> None:
        from archive.catalog.metadata import new_metadata

        if ingestion.item_id is None:
            return
        meta: MediaMetadata | None = ingestion.results.get("metadata")
        identified = ingestion.results.get("identify") or {}
        detected = identified.get("detected")
        fields = meta.normalized.to_dict() if meta is not None else Normalized().to_dict()
        fields.update(
            declared_type=ingestion.incoming.declared_type,
            type_mismatch=identified.get("mismatch"),
            raw=_plain(meta.raw) if meta is not None else {},
            c2pa=_plain(meta.c2pa) if meta is not None and meta.c2pa is not None else None,
            # Every analysis failure on the item (this step's and the others'), for `evidence show`:
            # the row is written even when extraction could not run, so failures are never lost.
            errors=_plain(list(ingestion.errors)),
            parsers=sorted(set(meta.parsers)) if meta is not None else [],
            extracted_at=utc_now(),
        )
        # Sealed to the item: places, devices, owners and signers never reach the catalog in clear.
        session.add(new_metadata(step_sealer(ingestion), ingestion.item_id, fields,
                                 detected_type=detected.file_type if detected is not None else None))


def remember_sealer(ingestion: Ingestion, archive: Archive) -> None:
    """Keep this process's sealer on the ingestion for `save`, which sees only the session."""
    from archive.catalog.sealing import sealer_for

    if SEALER not in ingestion.results:
        ingestion.results[SEALER] = sealer_for(archive)


def step_sealer(ingestion: Ingestion) -> Sealer:
    """The sealer `remember_sealer` kept (steps whose `run` saw the archive)."""
    sealer: Sealer | None = ingestion.results.get(SEALER)
    if sealer is None:
        raise RuntimeError("no sealer: the step's run() must call remember_sealer first")
    return sealer
