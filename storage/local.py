"""A storage root on a local (or mounted) file system.

Writes are atomic and durable: bytes go to a staging file, which is fsync'd
and read back (the verification: compared with the bytes sent when the caller
hashed exactly those, else hashed; a large file is read back in 32 MiB segments
as each reaches the device, the rest after the final fsync), then hard-linked
under its final name (which fails rather than overwrite: names are never
reused) and the directory is fsync'd. A crash at any point leaves either no
object or a complete one; stale staging files are swept on the next start.

`finish_writes` starts the fsync and the read-back in a thread as soon as the
last byte is written, so they overlap whatever the caller does before `commit`
(ingest: identification and analysis). While a large file streams in, each
writer starts write-back every 16 MiB and waits for (and reads back) the
segments before the one just started, so the device always has work queued.

The root's marker (`.evidence-root.json`) is checked before every write when
the backend knows its archive: an unmounted drive leaves a bare, writable mount
point, and evidence must never land there.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from storage.base import (
    CHUNK,
    MARKER_MAX_BYTES,
    MARKER_NAME,
    MIB,
    Backend,
    MarkerExists,
    ObjectInfo,
    ObjectMissing,
    ObjectWriter,
    StorageError,
    StoredObject,
    VerificationFailed,
    check_name,
)

STAGING = ".staging"
WRITEBACK_EVERY = 16 * MIB
VERIFY_EVERY = 32 * MIB


SYNC_WRITE = 2  # SYNC_FILE_RANGE_WRITE: start writing the range out, do not wait
SYNC_WAIT = 1 | 2 | 4  # WAIT_BEFORE | WRITE | WAIT_AFTER: the range is on the device when it returns


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's sync_file_range(2), through libc (Python does not expose it).

    Without it the kernel keeps a whole large file dirty in memory until the
    final fsync, which then waits for all of it. With it, write-back starts as
    we go, and each segment can be waited for and read back while the other
    threads still hash and encrypt, without the device cache flush an fsync
    costs each time (the one fsync at commit does that, once).
    """
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        func = libc.sync_file_range
        func.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    except (OSError, AttributeError):
        return None

    def sync_file_range(fd: int, offset: int, length: int, flags: int) -> int:
        if func(fd, offset, length, flags) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return 0

    return sync_file_range


_sync_file_range = _load_sync_file_range()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(path: Path) -> list[Path]:
    """mkdir -p that returns the folders it created, outermost first."""
    missing: list[Path] = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            pass  # another writer made it a moment ago
    return list(reversed(missing))


def _describe(exc: OSError, root: Path) -> str:
    if exc.errno == errno.ENOSPC:
        return f"storage root {root} is full"
    if exc.errno == errno.EROFS:
        return f"storage root {root} is read-only"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"storage root {root} is not writable"
    return f"storage root {root}: {exc.strerror or exc}"


class LocalWriter(ObjectWriter):
    def __init__(self, backend: LocalBackend, name: str) -> None:
        self._backend = backend
        self._name = name
        staging = backend.root / STAGING
        self._tmp = staging / f"{os.getpid()}-{secrets.token_hex(8)}.tmp"
        try:
            staging.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(self._tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise StorageError(_describe(exc, backend.root)) from exc
        self._size = 0
        self._flushed = 0
        self._read_back = hashlib.sha256()  # over the bytes read back from disk so far
        self._verified = 0
        self._unverified: list[bytes] | None = None  # sent, not yet read back (comparison mode)
        self._syncing: threading.Thread | None = None  # the fsync and read-back started by finish_writes
        self._sync_error: BaseException | None = None

    def write(self, data: bytes) -> None:
        assert self._fd is not None and self._syncing is None, "write after finish_writes, commit or abort"
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            self.abort()
            raise StorageError(_describe(exc, self._backend.root)) from exc
        self._size += len(data)
        if self._unverified is not None:
            self._unverified.append(bytes(data))  # a reference, not a copy, for bytes
        try:
            if _sync_file_range is not None and self._size - self._flushed >= WRITEBACK_EVERY:
                started = self._flushed
                _sync_file_range(self._fd, started, self._size - started, SYNC_WRITE)
                self._flushed = self._size
                if started - self._verified >= VERIFY_EVERY - WRITEBACK_EVERY:
                    # Wait for the segments whose write-back started earlier and read them back,
                    # while the one just started stays in flight: the device never runs dry
                    # while we wait, and the other threads go on hashing and encrypting.
                    _sync_file_range(self._fd, self._verified, started - self._verified, SYNC_WAIT)
                    self._read_back_to(started)
            elif _sync_file_range is None and self._size - self._verified >= VERIFY_EVERY:
                os.fdatasync(self._fd)
                self._read_back_to(self._size)
        except OSError as exc:
            self.abort()
            raise StorageError(_describe(exc, self._backend.root)) from exc

    def digest_covers_sent_bytes(self) -> None:
        if self._size == 0:
            self._unverified = []

    def _read_back_to(self, end: int) -> None:
        assert self._fd is not None
        if self._unverified is not None:
            self._compare_back(end)
            return
        while self._verified < end:
            chunk = os.pread(self._fd, min(CHUNK, end - self._verified), self._verified)
            if not chunk:
                break
            self._read_back.update(chunk)
            self._verified += len(chunk)

    def _compare_back(self, end: int) -> None:
        """Read back the blocks sent that lie wholly before `end` and compare them byte for byte."""
        assert self._fd is not None and self._unverified is not None
        pending = self._unverified
        done = 0
        for block in pending:
            if self._verified + len(block) > end:
                break
            if os.pread(self._fd, len(block), self._verified) != block:
                raise VerificationFailed(
                    f"{self._backend.name}: read-back of {self._name} does not match what was sent"
                )
            self._verified += len(block)
            done += 1
        del pending[:done]

    def _make_durable(self) -> None:
        """fsync, then read back whatever was not read back during the writes."""
        assert self._fd is not None
        os.fsync(self._fd)
        self._read_back_to(self._size)

    def _durable_in_background(self) -> None:
        try:
            self._make_durable()
        except BaseException as exc:  # noqa: BLE001 - handed to commit, which raises it
            self._sync_error = exc

    def finish_writes(self) -> None:
        """Start the fsync and the read-back in a thread; `commit` waits for it, then publishes."""
        if self._fd is not None and self._syncing is None:
            self._syncing = threading.Thread(target=self._durable_in_background, name="fsync", daemon=True)
            self._syncing.start()

    def _wait_for_sync(self) -> None:
        if self._syncing is not None:
            self._syncing.join()

    def commit(self, expected_sha256: str) -> StoredObject:
        assert self._fd is not None, "commit after commit or abort"
        root = self._backend.root
        try:
            if self._syncing is None:
                self._make_durable()
            else:
                self._wait_for_sync()
                if self._sync_error is not None:
                    raise self._sync_error
            size = os.fstat(self._fd).st_size
            os.close(self._fd)
            self._fd = None
            # In comparison mode the read-back equals the bytes sent, whose SHA-256 the
            # caller computed: so the stored bytes' SHA-256 is `expected_sha256`.
            digest = expected_sha256 if self._unverified is not None else self._read_back.hexdigest()
            if digest != expected_sha256 or size != self._size or self._verified != size:
                raise VerificationFailed(
                    f"{self._backend.name}: read-back of {self._name} does not match what was sent"
                )
            final = self._backend.path_of(self._name)
            created = _make_dirs(final.parent)
            os.link(self._tmp, final)
            os.unlink(self._tmp)
            _fsync_dir(final.parent)
            for directory in created:  # a new folder must itself survive a power cut
                _fsync_dir(directory.parent)
        except OSError as exc:
            self.abort()
            if exc.errno == errno.EEXIST:
                raise StorageError(f"{self._backend.name}: object {self._name} already exists") from exc
            raise StorageError(_describe(exc, root)) from exc
        except BaseException:
            self.abort()
            raise
        return StoredObject(self._backend.name, self._name, size, digest)

    def abort(self) -> None:
        self._wait_for_sync()  # never close a descriptor another thread is still using
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass
        except OSError:
            pass  # a read-only root: nothing was written there anyway


class LocalBackend(Backend):
    kind = "local"
    marker_hint = "is the disk mounted?"

    def __init__(self, name: str, root: str | Path, expected_archive_id: str | None = None) -> None:
        super().__init__(name, expected_archive_id)
        self.root = Path(root)

    def path_of(self, name: str) -> Path:
        return self.root / check_name(name)

    def open_writer(self, name: str, size_hint: int | None = None) -> ObjectWriter:
        self.path_of(name)  # validate before staging anything
        # Checked on every write (a stat and a 100-byte read): a disk can be unmounted at any moment,
        # and the bare mount point beneath it must never receive evidence.
        self.require_marker()
        return LocalWriter(self, name)

    def _read_marker_bytes(self) -> bytes | None:
        try:
            with open(self.root / MARKER_NAME, "rb") as stream:
                return stream.read(MARKER_MAX_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(_describe(exc, self.root)) from exc

    def _create_marker(self, data: bytes) -> None:
        """Staged, fsync'd, then linked into place: a crash never leaves half a marker, and a link never overwrites."""
        final = self.root / MARKER_NAME
        staging = self.root / STAGING
        tmp = staging / f"{os.getpid()}-{secrets.token_hex(8)}.marker"
        try:
            staging.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, final)
            except FileExistsError as exc:
                raise MarkerExists(f"storage {self.name!r}: {final} already exists") from exc
            _fsync_dir(self.root)
        except MarkerExists:
            raise
        except OSError as exc:
            raise StorageError(_describe(exc, self.root)) from exc
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def open_reader(self, name: str, version_id: str | None = None) -> BinaryIO:
        try:
            return open(self.path_of(name), "rb")
        except FileNotFoundError as exc:
            raise ObjectMissing(f"{self.name}: object {name} is missing") from exc
        except OSError as exc:
            raise StorageError(_describe(exc, self.root)) from exc

    def stat(self, name: str, version_id: str | None = None) -> ObjectInfo | None:
        try:
            st = self.path_of(name).stat()
        except FileNotFoundError:
            return None
        return ObjectInfo(name, st.st_size)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            raise StorageError(f"storage root {self.root} does not exist")
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if d != STAGING)
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                name = path.relative_to(self.root).as_posix()
                if name.startswith(prefix) and name != MARKER_NAME:  # the marker is the site's, not an object
                    yield ObjectInfo(name, path.stat().st_size)

    def delete(self, name: str, version_id: str | None = None) -> None:
        path = self.path_of(name)
        try:
            path.unlink()
        except FileNotFoundError as exc:
            raise ObjectMissing(f"{self.name}: object {name} is missing") from exc
        _fsync_dir(path.parent)

    def reachability(self) -> str | None:
        if not self.root.is_dir():
            return f"storage root {self.root} does not exist"
        if not os.access(self.root, os.W_OK):
            return f"storage root {self.root} is not writable"
        return None

    def sweep_staging(self) -> int:
        """Remove staging files left by processes that no longer run."""
        removed = 0
        staging = self.root / STAGING
        if not staging.is_dir():
            return 0
        for path in staging.iterdir():
            pid = path.name.split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
                try:
                    path.unlink()
                    removed += 1
                except OSError:
                    pass
        return removed
