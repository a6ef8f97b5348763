"""Fixity audits: re-read every stored copy and compare it with the custody log.

A check hashes the *ciphertext* as stored and compares its SHA-256 with the
hash the *log* recorded when the copy was made (`archive.custody.expected`,
each event relied upon checked against the signed tree), never with the
catalog's: whoever rewrites a catalog row to match substituted bytes cannot
rewrite the log. So it needs no private key and can run on the server. A copy
the log records no hash for is reported `unlogged`; one made before hashes
were logged (whose bytes still match the catalog) gets its hash recorded once,
as a baseline fixity check. Each copy checked is a custody event
(PREMIS "fixity check"); a missing or corrupt copy changes the replica's
state, may turn the item `degraded`, and queues a repair job in the same
transaction, so the worker heals it without anyone asking. `--repair` also
repairs at once. An item lacking a copy on a backend the policy now covers
gets a back-fill job the same way, so the scheduled pass also reconciles the
archive with its policy.

A full pass walks items in id order and keeps its position in a cursor row,
written in the transaction that records each item's checks: a restart
continues where the pass stopped. Reading is throttled to a byte rate from the
configuration (`[fixity] rate_bytes_per_second`) so a pass can run on a live
system.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from archive.catalog.items import Item, Replica
from archive.catalog.jobs import BACKFILL, REPAIR, enqueue, read_cursor, write_cursor
from archive.custody.expected import LogIndex, LogNotGenuine, read_item_index
from archive.custody.log import FIXITY_CHECK, append_event, utc_now
from archive.services.errors import ServiceError
from archive.services.repair import (
    ARRIVAL,
    CORRUPT,
    MANIFEST,
    MISSING,
    VERIFIED,
    later_arrivals,
    live_replicas,
    policy_names,
    refresh_status,
    repair_item,
    sidecars_short,
    stale_manifests,
    verified_backends,
)
from storage.base import ObjectMissing, StorageError

if TYPE_CHECKING:
    from archive.config import Settings
    from archive.context import Archive

PASS_CURSOR = "fixity:pass"
UNAVAILABLE = "unavailable"  # the backend did not answer: nothing is known about the copy
UNLOGGED = "unlogged"  # the log holds no (genuine) hash for the copy: its bytes cannot be vouched for


@dataclass
class FixitySettings:
    """`[fixity]` in config.toml: how fast a pass may read, and how often the worker starts one."""

    rate_bytes_per_second: int = 64 * 1024 * 1024  # 0: unlimited
    interval_seconds: int = 7 * 24 * 3600  # 0: the worker runs no scheduled pass
    batch_items: int = 100  # items per worker slice, between which other jobs get their turn

    @classmethod
    def from_settings(cls, settings: Settings) -> FixitySettings:
        data = settings.extra.get("fixity", {})
        return cls(
            rate_bytes_per_second=int(data.get("rate_bytes_per_second", cls.rate_bytes_per_second)),
            interval_seconds=int(data.get("interval_seconds", cls.interval_seconds)),
            batch_items=max(1, int(data.get("batch_items", cls.batch_items))),
        )


class RateLimiter:
    """A token bucket over bytes: `consume(n)` sleeps so the average rate stays under the limit."""

    def __init__(self, bytes_per_second: int) -> None:
        self.rate = max(0, bytes_per_second)
        self._allowance = float(self.rate)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def consume(self, amount: int) -> None:
        if self.rate == 0:
            return
        with self._lock:
            now = time.monotonic()
            self._allowance = min(float(self.rate), self._allowance + (now - self._last) * self.rate)
            self._last = now
            self._allowance -= amount
            wait = -self._allowance / self.rate if self._allowance < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


@dataclass
class CopyCheck:
    """The outcome for one stored copy."""

    item: str
    backend: str
    role: str
    object: str
    result: str  # ok | missing | corrupt | unavailable | unlogged
    detail: str | None = None
    expected: str | None = None  # the log's ciphertext hash
    found: str | None = None  # the hash of the bytes read
    baseline: bool = False  # a copy from before hashes were logged: this check records its hash
    bytes_read: int = 0


@dataclass
class FixityReport:
    items: int = 0
    copies: int = 0
    ok: int = 0
    missing: int = 0
    corrupt: int = 0
    unavailable: int = 0
    unlogged: int = 0
    bytes_read: int = 0
    problems: list[CopyCheck] = field(default_factory=list)
    repaired: list[dict[str, Any]] = field(default_factory=list)
    pass_complete: bool | None = None  # for --all: the full pass reached its end
    resumed_from: str | None = None

    @property
    def found_problems(self) -> bool:
        return bool(self.missing or self.corrupt or self.unavailable or self.unlogged)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["found_problems"] = self.found_problems
        return data


def _hash(archive: Archive, replica: Replica, limiter: RateLimiter) -> tuple[str, int]:
    backend = archive.backends[replica.backend]
    return backend.sha256_of(replica.object_name, replica.version_id, on_chunk=limiter.consume)


def _expected(index: LogIndex | str, replica: Replica, check: CopyCheck) -> bool:
    """Put the log's hash for the copy on `check`; False (and `unlogged`) when the log vouches for none."""
    if isinstance(index, str):  # the item's events did not verify
        check.result, check.detail = UNLOGGED, index
        return False
    key = f"{replica.backend}:{replica.object_name}"
    found = index.copy(key)
    if found is not None and found.item == replica.item_id and found.role == replica.role:
        check.expected = found.ciphertext_sha256
        return True
    if found is None and key in index.unhashed:  # from before hashes were logged: the catalog's, this once
        check.expected, check.baseline = replica.ciphertext_sha256, True
        return True
    check.result, check.detail = UNLOGGED, "the custody log records no such copy of this item"
    return False


def _check_copy(archive: Archive, replica: Replica, limiter: RateLimiter, health: dict[str, str | None],
                index: LogIndex | str) -> CopyCheck:
    check = CopyCheck(replica.item_id, replica.backend, replica.role, replica.object_name, "ok")
    if not _expected(index, replica, check):
        return check
    backend = archive.backends.get(replica.backend)
    if backend is None:
        check.result, check.detail = UNAVAILABLE, "backend not configured"
        return check
    if replica.backend not in health:
        health[replica.backend] = backend.health()
    if health[replica.backend] is not None:
        # A backend that does not answer, or whose marker is missing or foreign (an unmounted
        # disk, a wrong bucket), says nothing about its copies: never call them missing.
        check.result, check.detail = UNAVAILABLE, health[replica.backend]
        return check
    try:
        digest, size = _hash(archive, replica, limiter)
    except ObjectMissing as exc:
        # The disk may have gone since the pass began: only a site that still carries
        # this archive's marker can say a copy is missing.
        gone = backend.check_marker()
        if gone is not None:
            health[replica.backend] = gone
            check.result, check.detail = UNAVAILABLE, gone
            return check
        check.result, check.detail = MISSING, str(exc)
        return check
    except (StorageError, OSError) as exc:
        check.result, check.detail = UNAVAILABLE, str(exc)
        return check
    check.found, check.bytes_read = digest, size
    if digest != check.expected:
        check.result, check.baseline = CORRUPT, False
        check.detail = f"SHA-256 {digest[:16]}…; the custody log has {str(check.expected)[:16]}…"
    return check



_STATE = {"ok": VERIFIED, MISSING: MISSING, CORRUPT: CORRUPT}
_OUTCOME = {"ok": "success", MISSING: "failure", CORRUPT: "failure", UNAVAILABLE: "warning", UNLOGGED: "failure"}


def check_item(
    archive: Archive,
    item_id: str,
    limiter: RateLimiter,
    *,
    report: FixityReport,
    health: dict[str, str | None],
    cursor: str | None = None,
) -> list[CopyCheck]:
    """Check every live copy of one item and record the outcome in one transaction.

    With `cursor`, the pass cursor moves to this item in that same transaction.
    """
    from archive.db import transaction

    actor = archive.actor  # resolved before any transaction: a first use writes its users row
    with Session(archive.engine) as session:
        replicas = live_replicas(session, item_id)
    index: LogIndex | str
    try:
        index = read_item_index(archive, item_id)
    except LogNotGenuine as exc:
        index = str(exc)
    checks = [_check_copy(archive, replica, limiter, health, index) for replica in replicas]
    with transaction(archive.engine) as session:
        item = session.get(Item, item_id)
        if item is None:  # removed meanwhile; nothing to record
            return []
        now = utc_now()
        for replica, check in zip(replicas, checks, strict=True):
            row = session.get(Replica, replica.id)
            if row is None:
                continue
            if check.result in _STATE and row.state in (VERIFIED, MISSING, CORRUPT):
                row.state = _STATE[check.result]
                if check.result == "ok":
                    row.verified_at = now
                session.add(row)
            details: dict[str, Any] = {"backend": check.backend, "role": check.role, "result": check.result,
                                       "algorithm": "SHA-256"}
            if check.expected is not None:  # a copy event names the copy's hash (the log's)
                details["ciphertext_sha256"] = check.expected
            if check.baseline and check.result == "ok":
                details["baseline"] = True
            if check.found is not None and check.found != check.expected:
                details["found_ciphertext_sha256"] = check.found
            if check.detail and check.result != "ok":
                details["detail"] = check.detail[:500]
            append_event(session, FIXITY_CHECK, actor=actor, item_id=item_id,
                         objects=[f"{check.backend}:{check.object}"], outcome=_OUTCOME[check.result], details=details)
            report.copies += 1
            setattr(report, check.result, getattr(report, check.result) + 1)
            if check.result == "ok":
                report.bytes_read += check.bytes_read
            else:
                report.problems.append(check)
        session.flush()
        status = refresh_status(session, archive, item)
        current = live_replicas(session, item_id)
        originals = [r for r in current if r.role == "original" and r.state == VERIFIED]
        later = later_arrivals(session, item_id)
        manifests_short = any(sidecars_short(r, current, later) for r in originals) or (
            not isinstance(index, str) and bool(stale_manifests(index, item_id, current)))
        lacking = [name for name in policy_names(archive) if name not in verified_backends(current)]
        if status == "degraded" or manifests_short or any(r.state != VERIFIED for r in current):
            enqueue(session, REPAIR, item_id=item_id, payload={"reason": "fixity"})
        elif lacking:
            # A policy backend without a copy (e.g. one added while the policy names none): back-fill it.
            enqueue(session, BACKFILL, item_id=item_id, payload={"backends": lacking})
        if cursor is not None:
            write_cursor(session, PASS_CURSOR, cursor, None)
    report.items += 1
    return checks


def _pass_items(archive: Archive, after: str | None, limit: int) -> list[str]:
    with Session(archive.engine) as session:
        query = select(Item.id).order_by(col(Item.id)).limit(limit)
        if after is not None:
            query = query.where(col(Item.id) > after)
        return list(session.exec(query).all())


def run_fixity(
    archive: Archive,
    *,
    all_items: bool = False,
    sample: int | None = None,
    item: str | None = None,
    repair: bool = False,
    max_items: int | None = None,
    rate_bytes_per_second: int | None = None,
    restart: bool = False,
) -> FixityReport:
    """Check one item, a random sample, or (a slice of) the resumable full pass."""
    from archive.db import transaction
    from archive.services.items import resolve_item

    chosen = sum(1 for flag in (all_items, sample is not None, item is not None) if flag)
    if chosen != 1:
        raise ServiceError("choose exactly one of --all, --sample N, --item ITEM")
    settings = FixitySettings.from_settings(archive.settings)
    limiter = RateLimiter(settings.rate_bytes_per_second if rate_bytes_per_second is None else rate_bytes_per_second)
    report = FixityReport()
    health: dict[str, str | None] = {}
    if item is not None:
        with Session(archive.engine) as session:
            ids = [resolve_item(session, item).id]
    elif sample is not None:
        if sample < 1:
            raise ServiceError("a sample needs a positive number of items")
        with Session(archive.engine) as session:
            ids = list(session.exec(select(Item.id).order_by(func.random()).limit(sample)).all())
    if not all_items:
        for item_id in ids:
            check_item(archive, item_id, limiter, report=report, health=health)
    else:
        with transaction(archive.engine) as session:
            cursor = read_cursor(session, PASS_CURSOR)
            if restart or cursor is None or cursor.value is None:
                write_cursor(session, PASS_CURSOR, None, {"started_at": utc_now()})
                after = None
            else:
                after = cursor.value
                report.resumed_from = after
        budget = max_items
        report.pass_complete = False
        while budget is None or budget > 0:
            batch = _pass_items(archive, after, 100 if budget is None else min(100, budget))
            if not batch:
                with transaction(archive.engine) as session:
                    write_cursor(session, PASS_CURSOR, None, {"completed_at": utc_now()})
                report.pass_complete = True
                break
            for item_id in batch:
                check_item(archive, item_id, limiter, report=report, health=health, cursor=item_id)
                after = item_id
            if budget is not None:
                budget -= len(batch)
        ids = [p.item for p in report.problems]
    if repair:
        for item_id in dict.fromkeys(p.item for p in report.problems if p.result in (MISSING, CORRUPT)):
            report.repaired.append(repair_item(archive, item_id, reason="fixity").as_dict())
        # Copies that were fine but lack a manifest, or items below the policy, are repaired too.
        for item_id in dict.fromkeys(ids):
            if not any(r["item"] == item_id for r in report.repaired) and _needs_repair(archive, item_id):
                report.repaired.append(repair_item(archive, item_id, reason="fixity").as_dict())
    return report


def _needs_repair(archive: Archive, item_id: str) -> bool:
    with Session(archive.engine) as session:
        item = session.get(Item, item_id)
        if item is None:
            return False
        current = live_replicas(session, item_id)
        later = later_arrivals(session, item_id)
    originals = [r for r in current if r.role == "original" and r.state == VERIFIED]
    return item.status == "degraded" or any(sidecars_short(r, current, later) for r in originals) or any(
        r.state != VERIFIED and r.role in (MANIFEST, ARRIVAL) for r in current
    )
