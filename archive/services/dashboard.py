"""The dashboard's figures: what the archive holds and whether it is well, in one read.

The web dashboard shows these to custodians, investigators and auditors
alike, so nothing here is personal: counts by state, each storage site's
health (`archive.services.status`), the queue, the latest checkpoint and its
age, and the latest fixity problems named by item id, backend and result
(what the custody log already says to every site). Items a restricted case
hides from the caller (`archive.records.compartments`) are left out of every
item figure (the counts by state, the items with work queued and their jobs,
each site's originals, missing and corrupt copies) and of the problems, so a
non-member investigator gets the numbers of an archive where they never
existed: the size of a restricted case is not for it to learn. Contributors
get none of it: they see only their own recent uploads
(`archive.services.recent_uploads`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from archive.roles import Role
from archive.services.errors import Forbidden

if TYPE_CHECKING:
    from archive.context import Archive

PROBLEMS_SHOWN = 10
PROBLEMS_SCANNED = 500  # the latest failed checks read, before hidden items are left out


@dataclass
class Overview:
    items: dict[str, int]  # received (arriving uploads), processing (items with work queued), preserved, degraded
    queue_depth: int
    sites: list[dict[str, Any]]  # name, kind, in_policy, answers, originals, missing, corrupt
    checkpoint: dict[str, Any] | None  # tree_size, issued_at, age_seconds; None before the first
    log_size: int
    fixity_problems: list[dict[str, Any]] = field(default_factory=list)  # seq, time, item, backend, result

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def seconds_since(stamp: str | None, now: datetime) -> float | None:
    """Seconds from an ISO 8601 stamp (naive: UTC) to `now`; None without a readable stamp."""
    if not stamp:
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (now - when).total_seconds())


def _take_off(sites: list[dict[str, Any]], copies: list[tuple[str, str, str, int]]) -> None:
    """Subtract the hidden items' copies (backend, role, state, count) from the sites' figures, as
    `archive.services.status` counted them: verified originals, and missing or corrupt copies of any role."""
    from archive.catalog.items import ReplicaState
    from archive.objects import Role as ObjectRole

    by_name = {site["name"]: site for site in sites}
    for backend, role, state, count in copies:
        site = by_name.get(backend)
        if site is None:
            continue
        if state == ReplicaState.VERIFIED and role == ObjectRole.ORIGINAL:
            site["originals"] = max(0, site["originals"] - count)
        elif state == ReplicaState.MISSING:
            site["missing"] = max(0, site["missing"] - count)
        elif state == ReplicaState.CORRUPT:
            site["corrupt"] = max(0, site["corrupt"] - count)


def overview(archive: Archive, *, role: Role, now: datetime | None = None) -> Overview:
    """The dashboard's figures for custodians, investigators and auditors (`Forbidden` for contributors)."""
    from sqlalchemy import func
    from sqlmodel import Session, col, select

    from archive.catalog.events import Event, LogHead
    from archive.catalog.items import Item, ItemStatus, Replica
    from archive.catalog.jobs import DONE, FAILED, Job
    from archive.catalog.uploads import COMPLETING, OPEN, Upload
    from archive.custody.log import FIXITY_CHECK
    from archive.custody.service import latest_checkpoint
    from archive.db import read_only
    from archive.records.compartments import among, excluding, hidden_in
    from archive.services.status import archive_status

    if role == Role.CONTRIBUTOR:
        raise Forbidden("the archive's figures need the custodian, investigator or auditor role")
    now = now or datetime.now(UTC)
    status = archive_status(archive)
    with Session(read_only(archive.engine)) as session:
        hidden = hidden_in(archive, session, role).items
        queued = select(Job.item_id, func.count()).where(col(Job.state).notin_([DONE, FAILED]))  # type: ignore[call-overload]
        if hidden:  # (a job with no item is nobody's secret; NULL NOT IN … would drop it)
            queued = queued.where(col(Job.item_id).is_(None) | excluding(col(Job.item_id), hidden))
        pending = session.exec(queued.group_by(Job.item_id)).all()
        arriving = session.exec(select(func.count()).select_from(Upload)
                                .where(col(Upload.state).in_([OPEN, COMPLETING]))).one()
        head = session.get(LogHead, 1)
        unseen_states: dict[str, int] = {}
        unseen_copies: list[tuple[str, str, str, int]] = []
        if hidden:  # what the archive-wide status counted of them, to take off again
            unseen_states = {str(k): int(n) for k, n in session.exec(
                select(Item.status, func.count()).where(among(col(Item.id), hidden))  # type: ignore[call-overload]
                .group_by(Item.status)).all()}
            unseen_copies = [(str(b), str(r), str(s), int(n)) for b, r, s, n in session.exec(
                select(Replica.backend, Replica.role, Replica.state, func.count())  # type: ignore[call-overload]
                .where(among(col(Replica.item_id), hidden))
                .group_by(Replica.backend, Replica.role, Replica.state)).all()]
        failed = session.exec(select(Event).where(Event.event_type == FIXITY_CHECK, Event.outcome != "success")
                              .order_by(col(Event.seq).desc()).limit(PROBLEMS_SCANNED)).all()
    problems = []
    for event in failed:
        if event.item_id in hidden:
            continue
        problems.append({"seq": event.seq, "time": event.occurred_at, "item": event.item_id,
                         "backend": str(event.details.get("backend", "")),
                         "result": str(event.details.get("result", event.outcome))})
        if len(problems) >= PROBLEMS_SHOWN:
            break
    latest = latest_checkpoint(archive)
    checkpoint = None
    if latest is not None:
        checkpoint = {"tree_size": latest.get("tree_size"), "issued_at": latest.get("issued_at"),
                      "age_seconds": seconds_since(latest.get("issued_at"), now)}
    items = {"received": int(arriving), "processing": len({i for i, _ in pending if i is not None}),
             "preserved": max(0, int(status.items.get(ItemStatus.PRESERVED, 0))
                              - unseen_states.get(ItemStatus.PRESERVED, 0)),
             "degraded": max(0, int(status.items.get(ItemStatus.DEGRADED, 0))
                             - unseen_states.get(ItemStatus.DEGRADED, 0))}
    sites = [{"name": s.name, "kind": s.kind, "in_policy": s.in_policy, "answers": s.answers,
              "originals": s.originals, "missing": s.missing, "corrupt": s.corrupt,
              "log_conflict": bool(s.log_conflict)} for s in status.backends]
    _take_off(sites, unseen_copies)
    return Overview(items=items, queue_depth=sum(int(n) for _, n in pending), sites=sites, checkpoint=checkpoint,
                    log_size=int(head.size) if head else 0, fixity_problems=problems)
