"""The replication policy: how many verified copies, on which backends.

Changing it is a custody event (PREMIS "policy assignment"), committed with
the jobs it makes necessary: a backend added to the policy is back-filled for
every existing item (any item lacking a copy on a policy backend gets a
back-fill job for exactly those), and statuses follow the new target. The configuration file is written inside
that same transaction, just before it commits, so a failure leaves neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from archive.catalog.items import Item, Replica
from archive.catalog.jobs import BACKFILL, enqueue
from archive.config import Policy
from archive.custody.log import append_event
from archive.services.errors import ServiceError
from archive.services.repair import REPLACED, policy_names, status_for, verified_backends

if TYPE_CHECKING:
    from archive.context import Archive

# PREMIS event type (id.loc.gov/vocabulary/preservation/eventType/pol).
POLICY_ASSIGNMENT = "policy assignment"


def show_policy(archive: Archive) -> dict[str, Any]:
    policy = archive.settings.policy
    return {
        "copies": policy.copies,
        "minimum": policy.minimum,
        "backends": list(policy.backends),
        "effective_backends": policy_names(archive),
        "configured_backends": [spec.name for spec in archive.settings.storage],
    }


def validate(copies: int, minimum: int, backends: list[str], configured: list[str]) -> None:
    unknown = [name for name in backends if name not in configured]
    if unknown:
        raise ServiceError(f"unknown storage backend(s): {', '.join(unknown)} (configured: {', '.join(configured)})")
    if len(set(backends)) != len(backends):
        raise ServiceError("a backend is named twice in --backends")
    available = len(backends or configured)
    if not 1 <= minimum <= copies <= available:
        raise ServiceError(
            f"need 1 ≤ minimum ({minimum}) ≤ copies ({copies}) ≤ number of backends ({available})"
        )


def set_policy(archive: Archive, copies: int, minimum: int, backends: list[str] | None = None) -> dict[str, Any]:
    """Change the policy; back-fill added backends and re-evaluate every item's status.

    `backends=None` keeps the current list; an empty list means every configured backend.
    """
    from archive.db import transaction

    settings = archive.settings
    configured = [spec.name for spec in settings.storage]
    new_backends = list(settings.policy.backends) if backends is None else list(backends)
    validate(copies, minimum, new_backends, configured)
    before = show_policy(archive)
    old_policy = settings.policy
    old_effective = set(policy_names(archive))
    settings.policy = Policy(copies=copies, minimum=minimum, backends=new_backends)
    added = [name for name in policy_names(archive) if name not in old_effective]
    try:
        with transaction(archive.engine) as session:
            append_event(
                session,
                POLICY_ASSIGNMENT,
                actor=archive.actor,
                details={
                    "copies": copies,
                    "minimum": minimum,
                    "backends": new_backends,
                    "previous": {"copies": before["copies"], "minimum": before["minimum"],
                                 "backends": before["backends"]},
                    "added": added,
                },
            )
            outcome = reevaluate(archive, session)
            settings.save()  # last: if it fails, the transaction rolls back with it
    except BaseException:
        settings.policy = old_policy
        raise
    return {**show_policy(archive), "added": added, **outcome}


def reevaluate(archive: Archive, session: Session) -> dict[str, Any]:
    """Re-check every item against the current policy, inside the caller's transaction.

    An item lacking a verified original on a policy backend gets a back-fill job
    for exactly those backends; statuses follow the target. Call this after any
    change to which backends the policy covers, including adding a backend to
    the configuration while the policy names none (then it covers every one).
    """
    by_item: dict[str, list[Replica]] = {}
    for replica in session.exec(select(Replica).where(Replica.state != REPLACED)).all():
        by_item.setdefault(replica.item_id, []).append(replica)
    wanted = policy_names(archive)
    backfills = changed = 0
    lacking_anywhere: set[str] = set()
    for item in session.exec(select(Item)).all():
        replicas = by_item.get(item.id, [])
        status = status_for(archive, replicas)
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
    return {"backfill_jobs": backfills, "backfill_backends": sorted(lacking_anywhere), "status_changes": changed}
