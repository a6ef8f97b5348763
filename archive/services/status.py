"""`evidence status`: what the archive holds and whether its storage answers.

Object counts and bytes come from the catalog (what each backend should hold),
not from listing buckets, so the command stays fast on a large archive; the
health probe asks each backend in parallel with its own bounded timeouts.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from archive.catalog.items import Item, Replica
from archive.catalog.jobs import Job, read_cursor
from archive.db import read_only
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


def archive_status(archive: Archive) -> dict[str, Any]:
    backends = archive.backends
    with ThreadPoolExecutor(max_workers=max(1, len(backends))) as pool:
        health = dict(zip(backends, pool.map(_health, backends.values()), strict=True))
    with Session(read_only(archive.engine)) as session:
        items = dict(session.exec(select(Item.status, func.count()).group_by(Item.status)).all())  # type: ignore[call-overload]
        rows = session.exec(
            select(Replica.backend, Replica.role, Replica.state, func.count(),  # type: ignore[call-overload]
                   func.coalesce(func.sum(Replica.size), 0))
            .where(col(Replica.state) != REPLACED)
            .group_by(Replica.backend, Replica.role, Replica.state)
        ).all()
        jobs = dict(session.exec(select(Job.state, func.count()).group_by(Job.state)).all())  # type: ignore[call-overload]
        cursor = read_cursor(session, PASS_CURSOR)
    per_backend: dict[str, dict[str, Any]] = {}
    in_policy = set(policy_names(archive))
    for name, backend in backends.items():
        per_backend[name] = {
            "name": name,
            "kind": backend.kind,
            "in_policy": name in in_policy,
            "objects": 0,
            "originals": 0,
            "bytes": 0,
            "missing": 0,
            "corrupt": 0,
            "answers": health[name] is None,
            "error": health[name],
        }
    for name, role, state, count, size in rows:
        entry = per_backend.setdefault(
            name,
            {"name": name, "kind": None, "in_policy": False, "objects": 0, "originals": 0, "bytes": 0, "missing": 0,
             "corrupt": 0, "answers": False, "error": "not configured"},
        )
        if state == "verified":
            entry["objects"] += int(count)  # originals and their manifests
            entry["bytes"] += int(size)
            if role == "original":
                entry["originals"] += int(count)
        elif state in ("missing", "corrupt"):
            entry[state] += int(count)
    return {
        "archive_id": archive.config.archive_id,
        "items": {"preserved": int(items.get("preserved", 0)), "degraded": int(items.get("degraded", 0)),
                  **{k: int(v) for k, v in items.items() if k not in ("preserved", "degraded")}},
        "policy": {"copies": archive.config.policy.copies, "minimum": archive.config.policy.minimum,
                   "backends": policy_names(archive)},
        "backends": list(per_backend.values()),
        "jobs": {k: int(v) for k, v in jobs.items()},
        "fixity_pass": None if cursor is None else {"position": cursor.value, **cursor.state,
                                                    "updated_at": cursor.updated_at},
    }
