"""Building backends from their descriptions, and keeping them for the life of a process.

To add a kind, write its `Backend` subclass and add a factory to `FACTORIES`.
A `BackendPool` builds each site once (an S3 client costs 0.1–0.2 s) and builds
it again only when its description, its credentials or the archive it belongs
to change, so a long-running worker follows `storage add` and a key rotation
without a restart and without a client per file.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from archive.config import ConfigError, StorageSpec
from storage.base import Backend, ObjectInfo, ObjectWriter, StorageError
from storage.secrets import SECRETS_NAME, Secrets

KINDS = ("local", "s3", "minio")


class Unavailable(Backend):
    """A site this process cannot use (no credentials, a bad description): every call says why.

    It stands in the backend map so the site is reported, never silently skipped.
    """

    def __init__(self, name: str, kind: str, reason: str) -> None:
        super().__init__(name)
        self.kind = kind
        self.reason = reason

    def _fail(self) -> StorageError:
        return StorageError(f"storage {self.name!r}: {self.reason}")

    def open_writer(self, name: str, size_hint: int | None = None) -> ObjectWriter:
        raise self._fail()

    def open_reader(self, name: str, version_id: str | None = None) -> BinaryIO:
        raise self._fail()

    def stat(self, name: str, version_id: str | None = None) -> ObjectInfo | None:
        raise self._fail()

    def list(self, prefix: str = "") -> Any:
        raise self._fail()

    def delete(self, name: str, version_id: str | None = None) -> None:
        raise self._fail()

    def health(self) -> str | None:
        return self.reason


def _local(spec: StorageSpec, home: Path, secrets: Secrets) -> Backend:
    from storage.local import LocalBackend

    path = Path(spec.options["path"])
    return LocalBackend(spec.name, path if path.is_absolute() else home / path)


def _remote(cls: Any, spec: StorageSpec, secrets: Secrets) -> Backend:
    from storage.s3_common import S3Options, credentials_from_env, sse_c_key_from_env

    environ = secrets.environ_for(spec.name)
    try:
        credentials = credentials_from_env(spec.name, environ)
    except StorageError as exc:
        return Unavailable(spec.name, spec.kind, f"unavailable: no credentials (give them in keys/{SECRETS_NAME} "
                                                 f"under [{spec.name}], or in the environment: {exc})")
    options = S3Options.from_dict(spec.name, spec.options)
    sse_c_key = sse_c_key_from_env(spec.name, environ) if options.sse == "sse-c" else None
    backend: Backend = cls(spec.name, options, credentials=credentials, sse_c_key=sse_c_key)
    return backend


def _s3(spec: StorageSpec, home: Path, secrets: Secrets) -> Backend:
    from storage.s3 import S3Backend

    return _remote(S3Backend, spec, secrets)


def _minio(spec: StorageSpec, home: Path, secrets: Secrets) -> Backend:
    from storage.minio_backend import MinioBackend

    return _remote(MinioBackend, spec, secrets)


FACTORIES: dict[str, Callable[[StorageSpec, Path, Secrets], Backend]] = {
    "local": _local,
    "s3": _s3,
    "minio": _minio,
}


def build_backend(spec: StorageSpec, home: Path, secrets: Secrets, archive_id: str | None = None) -> Backend:
    """One backend for `spec`; a site whose credentials are missing comes back `Unavailable`."""
    factory = FACTORIES.get(spec.kind)
    if factory is None:
        raise ConfigError(f"storage {spec.name!r}: unknown kind {spec.kind!r} (known: {', '.join(KINDS)})")
    try:
        backend = factory(spec, home, secrets)
    except StorageError as exc:
        backend = Unavailable(spec.name, spec.kind, f"unavailable: {exc}")
    backend.expected_archive_id = archive_id
    return backend


class BackendPool:
    """The backends of one process, each built once per description, credentials and archive."""

    def __init__(self, home: Path, secrets: Secrets) -> None:
        self.home = home
        self.secrets = secrets
        self._lock = threading.Lock()
        self._built: dict[str, tuple[str, Backend]] = {}
        self.on_build: Callable[[Backend], None] | None = None  # e.g. sweep a local root's stale staging

    def _key(self, spec: StorageSpec, archive_id: str | None) -> str:
        description = json.dumps([spec.kind, spec.options, archive_id], sort_keys=True, default=str)
        return description + self.secrets.fingerprint(spec.name)

    def get(self, spec: StorageSpec, archive_id: str | None = None) -> Backend:
        key = self._key(spec, archive_id)
        with self._lock:
            held = self._built.get(spec.name)
            if held is not None and held[0] == key:
                return held[1]
        backend = build_backend(spec, self.home, self.secrets, archive_id)
        with self._lock:
            held = self._built.get(spec.name)
            if held is not None and held[0] == key:
                return held[1]  # another thread built it meanwhile
            self._built[spec.name] = (key, backend)
        if self.on_build is not None:
            self.on_build(backend)
        return backend

    def backends(self, specs: list[StorageSpec], archive_id: str | None = None) -> dict[str, Backend]:
        """Every site in `specs`, by name, in order."""
        return {spec.name: self.get(spec, archive_id) for spec in specs}
