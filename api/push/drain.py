"""Sending the queue: each file hashed first, queued, then sent in order, resumed where the server stands.

An entry leaves the queue only when its receipt is in hand and verified, or
when the server refused the file for good (with its reason). While the server
cannot be reached, everything stays queued for the next `evidence push`.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from api.push.queue import Entry, Queue
from api.push.receipts import ReceiptProblem, check_receipt
from api.push.tus import Gone, Offline, Refused, TusClient, upload_id_of

READ = 1 << 20


@dataclass
class Outcome:
    """What became of one queued file in this run."""

    path: str
    status: str  # sent | queued (try later) | refused (dropped, reason) | missing (file gone, kept) | unverified
    size: int
    sha256: str
    upload: str | None = None
    item: str | None = None
    event: str | None = None
    received: str | None = None
    receipt: str | None = None
    reason: str | None = None
    resumed_from: int = 0  # the server's offset when this run resumed the upload
    sent: int = 0  # bytes of the file sent in this run (chunks sent again included)
    offline: bool = False  # the server could not be reached: this and what follows stay queued

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Progress(Protocol):
    def hashing(self, path: str, size: int) -> Callable[[int], None]: ...
    def start(self, entry: Entry) -> None: ...
    def advance(self, entry: Entry, offset: int) -> None: ...
    def done(self, entry: Entry, outcome: Outcome) -> None: ...


class Silent:
    """No progress shown (scripts, tests)."""

    def hashing(self, path: str, size: int) -> Callable[[int], None]:
        return lambda n: None

    def start(self, entry: Entry) -> None:
        pass

    def advance(self, entry: Entry, offset: int) -> None:
        pass

    def done(self, entry: Entry, outcome: Outcome) -> None:
        pass


def sha256_file(path: Path, on_bytes: Callable[[int], None] = lambda n: None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(READ):
            digest.update(block)
            on_bytes(len(block))
    return digest.hexdigest()


def files_of(paths: Iterable[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """The regular files under the paths given (folders walked), and the paths that cannot be read, with why."""
    from archive.services.ingest import expand

    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    for path, problem in expand(list(paths)):
        if problem:
            problems.append((str(path), problem))
        elif path.is_file():
            files.append(path)
        else:
            problems.append((str(path), "not a regular file"))
    return files, problems


def enqueue(queue: Queue, files: list[Path], server: str, metadata: dict[str, str], progress: Progress) -> list[Entry]:
    """Hash each file and queue it (once: a file already queued for this server is not queued again).

    Only the file's base name is sent, never the folders it sits in on the device.
    """
    added: list[Entry] = []
    for path in files:
        absolute = str(path.resolve())
        st = os.stat(absolute)
        known = queue.find(absolute, server)
        if known and known.size == st.st_size and known.mtime_ns == st.st_mtime_ns:
            continue
        digest = sha256_file(Path(absolute), progress.hashing(absolute, st.st_size))
        meta = {"filename": path.name, **{k: v for k, v in metadata.items() if v}}
        filetype = mimetypes.guess_type(path.name)[0]
        if filetype:
            meta.setdefault("filetype", filetype)
        if known:
            queue.remove(known)
        added.append(queue.new_entry(path=absolute, size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=digest,
                                     server=server, metadata=meta))
    return added


def _refresh(queue: Queue, client: TusClient, entry: Entry, progress: Progress) -> str | None:
    """Make the entry match the file as it is now (re-hashed if it changed); a reason when it cannot be read."""
    try:
        st = os.stat(entry.path)
    except OSError as exc:
        return f"cannot read the file: {exc.strerror}"
    if (st.st_size, st.st_mtime_ns) == (entry.size, entry.mtime_ns):
        return None
    digest = sha256_file(Path(entry.path), progress.hashing(entry.path, st.st_size))
    if digest != entry.sha256 or st.st_size != entry.size:
        if entry.upload_url:
            client.terminate(entry.upload_url)  # the half-sent old version is of no use
        entry.upload_url = None
        entry.sha256 = digest
    entry.size, entry.mtime_ns = st.st_size, st.st_mtime_ns
    queue.save(entry)
    return None


def send_one(queue: Queue, client: TusClient, entry: Entry, vkey: str, *, chunk_size: int,
             progress: Progress) -> Outcome:
    """Send one entry to the end, or as far as the server lets it (offline: kept, marked); Denied propagates."""
    problem = _refresh(queue, client, entry, progress)
    outcome = Outcome(path=entry.path, status="missing", size=entry.size, sha256=entry.sha256)
    if problem:
        outcome.reason = problem
        return outcome
    progress.start(entry)
    before = client.sent
    try:
        for attempt in range(2):  # a second time only when the server lost the upload (expired)
            if not entry.upload_url:
                entry.upload_url = client.create(entry.size, {**entry.metadata, "sha256": entry.sha256})
                queue.save(entry)  # before a byte is sent: a restart resumes this very upload
            try:
                with open(entry.path, "rb") as handle:
                    resumed, finished = client.upload(entry.upload_url, handle, entry.size, chunk_size=chunk_size,
                                                      on_progress=lambda offset: progress.advance(entry, offset))
                break
            except Gone:
                entry.upload_url = None
                queue.save(entry)
                if attempt:
                    raise
        outcome.resumed_from = resumed
    except Refused as exc:
        queue.remove(entry)
        outcome.status, outcome.reason = "refused", str(exc)
        return outcome
    except Offline as exc:
        return _offline(queue, entry, outcome, exc)
    finally:
        outcome.sent = client.sent - before
    assert entry.upload_url is not None
    upload_id = upload_id_of(entry.upload_url)
    outcome.upload = upload_id
    try:
        note = finished.receipt or client.receipt(upload_id)
    except Offline as exc:
        return _offline(queue, entry, outcome, exc)
    if note is None:
        entry.error = "the archive has the file but gave no receipt yet"
        queue.save(entry)
        outcome.status, outcome.reason = "queued", entry.error
        return outcome
    outcome.receipt = note
    try:
        fields = check_receipt(note, vkey, upload_id=upload_id, sha256=entry.sha256, size=entry.size)
    except ReceiptProblem as exc:
        queue.remove(entry)  # the archive took the file; sending it again would not mend its receipt
        outcome.status, outcome.reason = "unverified", str(exc)
        return outcome
    queue.remove(entry)
    outcome.status = "sent"
    outcome.item = str(fields.get("item"))
    outcome.event = str(fields.get("event"))
    outcome.received = str(fields.get("received"))
    return outcome


def _offline(queue: Queue, entry: Entry, outcome: Outcome, exc: Offline) -> Outcome:
    entry.error = str(exc)
    queue.save(entry)
    outcome.status, outcome.reason, outcome.offline = "queued", str(exc), True
    return outcome


def move_entries(queue: Queue, entries: list[Entry], server: str, vkey: str) -> list[tuple[Entry, str, bool]]:
    """Re-address entries queued for other servers to `server`: (entry, its old server, resumed?) each.

    A half-sent upload keeps its place only when the old server's pinned receipt
    key is this server's key: the same archive under another address (an onion
    and a public name). Otherwise its upload URL, which holds the secret, is
    dropped rather than shown to another server, and the file starts over.
    """
    moved: list[tuple[Entry, str, bool]] = []
    for entry in entries:
        old = entry.server
        same_archive = queue.pinned_key(old) == vkey.strip()
        resumed = False
        if entry.upload_url and same_archive and entry.upload_url.startswith(old + "/"):
            entry.upload_url = server + entry.upload_url[len(old):]
            resumed = True
        else:
            entry.upload_url = None
        entry.server, entry.error = server, None
        queue.save(entry)
        moved.append((entry, old, resumed))
    return moved


def drain(queue: Queue, client: TusClient, vkey: str, *, server: str, chunk_size: int,
          progress: Progress) -> list[Outcome]:
    """Send every queued entry of this server, oldest first; once the server is unreachable, the rest wait."""
    outcomes: list[Outcome] = []
    entries = queue.entries(server)
    for index, entry in enumerate(entries):
        outcome = send_one(queue, client, entry, vkey, chunk_size=chunk_size, progress=progress)
        progress.done(entry, outcome)
        outcomes.append(outcome)
        if outcome.offline:
            for rest in entries[index + 1:]:
                waiting = Outcome(path=rest.path, status="queued", size=rest.size, sha256=rest.sha256,
                                  reason="the server could not be reached", offline=True)
                progress.done(rest, waiting)
                outcomes.append(waiting)
            break
    return outcomes
