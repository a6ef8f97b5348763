"""`evidence status`: what the archive holds and whether its storage answers.

Object counts and bytes come from the catalog (what each backend should hold),
not from listing buckets, so the command stays fast on a large archive; the
health probe asks each backend in parallel with its own bounded timeouts.
The catalog keeps no exact size (one would identify a known file), so the
bytes are a lower bound: each original's power-of-two size class, at least.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from archive.catalog.items import Item, ItemStatus, Replica, ReplicaState
from archive.catalog.jobs import Job, read_cursor
from archive.catalog.secrets import bucket_floor
from archive.db import read_only
from archive.objects import Role
from archive.services.fixity import PASS_CURSOR
from archive.services.repair import REPLACED, policy_names

if TYPE_CHECKING:
    from archive.context import Archive
    from storage.base import Backend


def _health(backend: Backend) -> str | None:
    try:
        return backend.health()
    except Exception as exc:  # noqa: BLE001 - a probe that crashes means "does not answer"
        return str(exc) or type(exc).__name__


@dataclass
class SiteStatus:
    """One storage site: what the catalog says it holds, and whether it answers as this archive's site."""

    name: str
    kind: str | None
    in_policy: bool
    objects: int = 0  # originals and the sealed documents beside them
    originals: int = 0
    bytes: int = 0  # at least: the sum of the originals' size classes' lower bounds
    missing: int = 0
    corrupt: int = 0
    answers: bool = False
    error: str | None = None
    log_conflict: str | None = None  # its copy of the custody log disagrees with the catalog's (rolled back?)
    unpublished_records: int = 0  # record changes committed and not in its journal yet (`evidence log checkpoint`)


@dataclass
class ArchiveStatus:
    archive_id: str
    items: dict[str, int]
    policy: dict[str, Any]
    backends: list[SiteStatus]
    jobs: dict[str, int]
    fixity_pass: dict[str, Any] | None
    # Rows written while locked and not settled yet, per table; `unsettled` says why they wait, when known.
    pending: dict[str, int] = field(default_factory=dict)
    unsettled: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def archive_status(archive: Archive) -> ArchiveStatus:
    from archive.custody.mirror import mirror_conflict

    backends = archive.backends
    with ThreadPoolExecutor(max_workers=max(1, len(backends))) as pool:
        health = dict(zip(backends, pool.map(_health, backends.values()), strict=True))
    with Session(read_only(archive.engine)) as session:
        items = dict(session.exec(select(Item.status, func.count()).group_by(Item.status)).all())  # type: ignore[call-overload]
        rows = session.exec(
            select(Replica.backend, Replica.role, Replica.state, func.count())  # type: ignore[call-overload]
            .where(col(Replica.state) != REPLACED)
            .group_by(Replica.backend, Replica.role, Replica.state)
        ).all()
        classes = session.exec(
            select(Replica.backend, Item.size_bucket, func.count())  # type: ignore[call-overload]
            .join(Item, col(Item.id) == col(Replica.item_id))
            .where(col(Replica.state) == ReplicaState.VERIFIED, col(Replica.role) == Role.ORIGINAL)
            .group_by(col(Replica.backend), col(Item.size_bucket))
        ).all()
        jobs = dict(session.exec(select(Job.state, func.count()).group_by(Job.state)).all())  # type: ignore[call-overload]
        cursor = read_cursor(session, PASS_CURSOR)
        conflicts = {name: mirror_conflict(session, name) for name in backends}
        from archive.custody.records_check import unpublished

        lagging = unpublished(session, list(backends))
    pending = _pending_rows(archive)
    in_policy = set(policy_names(archive))
    sites = {
        name: SiteStatus(name, backend.kind, name in in_policy, answers=health[name] is None, error=health[name],
                         log_conflict=conflicts[name], unpublished_records=lagging.get(name, 0))
        for name, backend in backends.items()
    }
    for name, role, state, count in rows:
        site = sites.setdefault(name, SiteStatus(name, None, False, error="not configured"))
        if state == ReplicaState.VERIFIED:
            site.objects += int(count)
            if role == Role.ORIGINAL:
                site.originals += int(count)
        elif state == ReplicaState.MISSING:
            site.missing += int(count)
        elif state == ReplicaState.CORRUPT:
            site.corrupt += int(count)
    for name, bucket, count in classes:
        if name in sites:
            sites[name].bytes += bucket_floor(bucket) * int(count)
    policy = archive.config.policy
    return ArchiveStatus(
        archive_id=archive.config.archive_id,
        items={ItemStatus.PRESERVED: int(items.get(ItemStatus.PRESERVED, 0)),
               ItemStatus.DEGRADED: int(items.get(ItemStatus.DEGRADED, 0)),
               **{str(k): int(v) for k, v in items.items() if k not in (ItemStatus.PRESERVED, ItemStatus.DEGRADED)}},
        policy={"copies": policy.copies, "minimum": policy.minimum, "backends": policy_names(archive)},
        backends=list(sites.values()),
        jobs={str(k): int(v) for k, v in jobs.items()},
        fixity_pass=None if cursor is None else {"position": cursor.value, **cursor.state,
                                                 "updated_at": cursor.updated_at},
        pending=pending,
        unsettled=[w for w in archive.runtime.warnings if "pending row" in w] if pending else [],
    )


def _pending_rows(archive: Archive) -> dict[str, int]:
    """Rows sealed pending per table (settlement at this use case's start took what it could open)."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from archive.services.settle import QUICK_TABLES

    counts: dict[str, int] = {}
    with read_only(archive.engine).connect() as conn:
        for table in QUICK_TABLES:
            try:
                count = conn.execute(text(f"SELECT count(*) FROM {table} WHERE key_version = 0")).scalar()
            except DBAPIError:  # a table a later migration adds
                conn.rollback()
                continue
            if count:
                counts[table] = int(count)
    return counts
