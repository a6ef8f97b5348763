"""Analysis finished by the worker: the rest of a long video's fingerprints, and plaintext held in memory.

Why a job: ingest decodes a video's frames for a bounded time (it must not hold
a file for many minutes), records how much it covered, and commits a
`fingerprint` job with the item. The worker resumes from there, one bounded
run at a time, in the same sandbox children as ingest.

Why it may wait: ingest saw the plaintext as it arrived; the worker sees only
ciphertext and holds public keys by design. Decoding the original needs an
identity that opens it: the custodian key (`keys/custodian.key`) when the
operator has made it available to the worker. Without it the job waits and
retries later, saying so; it never fails for good.

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
    `archive.services.originals`). Raises NeedsIdentity without the custodian
    identity, NotFound when the item is gone, IntegrityError when no copy verifies.
    """
    from archive.services.originals import open_original
    from ingest.sandbox.memory import fd_path, memory_file

    identity = archive.settings.custodian_identity_path
    if not identity.is_file():
        raise NeedsIdentity("needs the custodian identity to decode the original")
    original = open_original(archive, item_id, identity, purpose=purpose)
    small = original.item.size <= SMALL_ORIGINAL
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
    from archive.catalog.metadata import ItemMetadata
    from archive.custody.log import append_event
    from archive.db import transaction
    from ingest.steps.fingerprint import FINGERPRINT_EVENT, PENDING_NOTE, coverage_details, pending_note

    with transaction(archive.engine) as session:
        details: dict[str, Any] = {"medium": "video", "resumed_from_ms": round(start * 1000)}
        if done is not None:
            fresh = store_fingerprints(session, item_id, done.hashes, done.probe, from_ms=round(start * 1000))
            details.update(coverage_details(done.covered, done.duration, done.complete))
            details.update(fingerprints=len(done.hashes), candidates=fresh)
        row = session.get(ItemMetadata, item_id)
        if row is not None:
            errors = [e for e in row.errors if not (e.get("step") == "fingerprint" and
                                                     str(e.get("reason", "")).startswith(PENDING_NOTE))]
            if failure is not None:
                errors.append({"step": "fingerprint", "reason": f"the rest of the video: {failure}"[:500]})
            elif not done.complete:
                errors.append({"step": "fingerprint", "reason": pending_note(done.covered, done.duration)})
            row.errors = errors
            session.add(row)
        append_event(
            session, FINGERPRINT_EVENT, actor=archive.actor, item_id=item_id,
            outcome="failure" if failure is not None else "success", details=details,
        )


def store_fingerprints(
    session: Session, item_id: str, hashes: list[Hash], probe: Probe | None, *, from_ms: int = 0
) -> list[str]:
    """Replace an item's fingerprints from `from_ms` on and record new near-duplicate candidates.

    Idempotent, so a job taken again stores nothing twice: rows from `from_ms`
    on are replaced, and a pair already suggested (either way round) is not
    suggested again. Returns the ids of the newly suggested items.
    """
    from sqlalchemy import delete, insert, or_
    from sqlmodel import col, select

    from archive.catalog.fingerprints import Candidate, Fingerprint
    from archive.custody.log import utc_now
    from archive.similarity import index_in, record_candidates
    from ingest.fingerprints.common import to_signed

    session.execute(
        delete(Fingerprint).where(col(Fingerprint.item_id) == item_id, col(Fingerprint.offset_ms) >= from_ms)
    )
    # Searched before the item's own rows are added, so the cached index never holds uncommitted rows.
    matches = index_in(session).search(probe, exclude=item_id) if probe is not None and probe.views else []
    if hashes:
        session.execute(
            insert(Fingerprint),
            [
                {"item_id": item_id, "kind": h.kind, "variant": h.variant, "offset_ms": h.offset_ms,
                 "value": to_signed(h.value)}
                for h in hashes
            ],
        )
    pairs = session.exec(
        select(Candidate).where(or_(col(Candidate.item_id) == item_id, col(Candidate.other_id) == item_id))
    ).all()
    known = {c.other_id if c.item_id == item_id else c.item_id for c in pairs}
    fresh = [m for m in matches if m.id not in known]
    record_candidates(session, item_id, fresh, utc_now())
    return [m.id for m in fresh]
