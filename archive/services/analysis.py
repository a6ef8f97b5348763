"""Analysis finished by the worker: the rest of a long video's fingerprints, and plaintext held in memory.

Why a job: ingest decodes a video's frames for a bounded time (it must not hold
a file for many minutes), records how much it covered, and commits a
`fingerprint` job with the item. The worker resumes from there, one bounded
run at a time, in the same sandbox children as ingest.

Why it may wait: ingest saw the plaintext as it arrived; the worker sees only
ciphertext and needs no secret to ingest. Decoding the original needs the
access identity, unlocked by a custodian (`evidence unlock`, or the worker's
own `--unlock`); an older home's custodian key left in `keys/` also serves.
A locked worker keeps ingesting and repairing; these jobs wait and retry
later, saying why, and never fail for good.

Why in memory: the decrypted original is evidence in clear; written to a
temporary file, a crash would leave it at rest. `plaintext` keeps it as bytes
(small files) or in a sealed anonymous in-memory file (`memfd`) that the
sandbox child opens through this process's `/proc/<pid>/fd/<n>`; it vanishes
with the process whatever happens.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive.catalog.jobs import FINGERPRINT

__all__ = ["FINGERPRINT", "JOB_BUDGET", "NeedsIdentity", "fingerprint_rest", "plaintext", "store_fingerprints"]

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.catalog.jobs import Job
    from archive.catalog.sealing import Sealer
    from archive.context import Archive
    from archive.similarity import Probe
    from ingest.fingerprints.common import Hash

JOB_BUDGET = 300.0  # seconds of frame decoding per job run; a longer video takes several runs
# Up to this size the sandbox child is sent the bytes (as ingest does); a larger original goes
# into an in-memory file the child opens by path.
SMALL_ORIGINAL = 64 * 1024 * 1024


class NeedsIdentity(Exception):  # noqa: N818 - the worker prints the class name before the message
    """The job needs plaintext and no identity that opens the original is available."""


@contextmanager
def plaintext(archive: Archive, item_id: str, *, purpose: str) -> Iterator[bytes | Path]:
    """An original's verified plaintext, never on disk: its bytes, or the path of a sealed in-memory file.

    Copies are tried in turn (each read is an access event, see
    `archive.services.originals`). Raises NeedsIdentity while the access
    identity is locked here, NotFound when the item is gone, IntegrityError when no copy verifies.
    """
    from archive.catalog.secrets import item_secret
    from archive.services.errors import Locked
    from archive.services.originals import open_original
    from ingest.sandbox.memory import fd_path, memory_file

    try:
        if not can_decode(archive):
            raise Locked("the access identity is locked here")
        original = open_original(archive, item_id, None, purpose=purpose)
        small = item_secret(archive, original.item).size <= SMALL_ORIGINAL
    except Locked as exc:
        raise NeedsIdentity(f"needs the access identity to decode the original: {exc}") from None
    held: bytes | int | None = None
    for copy in original.copies:
        try:
            held = b"".join(copy.chunks()) if small else memory_file(copy.chunks(), "evidence-original")
            break
        except Exception as exc:  # noqa: BLE001 - any failure of one copy: try the next
            original.failures.append(f"{copy.replica.backend}: {exc}")
    if held is None:
        raise original.refuse()
    if isinstance(held, bytes):
        yield held
        return
    try:
        yield fd_path(held)
    finally:
        os.close(held)


def can_decode(archive: Archive) -> bool:
    """Whether this process holds an identity that opens originals: the access identity unlocked here, or
    (an older home, before `evidence keys add-access`) the custodian key left in the home."""
    from archive.services.errors import Locked

    try:
        archive.runtime.keys.access_identities()
    except Locked:
        return archive.settings.custodian_identity_path.is_file()
    return True


def fingerprint_rest(archive: Archive, job: Job, *, budget: float = JOB_BUDGET) -> None:
    """Fingerprint a video from `job.payload["start"]` seconds on; raises Reschedule until it is complete.

    Idempotent: frames from `start` on are replaced, so a run taken again after
    a worker died stores nothing twice.
    """
    from archive.services.errors import NotFound
    from archive.services.worker import Reschedule
    from ingest.fingerprints.common import NoFingerprint
    from ingest.sandbox import SandboxFailure
    from ingest.steps.fingerprint import compute

    if job.item_id is None:
        return
    start = float(job.payload.get("start", 0.0))
    try:
        with plaintext(archive, job.item_id, purpose="fingerprint the rest of the video") as source:
            try:
                done = compute(source, "video", start=start, budget=budget)
            except (NoFingerprint, SandboxFailure) as exc:
                _record(archive, job.item_id, start, None, failure=getattr(exc, "reason", str(exc)))
                return  # the rest cannot be decoded: recorded on the item, nothing to retry
    except NotFound:
        return  # the item is gone: nothing to finish
    _record(archive, job.item_id, start, done)
    if not done.complete:
        raise Reschedule(0.0, payload={**job.payload, "start": done.covered})


def _record(archive: Archive, item_id: str, start: float, done: Any, *, failure: str | None = None) -> None:
    """Store one run's frames, its custody event, and the item's note on coverage, in one transaction."""
    from archive.catalog.metadata import ItemMetadata, metadata_fields, reseal
    from archive.catalog.sealing import PENDING, sealer_for
    from archive.custody.log import append_event
    from archive.db import transaction
    from ingest.steps.fingerprint import FINGERPRINT_EVENT, PENDING_NOTE, coverage_details, pending_note

    sealer = sealer_for(archive)
    with transaction(archive.engine) as session:
        details: dict[str, Any] = {"medium": "video", "resumed": True}  # not from where: the log names no duration
        if done is not None:
            store_fingerprints(session, sealer, item_id, done.hashes, done.probe, from_ms=round(start * 1000))
            details.update(coverage_details(done.covered, done.duration, done.complete))
            details.update(fingerprinted=True)  # no candidate ids: they would name restricted items to log readers
        row = session.get(ItemMetadata, item_id)
        if row is not None and sealer.keys is not None and row.key_version != PENDING:
            # The failures are sealed with the metadata: opened, amended and sealed again.
            fields = metadata_fields(sealer.keys, row)
            errors = [e for e in fields.get("errors") or [] if not (e.get("step") == "fingerprint" and
                                                                     str(e.get("reason", "")).startswith(PENDING_NOTE))]
            if failure is not None:
                errors.append({"step": "fingerprint", "reason": f"the rest of the video: {failure}"[:500]})
            elif not done.complete:
                errors.append({"step": "fingerprint", "reason": pending_note(done.covered, done.duration)})
            fields["errors"] = errors
            reseal(row, sealer, fields)
            session.add(row)
        append_event(
            session, FINGERPRINT_EVENT, actor=archive.actor, item_id=item_id,
            outcome="failure" if failure is not None else "success", details=details,
        )


def store_fingerprints(
    session: Session, sealer: Sealer, item_id: str, hashes: list[Hash], probe: Probe | None, *, from_ms: int = 0
) -> list[str]:
    """Replace an item's fingerprints from `from_ms` on and record new near-duplicate candidates.

    Idempotent, so a job taken again stores nothing twice: hashes from
    `from_ms` on are replaced (those before are kept, opened from the item's
    sealed row), and a pair already suggested (either way round) is not
    suggested again. Returns the ids of the newly suggested items. A locked
    process suggests nothing (it cannot open the index) and cannot resume a
    video whose earlier frames it cannot open (`Locked`).
    """
    from sqlmodel import select

    from archive.catalog.fingerprints import ItemFingerprints, open_hashes, replace_hashes
    from archive.catalog.sealing import catalog_keys_or_locked
    from archive.similarity import index_in, suggest_new

    kept: list[Hash] = []
    row = session.exec(select(ItemFingerprints).where(ItemFingerprints.item_id == item_id)).first()
    if row is not None and from_ms > 0:
        keys = catalog_keys_or_locked(sealer, "resuming a video's fingerprints")
        kept = [h for h in open_hashes(keys, item_id, row.key_version, row.sealed) if h.offset_ms < from_ms]
    if row is not None:
        session.delete(row)
        session.flush()
    # Searched before the item's own rows are added, so the cached index never holds uncommitted rows.
    matches = []
    if sealer.keys is not None and probe is not None and probe.views:
        matches = index_in(session, sealer.keys).search(probe, exclude=item_id)
    replace_hashes(session, sealer, item_id, kept + list(hashes))
    return suggest_new(session, item_id, matches)
