"""Building backends from the configuration: one factory per kind.

To add a kind, write its `Backend` subclass and add a factory here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from archive.config import ConfigError, Settings, StorageSpec
from storage.base import Backend


def _local(spec: StorageSpec, home: Path) -> Backend:
    from storage.local import LocalBackend

    path = Path(spec.options["path"])
    return LocalBackend(spec.name, path if path.is_absolute() else home / path)


def _s3(spec: StorageSpec, home: Path) -> Backend:
    from storage.s3 import S3Backend

    return S3Backend.from_options(spec.name, spec.options)


def _minio(spec: StorageSpec, home: Path) -> Backend:
    from storage.minio_backend import MinioBackend

    return MinioBackend.from_options(spec.name, spec.options)


FACTORIES: dict[str, Callable[[StorageSpec, Path], Backend]] = {"local": _local, "s3": _s3, "minio": _minio}


def build_backend(spec: StorageSpec, home: Path) -> Backend:
    factory = FACTORIES.get(spec.kind)
    if factory is None:
        raise ConfigError(f"storage {spec.name!r}: unknown kind {spec.kind!r} (known: {', '.join(sorted(FACTORIES))})")
    return factory(spec, home)


def backends(settings: Settings) -> dict[str, Backend]:
    """Every configured backend, by name, in configuration order."""
    return {spec.name: build_backend(spec, settings.home) for spec in settings.storage}


def policy_backends(settings: Settings) -> list[Backend]:
    """The backends the replication policy writes to, in order."""
    available = backends(settings)
    names = settings.policy.backends or list(available)
    missing = [n for n in names if n not in available]
    if missing:
        raise ConfigError(f"policy names unknown storage: {', '.join(missing)}")
    return [available[n] for n in names]
