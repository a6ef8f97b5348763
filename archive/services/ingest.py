"""Ingesting files: the use case behind `evidence ingest` (and later the upload API)."""

from __future__ import annotations

import errno
import os
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archive.context import Archive

BATCH = 8  # files from which a batch spreads over every core by default


@dataclass
class IngestReport:
    """What the sender is told about one file."""

    path: str
    id: str | None
    sha256: str | None
    size: int | None
    status: str  # preserved | degraded | refused
    duplicate: bool
    error: str | None
    code: str | None = None  # why refused, as a stable code ("concurrent": the same bytes were in flight)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def safe_name(name: str) -> str:
    """A file name as a label only: no directories, no control characters, bounded length.

    The name is kept as provenance, never used as a path, so `../../etc/passwd`
    becomes the harmless label `passwd`.
    """
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = name.strip().lstrip(".") or "unnamed"
    return name[:255]


def expand(paths: list[str]) -> Iterator[tuple[Path, str | None]]:
    """Every file under the given paths, with a reason instead where one cannot be read.

    Folders are walked recursively without following links to folders, so a
    symlink loop cannot make the walk endless; links to files are followed.
    """
    for raw in paths:
        path = Path(raw)
        try:
            st = path.stat()
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                yield path, "symlink loop"
            elif not os.path.lexists(path):
                yield path, "no such file or directory"
            else:
                yield path, f"cannot read: {exc.strerror}"
            continue
        if not path.is_dir():
            yield path, None
            continue
        del st

        def on_error(exc: OSError) -> None:
            raise exc

        try:
            for dirpath, dirnames, filenames in os.walk(path, onerror=on_error):
                dirnames.sort()
                for filename in sorted(filenames):
                    child = Path(dirpath) / filename
                    if child.is_symlink() and not child.exists():
                        yield child, "broken link or symlink loop"
                    else:
                        yield child, None
        except OSError as exc:
            yield Path(exc.filename or path), f"cannot read folder: {exc.strerror}"


def ingest_file(
    archive: Archive,
    path: Path,
    *,
    source: str | None = None,
    note: str | None = None,
    declared_type: str | None = None,
    original_name: str | None = None,
    channel: str | None = None,
    source_id: str | None = None,
) -> IngestReport:
    """Carry one file through the pipeline; the report says whether it was acknowledged."""
    from ingest.pipeline import Incoming, Ingestion, run_pipeline

    incoming = Incoming(
        path=path,
        original_name=safe_name(original_name or path.name),
        source=source,
        note=note,
        declared_type=declared_type,
        channel=channel,
        source_id=source_id,
    )
    ingestion = run_pipeline(Ingestion(incoming=incoming, actor=archive.actor), archive)
    refused = ingestion.status == "refused"
    return IngestReport(
        path=str(path),
        id=None if refused else ingestion.item_id,
        sha256=ingestion.sha256,
        size=ingestion.size,
        status=ingestion.status or "refused",
        duplicate=ingestion.duplicate,
        error=ingestion.errors[-1]["reason"] if refused else None,
        code=ingestion.refusal_code if refused else None,
    )


def refused(path: Path, reason: str) -> IngestReport:
    return IngestReport(str(path), None, None, None, "refused", False, reason)


def batch_workers(files: int, requested: int | None = None) -> int:
    """How many processes a batch of `files` uses: as asked, else one per core from BATCH files on.

    Decoding photos for fingerprints is CPU-bound and the catalog work holds
    the GIL, so a batch gains from processes, a single file does not.
    """
    if requested is not None:
        return max(1, requested)
    return min(os.cpu_count() or 1, 8) if files >= BATCH else 1
