"""The ingest pipeline: an ordered list of small steps behind one interface.

How to add a step: subclass `Step` in its own module under `ingest/steps/`,
give it a `name`, implement `run` (do the work, put results on the
`Ingestion`, add custody events with `ingestion.event(...)`), and, if it keeps
anything in the catalog, `save` (called inside the one transaction that commits
the item). Make `run` idempotent: skip work whose result is already present.
Then insert it in `default_steps()`. An analysis step must never refuse a file:
it records its failure with `ingestion.fail(step, reason)` and the original is
kept all the same. Only a step that cannot keep the evidence raises `Refused`.
"""

from __future__ import annotations

import io
import logging
from abc import ABC
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive
    from storage.base import ObjectWriter, StoredObject


class Refused(Exception):
    """The file cannot be kept as evidence; the message is the reason given to the sender."""

    code = "refused"  # a stable reason code callers branch on (subclasses refine it), never the wording


class ByteStream(Protocol):
    """What a stream source gives `Receive`: `read(size)` up to size bytes (b"" at the end), and `close()`."""

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class Damaged(Refused):
    """The bytes offered cannot be read back as they were sent (an upload's stored segment altered or lost)."""

    code = "damaged"


@dataclass
class Incoming:
    """A file offered to the archive, and what its sender told us about it.

    A file on disk has a `path`. Bytes that must never touch a disk in clear (an
    upload, kept encrypted until ingested) come from a stream instead: `opener`
    returns a fresh binary stream over exactly `size` bytes, and `path` is then
    only a label. `Receive` reads either way in one pass.
    """

    path: Path
    original_name: str
    source: str | None = None
    note: str | None = None
    declared_type: str | None = None
    channel: str | None = None  # how it came (archive.records.vocab CHANNELS)
    source_id: str | None = None  # the source record that handed it over
    opener: Callable[[], ByteStream] | None = None  # a stream source instead of `path`
    size: int | None = None  # the stream's length (with `opener`)


@dataclass
class PendingEvent:
    event_type: str
    outcome: str = "success"
    details: dict[str, Any] = field(default_factory=dict)
    objects: list[str] = field(default_factory=list)


@dataclass
class Staged:
    """A write in progress on one backend, not yet verified or published."""

    backend: str
    name: str
    writer: ObjectWriter


@dataclass
class Ingestion:
    """Everything the steps learn about one incoming file."""

    incoming: Incoming
    actor: str
    item_id: str | None = None
    sha256: str | None = None
    size: int | None = None
    salt: str | None = None  # the commitment's salt (archive.custody.commit), sealed with the item
    media_type: str | None = None
    # Plaintext for analysis: bytes in memory for small files, else the source path. A large stream has
    # neither (its analysis is deferred to a worker job), only its first and last bytes (`sample`).
    plaintext: bytes | None = None
    plaintext_path: Path | None = None
    sample: tuple[bytes, bytes, int] | None = None  # (head, tail, size): enough to identify the format
    recipients: list[str] = field(default_factory=list)
    ciphertext_sha256: str | None = None
    ciphertext_size: int | None = None
    staged: list[Staged] = field(default_factory=list)
    stored: list[StoredObject] = field(default_factory=list)
    manifests: list[StoredObject] = field(default_factory=list)
    arrivals: list[StoredObject] = field(default_factory=list)  # addenda of a later arrival (archive.objects)
    storage_errors: dict[str, str] = field(default_factory=dict)
    duplicate: bool = False
    status: str | None = None  # preserved | degraded | refused
    refusal_code: str | None = None  # the Refused subclass's code, when refused
    errors: list[dict[str, str]] = field(default_factory=list)
    events: list[PendingEvent] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)  # step name -> its typed result
    pipeline: list[Step] = field(default_factory=list)  # the steps this file goes through
    # Called inside the refusal event's transaction when a step refused the file (`Refused`: code, reason),
    # so whatever offered the file (an upload row) records the refusal together with its event.
    on_refusal: Callable[[Session, str, str], None] | None = None

    def event(self, event_type: str, outcome: str = "success", **details: Any) -> None:
        self.events.append(PendingEvent(event_type, outcome, details))

    def fail(self, step: str, reason: str) -> None:
        """Record an analysis failure on the item; the original is kept regardless."""
        self.errors.append({"step": step, "reason": reason})

    def withdraw(self, archive: Archive) -> None:
        """Delete the copies this ingest published, when it is certain they were never acknowledged.

        Only for a refusal decided before, or a catalog transaction known to have
        rolled back: never after a commit whose outcome is unknown.
        """
        from storage.base import StorageError

        for stored in [*self.arrivals, *self.manifests, *self.stored]:
            try:
                archive.backends[stored.backend].delete(stored.name, stored.version_id)
            except StorageError:
                pass  # left behind; rebuild-catalog recognises the same bytes under another id
        self.arrivals.clear()
        self.manifests.clear()
        self.stored.clear()

    def open_plaintext(self) -> Any:
        """A binary stream over the original's bytes, for analysis steps."""
        import io

        if self.plaintext is not None:
            return io.BytesIO(self.plaintext)
        if self.plaintext_path is not None:
            return open(self.plaintext_path, "rb")
        if self.sample is not None:
            return Sampled(*self.sample)
        raise RuntimeError("no plaintext available to this step")


class Sampled(io.RawIOBase):
    """A large stream's first and last bytes, readable where they lie (the rest was never kept)."""

    def __init__(self, head: bytes, tail: bytes, size: int) -> None:
        super().__init__()
        self._head, self._tail, self._size, self._at = head, tail, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._at, 2: self._size}[whence]
        self._at = max(0, base + offset)
        return self._at

    def tell(self) -> int:
        return self._at

    def read(self, size: int | None = -1) -> bytes:
        end = self._size if size is None or size < 0 else min(self._size, self._at + size)
        if self._at >= end:
            return b""
        tail_start = self._size - len(self._tail)
        if end <= len(self._head):
            block = self._head[self._at:end]
        elif self._at >= tail_start:
            block = self._tail[self._at - tail_start:end - tail_start]
        else:
            raise OSError("only the first and last bytes of this file are held for analysis")
        self._at += len(block)
        return block


class Step(ABC):
    """One thing done to every incoming file."""

    name: str = ""
    # False for steps that only concern new items (analysis is not redone for a duplicate).
    runs_on_duplicates: bool = False
    # True for analysis steps (what the file says about itself): an unexpected error in one is
    # recorded on the item and the file is kept, never refused.
    analysis: bool = False

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        """Do the work; put results on `ingestion`."""

    def save(self, ingestion: Ingestion, session: Session) -> None:
        """Persist this step's results inside the item's transaction (optional)."""

    def cleanup(self, ingestion: Ingestion) -> None:
        """Release anything held (staged writes, temporary data) after success or failure."""


def default_steps(*, deferred_analysis: bool = False) -> list[Step]:
    """The pipeline, in order. Read this to know what ingest does.

    `deferred_analysis`: for a stream too large to hold in memory (whose plaintext
    cannot be handed to the sandbox as bytes or a path), metadata, fingerprints and
    the preview are not made now but by an `analysis` job committed with the item.
    """
    from ingest.steps.catalog import CommitToCatalog
    from ingest.steps.dedupe import Deduplicate
    from ingest.steps.enqueue_repair import EnqueueRepair
    from ingest.steps.fingerprint import FingerprintMedia
    from ingest.steps.identify import Identify
    from ingest.steps.manifest import WriteManifest
    from ingest.steps.metadata import ExtractMetadata
    from ingest.steps.preview import MakePreview
    from ingest.steps.receive import Receive
    from ingest.steps.replicate import Replicate

    if deferred_analysis:
        from ingest.steps.deferred import DeferAnalysis

        analysis: list[Step] = [DeferAnalysis()]  # an analysis job, committed with the item
    else:
        analysis = [
            ExtractMetadata(),  # what the file says about itself: date, place, device, size (never refuses)
            FingerprintMedia(),  # perceptual hashes; near-duplicates become candidate links (never refuses)
            MakePreview(),  # a metadata-free thumbnail or poster frame, encrypted to the preview identity
        ]
    return [
        Receive(),  # one pass: SHA-256, size, age encryption, staged writes to every backend
        Deduplicate(),  # the same bytes already kept: add provenance; keep staged copies only to restore lost ones
        Identify(),  # the format from the bytes, not the name
        *analysis,
        Replicate(),  # verify and publish the staged copies; enough of them, or refuse
        WriteManifest(),  # an encrypted manifest beside each original, an addendum per later arrival
        EnqueueRepair(),  # short of the policy: a repair job, committed with the item
        CommitToCatalog(),  # item, replicas, provenance, results and events in one transaction
    ]


def run_pipeline(ingestion: Ingestion, archive: Archive, steps: list[Step] | None = None) -> Ingestion:
    """Carry one file through the steps; on refusal nothing of it is kept."""
    steps = steps if steps is not None else default_steps()
    ingestion.pipeline = steps
    try:
        for step in steps:
            if ingestion.duplicate and not step.runs_on_duplicates:
                continue
            if step.analysis:
                _analyse(step, ingestion, archive)
            else:
                step.run(ingestion, archive)
    except Refused as exc:
        ingestion.status = "refused"
        ingestion.refusal_code = exc.code
        ingestion.fail("ingest", str(exc))
        _record_refusal(ingestion, archive, str(exc), refused=exc)
    except Exception as exc:  # noqa: BLE001 - one file's failure must not end a batch
        # Not acknowledged: the catalog did not commit (CommitToCatalog is last). Objects
        # already published stay where they are: deleting after a commit attempt whose
        # outcome is unknown could delete acknowledged evidence.
        logging.getLogger(__name__).exception("ingest failed unexpectedly")
        ingestion.status = "refused"
        ingestion.fail("ingest", f"internal error ({type(exc).__name__}): {exc}; the file was not acknowledged")
        # The event gets the error's type only: its message may name the file.
        _record_refusal(ingestion, archive, f"internal error ({type(exc).__name__})")
    finally:
        for step in steps:
            step.cleanup(ingestion)
        ingestion.plaintext = None
    return ingestion


def _analyse(step: Step, ingestion: Ingestion, archive: Archive) -> None:
    """Run an analysis step; whatever goes wrong in it is a failure on the item, never a refusal.

    Evidence is never discarded because its metadata cannot be read, not even
    when the reading code itself has a bug.
    """
    try:
        step.run(ingestion, archive)
    except Refused:
        raise
    except Exception as exc:  # noqa: BLE001 - an analysis bug must not cost the evidence
        logging.getLogger(__name__).exception("analysis step %s failed unexpectedly", step.name)
        ingestion.fail(step.name, f"internal error ({type(exc).__name__}); the file is kept")


def _record_refusal(ingestion: Ingestion, archive: Archive, reason: str, refused: Refused | None = None) -> None:
    """A refusal is a custody event too, though nothing of the file is kept."""
    from archive.custody.log import INGESTION, append_event
    from archive.db import transaction

    try:
        with transaction(archive.engine) as session:
            append_event(
                session,
                INGESTION,
                actor=ingestion.actor,
                outcome="failure",
                details={"refused": reason},
            )
            if refused is not None and ingestion.on_refusal is not None:
                ingestion.on_refusal(session, refused.code, reason)
    except Exception:  # noqa: BLE001 - the catalog being down must not hide the refusal itself
        logging.getLogger(__name__).warning("the refusal could not be recorded in the catalog")
