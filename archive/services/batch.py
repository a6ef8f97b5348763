"""Ingesting many files at once, on every core; every file of a batch gets its report.

Why processes: a photo's reduced decode for its fingerprint costs ~30 ms of
one core, and the catalog work is Python that holds the GIL, so threads do not
help; worker processes do. Each worker opens its own `Archive` (its own
catalog connection) and runs the same `ingest_file` as a single ingest, so
behaviour never forks. Reports come back in input order.

Why a batch never dies with a file: parsing and decoding run in sandbox
children (`ingest.sandbox`), so a hostile file costs a child, not a worker.
Should a worker die all the same (killed, out of memory elsewhere), the pool
is rebuilt and every file whose report was not back yet is run again: one
already committed becomes a duplicate with its own provenance, which is
harmless. A file in flight through `ISOLATE_AFTER` deaths runs alone, and one
whose worker dies `MAX_WORKER_DEATHS` times alone is refused with that reason
instead of being retried forever (files beside it are never blamed).

Two effects of concurrency, both handled or bounded: the same bytes ingested by
two workers at once make one of them refuse with the code "concurrent" (that
file is simply ingested again here, and becomes a duplicate with its own
provenance); and near-duplicates in flight at the same moment do not see each
other as candidates (`evidence similar` still finds them afterwards).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive.services.ingest import IngestReport, ingest_file, refused

if TYPE_CHECKING:
    from archive.context import Archive

CONCURRENT = "concurrent"  # ingest.steps.catalog.ConcurrentIngest.code
KILL_ENV = "EVIDENCE_BATCH_TEST_KILL"
ISOLATE_AFTER = 2  # pool deaths a file may be in flight for before it runs alone
MAX_WORKER_DEATHS = 3  # deaths of a worker running a file alone before the file is refused
ISOLATE = "isolate"

_worker_archive: Archive | None = None


def _init_worker(home: str, actor: str, parent: int) -> None:
    global _worker_archive
    from archive.context import Archive
    from archive.lifetime import die_with_parent

    die_with_parent(parent)  # a batch whose command was killed must not go on ingesting unreported files

    _worker_archive = Archive.open(home, actor)
    from ingest import sandbox

    sandbox.warm()  # the worker's sandbox child imports its parsers while the first file is received


def _ingest_in_worker(path: str, options: dict[str, Any]) -> IngestReport:
    assert _worker_archive is not None
    report = ingest_file(_worker_archive, Path(path), **options)
    _test_fault(Path(path))
    return report


def _test_fault(path: Path) -> None:
    """Test hook (`KILL_ENV`, a folder): a worker dies right after committing a file named `die-*`.

    The worst moment: acknowledged, no report sent. Once per file (a note in the
    folder), or every time for `die-always-*`. Never active without the variable.
    """
    import os

    folder = os.environ.get(KILL_ENV)
    if not folder or not path.name.startswith("die-"):
        return
    note = Path(folder) / path.name
    if path.name.startswith("die-always-") or not note.exists():
        note.touch()
        os.kill(os.getpid(), signal.SIGKILL)


def ingest_files(
    archive: Archive,
    files: list[tuple[Path, str | None]],
    *,
    workers: int = 1,
    source: str | None = None,
    note: str | None = None,
    channel: str | None = None,
    source_id: str | None = None,
) -> Iterator[IngestReport]:
    """Reports for `files` (each a path and a reason it cannot be read, or None), in order."""
    options: dict[str, Any] = {"source": source, "note": note, "channel": channel, "source_id": source_id}
    if workers <= 1 or len(files) < 2:
        for path, problem in files:
            yield refused(path, problem) if problem else ingest_file(archive, path, **options)
        return
    pool = _Pool(archive, workers)
    try:
        # Each file's future and the pool generation it runs on; ISOLATE: run it alone; None: not submitted.
        flight: list[tuple[Future[IngestReport], int] | str | None] = [
            None if problem else (pool.submit(path, options), pool.generation) for path, problem in files
        ]
        deaths = [0] * len(files)
        for index, (path, problem) in enumerate(files):
            if problem or flight[index] is None:
                yield refused(path, problem or "unreadable")
                continue
            report: IngestReport | None = None
            while report is None:
                entry = flight[index]
                if entry == ISOLATE:
                    report = _alone(archive, path, options)
                    break
                assert isinstance(entry, tuple)
                try:
                    report = entry[0].result()
                except BrokenProcessPool:
                    _rerun_in_flight(pool, flight, deaths, files, index, entry[1], options)
            if report.status == "refused" and report.code == CONCURRENT:
                report = ingest_file(archive, path, **options)  # the other worker has it now: a duplicate
            yield report
    finally:
        pool.close()


def _rerun_in_flight(
    pool: _Pool,
    flight: list[tuple[Future[IngestReport], int] | str | None],
    deaths: list[int],
    files: list[tuple[Path, str | None]],
    start: int,
    generation: int,
    options: dict[str, Any],
) -> None:
    """A worker of pool `generation` died: start a fresh pool and resubmit what had no report yet.

    Which file killed it is unknown (several were in flight), so a file in flight
    for ISOLATE_AFTER deaths runs alone later, where a death is its own.
    """
    if generation == pool.generation:
        pool.restart()
    for later in range(start, len(files)):
        entry = flight[later]
        if not isinstance(entry, tuple) or entry[1] != generation:
            continue  # not submitted, to run alone, or already on the fresh pool
        if entry[0].done() and entry[0].exception() is None:
            continue  # its report is safely back
        deaths[later] += 1
        flight[later] = ISOLATE if deaths[later] >= ISOLATE_AFTER else (pool.submit(files[later][0], options),
                                                                         pool.generation)


def _alone(archive: Archive, path: Path, options: dict[str, Any]) -> IngestReport:
    """Ingest one suspect file in a pool of its own, so a worker's death is attributable to it."""
    for _ in range(MAX_WORKER_DEATHS):
        single = _Pool(archive, 1)
        try:
            return single.submit(path, options).result()
        except BrokenProcessPool:
            continue
        finally:
            single.close()
    return refused(
        path,
        f"an ingest worker process died {MAX_WORKER_DEATHS} times on this file alone; "
        "it may have been acknowledged: ingest it again to check (a duplicate is harmless)",
    )


class _Pool:
    """A process pool that can be replaced when one of its workers dies."""

    def __init__(self, archive: Archive, workers: int) -> None:
        self.home, self.actor, self.workers = str(archive.home), archive.actor, workers
        self.generation = 0
        self.executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # no inherited catalog connections
        return ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_init_worker,
            initargs=(self.home, self.actor, os.getpid()),
        )

    def submit(self, path: Path, options: dict[str, Any]) -> Future[IngestReport]:
        return self.executor.submit(_ingest_in_worker, str(path), options)

    def restart(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.generation += 1
        self.executor = self._start()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
