"""The encrypted segment store: the bytes of an upload in progress, never in clear at rest.

Why: a field contributor's half-sent video sits on the server for hours; a
seized or copied disk must not show it. Each stored segment is

    nonce (12 random bytes) || ChaCha20-Poly1305(key, nonce, plaintext, aad)

under `key = HKDF-SHA256(secret, salt=upload id, info="evidence-upload/1 segments")`,
where `secret` (256 random bits) is a path segment of the upload URL that only
the client holds: the server keeps its SHA-256 (`secret_digest`), so neither
the catalog nor the disk can decrypt a partial upload. The AAD binds the upload
id and the segment's offset, so a segment moved to another upload or another
place in this one, cut short or altered, fails to decrypt (`StoreDamaged`).

Layout: `<home>/uploads/<upload id>/<offset as 20 digits>.seg`, each written to a
temporary name, fsync'd, renamed, and the folder fsync'd, before the catalog's
offset moves past it (`Segments.write`): the offset acknowledged to a client is
always on disk. Segments at or past the catalog's offset are leftovers of a
request cut off before it was acknowledged (or whose checksum failed) and are
removed before the next write (`Segments.discard_from`). One request at a time
per upload: `Segments.lock()` takes an exclusive `flock` on the folder's lock
file (non-blocking: a second request is told to retry), and a process that dies
releases it with its descriptors.

Memory stays bounded: `SegmentWriter` gathers at most `SEGMENT` bytes before
sealing and writing them; `SegmentReader` decrypts one segment at a time.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import hmac
import io
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEGMENT = 4 * 1024 * 1024  # plaintext bytes per stored segment, at most
NONCE = 12
TAG = 16
FORMAT = b"evidence-upload/1"
UPLOADS_DIR = "uploads"
_SUFFIX = ".seg"
_LOCK = "lock"


class StoreDamaged(OSError):  # noqa: N818 - an OSError so readers treat it as unreadable bytes
    """A stored segment is missing, altered, moved or cut short: the upload's bytes cannot be trusted."""


class Busy(Exception):  # noqa: N818
    """Another request holds this upload right now."""


def new_secret() -> str:
    """The secret of a new upload: 256 random bits, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def secret_digest(secret: str) -> str:
    """What the catalog keeps of a secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, digest: str) -> bool:
    """Constant-time comparison of a presented secret with the stored digest."""
    return hmac.compare_digest(secret_digest(secret), digest)


def _key(secret: str, upload_id: str, purpose: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=upload_id.encode("utf-8"), info=FORMAT + b" " + purpose)
    return hkdf.derive(secret.encode("utf-8"))


def segment_key(secret: str, upload_id: str) -> bytes:
    return _key(secret, upload_id, b"segments")


def field_key(secret: str, upload_id: str) -> bytes:
    """The key that seals the upload row's `fields` and `result` (`seal_fields`)."""
    return _key(secret, upload_id, b"fields")


def _aad(upload_id: str, offset: int, what: bytes = b"segment") -> bytes:
    return FORMAT + b"\0" + what + b"\0" + upload_id.encode("utf-8") + b"\0" + offset.to_bytes(8, "big")


def seal_fields(key: bytes, upload_id: str, what: str, data: bytes) -> bytes:
    """Seal a small document of the upload row (`what`: "fields" or "result") under the secret's key."""
    nonce = os.urandom(NONCE)
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, data, _aad(upload_id, 0, what.encode()))


def open_fields(key: bytes, upload_id: str, what: str, blob: bytes) -> bytes:
    try:
        return ChaCha20Poly1305(key).decrypt(blob[:NONCE], blob[NONCE:], _aad(upload_id, 0, what.encode()))
    except InvalidTag as exc:
        raise StoreDamaged(f"the upload's sealed {what} do not open under this secret") from exc


def uploads_root(home: Path) -> Path:
    return home / UPLOADS_DIR


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Segments:
    """The stored segments of one upload (see the module docstring)."""

    def __init__(self, home: Path, upload_id: str, key: bytes | None = None) -> None:
        if not upload_id or "/" in upload_id or upload_id.startswith("."):
            raise ValueError("not an upload id")
        self.upload_id = upload_id
        self.folder = uploads_root(home) / upload_id
        self._aead = ChaCha20Poly1305(key) if key is not None else None

    def create(self) -> None:
        root = self.folder.parent
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder.mkdir(mode=0o700, exist_ok=True)
        _fsync_dir(root)

    def exists(self) -> bool:
        return self.folder.is_dir()

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the upload exclusively for one request (`Busy` when another holds it)."""
        if not self.exists():
            raise StoreDamaged("the upload's stored bytes are gone")
        fd = os.open(self.folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise Busy("another request is writing or completing this upload; retry shortly") from None
                raise
            yield
        finally:
            os.close(fd)  # releases the lock

    def _path(self, offset: int) -> Path:
        return self.folder / f"{offset:020d}{_SUFFIX}"

    def offsets(self) -> list[int]:
        """The offsets of the stored segments, in order."""
        found = []
        for entry in os.listdir(self.folder):
            if entry.endswith(_SUFFIX) and entry[:-len(_SUFFIX)].isdigit():
                found.append(int(entry[:-len(_SUFFIX)]))
        return sorted(found)

    def discard_from(self, offset: int) -> None:
        """Remove segments at or past `offset` (never acknowledged) and stray temporary files."""
        for entry in os.listdir(self.folder):
            if entry.startswith(".tmp-"):
                (self.folder / entry).unlink(missing_ok=True)
        for at in self.offsets():
            if at >= offset:
                self._path(at).unlink(missing_ok=True)

    def write(self, offset: int, plaintext: bytes, *, sync_folder: bool = True) -> None:
        """Seal and store one segment durably (the file fsync'd and renamed, then the folder fsync'd, unless
        `sync_folder` is False: the caller then calls `sync()` before anyone counts the segment)."""
        assert self._aead is not None, "writing needs the segment key"
        nonce = os.urandom(NONCE)
        sealed = nonce + self._aead.encrypt(nonce, plaintext, _aad(self.upload_id, offset))
        temporary = self.folder / f".tmp-{offset:020d}-{secrets.token_hex(4)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(sealed)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self._path(offset))
        if sync_folder:
            self.sync()

    def sync(self) -> None:
        """Make the segments' names durable (one folder fsync for all the segments of a request)."""
        _fsync_dir(self.folder)

    def read(self, offset: int) -> bytes:
        """One segment's plaintext (`StoreDamaged` when it does not open as this upload's bytes at `offset`)."""
        assert self._aead is not None, "reading needs the segment key"
        try:
            blob = self._path(offset).read_bytes()
        except FileNotFoundError as exc:
            raise StoreDamaged(f"the upload's segment at byte {offset} is missing") from exc
        if len(blob) < NONCE + TAG:
            raise StoreDamaged(f"the upload's segment at byte {offset} is cut short")
        try:
            return self._aead.decrypt(blob[:NONCE], blob[NONCE:], _aad(self.upload_id, offset))
        except InvalidTag as exc:
            raise StoreDamaged(f"the upload's segment at byte {offset} was altered or moved") from exc

    def chunks(self, length: int) -> Iterator[bytes]:
        """The plaintext, in order, exactly `length` bytes; `StoreDamaged` on any gap, overlap or alteration."""
        at = 0
        while at < length:
            block = self.read(at)
            if not block:
                raise StoreDamaged(f"the upload's segment at byte {at} is empty")
            at += len(block)
            if at > length:
                raise StoreDamaged("the upload's segments hold more bytes than it was declared to")
            yield block

    def remove(self) -> None:
        """Delete the folder (termination, expiry, or once the upload is ingested)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            _fsync_dir(self.folder.parent)
        except OSError:
            pass


class SegmentWriter:
    """Gathers a request body into segments of at most `SEGMENT` bytes and stores each durably.

    `offset` is where the next byte goes; `written` lists the segments stored
    by this writer (so a failed checksum can take them back).
    """

    def __init__(self, segments: Segments, offset: int, segment_size: int = SEGMENT) -> None:
        self.segments = segments
        self.offset = offset
        self.start = offset
        self.segment_size = segment_size
        self._buffer = bytearray()
        self.written: list[int] = []

    @property
    def reached(self) -> int:
        """The offset every byte fed so far reaches (some perhaps not stored yet)."""
        return self.offset + len(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= self.segment_size:
            self._store(bytes(self._buffer[: self.segment_size]))
            del self._buffer[: self.segment_size]

    def flush(self) -> int:
        """Store what is gathered; the offset every byte fed so far reaches (all on disk, folder synced)."""
        if self._buffer:
            self._store(bytes(self._buffer))
            self._buffer.clear()
        if self.written:
            self.segments.sync()
        return self.offset

    def abandon(self) -> None:
        """Take back every segment this writer stored (a checksum mismatch, an oversize body)."""
        self._buffer.clear()
        self.segments.discard_from(self.start)
        self.offset = self.start
        self.written.clear()

    def _store(self, block: bytes) -> None:
        self.segments.write(self.offset, block, sync_folder=False)
        self.written.append(self.offset)
        self.offset += len(block)


class SegmentReader(io.RawIOBase):
    """A read-only binary stream over an upload's plaintext, decrypted one segment at a time."""

    def __init__(self, segments: Segments, length: int) -> None:
        super().__init__()
        self._chunks = segments.chunks(length)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def _more(self) -> bool:
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return False
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._more():
            return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join([bytes(self._pending), *self._chunks])
        if not self._more():
            return b""
        if len(self._pending) <= size:
            block, self._pending = bytes(self._pending), memoryview(b"")
            return block
        block = bytes(self._pending[:size])
        self._pending = self._pending[size:]
        return block
