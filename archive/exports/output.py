"""Where a bundle's bytes go: a private temp file renamed into place on success (or a caller's stream),
age-encrypted as a whole when there are recipients, hashed as they reach the file.

The SHA-256 of what reached the file (ciphertext when encrypted) is what the
`transfer` custody event records, so it is computed here, on the exact bytes
written, never by reading the file back. Writes are batched into large pieces
and the file hash runs in a thread (hashlib releases the GIL) so encryption,
hashing and the bag writer overlap.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from archive.services.errors import ServiceError

_BATCH = 1 << 20  # bytes gathered before they are encrypted / written / hashed
_WRITEBACK = 16 << 20  # a file output starts write-back every so many bytes and waits one step behind
_DEPTH = 8  # pieces the hashing thread may lag behind (bounded memory: ~8 MiB)


class _Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class _ThreadHash:
    """SHA-256 in a worker thread over a bounded queue of immutable byte pieces."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(_DEPTH)
        self._thread = threading.Thread(target=self._run, name="output-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (piece := self._queue.get()) is not None:
            self._digest.update(piece)

    def update(self, piece: bytes) -> None:
        self._queue.put(piece)

    def hexdigest(self) -> str:
        self._queue.put(None)
        self._thread.join()
        return self._digest.hexdigest()

    def abandon(self) -> None:
        """Stop without waiting long: a signal raised in the middle of a queue operation can leave the worker
        asleep; it is a daemon thread, and its digest is not wanted any more."""
        if self._thread.is_alive():
            try:
                self._queue.put(None, timeout=1)
            except queue.Full:
                return
            self._thread.join(timeout=1)


class Output:
    """The writable end: `write(b)` only (no seek, no tell); `.sha256` and `.size` once the block exits."""

    def __init__(self, sink: _Sink, recipients: Sequence[object] | None, fd: int | None = None) -> None:
        from archive.age import Encryptor

        self._sink = sink
        self._fd = fd  # a file's descriptor: write-back as we go, so the final fsync has little left to wait for
        self._started = 0  # bytes whose write-back was started
        self._waited = 0  # bytes known on the device
        self._hash = _ThreadHash()
        self._buffer = bytearray()
        self._encryptor = Encryptor(recipients) if recipients else None  # type: ignore[arg-type]
        self.sha256 = ""
        self.size = 0
        self._closed = False
        if self._encryptor is not None:
            self._emit(self._encryptor.header())

    def _emit(self, data: bytes) -> None:
        if data:
            self._sink.write(data)
            self._hash.update(data)
            self.size += len(data)
            if self._fd is not None and self.size - self._started >= _WRITEBACK:
                self._writeback()

    def _writeback(self) -> None:
        from storage.local import SYNC_WAIT, SYNC_WRITE, _sync_file_range

        if _sync_file_range is None or self._fd is None:
            return
        started = self._started
        _sync_file_range(self._fd, started, self.size - started, SYNC_WRITE)
        self._started = self.size
        if started > self._waited:  # the step before this one: on the device before we go on
            _sync_file_range(self._fd, self._waited, started - self._waited, SYNC_WAIT)
            self._waited = started

    def _flush(self) -> None:
        if not self._buffer:
            return
        piece = bytes(self._buffer)
        self._buffer.clear()
        self._emit(self._encryptor.update(piece) if self._encryptor is not None else piece)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed bundle output")
        n = len(data)
        if not self._buffer and n >= _BATCH and isinstance(data, bytes):
            self._emit(self._encryptor.update(data) if self._encryptor is not None else data)
            return n
        self._buffer += data
        if len(self._buffer) >= _BATCH:
            self._flush()
        return n

    def flush(self) -> None:
        """A no-op for writers (zipfile, tarfile) that flush: batching is this object's business."""

    def _finish(self) -> None:
        self._flush()
        if self._encryptor is not None:
            self._emit(self._encryptor.finalize())
        self._closed = True
        self.sha256 = self._hash.hexdigest()

    def _abandon(self) -> None:
        self._closed = True
        self._hash.abandon()


@contextmanager
def open_output(path: Path | None, *, stream: BinaryIO | None = None,
                recipients: Sequence[object] | None = None) -> Iterator[Output]:
    """Write a bundle file at `path` (refused if it exists; nothing left behind on failure) or into `stream`.

    With `recipients` (archive.age recipients) the whole output is one age file that `age -d` opens."""
    if stream is not None:
        out = Output(stream, recipients)
        try:
            yield out
        except BaseException:
            out._abandon()
            raise
        out._finish()
        flush = getattr(stream, "flush", None)
        if flush is not None:
            flush()  # a pipe to an HTTP response returns once the client took every byte: only then "transferred"
        return
    if path is None:
        raise ServiceError("a bundle needs a file to write (--out) or a stream")
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise ServiceError(f"{path} already exists: choose a new file name (a bundle is never overwritten)")
    if not path.parent.is_dir():
        raise ServiceError(f"{path.parent} is not a folder")
    temp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.partial")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as exc:
        raise ServiceError(f"cannot write beside {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb", buffering=0) as raw:
            out = Output(raw, recipients, fd=raw.fileno())
            try:
                yield out
            except BaseException:
                out._abandon()
                raise
            out._finish()
            os.fsync(raw.fileno())
        try:
            os.link(temp, path)  # never replaces a file that appeared meanwhile
        except FileExistsError as exc:
            raise ServiceError(f"{path} already exists: choose a new file name") from exc
        except OSError:
            if path.exists():
                raise ServiceError(f"{path} already exists: choose a new file name") from None
            os.replace(temp, path)  # file systems without hard links
    finally:
        temp.unlink(missing_ok=True)
