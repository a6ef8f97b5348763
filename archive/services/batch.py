"""Ingesting many files at once, on every core (proposed by the fingerprint helper; the lead may move it).

Why: a photo's reduced decode for its fingerprint costs ~30 ms of one core, and
the catalog work is Python that holds the GIL, so threads do not help; worker
processes do. Each worker opens its own `Archive` (its own catalog connection)
and runs the same `ingest_file` as a single ingest, so behaviour never forks.
Reports come back in input order.

Two effects of concurrency, both handled or bounded: the same bytes ingested by
two workers at once make one of them refuse with "concurrently" (that file is
simply ingested again here, and becomes a duplicate with its own provenance);
and near-duplicates in flight at the same moment do not see each other as
candidates (`evidence similar` still finds them afterwards).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive.services.ingest import IngestReport, ingest_file, refused

if TYPE_CHECKING:
    from archive.context import Archive

_worker_archive: Archive | None = None


def _init_worker(home: str, actor: str) -> None:
    global _worker_archive
    from archive.context import Archive

    _worker_archive = Archive.open(home, actor)


def _ingest_in_worker(path: str, options: dict[str, Any]) -> IngestReport:
    assert _worker_archive is not None
    return ingest_file(_worker_archive, Path(path), **options)


def ingest_files(
    archive: Archive,
    files: list[tuple[Path, str | None]],
    *,
    workers: int = 1,
    source: str | None = None,
    note: str | None = None,
) -> Iterator[IngestReport]:
    """Reports for `files` (each a path and a reason it cannot be read, or None), in order."""
    options: dict[str, Any] = {"source": source, "note": note}
    if workers <= 1 or len(files) < 2:
        for path, problem in files:
            yield refused(path, problem) if problem else ingest_file(archive, path, **options)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no inherited catalog connections
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(str(archive.home), archive.actor)
    ) as pool:
        futures: list[Future[IngestReport] | None] = [
            None if problem else pool.submit(_ingest_in_worker, str(path), options) for path, problem in files
        ]
        for (path, problem), future in zip(files, futures, strict=True):
            if future is None:
                yield refused(path, problem or "unreadable")
                continue
            report = future.result()
            if report.status == "refused" and report.error and "concurrently" in report.error:
                report = ingest_file(archive, path, **options)  # the other worker has it now: a duplicate
            yield report
