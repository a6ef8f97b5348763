"""The durable job queue: a table in the catalog, so a job commits with its cause.

A job (repair, back-fill, scheduled fixity …) is inserted in the same
transaction as whatever made it necessary: an item committed `degraded`, a
policy that gained a backend, a fixity check that found a bad copy. If that
transaction rolls back, so does the job; if it commits, the job survives any
crash.

Claiming takes a *lease*: the job is marked running for `lease_seconds` under
one worker's name. On PostgreSQL the claim is `SELECT … FOR UPDATE SKIP
LOCKED`, so several workers never take the same row; on SQLite the
transaction's up-front write lock (`BEGIN IMMEDIATE`, see `archive.db`) makes
the claim atomic. A worker that dies leaves its lease to expire, and the job
is claimed again. Handlers must therefore be idempotent. A failed attempt is
retried with exponential backoff up to a cap; jobs never wait for a human.
Finished jobs are deleted after a retention period (`delete_finished`, called
by `archive.services.retention`).

Times are stored as fixed-width UTC strings (`YYYY-MM-DDTHH:MM:SS.ffffffZ`),
like every other time in the catalog; they sort and compare as text.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Column, and_, or_
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"  # only for jobs no handler can ever run (unknown kind)

REPAIR = "repair"
BACKFILL = "backfill"
FIXITY = "fixity"
FINGERPRINT = "fingerprint"  # the rest of a video that ingest fingerprinted only in part
ANALYSIS = "analysis"  # metadata or fingerprints back-filled for an item that lacks them

FIXITY_SINGLETON = "fixity:scheduled"


class Job(SQLModel, table=True):
    """One unit of background work, claimed under a lease."""

    __tablename__ = "jobs"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32, index=True)
    item_id: str | None = Field(default=None, max_length=36, index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Set for jobs of which only one may exist (the scheduled fixity pass).
    unique_key: str | None = Field(default=None, max_length=64, unique=True)
    state: str = Field(default=QUEUED, max_length=16, index=True)
    attempts: int = 0
    next_run_at: str = Field(max_length=32, index=True)
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_expires_at: str | None = Field(default=None, max_length=32)
    last_error: str | None = None
    created_at: str = Field(max_length=32)
    updated_at: str = Field(max_length=32)


class Cursor(SQLModel, table=True):
    """A named position in a long pass (the fixity audit), so a restart continues it."""

    __tablename__ = "cursors"

    name: str = Field(primary_key=True, max_length=64)
    value: str | None = Field(default=None, max_length=255)
    state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: str = Field(max_length=32)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_stamp(offset_seconds: float = 0.0) -> str:
    return stamp(datetime.now(UTC) + timedelta(seconds=offset_seconds))


def enqueue(
    session: Session,
    kind: str,
    *,
    item_id: str | None = None,
    payload: dict[str, Any] | None = None,
    delay: float = 0.0,
) -> Job:
    """Add a job inside the caller's transaction.

    A queued (not yet running) job of the same kind for the same item is
    reused instead of adding a second one: it would do the same work. Payload
    lists (e.g. back-fill targets) are merged into it.
    """
    now = now_stamp()
    payload = dict(payload or {})
    if item_id is not None:
        existing = session.exec(
            select(Job).where(Job.kind == kind, Job.item_id == item_id, Job.state == QUEUED).limit(1)
        ).first()
        if existing is not None:
            merged = dict(existing.payload)
            for key, value in payload.items():
                if isinstance(value, list) and isinstance(merged.get(key), list):
                    merged[key] = sorted(set(merged[key]) | set(value))
                else:
                    merged[key] = value
            existing.payload = merged
            existing.next_run_at = min(existing.next_run_at, now_stamp(delay))
            existing.updated_at = now
            session.add(existing)
            session.flush()
            return existing
    job = Job(
        kind=kind,
        item_id=item_id,
        payload=payload,
        state=QUEUED,
        next_run_at=now_stamp(delay),
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    return job


def ensure_singleton(engine: Engine, kind: str, unique_key: str, payload: dict[str, Any] | None = None) -> None:
    """Create the one job with this key unless it exists (a race loses quietly)."""
    from sqlalchemy.exc import IntegrityError

    from archive.db import transaction

    try:
        with transaction(engine) as session:
            if session.exec(select(Job).where(Job.unique_key == unique_key)).first() is not None:
                return
            now = now_stamp()
            session.add(
                Job(kind=kind, unique_key=unique_key, payload=dict(payload or {}), next_run_at=now,
                    created_at=now, updated_at=now)
            )
    except IntegrityError:
        pass  # another worker created it a moment ago


def claim(
    engine: Engine,
    owner: str,
    lease_seconds: float,
    kinds: list[str] | None = None,
    *,
    due_by: str | None = None,
) -> Job | None:
    """Take one due job under a lease, or None when nothing is due.

    Due means queued with `next_run_at` reached (or reached by `due_by`, which
    a `--once` run sets to its start so a job it retried is not taken again in
    the same run), or running under a lease that has expired (its worker died).
    """
    from archive.db import transaction

    now = now_stamp()
    with transaction(engine) as session:
        query = select(Job).where(
            or_(
                and_(col(Job.state) == QUEUED, col(Job.next_run_at) <= min(now, due_by or now)),
                and_(col(Job.state) == RUNNING, col(Job.lease_expires_at) <= now),
            )
        )
        if kinds:
            query = query.where(col(Job.kind).in_(kinds))
        query = query.order_by(col(Job.next_run_at), col(Job.id)).limit(1).with_for_update(skip_locked=True)
        job = session.exec(query).first()
        if job is None:
            return None
        job.state = RUNNING
        job.lease_owner = owner
        job.lease_expires_at = now_stamp(lease_seconds)
        job.attempts += 1
        job.updated_at = now
        session.add(job)
        session.flush()
        session.refresh(job)
        return job


def _owned(session: Session, job: Job, owner: str) -> Job | None:
    """The job row locked, if `owner` still holds its lease."""
    row = session.exec(select(Job).where(Job.id == job.id).with_for_update()).first()
    if row is None or row.state != RUNNING or row.lease_owner != owner:
        return None
    return row


def renew(engine: Engine, job: Job, owner: str, lease_seconds: float) -> bool:
    """Extend a lease that is still ours; False when it was lost to another worker."""
    from archive.db import transaction

    with transaction(engine) as session:
        row = _owned(session, job, owner)
        if row is None:
            return False
        row.lease_expires_at = now_stamp(lease_seconds)
        session.add(row)
        return True


def finish(
    engine: Engine,
    job: Job,
    owner: str,
    *,
    reschedule_in: float | None = None,
    payload: dict[str, Any] | None = None,
) -> bool:
    """Mark a job done (or, with `reschedule_in`, queue it again as a fresh run)."""
    from archive.db import transaction

    with transaction(engine) as session:
        row = _owned(session, job, owner)
        if row is None:
            return False
        if payload is not None:
            row.payload = payload
        if reschedule_in is None:
            row.state = DONE
        else:
            row.state = QUEUED
            row.attempts = 0
            row.next_run_at = now_stamp(reschedule_in)
        row.lease_owner = None
        row.lease_expires_at = None
        row.last_error = None
        row.updated_at = now_stamp()
        session.add(row)
        return True


def delete_finished(session: Session, before: str) -> dict[str, int]:
    """Delete done and failed jobs last changed before `before`, in the caller's transaction; how many of each.

    Queued and running jobs are never touched: only history whose work is over.
    """
    from sqlalchemy import delete

    gone = session.execute(
        delete(Job)
        .where(col(Job.state).in_((DONE, FAILED)), col(Job.updated_at) < before)
        .returning(col(Job.state))
    ).all()
    counts = {DONE: 0, FAILED: 0}
    for (state,) in gone:
        counts[state] += 1
    return counts


def backoff_delay(attempts: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: base·2^(attempts-1), at most `cap`."""
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    return delay * random.uniform(0.8, 1.0)


def retry_later(engine: Engine, job: Job, owner: str, error: str, *, base: float, cap: float) -> bool:
    """Record a failed attempt and queue the job again after a backoff."""
    from archive.db import transaction

    with transaction(engine) as session:
        row = _owned(session, job, owner)
        if row is None:
            return False
        row.state = QUEUED
        row.next_run_at = now_stamp(backoff_delay(row.attempts, base, cap))
        row.lease_owner = None
        row.lease_expires_at = None
        row.last_error = error[:2000]
        row.updated_at = now_stamp()
        session.add(row)
        return True


def give_up(engine: Engine, job: Job, owner: str, error: str) -> bool:
    """Mark a job that can never succeed (no handler for its kind) as failed."""
    from archive.db import transaction

    with transaction(engine) as session:
        row = _owned(session, job, owner)
        if row is None:
            return False
        row.state = FAILED
        row.lease_owner = None
        row.lease_expires_at = None
        row.last_error = error[:2000]
        row.updated_at = now_stamp()
        session.add(row)
        return True


def read_cursor(session: Session, name: str) -> Cursor | None:
    return session.get(Cursor, name)


def write_cursor(session: Session, name: str, value: str | None, state: dict[str, Any] | None = None) -> None:
    """Move a named cursor inside the caller's transaction (with the work it records)."""
    cursor = session.get(Cursor, name)
    if cursor is None:
        cursor = Cursor(name=name, value=value, state=dict(state or {}), updated_at=now_stamp())
    else:
        cursor.value = value
        if state is not None:
            cursor.state = dict(state)
        cursor.updated_at = now_stamp()
    session.add(cursor)
