"""Receive: the one streaming pass over the original's bytes.

Reading, SHA-256 of the plaintext, age encryption, SHA-256 of the ciphertext
and the staged writes to every backend overlap: the reader encrypts and hands
each ciphertext block to one thread per backend and one hashing thread through
small bounded queues, so memory stays flat whatever the file size and the
writes proceed concurrently. Nothing is published here: `Replicate` verifies
and publishes the staged copies once we know the file is new.

The bytes come from a file (`Incoming.path`) or, for an upload that must never
touch a disk in clear, from a stream (`Incoming.opener`, `Incoming.size`): the
same pass reads either. A stream that cannot be read as it was stored is
refused (`Damaged`), never kept as altered evidence. A stream larger than
`IN_MEMORY_LIMIT` keeps only its first and last bytes for `Identify`; its
metadata and fingerprints come from a worker job (`ingest.steps.deferred`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import queue
import stat
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from archive.age import Encryptor
from archive.custody.commit import new_salt
from archive.custody.log import ENCRYPTION, MESSAGE_DIGEST
from archive.objects import new_object_name
from ingest.media.sniff import HEAD_SIZE
from ingest.pipeline import ByteStream, Damaged, Ingestion, Refused, Staged, Step
from storage.base import StorageError

if TYPE_CHECKING:
    from archive.context import Archive
    from storage.base import Backend

READ_SIZE = 1024 * 1024  # a multiple of age's 64 KiB chunk
IN_MEMORY_LIMIT = 64 * 1024 * 1024  # analysis gets bytes in memory up to this size
SMALL_FILE = 16 * 1024 * 1024  # up to this size, one thread does the pass (photos)
QUEUE_DEPTH = 8
TAIL_SIZE = 65_536 + 22  # what Identify reads from a file's end (a ZIP's end-of-central-directory record)
_DONE = b""

Reader = Callable[[int], bytes]


class _Sink(threading.Thread):
    """Consumes ciphertext blocks from a bounded queue in its own thread."""

    def __init__(self, name: str, consume: Callable[[bytes], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.queue: queue.Queue[bytes] = queue.Queue(QUEUE_DEPTH)
        self._consume = consume
        self.error: Exception | None = None

    def run(self) -> None:
        while True:
            block = self.queue.get()
            if block is _DONE:
                return
            if self.error is None:
                try:
                    self._consume(block)
                except Exception as exc:  # noqa: BLE001 - recorded; the other copies go on
                    self.error = exc


def _read(fd: int, size: int) -> bytes:
    try:
        return os.read(fd, size)
    except OSError as exc:
        raise Refused(f"read failed ({exc.strerror})") from exc


def _stream_reader(stream: ByteStream) -> Reader:
    def read(size: int) -> bytes:
        try:
            return stream.read(size)
        except OSError as exc:
            raise Damaged(f"the stored bytes cannot be read back as sent: {exc}") from exc

    return read


def _open_source(ingestion: Ingestion) -> int:
    path = ingestion.incoming.path
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block us
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Refused("symlink loop") from exc
        if exc.errno == errno.ENOENT:
            raise Refused("no such file") from exc
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise Refused("permission denied") from exc
        raise Refused(f"cannot read ({exc.strerror})") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Refused("not a regular file")
    os.set_blocking(fd, True)
    return fd


class Receive(Step):
    name = "receive"

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        if ingestion.sha256 is not None:
            return  # already received (idempotent)
        recipients = archive.recipients()
        backends = archive.policy_backends()
        if ingestion.incoming.opener is not None:
            self._receive_stream(ingestion, recipients, backends)
        else:
            self._receive_file(ingestion, recipients, backends)
        ingestion.recipients = [str(r) for r in recipients]
        # The salt of the commitment the log will hold; the commitment itself needs the item id,
        # which Deduplicate decides, so `Replicate` completes this event (see `bind_commitment`).
        ingestion.salt = new_salt()
        ingestion.event(MESSAGE_DIGEST, algorithm="SHA-256")
        ingestion.event(ENCRYPTION, format="age-v1", recipients=ingestion.recipients)

    def _receive_file(self, ingestion: Ingestion, recipients: list, backends: list[Backend]) -> None:
        fd = _open_source(ingestion)
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                raise Refused("zero-byte file, there is nothing to keep")
            if size <= IN_MEMORY_LIMIT:
                # A photo's analysis follows in a sandbox child: start it now, so its imports
                # overlap this pass. (A large file's pass needs both cores; its child starts later.)
                from ingest import sandbox

                sandbox.warm()
            self._pass(ingestion, lambda n: _read(fd, n), size, recipients, backends)
        finally:
            os.close(fd)

    def _receive_stream(self, ingestion: Ingestion, recipients: list, backends: list[Backend]) -> None:
        incoming = ingestion.incoming
        assert incoming.opener is not None
        size = incoming.size or 0
        if size == 0:
            raise Refused("zero-byte file, there is nothing to keep")
        if size <= IN_MEMORY_LIMIT:
            from ingest import sandbox

            sandbox.warm()
        stream = incoming.opener()
        try:
            self._pass(ingestion, _stream_reader(stream), size, recipients, backends)
            if stream.read(1):
                raise Damaged("the stored bytes run past the length they were declared with")
        finally:
            stream.close()
        if ingestion.size != size:
            raise Damaged(f"the stored bytes end at {ingestion.size} of the {size} declared")

    def _pass(self, ingestion: Ingestion, read: Reader, size: int, recipients: list, backends: list[Backend]) -> None:
        staged = self._open_writers(ingestion, backends, size)
        encryptor = Encryptor(recipients)
        if size <= SMALL_FILE:
            self._small_pass(ingestion, read, size, encryptor, staged)
        else:
            self._streaming_pass(ingestion, read, size, encryptor, staged)
        if ingestion.size == 0:
            raise Refused("zero-byte file, there is nothing to keep")
        for entry in ingestion.staged:
            entry.writer.finish_writes()  # the flush to disk overlaps the analysis; Replicate waits for it

    @staticmethod
    def _open_writers(ingestion: Ingestion, backends: list[Backend], size: int) -> list[Staged]:
        for backend in backends:
            try:
                writer = backend.open_writer(name := new_object_name(), size)
            except StorageError as exc:
                ingestion.storage_errors[backend.name] = str(exc)
                continue
            writer.digest_covers_sent_bytes()  # we hash the ciphertext exactly as sent
            ingestion.staged.append(Staged(backend.name, name, writer))
        if not ingestion.staged:
            raise Refused("no storage backend could accept the file: " + "; ".join(ingestion.storage_errors.values()))
        return list(ingestion.staged)

    @staticmethod
    def _drop(ingestion: Ingestion, entry: Staged, error: Exception) -> None:
        ingestion.storage_errors[entry.backend] = str(error)
        entry.writer.abort()
        ingestion.staged.remove(entry)

    def _small_pass(
        self, ingestion: Ingestion, read: Reader, size: int, encryptor: Encryptor, staged: list[Staged]
    ) -> None:
        """A photo-sized file: one read, then hash, encrypt and write in this thread.

        Handing a few megabytes between threads costs more than the work itself.
        """
        chunks = []
        total = 0
        while block := read(max(size - total, READ_SIZE)):
            chunks.append(block)
            total += len(block)
        plaintext = b"".join(chunks)
        del chunks
        # Encrypted 1 MiB at a time and kept as pieces: one 4 MB update and the joins around it
        # cost twice the CPU (fresh large buffers fault their pages in), for the same bytes.
        sealed = [encryptor.header()]
        sealed += [encryptor.update(plaintext[at : at + READ_SIZE]) for at in range(0, len(plaintext), READ_SIZE)]
        sealed.append(encryptor.finalize())
        cipher_digest = hashlib.sha256()
        for piece in sealed:
            cipher_digest.update(piece)
        for entry in staged:
            try:
                for piece in sealed:
                    if piece:
                        entry.writer.write(piece)
            except StorageError as exc:
                self._drop(ingestion, entry, exc)
        ingestion.sha256 = hashlib.sha256(plaintext).hexdigest()
        ingestion.size = len(plaintext)
        ingestion.ciphertext_sha256 = cipher_digest.hexdigest()
        ingestion.ciphertext_size = sum(len(piece) for piece in sealed)
        ingestion.plaintext = plaintext

    def _streaming_pass(
        self, ingestion: Ingestion, read: Reader, size: int, encryptor: Encryptor, staged: list[Staged]
    ) -> None:
        """A large file: hashing, encryption and each write overlap, memory stays flat."""
        plain_digest = hashlib.sha256()
        cipher_digest = hashlib.sha256()
        writers = [(entry, _Sink(f"write-{entry.backend}", entry.writer.write)) for entry in staged]
        hasher = _Sink("hash-ciphertext", cipher_digest.update)
        plain_hasher = _Sink("hash-plaintext", plain_digest.update)
        sinks = [hasher] + [sink for _, sink in writers]
        for sink in [plain_hasher, *sinks]:
            sink.start()
        keep: list[bytes] | None = [] if size <= IN_MEMORY_LIMIT else None
        head = b""
        tail = b""
        total = 0
        cipher_total = 0

        def send(block: bytes) -> None:
            nonlocal cipher_total
            if block:
                cipher_total += len(block)
                for sink in sinks:
                    sink.queue.put(block)

        try:
            send(encryptor.header())
            while block := read(READ_SIZE):
                total += len(block)
                plain_hasher.queue.put(block)
                if keep is not None:
                    keep.append(block)
                    if total > IN_MEMORY_LIMIT:  # the file grew while we read it
                        keep = None
                if len(head) < HEAD_SIZE:
                    head += block[: HEAD_SIZE - len(head)]
                tail = (tail + block)[-TAIL_SIZE:] if len(block) < TAIL_SIZE else block[-TAIL_SIZE:]
                send(encryptor.update(block))
            send(encryptor.finalize())
        finally:
            for sink in [plain_hasher, *sinks]:
                sink.queue.put(_DONE)
            for sink in [plain_hasher, *sinks]:
                sink.join()
        for entry, sink in writers:
            if sink.error is not None:
                self._drop(ingestion, entry, sink.error)
        for digest_sink in (hasher, plain_hasher):
            if digest_sink.error is not None:
                raise digest_sink.error
        ingestion.sha256 = plain_digest.hexdigest()
        ingestion.size = total
        ingestion.ciphertext_sha256 = cipher_digest.hexdigest()
        ingestion.ciphertext_size = cipher_total
        if keep is not None:
            ingestion.plaintext = b"".join(keep)
        elif ingestion.incoming.opener is None:
            ingestion.plaintext_path = ingestion.incoming.path
        else:  # a large stream: nothing to hand the sandbox; Identify gets the ends, a worker job the rest
            ingestion.sample = (head, tail, total)

    def cleanup(self, ingestion: Ingestion) -> None:
        """Staged copies not published by now are discarded."""
        for entry in ingestion.staged:
            entry.writer.abort()
        ingestion.staged.clear()
