"""The durable worker: runs the jobs in the catalog's queue until told to stop.

Each loop claims one due job under a lease (see `archive.catalog.jobs`), runs
its handler while a heartbeat thread keeps the lease alive, then marks it done,
reschedules it (the scheduled fixity pass), or, on failure, queues it again
after an exponential backoff with a cap. Handlers are idempotent, so a job
taken again after its worker died does no harm. Several workers may run at
once on PostgreSQL; on SQLite they take turns on the write lock.

Settings (`[worker]` in config.toml): lease_seconds, poll_seconds,
backoff_base_seconds, backoff_cap_seconds, job_retention_days (finished jobs
older than this are pruned, see `archive.services.retention`). The scheduled fixity pass is set in
`[fixity]` (see `archive.services.fixity.FixitySettings`).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from archive.catalog.jobs import (
    ANALYSIS,
    BACKFILL,
    FIXITY,
    FIXITY_SINGLETON,
    REPAIR,
    Job,
    claim,
    ensure_singleton,
    finish,
    give_up,
    renew,
    retry_later,
)
from archive.services.analysis import FINGERPRINT, fingerprint_rest
from archive.services.backfill import run_analysis
from archive.services.retention import DEFAULT_RETENTION_DAYS

if TYPE_CHECKING:
    from archive.config import Settings
    from archive.context import Archive

log = logging.getLogger(__name__)


@dataclass
class WorkerSettings:
    lease_seconds: float = 300.0
    poll_seconds: float = 5.0
    backoff_base_seconds: float = 30.0
    backoff_cap_seconds: float = 3600.0
    job_retention_days: float = DEFAULT_RETENTION_DAYS

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerSettings:
        data = settings.extra.get("worker", {})
        return cls(
            lease_seconds=float(data.get("lease_seconds", cls.lease_seconds)),
            poll_seconds=float(data.get("poll_seconds", cls.poll_seconds)),
            backoff_base_seconds=float(data.get("backoff_base_seconds", cls.backoff_base_seconds)),
            backoff_cap_seconds=float(data.get("backoff_cap_seconds", cls.backoff_cap_seconds)),
            job_retention_days=float(data.get("job_retention_days", cls.job_retention_days)),
        )


class Reschedule(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a handler that finished this run and wants the job again in `seconds`."""

    def __init__(self, seconds: float, payload: dict[str, Any] | None = None) -> None:
        super().__init__(seconds)
        self.seconds = seconds
        self.payload = payload


Handler = Callable[["Archive", Job], None]


def _repair(archive: Archive, job: Job) -> None:
    from archive.services.errors import NotFound
    from archive.services.repair import RepairIncomplete, repair_item

    if job.item_id is None:
        return
    targets = job.payload.get("backends") if job.kind == BACKFILL else None
    try:
        result = repair_item(archive, job.item_id, targets=targets, reason=job.kind)
    except NotFound:
        return  # the item is gone: nothing to repair
    if not result.complete:
        raise RepairIncomplete("; ".join(f"{b}: {why}" for b, why in result.failures.items()) or "below policy")


def _fixity(archive: Archive, job: Job) -> None:
    from archive.services.fixity import FixitySettings, run_fixity

    settings = FixitySettings.from_settings(archive.settings)
    report = run_fixity(archive, all_items=True, max_items=settings.batch_items)
    interval = settings.interval_seconds if settings.interval_seconds > 0 else 7 * 24 * 3600
    raise Reschedule(interval if report.pass_complete else 0.0)


HANDLERS: dict[str, Handler] = {
    REPAIR: _repair, BACKFILL: _repair, FIXITY: _fixity, FINGERPRINT: fingerprint_rest, ANALYSIS: run_analysis,
}


def _checkpoint(archive: Archive) -> None:
    """Sign a checkpoint when one is due, and bring every site's copy of the log up to date.

    The mirror is cheap when no site lacks anything (a cursor read each), so a
    site added or remounted a moment ago catches up within one poll.
    """
    from archive.custody.service import conflict_message, maybe_checkpoint, mirror_conflicts, mirror_to_sites

    try:
        maybe_checkpoint(archive)
        for site, why in mirror_conflicts(mirror_to_sites(archive)).items():  # never overwritten: told, every turn
            log.error("%s", conflict_message(site, why))
    except Exception:  # noqa: BLE001 - a checkpoint failure must not stop repairs
        log.exception("checkpoint failed")


LOCKED_RETRY_SECONDS = 30.0  # how soon a job that needs a key tries again once it is unlocked


def _waits_for_unlock(exc: Exception) -> bool:
    """A job stopped only because this process holds no access identity or catalog key (yet)."""
    from archive.services.analysis import NeedsIdentity
    from archive.services.errors import Locked

    return isinstance(exc, (Locked, NeedsIdentity))


def settle_on_open(archive: Archive) -> None:
    """Settle pending rows when this process can (archive.services.settle: quick when none wait)."""
    from archive.services.settle import settle_on_open as settle

    settle(archive)


def _prune(archive: Archive, retention_days: float) -> None:
    """Delete finished jobs past their retention when a pass is due (at most hourly)."""
    from archive.services.retention import prune_finished_jobs

    try:
        pruned = prune_finished_jobs(archive, retention_days=retention_days)
    except Exception:  # noqa: BLE001 - pruning is housekeeping: it must not stop the jobs
        log.exception("pruning finished jobs failed")
        return
    if pruned is not None and pruned.deleted:
        log.info("pruned %d finished jobs (%d done, %d failed)", pruned.deleted, pruned.done, pruned.failed)


@dataclass
class Worker:
    archive: Archive
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}")
    settings: WorkerSettings | None = None
    handlers: dict[str, Handler] = field(default_factory=lambda: dict(HANDLERS))
    kinds: list[str] | None = None  # only these job kinds (None: all)
    ran: list[tuple[int, str, str]] = field(default_factory=list)  # (job id, kind, outcome)

    def __post_init__(self) -> None:
        if self.settings is None:
            self.settings = WorkerSettings.from_settings(self.archive.settings)

    @property
    def config(self) -> WorkerSettings:
        assert self.settings is not None
        return self.settings

    def schedule(self) -> None:
        """Make sure the scheduled fixity pass exists (once per archive, whoever starts first)."""
        from archive.services.fixity import FixitySettings

        if FixitySettings.from_settings(self.archive.settings).interval_seconds > 0:
            ensure_singleton(self.archive.engine, FIXITY, FIXITY_SINGLETON)

    def run_one(self, due_by: str | None = None) -> bool:
        """Claim and run one due job; False when none was due."""
        job = claim(self.archive.engine, self.owner, self.config.lease_seconds, self.kinds, due_by=due_by)
        if job is None:
            return False
        self._execute(job)
        return True

    def _execute(self, job: Job) -> None:
        assert job.id is not None
        engine = self.archive.engine
        handler = self.handlers.get(job.kind)
        if handler is None:
            give_up(engine, job, self.owner, f"no handler for job kind {job.kind!r}")
            self.ran.append((job.id, job.kind, "failed"))
            return
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job, stop), daemon=True)
        beat.start()
        try:
            # A fresh view per job: the configuration (sites, policy, recipients) as it is now.
            handler(self.archive.for_actor(self.archive.actor), job)
        except Reschedule as again:
            finish(engine, job, self.owner, reschedule_in=again.seconds, payload=again.payload)
            self.ran.append((job.id, job.kind, "rescheduled"))
            log.info("job %s (%s) ran; next run in %.0f s", job.id, job.kind, again.seconds)
        except Exception as exc:  # noqa: BLE001 - every failure is retried with backoff, never lost
            if _waits_for_unlock(exc):
                # Not a failure: no growing backoff, which would leave reads hours behind an unlock.
                retry_later(engine, job, self.owner, f"{type(exc).__name__}: {exc}",
                            base=LOCKED_RETRY_SECONDS, cap=LOCKED_RETRY_SECONDS)
                self.ran.append((job.id, job.kind, "waiting"))
                log.info("job %s (%s) waits for `evidence unlock`: %s", job.id, job.kind, exc)
                return
            log.warning("job %s (%s) failed: %s", job.id, job.kind, exc)
            retry_later(engine, job, self.owner, f"{type(exc).__name__}: {exc}",
                        base=self.config.backoff_base_seconds, cap=self.config.backoff_cap_seconds)
            self.ran.append((job.id, job.kind, "retry"))
        else:
            finish(engine, job, self.owner)
            self.ran.append((job.id, job.kind, "done"))
            log.info("job %s (%s) done", job.id, job.kind)
        finally:
            stop.set()
            beat.join()

    def _heartbeat(self, job: Job, stop: threading.Event) -> None:
        interval = max(0.05, self.config.lease_seconds / 3)
        while not stop.wait(interval):
            try:
                if not renew(self.archive.engine, job, self.owner, self.config.lease_seconds):
                    return  # lost: another worker has it now; our result is harmless (idempotent)
            except Exception:  # noqa: BLE001 - a missed renewal only risks a harmless re-run
                log.exception("lease renewal failed")

    def run(self, *, once: bool = False, stop: threading.Event | None = None, max_jobs: int | None = None) -> int:
        """Run jobs until stopped; with `once`, each job due at the start at most once. Returns how many ran."""
        from archive.catalog.jobs import now_stamp

        stop = stop or threading.Event()
        self.schedule()
        due_by = now_stamp() if once else None
        count = 0
        while not stop.is_set():
            _checkpoint(self.archive.for_actor(self.archive.actor))  # the sites as they are now
            _prune(self.archive, self.config.job_retention_days)
            settle_on_open(self.archive)  # rows a locked ingest wrote, once this worker is unlocked
            if max_jobs is not None and count >= max_jobs:
                break
            try:
                ran = self.run_one(due_by)
            except Exception:  # noqa: BLE001 - the catalog unreachable for a moment: wait and retry
                log.exception("claiming a job failed")
                ran = False
                if once:
                    raise
            if ran:
                count += 1
                continue
            if once:
                break
            stop.wait(self.config.poll_seconds)
        return count
