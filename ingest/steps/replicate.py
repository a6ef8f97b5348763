"""Replicate: verify and publish the staged copies; acknowledge only with enough of them.

Every backend verifies its own copy (a read-back or its own checksum) in
parallel. Fewer verified copies than the policy's minimum means the file is
refused and the copies just published are withdrawn: nothing was acknowledged,
so nothing acknowledged is touched. Fewer than the target means `degraded`.

For a duplicate arrival whose item lost its copies, `Deduplicate` kept the
staged copies on the backends lacking a verified original: they are verified
and published the same way, but never refused (the item is acknowledged
already; the arrival is recorded whatever happens to its bytes), and the
status is recomputed from the catalog when the restore commits.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from archive.custody.log import REPLICATION
from ingest.pipeline import Ingestion, PendingEvent, Refused, Staged, Step
from storage.base import StorageError, StoredObject

if TYPE_CHECKING:
    from archive.context import Archive

RESTORED_FROM = "duplicate arrival"  # in a replication event: the copy was made from a later arrival's bytes


def _commit(entry: Staged, expected: str) -> StoredObject | Exception:
    try:
        return entry.writer.commit(expected)
    except StorageError as exc:
        return exc


class Replicate(Step):
    name = "replicate"
    runs_on_duplicates = True  # a duplicate may restore lost copies

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        bind_commitment(ingestion, archive)
        if ingestion.stored or (ingestion.duplicate and not ingestion.staged):
            return
        assert ingestion.ciphertext_sha256 is not None
        staged, ingestion.staged = list(ingestion.staged), []
        with ThreadPoolExecutor(max_workers=max(1, len(staged))) as pool:
            outcomes = list(pool.map(lambda e: _commit(e, ingestion.ciphertext_sha256 or ""), staged))
        for entry, outcome in zip(staged, outcomes, strict=True):
            if isinstance(outcome, Exception):
                ingestion.storage_errors[entry.backend] = str(outcome)
            else:
                ingestion.stored.append(outcome)
        if ingestion.duplicate:
            self._restored(ingestion, [entry.backend for entry in staged])
            return
        for backend, reason in ingestion.storage_errors.items():
            ingestion.event(REPLICATION, "failure", backend=backend, reason=reason)
        for stored in ingestion.stored:
            ingestion.events.append(_replication_event(stored))
        policy = archive.config.policy
        if len(ingestion.stored) < max(1, policy.minimum):
            verified = len(ingestion.stored)
            ingestion.withdraw(archive)
            reasons = "; ".join(f"{b}: {r}" for b, r in ingestion.storage_errors.items())
            raise Refused(f"only {verified} verified copies, the policy needs {policy.minimum} ({reasons})")
        ingestion.status = "preserved" if len(ingestion.stored) >= policy.copies else "degraded"

    @staticmethod
    def _restored(ingestion: Ingestion, targets: list[str]) -> None:
        """Events for a restore from a duplicate arrival; `CommitToCatalog` names the arrival in them."""
        for backend in targets:
            if backend in ingestion.storage_errors:
                ingestion.event(REPLICATION, "failure", backend=backend, reason=ingestion.storage_errors[backend],
                                restored_from=RESTORED_FROM)
        for stored in ingestion.stored:
            event = _replication_event(stored)
            event.details["restored_from"] = RESTORED_FROM
            ingestion.events.append(event)


def _replication_event(stored: StoredObject) -> PendingEvent:
    """A copy event (the contract in `archive.custody.expected`): the copy's ciphertext hash, never its size."""
    return PendingEvent(
        REPLICATION,
        "success",
        {"backend": stored.backend, "role": "original", "ciphertext_sha256": stored.sha256, "verified": "sha256"},
        [f"{stored.backend}:{stored.name}"],
    )


def bind_commitment(ingestion: Ingestion, archive: Archive) -> None:
    """Complete Receive's digest event once the item id is known: the log commits to the bytes.

    A new item's event gets the salted commitment (`archive.custody.commit`).
    A later arrival of the same bytes must not commit the item a second time
    (the first commitment is final): its event says whether the bytes match
    the log's commitment to the item the catalog matched them to. When they do
    not (a rewritten catalog row), they restore nothing: their staged copies
    are dropped.
    """
    from archive.custody.commit import commitment_details
    from archive.custody.log import MESSAGE_DIGEST

    for pending in ingestion.events:
        if pending.event_type != MESSAGE_DIGEST or "commitment" in pending.details or "duplicate" in pending.details:
            continue
        if ingestion.duplicate:
            pending.details["duplicate"] = True
            if _matches_commitment(ingestion, archive) is False:
                pending.outcome, pending.details["matches_commitment"] = "failure", False
                found = ingestion.results.get("deduplicate")
                for entry in ingestion.staged:
                    entry.writer.abort()
                    if found is not None:
                        found.discarded.append(entry.backend)
                ingestion.staged.clear()
        elif ingestion.item_id and ingestion.salt and ingestion.sha256:
            pending.details.update(commitment_details(ingestion.item_id, ingestion.salt, ingestion.sha256))


def _matches_commitment(ingestion: Ingestion, archive: Archive) -> bool | None:
    """Whether a duplicate's bytes are the ones the log committed the item to; None when it cannot tell here."""
    from archive.custody.commit import commitment
    from archive.custody.expected import LogNotGenuine, read_item_index

    found = ingestion.results.get("deduplicate")
    salt = getattr(found, "salt", None)
    if salt is None or ingestion.item_id is None or ingestion.sha256 is None:
        return None
    try:
        logged = read_item_index(archive, ingestion.item_id).commitment(ingestion.item_id)
    except LogNotGenuine:
        return False
    return logged == commitment(ingestion.item_id, salt, ingestion.sha256)
