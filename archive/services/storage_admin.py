"""Managing storage backends: add, list, remove. Called by `evidence storage` and, later, the HTTP API.

Why these rules:

- A backend is only added once it answers as configured (the bucket exists,
  the credentials work, Object Lock is on when a retention is asked for), so a
  typo shows up now, not as a degraded item at the next ingest.
- Secrets never reach the configuration, the custody log or the output: S3
  credentials and SSE-C keys stay in `EVIDENCE_STORAGE_<NAME>_*` variables,
  and only non-secret options are saved or shown.
- Removing a backend is refused while it holds the only verified copy of any
  original, and while the policy still needs it; a removal never deletes data.
- Adding or removing is a custody event, written in the same transaction as
  the configuration change (the file is replaced just before the commit).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive.config import StorageSpec
from archive.services.errors import NotFound, ServiceError

if TYPE_CHECKING:
    from archive.context import Archive

STORAGE_ADDED = "storage added"
STORAGE_REMOVED = "storage removed"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
KINDS = ("local", "s3", "minio")
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
    if kind not in KINDS:
        raise ServiceError(f"unknown storage kind {kind!r} (known: {', '.join(KINDS)})")
    if kind == "local":
        if not path:
            raise ServiceError("a local storage needs --path")
        given = (("--endpoint", endpoint), ("--bucket", bucket), ("--object-lock", object_lock))
        stray = [flag for flag, value in given if value]
        if stray:
            raise ServiceError(f"{', '.join(stray)} only apply to s3 and minio storage")
        return {"path": path}
    if not endpoint and kind == "minio":
        raise ServiceError("a minio storage needs --endpoint")
    if not bucket:
        raise ServiceError(f"a {kind} storage needs --bucket")
    if bool(object_lock) != (retention_days is not None):
        raise ServiceError("--object-lock and --retention-days go together")
    if retention_days is not None and retention_days < 1:
        raise ServiceError("--retention-days must be at least 1")
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


def _backend_for(archive: Archive, spec: StorageSpec) -> Any:
    from storage.registry import build_backend

    return build_backend(spec, archive.home)


def _check(backend: Any) -> None:
    """Raise the backend's own clear error unless it answers as configured."""
    check = getattr(backend, "check", None)
    if check is not None:
        check()
        return
    reason = backend.health()
    if reason is not None:
        from storage.base import StorageError

        raise StorageError(f"storage {backend.name!r}: {reason}")


def add_storage(
    archive: Archive, name: str, kind: str, options: dict[str, Any], *, check: bool = True
) -> dict[str, Any]:
    """Validate, check that it answers, then save it to the config and log the custody event."""
    from archive.custody.log import append_event
    from archive.db import transaction

    settings = archive.settings
    if not NAME_PATTERN.match(name):
        raise ServiceError(f"invalid storage name {name!r}: lower-case letters, digits, '-' and '_' (up to 63)")
    if any(spec.name == name for spec in settings.storage):
        raise ServiceError(f"a storage named {name!r} already exists")
    options = dict(options)
    if kind == "local":
        path = Path(options["path"]).expanduser()
        options["path"] = str(path if path.is_absolute() else path.absolute())
        if check:
            try:
                Path(options["path"]).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ServiceError(f"cannot create storage root {options['path']}: {exc.strerror or exc}") from exc
    spec = StorageSpec(name, kind, options)
    backend = _backend_for(archive, spec)
    if check:
        _check(backend)
    with transaction(archive.engine) as session:
        append_event(
            session,
            STORAGE_ADDED,
            actor=archive.actor,
            details={"storage": name, "kind": kind, **public_options(options)},
        )
        settings.storage.append(spec)
        archive.__dict__.pop("backends", None)  # the cached backend map is stale now
        try:
            if not settings.policy.backends:
                # The policy covers every backend, so this one joins it: back-fill now.
                from archive.services.policy import reevaluate

                reevaluate(archive, session)
            settings.save()
        except BaseException:
            settings.storage.remove(spec)
            archive.__dict__.pop("backends", None)
            raise
    return describe(spec, backend if check else None)


def describe(spec: StorageSpec, backend: Any | None = None, *, reason: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": spec.name, "kind": spec.kind, "options": public_options(spec.options)}
    if backend is not None:
        entry["answers"] = reason is None
        entry["reason"] = reason
    return entry


def list_storage(archive: Archive, *, check: bool = True) -> list[dict[str, Any]]:
    """Every configured backend with its non-secret options and, if asked, whether it answers."""
    from concurrent.futures import ThreadPoolExecutor

    specs = list(archive.settings.storage)

    def one(spec: StorageSpec) -> dict[str, Any]:
        if not check:
            return describe(spec)
        try:
            backend = _backend_for(archive, spec)
            reason = backend.health()
        except Exception as exc:  # noqa: BLE001 - a backend that cannot even be built does not answer
            return {**describe(spec), "answers": False, "reason": str(exc)}
        return describe(spec, backend, reason=reason)

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


def remove_storage(archive: Archive, name: str) -> dict[str, Any]:
    """Forget a backend (its data stays where it is); refused while anything depends on it alone."""
    from archive.custody.log import append_event
    from archive.db import transaction

    settings = archive.settings
    spec = next((s for s in settings.storage if s.name == name), None)
    if spec is None:
        known = ", ".join(s.name for s in settings.storage) or "none"
        raise NotFound(f"no storage named {name!r} (configured: {known})")
    if name in settings.policy.backends:
        raise ServiceError(
            f"storage {name!r} is named in the replication policy; change it first (`evidence policy set --backends`)"
        )
    remaining = len(settings.policy.backends) if settings.policy.backends else len(settings.storage) - 1
    if remaining < settings.policy.copies:
        raise ServiceError(
            f"removing {name!r} would leave {remaining} backend(s) for a policy of {settings.policy.copies} copies; "
            "add another storage or lower the policy first"
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
        index = settings.storage.index(spec)
        settings.storage.remove(spec)
        try:
            settings.save()
        except BaseException:
            settings.storage.insert(index, spec)
            raise
    archive.__dict__.pop("backends", None)
    return describe(spec)
