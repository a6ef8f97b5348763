"""Finished jobs are pruned after a retention period, so the queue does not grow without end.

Why it is safe: a done or failed job is history, and the history that matters
is in the custody log (every repair, fixity check and analysis its handler
did is an event there). Only jobs whose work is over are deleted, and only
after `[worker] job_retention_days` (default 30), so an operator can still
see what ran lately and why something failed. Deleting is itself a custody
event (PREMIS "deletion"), naming counts, never ids.

Why at most once an hour for the whole archive: every worker loop asks, and a
cursor in the catalog records when the last pass ran, so N workers still
prune once an hour between them and the log gains at most one event an hour.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from archive.config import ConfigError

if TYPE_CHECKING:
    from archive.context import Archive

DEFAULT_RETENTION_DAYS = 30.0
PRUNE_EVERY_SECONDS = 3600.0
PRUNE_CURSOR = "jobs:pruned"  # its value: when the last pass ran


@dataclass
class JobsPruned:
    """What one pruning pass deleted."""

    done: int
    failed: int
    retention_days: float
    older_than: str  # jobs last changed before this moment were deleted

    @property
    def deleted(self) -> int:
        return self.done + self.failed

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "deleted": self.deleted}


def prune_finished_jobs(
    archive: Archive,
    *,
    retention_days: float = DEFAULT_RETENTION_DAYS,
    every_seconds: float = PRUNE_EVERY_SECONDS,
    now: datetime | None = None,
) -> JobsPruned | None:
    """Delete done and failed jobs older than `retention_days`, unless a pass ran within `every_seconds`.

    Returns None when no pass was due; otherwise what was deleted, committed
    with one custody event when anything was.
    """
    from sqlmodel import Session, select

    from archive.catalog.jobs import DONE, FAILED, Cursor, delete_finished, read_cursor, stamp, write_cursor
    from archive.custody.log import DELETION, append_event
    from archive.db import read_only, transaction

    if retention_days < 0:
        raise ConfigError(f"the job retention must not be negative (it is {retention_days} days)")
    moment = now or datetime.now(UTC)
    due_if_before = stamp(moment - timedelta(seconds=every_seconds))
    with Session(read_only(archive.engine)) as session:  # the cheap check every worker loop makes
        last = read_cursor(session, PRUNE_CURSOR)
        if last is not None and last.value is not None and last.value > due_if_before:
            return None
    cutoff = stamp(moment - timedelta(days=retention_days))
    actor = archive.actor  # resolved before any transaction: a first use writes its users row
    with transaction(archive.engine) as session:
        last = session.exec(select(Cursor).where(Cursor.name == PRUNE_CURSOR).with_for_update()).first()
        if last is not None and last.value is not None and last.value > due_if_before:
            return None  # another worker pruned a moment ago
        counts = delete_finished(session, cutoff)
        write_cursor(session, PRUNE_CURSOR, stamp(moment))
        result = JobsPruned(done=counts[DONE], failed=counts[FAILED], retention_days=retention_days,
                            older_than=cutoff)
        if result.deleted:
            append_event(
                session, DELETION, actor=actor,
                # Whole seconds: the log's canonical encoding has no floats.
                details={"deleted": "finished jobs", "done": result.done, "failed": result.failed,
                         "retention_seconds": round(retention_days * 86400), "older_than": cutoff},
            )
    return result
