"""Analysis finished by the worker: the rest of a long video's fingerprints.

Why a job: ingest decodes a video's frames for a bounded time (it must not hold
a file for many minutes), records how much it covered, and commits a
`fingerprint` job with the item. The worker resumes from there, one bounded
run at a time, in the same sandbox children as ingest.

Why it may wait: ingest saw the plaintext as it arrived; the worker sees only
ciphertext and holds public keys by design. Decoding the original needs an
identity that opens it: the custodian key (`keys/custodian.key`) when the
operator has made it available to the worker. Without it the job waits and
retries later, saying so; it never fails for good.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive.catalog.jobs import FINGERPRINT

__all__ = ["FINGERPRINT", "JOB_BUDGET", "NeedsIdentity", "fingerprint_rest"]

if TYPE_CHECKING:
    from archive.catalog.jobs import Job
    from archive.context import Archive

JOB_BUDGET = 300.0  # seconds of frame decoding per job run; a longer video takes several runs


class NeedsIdentity(Exception):  # noqa: N818 - the worker prints the class name before the message
    """The job needs plaintext and no identity that opens the original is available."""


def fingerprint_rest(archive: Archive, job: Job, *, budget: float = JOB_BUDGET) -> None:
    """Fingerprint a video from `job.payload["start"]` seconds on; raises Reschedule until it is complete.

    Idempotent: frames from `start` on are replaced, so a run taken again after
    a worker died stores nothing twice.
    """
    from archive.services.errors import NotFound
    from archive.services.items import get_item
    from archive.services.worker import Reschedule
    from ingest.fingerprints.common import NoFingerprint
    from ingest.sandbox import SandboxFailure
    from ingest.steps.fingerprint import compute

    if job.item_id is None:
        return
    identity = archive.settings.custodian_identity_path
    if not identity.is_file():
        raise NeedsIdentity("needs the custodian identity to decode the original")
    start = float(job.payload.get("start", 0.0))
    with tempfile.TemporaryDirectory(prefix="evidence-analysis-") as folder:
        original = Path(folder) / "original"
        try:
            get_item(archive, job.item_id, original, identity)
        except NotFound:
            return  # the item is gone: nothing to finish
        try:
            done = compute(original, "video", start=start, budget=budget)
        except (NoFingerprint, SandboxFailure) as exc:
            _record(archive, job.item_id, start, None, failure=getattr(exc, "reason", str(exc)))
            return  # the rest cannot be decoded: recorded on the item, nothing to retry
    _record(archive, job.item_id, start, done)
    if not done.complete:
        raise Reschedule(0.0, payload={**job.payload, "start": done.covered})


def _record(archive: Archive, item_id: str, start: float, done: Any, *, failure: str | None = None) -> None:
    """Store one run's frames, its custody event, and the item's note on coverage, in one transaction."""
    from sqlalchemy import delete, insert
    from sqlmodel import col

    from archive.catalog.fingerprints import Fingerprint
    from archive.catalog.metadata import ItemMetadata
    from archive.custody.log import append_event, utc_now
    from archive.db import transaction
    from archive.similarity import index_in, record_candidates
    from ingest.fingerprints.common import to_signed
    from ingest.steps.fingerprint import FINGERPRINT_EVENT, PENDING_NOTE, coverage_details, pending_note

    with transaction(archive.engine) as session:
        details: dict[str, Any] = {"medium": "video", "resumed_from_ms": round(start * 1000)}
        if done is not None:
            session.execute(
                delete(Fingerprint).where(
                    col(Fingerprint.item_id) == item_id, col(Fingerprint.offset_ms) >= round(start * 1000)
                )
            )
            matches = index_in(session).search(done.probe, exclude=item_id) if done.probe.views else []
            if done.hashes:
                session.execute(
                    insert(Fingerprint),
                    [
                        {"item_id": item_id, "kind": h.kind, "variant": h.variant, "offset_ms": h.offset_ms,
                         "value": to_signed(h.value)}
                        for h in done.hashes
                    ],
                )
            known = {c["other_id"] for c in _candidate_ids(session, item_id)}
            fresh = [m for m in matches if m.id not in known]
            record_candidates(session, item_id, fresh, utc_now())
            details.update(coverage_details(done.covered, done.duration, done.complete))
            details.update(fingerprints=len(done.hashes), candidates=[m.id for m in fresh])
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


def _candidate_ids(session: Any, item_id: str) -> list[dict[str, str]]:
    from sqlmodel import select

    from archive.catalog.fingerprints import Candidate

    return [{"other_id": c.other_id} for c in session.exec(select(Candidate).where(Candidate.item_id == item_id))]
