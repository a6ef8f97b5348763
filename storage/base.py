"""The one interface every storage backend implements.

How to add a backend: subclass `Backend`, implement the abstract methods, and
register a factory for its `kind` in `storage.registry`. A backend stores opaque,
already-encrypted bytes under names it is given; it never sees plaintext and
never chooses names. Writes are staged: `open_writer` returns an `ObjectWriter`
that receives the bytes as they stream, and only `commit()` makes the object
exist, after the backend has *verified* it (a checksum the backend computed over
what it stored, or a read-back). `abort()` leaves nothing behind, so a duplicate
or refused upload costs no cleanup. Reads go by version id where the backend
has versions, so an overwrite of the same name cannot change what is read.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

CHUNK = 1024 * 1024


class StorageError(Exception):
    """A backend could not do what was asked; the message says what and where."""


class ObjectMissing(StorageError):
    """The named object (or version) does not exist on the backend."""


class VerificationFailed(StorageError):
    """The backend holds bytes other than the ones sent."""


@dataclass(frozen=True)
class StoredObject:
    """What a verified write leaves behind: everything fixity needs later."""

    backend: str
    name: str
    size: int
    sha256: str
    version_id: str | None = None
    # Backend-specific verification data (e.g. S3 part checksums), kept so
    # later fixity checks can compare like with like.
    checksum_detail: dict[str, object] | None = None


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int
    version_id: str | None = None


class ObjectWriter(ABC):
    """A staged write: bytes stream in, `commit` verifies and publishes."""

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def commit(self, expected_sha256: str) -> StoredObject:
        """Make the object durable, verify it holds `expected_sha256`, publish it.

        Raises `VerificationFailed` (and leaves nothing published) when the
        stored bytes differ from what was sent.
        """

    @abstractmethod
    def abort(self) -> None:
        """Discard the staged bytes; safe to call more than once."""

    def digest_covers_sent_bytes(self) -> None:
        """The caller promises that the digest it will pass to `commit` is its own
        SHA-256 of exactly the bytes it writes here (ingest computes it as it sends).

        A backend that verifies by reading back may then compare what it reads
        with the bytes sent, which is as strong as hashing the read-back (equal
        bytes, equal hash) and far cheaper. Backends that check a checksum the
        server computed ignore this.
        """


class Backend(ABC):
    """A place that keeps encrypted objects (a disk, a bucket)."""

    kind: str = ""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def open_writer(self, name: str, size_hint: int | None = None) -> ObjectWriter: ...

    @abstractmethod
    def open_reader(self, name: str, version_id: str | None = None) -> BinaryIO:
        """A file-like object over the stored bytes; raises `ObjectMissing`."""

    @abstractmethod
    def stat(self, name: str, version_id: str | None = None) -> ObjectInfo | None: ...

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    @abstractmethod
    def delete(self, name: str, version_id: str | None = None) -> None:
        """Remove an object. Callers (policy) decide when this is allowed."""

    def health(self) -> str | None:
        """None when the backend answers, else a short reason."""
        try:
            next(iter(self.list("\x00never")), None)
        except Exception as exc:  # noqa: BLE001 - any failure means "does not answer"
            return str(exc) or type(exc).__name__
        return None

    def put_bytes(self, name: str, data: bytes) -> StoredObject:
        """Write a small object in one call (manifests)."""
        writer = self.open_writer(name, len(data))
        try:
            writer.write(data)
            return writer.commit(hashlib.sha256(data).hexdigest())
        except BaseException:
            writer.abort()
            raise

    def sha256_of(self, name: str, version_id: str | None = None) -> tuple[str, int]:
        """Re-read an object and hash it: the fixity check that needs no key."""
        digest = hashlib.sha256()
        size = 0
        with self.open_reader(name, version_id) as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size
