"""The replication policy: how many verified copies, on which backends.

Changing it is a custody event (PREMIS "policy assignment"), committed with
the jobs it makes necessary: a backend added to the policy is back-filled for
every existing item (any item lacking a copy on a policy site gets a
back-fill job for exactly those), and statuses follow the new target. The
policy lives in the catalog and changes in that same transaction, so a failure
leaves neither the change nor its event; running workers see it at their next job.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from archive.catalog.items import Item, ItemStatus, Replica
from archive.catalog.jobs import BACKFILL, enqueue
from archive.config import Policy, RuntimeConfig
from archive.custody.log import append_event
from archive.services.errors import ServiceError
from archive.services.repair import REPLACED, status_for, verified_backends

if TYPE_CHECKING:
    from archive.context import Archive

# PREMIS event type (id.loc.gov/vocabulary/preservation/eventType/pol).
POLICY_ASSIGNMENT = "policy assignment"


@dataclass
class PolicyView:
    """The replication policy as it stands, and what a change did."""

    copies: int
    minimum: int
    backends: list[str]
    effective_backends: list[str]
    configured_backends: list[str]
    added: list[str] = field(default_factory=list)
    backfill_jobs: int = 0
    backfill_backends: list[str] = field(default_factory=list)
    status_changes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def show_policy(archive: Archive, config: RuntimeConfig | None = None) -> PolicyView:
    config = config or archive.config
    policy = config.policy
    return PolicyView(
        copies=policy.copies,
        minimum=policy.minimum,
        backends=list(policy.backends),
        effective_backends=config.policy_names(),
        configured_backends=config.site_names(),
    )


def validate(copies: int, minimum: int, backends: list[str], configured: list[str]) -> None:
    unknown = [name for name in backends if name not in configured]
    if unknown:
        raise ServiceError(f"unknown storage site(s): {', '.join(unknown)} (configured: {', '.join(configured)})")
    if len(set(backends)) != len(backends):
        raise ServiceError("a storage site is named twice in the policy")
    available = len(backends or configured)
    if not 1 <= minimum <= copies <= available:
        raise ServiceError(
            f"need 1 ≤ minimum ({minimum}) ≤ copies ({copies}) ≤ number of storage sites ({available})"
        )


def set_policy(archive: Archive, copies: int, minimum: int, backends: list[str] | None = None) -> PolicyView:
    """Change the policy; back-fill added sites and re-evaluate every item's status, in one transaction.

    `backends=None` keeps the current list; an empty list means every site.
    """
    from archive.catalog.settings import POLICY, put_setting
    from archive.db import transaction

    config = archive.config
    new_backends = list(config.policy.backends) if backends is None else list(backends)
    validate(copies, minimum, new_backends, config.site_names())
    before = config.policy
    new_config = replace(config, policy=Policy(copies=copies, minimum=minimum, backends=new_backends))
    old_effective = set(config.policy_names())
    added = [name for name in new_config.policy_names() if name not in old_effective]
    with transaction(archive.engine) as session:
        append_event(
            session,
            POLICY_ASSIGNMENT,
            actor=archive.actor,
            details={"copies": copies, "minimum": minimum, "backends": new_backends,
                     "previous": before.as_dict(), "added": added},
        )
        put_setting(session, POLICY, new_config.policy.as_dict())
        outcome = reevaluate(archive, session, new_config)
    archive.refresh()
    view = show_policy(archive)
    view.added = added
    view.backfill_jobs, view.backfill_backends, view.status_changes = outcome
    return view


def reevaluate(archive: Archive, session: Session, config: RuntimeConfig) -> tuple[int, list[str], int]:
    """Re-check every item against `config`'s policy, inside the caller's transaction.

    An item lacking a verified original on a policy site gets a back-fill job
    for exactly those sites; statuses follow the target. Call this after any
    change to which sites the policy covers, including adding a site while the
    policy names none (then it covers every one). Returns the number of
    back-fill jobs, the sites they fill, and how many statuses changed.
    """
    by_item: dict[str, list[Replica]] = {}
    for replica in session.exec(select(Replica).where(Replica.state != REPLACED)).all():
        by_item.setdefault(replica.item_id, []).append(replica)
    wanted = config.policy_names()
    backfills = changed = 0
    lacking_anywhere: set[str] = set()
    # A merged item (settlement found its bytes were another's) has no copies of its own to keep.
    for item in session.exec(select(Item).where(col(Item.status) != ItemStatus.MERGED)).all():
        replicas = by_item.get(item.id, [])
        status = status_for(config, replicas)
        if status != item.status:
            item.status = status
            session.add(item)
            changed += 1
        present = verified_backends(replicas)
        lacking = [name for name in wanted if name not in present]
        if lacking:
            enqueue(session, BACKFILL, item_id=item.id, payload={"backends": lacking})
            lacking_anywhere.update(lacking)
            backfills += 1
    return backfills, sorted(lacking_anywhere), changed
