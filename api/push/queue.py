"""The local queue of `evidence push`: what is still to be sent, kept on the device across restarts.

One JSON file per pending file (mode 0600) in a directory of its own (mode
0700): by default `$XDG_DATA_HOME/evidence-push`, else
`~/.local/share/evidence-push`. An entry holds the file's path, size,
modification time and SHA-256, the metadata to send, and, once the server has
created the upload, the upload URL. **That URL contains the upload secret**:
whoever reads it can resume the upload and, with the contributor's token,
read its receipt, and the secret is the key under which the server encrypts
the partial upload at rest. So the queue is private to its user, the token is
never written here (give it with --token or EVIDENCE_PUSH_TOKEN each time),
and `evidence push --forget` removes it all.

`--forget` unlinks the files: that is "securely enough" for a queue, not a
forensic wipe. Overwriting in place would promise more than flash storage,
journaling and copy-on-write file systems keep (the old blocks may survive
anywhere); full-disk encryption of the device is what protects deleted data.

The receipt key of each server is pinned here on first use (`keys/`), so a
later change of key (a swapped server, a tampered answer) is noticed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ENTRY_SUFFIX = ".json"


class QueueError(Exception):
    """The queue cannot be used (locked by another push, unreadable, not private)."""


def default_dir() -> Path:
    """`$XDG_DATA_HOME/evidence-push`, or `~/.local/share/evidence-push` (the XDG default)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "evidence-push"


@dataclass
class Entry:
    """One file waiting to be sent (or half sent) to one server."""

    id: str  # random; the entry's file name
    seq: int  # the order files were queued in: the queue drains oldest first
    path: str  # absolute path of the local file (never sent: only its base name is)
    size: int
    mtime_ns: int
    sha256: str  # of the whole file, hashed before anything is sent
    server: str  # the archive's base URL
    metadata: dict[str, str] = field(default_factory=dict)  # filename, filetype, source, channel, incident, note
    upload_url: str | None = None  # the tus upload URL: CONTAINS THE UPLOAD SECRET
    error: str | None = None  # why the last attempt did not finish

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


def server_key(server: str) -> str:
    """A file name for a server's pinned key (a hash, so the name alone does not say which server)."""
    return hashlib.sha256(server.rstrip("/").encode()).hexdigest()[:32]


class Queue:
    """The queue directory: entries in order, atomic private writes, a lock against a second push."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    @classmethod
    def open(cls, directory: str | Path | None = None) -> Queue:
        path = Path(directory) if directory else default_dir()
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # an existing folder made by hand is made private too
        (path / "keys").mkdir(mode=0o700, exist_ok=True)
        return cls(path)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One push at a time on a queue: two would send the same file twice."""
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise QueueError(f"another `evidence push` is using the queue in {self.dir}") from exc
            yield
        finally:
            os.close(fd)

    # entries

    def entries(self, server: str | None = None) -> list[Entry]:
        """Pending entries, oldest first; those of one server when `server` is given."""
        found: list[Entry] = []
        for path in self.dir.glob(f"*{ENTRY_SUFFIX}"):
            try:
                entry = Entry.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError) as exc:
                raise QueueError(f"unreadable queue entry {path.name}: {exc}") from exc
            if server is None or entry.server == server:
                found.append(entry)
        return sorted(found, key=lambda e: (e.seq, e.id))

    def find(self, path: str, server: str) -> Entry | None:
        return next((e for e in self.entries(server) if e.path == path), None)

    def new_entry(self, **fields: Any) -> Entry:
        """A new entry, after every one queued so far (a coarse clock may give two files the same time)."""
        last = max((e.seq for e in self.entries()), default=0)
        entry = Entry(id=secrets.token_hex(8), seq=max(time.time_ns(), last + 1), **fields)
        self.save(entry)
        return entry

    def save(self, entry: Entry) -> None:
        """Write an entry atomically (temp 0600 file, fsync, rename, fsync the folder)."""
        self._write(self.dir / f"{entry.id}{ENTRY_SUFFIX}", json.dumps(entry.as_dict(), indent=1).encode())

    def remove(self, entry: Entry) -> None:
        try:
            os.unlink(self.dir / f"{entry.id}{ENTRY_SUFFIX}")
        except FileNotFoundError:
            pass
        self._sync_dir()

    def wipe(self) -> int:
        """Unlink every entry (upload URLs and their secrets with them) and every pinned key; how many entries."""
        count = 0
        for path in self.dir.glob(f"*{ENTRY_SUFFIX}"):
            path.unlink(missing_ok=True)
            count += 1
        for path in self.dir.glob(".*.tmp"):
            path.unlink(missing_ok=True)
        for path in (self.dir / "keys").glob("*"):
            path.unlink(missing_ok=True)
        self._sync_dir()
        return count

    # pinned receipt keys

    def pinned_key(self, server: str) -> str | None:
        path = self.dir / "keys" / f"{server_key(server)}.vkey"
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None

    def pin_key(self, server: str, vkey: str) -> Path:
        path = self.dir / "keys" / f"{server_key(server)}.vkey"
        self._write(path, (vkey.strip() + "\n").encode())
        return path

    def key_path(self, server: str) -> Path:
        return self.dir / "keys" / f"{server_key(server)}.vkey"

    # helpers

    def _write(self, target: Path, data: bytes) -> None:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        self._sync_dir(target.parent)

    def _sync_dir(self, directory: Path | None = None) -> None:
        fd = os.open(directory or self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
