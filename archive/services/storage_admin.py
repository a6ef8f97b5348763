"""Managing storage backends: add, list, remove. Called by `evidence storage` and, later, the HTTP API.

Why these rules:

- A backend is only added once it answers as configured (the bucket exists,
  the credentials work, Object Lock is on when a retention is asked for), so a
  typo shows up now, not as a degraded item at the next ingest.
- Secrets never reach the configuration, the custody log or the output: S3
  credentials and SSE-C keys stay in the secrets file or the environment
  (`storage.secrets`), and only non-secret options are saved or shown.
- Removing a backend is refused while it holds the only verified copy of any
  original, and while the policy still needs it; a removal never deletes data.
- Sites live in the catalog: adding or removing one commits with its custody
  event, and every running worker sees it at its next job.
- Each site carries a marker naming this archive, written when it is added, so
  an unmounted disk or a wrong bucket is *unavailable*, never mistaken for empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive.config import StorageSpec
from archive.services.errors import CheckFailed, NotFound, ServiceError

if TYPE_CHECKING:
    from archive.context import Archive
    from storage.base import Backend

STORAGE_ADDED = "storage added"
STORAGE_REMOVED = "storage removed"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# option keys that may be shown and logged; anything else is dropped from output
PUBLIC_OPTIONS = (
    "path",
    "endpoint",
    "bucket",
    "region",
    "prefix",
    "object_lock",
    "retention_days",
    "sse",
    "kms_key_id",
    "part_size_mib",
    "concurrency",
    "connect_timeout",
    "read_timeout",
    "max_attempts",
    "verify",
)


def public_options(options: dict[str, Any]) -> dict[str, Any]:
    return {key: options[key] for key in PUBLIC_OPTIONS if key in options}


def build_options(
    kind: str,
    *,
    path: str | None = None,
    endpoint: str | None = None,
    bucket: str | None = None,
    region: str | None = None,
    prefix: str | None = None,
    object_lock: str | None = None,
    retention_days: int | None = None,
    sse: str | None = None,
    kms_key_id: str | None = None,
) -> dict[str, Any]:
    """The options a kind needs, checked for consistency; nothing secret is accepted here."""
    from storage.registry import KINDS

    if kind not in KINDS:
        raise ServiceError(f"unknown storage kind {kind!r} (known: {', '.join(KINDS)})")
    if kind == "local":
        if not path:
            raise ServiceError("a local storage site needs a path")
        given = (("an endpoint", endpoint), ("a bucket", bucket), ("an Object Lock mode", object_lock))
        stray = [what for what, value in given if value]
        if stray:
            raise ServiceError(f"{', '.join(stray)}: only s3 and minio storage sites have these")
        return {"path": path}
    if not endpoint and kind == "minio":
        raise ServiceError("a minio storage site needs an endpoint")
    if not bucket:
        raise ServiceError(f"a {kind} storage site needs a bucket")
    if bool(object_lock) != (retention_days is not None):
        raise ServiceError("an Object Lock mode and a retention period go together")
    if retention_days is not None and retention_days < 1:
        raise ServiceError("the retention period must be at least 1 day")
    options: dict[str, Any] = {"bucket": bucket}
    for key, value in (
        ("endpoint", endpoint),
        ("region", region),
        ("prefix", prefix),
        ("object_lock", object_lock.upper() if object_lock else None),
        ("retention_days", retention_days),
        ("sse", sse),
        ("kms_key_id", kms_key_id),
    ):
        if value is not None and value != "":
            options[key] = value
    return options


def _backend_for(archive: Archive, spec: StorageSpec) -> Backend:
    return archive.runtime.pool.get(spec, archive.config.archive_id)


def _check(backend: Backend) -> None:
    """Raise the backend's own clear error unless it answers as configured."""
    from storage.base import StorageError

    check = getattr(backend, "check", None)
    if check is not None:
        check()
        return
    reason = backend.health()
    if reason is not None and "marker" not in reason:  # a new site has no marker yet: it gets one now
        raise StorageError(f"storage {backend.name!r}: {reason}")


def _refuse_overlap(archive: Archive, spec: StorageSpec) -> None:
    """Refuse a site that is, contains or sits inside another site, the home, or the home's keys.

    A copy there would not be a copy in another place (`storage.locations`
    sees through symlinks, bind mounts and endpoint aliases). Inside the home
    only its storage/ folder may hold sites: the keys and the catalog live beside it.
    """
    from storage.locations import home_key, location_keys, overlap

    new = location_keys(spec.kind, spec.options, archive.home)
    for other in archive.config.storage:
        if overlap(new, location_keys(other.kind, other.options, archive.home)):
            raise ServiceError(f"that location is, contains or is inside storage {other.name!r}: "
                               "a copy there would not be a copy in another place")
    if spec.kind != "local":
        return
    home, storage = home_key(archive.home), home_key(archive.home / "storage")
    place = new[0]
    if place[: len(home)] == home and place[: len(storage)] != storage or place == storage:
        raise ServiceError("inside the archive's home only its storage/ folder may hold storage sites "
                           "(the keys and the catalog are there)")
    if home[: len(place)] == place:
        raise ServiceError("that location is or contains the archive's home: choose a folder of its own")


def mark_site(archive: Archive, backend: Backend) -> None:
    """Give a site the marker naming this archive; a site that names another archive is refused."""
    from storage.base import StorageError
    from storage.markers import ensure_marker

    try:
        ensure_marker(backend, archive.config.archive_id)
    except StorageError as exc:
        raise ServiceError(str(exc)) from exc
    problem = backend.check_marker()  # the one rule: e.g. another of this archive's sites is already there
    if problem is not None:
        raise ServiceError(f"storage {backend.name!r}: {problem}: "
                           "a second site there would not be a copy in another place")


STORAGE_CLAIMED = "storage claimed"


def claim_storage(archive: Archive, name: str) -> SiteInfo:
    """Give a site back its marker (a disk from an older version, a replaced bucket), with a custody event.

    Only a site that visibly holds this archive's copies is claimed: an empty
    mount point, or someone else's disk, stays unavailable.
    """
    from archive.context import holds_its_copies
    from archive.custody.log import append_event
    from archive.db import transaction
    from storage.base import StorageError

    spec = archive.config.site(name)
    if spec is None:
        raise NotFound(f"no storage named {name!r} (configured: {', '.join(archive.config.site_names()) or 'none'})")
    backend = archive.backends[name]
    try:
        marker = backend.read_marker()
        if marker is None and not holds_its_copies(archive.runtime, backend):
            raise CheckFailed(f"storage {name!r} does not hold the copies the catalog keeps there: "
                              "is the right disk mounted, the right bucket named?")
    except StorageError as exc:
        raise ServiceError(str(exc)) from exc
    mark_site(archive, backend)
    if marker is None:
        with transaction(archive.engine) as session:
            append_event(session, STORAGE_CLAIMED, actor=archive.actor, details={"storage": name})
    return describe(spec, checked=True, reason=backend.health())


@dataclass
class SiteInfo:
    """A storage site as shown to people and scripts: never a secret."""

    name: str
    kind: str
    options: dict[str, Any]
    answers: bool | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "kind": self.kind, "options": self.options}
        if self.answers is not None:
            entry["answers"] = self.answers
            entry["reason"] = self.reason
        return entry


def describe(spec: StorageSpec, *, checked: bool = False, reason: str | None = None) -> SiteInfo:
    return SiteInfo(spec.name, spec.kind, public_options(spec.options), answers=(reason is None) if checked else None,
                    reason=reason)


def add_storage(
    archive: Archive, name: str, kind: str, options: dict[str, Any], *, check: bool = True
) -> SiteInfo:
    """Validate, check that it answers, mark it, then record it in the catalog with its custody event.

    When the policy covers every site, the new one joins it and every item gets a
    back-fill job, in the same transaction.
    """
    from archive.catalog.settings import StorageSite, add_site
    from archive.custody.log import append_event
    from archive.db import transaction

    if not NAME_PATTERN.match(name):
        raise ServiceError(f"invalid storage name {name!r}: lower-case letters, digits, '-' and '_' (up to 63)")
    if archive.config.site(name) is not None:
        raise ServiceError(f"a storage named {name!r} already exists")
    options = dict(options)
    if kind == "local":
        path = Path(options["path"]).expanduser()
        options["path"] = str(path if path.is_absolute() else path.absolute())
        _refuse_overlap(archive, StorageSpec(name, kind, options))  # before anything is made there
        if check:
            try:
                Path(options["path"]).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ServiceError(f"cannot create storage root {options['path']}: {exc.strerror or exc}") from exc
    spec = StorageSpec(name, kind, options)
    _refuse_overlap(archive, spec)
    backend = _backend_for(archive, spec)
    if check:
        _check(backend)
        mark_site(archive, backend)
    with transaction(archive.engine) as session:
        append_event(
            session,
            STORAGE_ADDED,
            actor=archive.actor,
            details={"storage": name, "kind": kind, **public_options(options)},
        )
        if session.get(StorageSite, name) is not None:  # added by someone else meanwhile
            raise ServiceError(f"a storage named {name!r} already exists")
        add_site(session, spec)
        archive.refresh()
        if not archive.config.policy.backends:
            # The policy covers every site, so this one joins it: back-fill now.
            from archive.services.policy import reevaluate

            reevaluate(archive, session, archive.config)
    archive.refresh()
    return describe(spec, checked=check)


def list_storage(archive: Archive, *, check: bool = True) -> list[SiteInfo]:
    """Every storage site with its non-secret options and, if asked, whether it answers."""
    from concurrent.futures import ThreadPoolExecutor

    specs = list(archive.config.storage)
    backends = archive.backends

    def one(spec: StorageSpec) -> SiteInfo:
        if not check:
            return describe(spec)
        try:
            reason = backends[spec.name].health()
        except Exception as exc:  # noqa: BLE001 - a backend that cannot even be asked does not answer
            reason = str(exc) or type(exc).__name__
        return describe(spec, checked=True, reason=reason)

    if not specs:
        return []
    with ThreadPoolExecutor(min(8, len(specs))) as pool:  # one slow site must not add up
        return list(pool.map(one, specs))


def sole_copies(archive: Archive, name: str, limit: int = 5) -> tuple[int, list[str]]:
    """How many items have their only verified original on `name`, and a few of their ids."""
    from sqlalchemy import func
    from sqlmodel import Session, col, select

    from archive.catalog.items import Replica

    verified = (col(Replica.role) == "original") & (col(Replica.state) == "verified")
    elsewhere = (
        select(Replica.item_id).where(verified, col(Replica.backend) != name).distinct()
    )
    query = (
        select(Replica.item_id)
        .where(verified, col(Replica.backend) == name, col(Replica.item_id).not_in(elsewhere))
        .distinct()
    )
    with Session(archive.engine) as session:
        count = session.exec(select(func.count()).select_from(query.subquery())).one()
        sample = list(session.exec(query.order_by(Replica.item_id).limit(limit)).all())
    return int(count), [str(item) for item in sample]


def remove_storage(archive: Archive, name: str) -> SiteInfo:
    """Forget a site (its data stays where it is); refused while anything depends on it alone."""
    from archive.catalog.settings import remove_site
    from archive.custody.log import append_event
    from archive.db import transaction

    config = archive.config
    spec = config.site(name)
    if spec is None:
        known = ", ".join(config.site_names()) or "none"
        raise NotFound(f"no storage named {name!r} (configured: {known})")
    policy = config.policy
    if name in policy.backends:
        raise ServiceError(f"storage {name!r} is named in the replication policy; take it out of the policy first")
    remaining = len(policy.backends) if policy.backends else len(config.storage) - 1
    if remaining < policy.copies:
        raise ServiceError(
            f"removing {name!r} would leave {remaining} site(s) for a policy of {policy.copies} copies; "
            "add another storage site or lower the policy first"
        )
    count, sample = sole_copies(archive, name)
    if count:
        raise ServiceError(
            f"storage {name!r} holds the only verified copy of {count} item(s) (e.g. {', '.join(sample)}); "
            "replicate them elsewhere first"
        )
    with transaction(archive.engine) as session:
        append_event(
            session,
            STORAGE_REMOVED,
            actor=archive.actor,
            details={"storage": name, "kind": spec.kind, **public_options(spec.options)},
        )
        remove_site(session, name)
    archive.refresh()
    return describe(spec)
