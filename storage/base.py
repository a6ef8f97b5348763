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

Each site also carries a marker (`.evidence-root.json`) naming the archive it
belongs to. A backend built with `expected_archive_id` is *unavailable* while
its marker is missing or foreign: an unmounted disk or a wrong bucket must
never look like an empty site, or fixity would call every copy missing and
repair would write the archive onto the wrong disk.
"""

from __future__ import annotations

import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO, Protocol

MIB = 1024 * 1024
CHUNK = MIB  # one read or write of a stream: large enough for SHA-256's speed, small for memory
MARKER_NAME = ".evidence-root.json"
MARKER_FORMAT = "evidence-root/1"
MARKER_MAX_BYTES = 4096  # a marker is a few fields; anything larger is not one


class StorageError(Exception):
    """A backend could not do what was asked; the message says what and where."""


class ObjectMissing(StorageError):
    """The named object (or version) does not exist on the backend."""


class VerificationFailed(StorageError):
    """The backend holds bytes other than the ones sent."""


class SiteUnavailable(StorageError):
    """The site's marker is missing or foreign: it is not (or not now) this archive's site."""


class MarkerExists(StorageError):
    """A marker is already there; markers are never overwritten."""


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def hash_stream(stream: Readable, *, on_chunk: Callable[[int], None] | None = None) -> tuple[str, int]:
    """SHA-256 (hex) and size of everything left in `stream`, read in bounded chunks.

    The one read-and-hash loop of the archive: fixity, read-back verification
    and rebuild all call it, so memory never grows with the object.
    `on_chunk(n)` runs before each chunk is hashed (rate limiting).
    """
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        if on_chunk is not None:
            on_chunk(len(chunk))
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def check_name(name: str) -> str:
    """Object names are opaque but relative, without '..', and never hidden (dot names are the site's own)."""
    if not name or name.startswith(("/", ".")) or ".." in name.split("/"):
        raise StorageError(f"invalid object name {name!r}")
    return name


def utc_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Marker:
    """Which archive a storage site belongs to, written once when the site is added."""

    archive_id: str
    backend: str
    created_at: str

    def to_bytes(self) -> bytes:
        document = {"format": MARKER_FORMAT, "archive_id": self.archive_id, "backend": self.backend,
                    "created_at": self.created_at}
        return (json.dumps(document, sort_keys=True, indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Marker:
        """Parse a marker; raises `StorageError` naming `where` when it is not one."""
        try:
            if len(data) > MARKER_MAX_BYTES:
                raise ValueError("too large")
            document = json.loads(data.decode("utf-8"))
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            fields = [document.get(key) for key in ("archive_id", "backend", "created_at")]
            if not all(isinstance(v, str) and v for v in fields):
                raise ValueError("archive_id, backend and created_at must be non-empty strings")
        except (ValueError, UnicodeDecodeError) as exc:
            raise StorageError(f"{where}: marker {MARKER_NAME} is garbled ({exc})") from exc
        return cls(*(str(v) for v in fields))


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

    def finish_writes(self) -> None:
        """No more bytes will come: a backend may start making them durable and verifying them now,
        in the background, so that `commit` later only waits for that and publishes.

        Why: ingest has analysis to do between the last write and the commit; the
        disk's flush then overlaps it instead of following it. Optional (default: nothing).
        """

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
    # What to suggest when the marker is missing; local roots say "is the disk mounted?".
    marker_hint = "is this the right site?"
    # How long a good marker is trusted before writes check it again (0: every write).
    marker_ttl_seconds = 0.0

    def __init__(self, name: str, expected_archive_id: str | None = None) -> None:
        self.name = name
        # Set by whoever builds the backend for an archive; None (tools, tests) skips the marker rule.
        self.expected_archive_id = expected_archive_id
        self._marker_ok_until = 0.0

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

    def _read_marker_bytes(self) -> bytes | None:
        """The marker's bytes, None when there is none; `StorageError` when unreadable."""
        raise StorageError(f"storage {self.name!r} keeps no marker")

    def _create_marker(self, data: bytes) -> None:
        """Write the marker only if none exists (raise `MarkerExists` otherwise)."""
        raise StorageError(f"storage {self.name!r} keeps no marker")

    def read_marker(self) -> Marker | None:
        """The site's marker, None when it has none; raises `StorageError` when unreadable or garbled."""
        data = self._read_marker_bytes()
        return None if data is None else Marker.from_bytes(data, f"storage {self.name!r}")

    def write_marker(self, marker: Marker) -> None:
        """Write the marker; an existing one is never overwritten (`MarkerExists`)."""
        self._create_marker(marker.to_bytes())
        self._marker_ok_until = 0.0

    def check_marker(self) -> str | None:
        """Why this site is unavailable to the archive it was built for, or None.

        The one rule fixity, repair and status share: with `expected_archive_id`
        set, a missing, unreadable or foreign marker makes the site unavailable,
        never empty.
        """
        if self.expected_archive_id is None:
            return None
        try:
            marker = self.read_marker()
        except StorageError as exc:
            return f"unavailable: {exc}"
        if marker is None:
            return f"unavailable: marker {MARKER_NAME} missing \u2014 {self.marker_hint}"
        if marker.archive_id != self.expected_archive_id:
            return f"unavailable: marker belongs to archive {marker.archive_id}"
        if marker.backend != self.name:  # another site of this archive mounted or linked here: not a second copy
            return f"unavailable: this is the archive's site {marker.backend!r} (its marker says so), not {self.name!r}"
        return None

    def require_marker(self) -> None:
        """Raise `SiteUnavailable` unless the marker is this archive's: called before every write."""
        if self.expected_archive_id is None or time.monotonic() < self._marker_ok_until:
            return
        reason = self.check_marker()
        if reason is not None:
            raise SiteUnavailable(f"storage {self.name!r}: {reason}")
        self._marker_ok_until = time.monotonic() + self.marker_ttl_seconds

    def reachability(self) -> str | None:
        """None when the backend answers at all, else a short reason (no marker check)."""
        try:
            next(iter(self.list("\x00never")), None)
        except Exception as exc:  # noqa: BLE001 - any failure means "does not answer"
            return str(exc) or type(exc).__name__
        return None

    def health(self) -> str | None:
        """None when the backend answers and is this archive's site, else a short reason."""
        return self.reachability() or self.check_marker()

    def put_bytes(self, name: str, data: bytes) -> StoredObject:
        """Write a small object in one call (manifests)."""
        writer = self.open_writer(name, len(data))
        try:
            writer.write(data)
            return writer.commit(hashlib.sha256(data).hexdigest())
        except BaseException:
            writer.abort()
            raise

    def sha256_of(
        self, name: str, version_id: str | None = None, *, on_chunk: Callable[[int], None] | None = None
    ) -> tuple[str, int]:
        """Re-read an object and hash it: the fixity check that needs no key."""
        with self.open_reader(name, version_id) as stream:
            return hash_stream(stream, on_chunk=on_chunk)
