"""The RAM-only directory `evidence unlock` leaves the unwrapped keys in, for this user's other processes.

Why a directory and not a daemon: a worker, a server and a CLI command of the
same home are separate processes; a directory on a RAM filesystem
(`/dev/shm/evidence-<uid>/<archive id>/`) is the smallest thing they can all
read, it vanishes with a reboot or `evidence lock`, and it never reaches a
disk (so no backup, no seized drive holds it). That is checked, not assumed:
the directory must be on tmpfs or ramfs (per `/proc/mounts`), owned by this
user, mode 0700 (files 0600), and not a symlink; otherwise it is refused.

`EVIDENCE_UNLOCK_DIR` names another base directory (still checked to be RAM),
for a machine whose tmpfs is mounted elsewhere.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from archive.keys.files import write_secret

RAM_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})
DEFAULT_BASE = "/dev/shm"


class RamDirError(Exception):
    """The unlock directory is not private RAM: nothing is written to or read from it."""


def base_dir() -> Path:
    return Path(os.environ.get("EVIDENCE_UNLOCK_DIR") or DEFAULT_BASE) / f"evidence-{os.getuid()}"


def ram_dir(archive_id: str) -> Path:
    if not archive_id or "/" in archive_id or archive_id.startswith("."):
        raise RamDirError(f"not an archive id: {archive_id!r}")
    return base_dir() / archive_id


def _unescape(field: str) -> str:
    """A /proc/mounts field: spaces and the like are octal escapes there (`\\040`)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def filesystem_of(path: Path) -> str | None:
    """The type of the filesystem `path` (which exists) is on: the longest mount point above it wins."""
    real = os.path.realpath(path)
    best, kind = "", None
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            lines = mounts.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _unescape(fields[1])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def _check_private_dir(path: Path) -> None:
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise RamDirError(f"{path} is not a directory (a symlink?): refused")
    if st.st_uid != os.getuid():
        raise RamDirError(f"{path} belongs to another user: refused")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise RamDirError(f"{path} is readable by others: refused")
    kind = filesystem_of(path)
    if kind not in RAM_FILESYSTEMS:
        raise RamDirError(f"{path} is on {kind or 'an unknown filesystem'}, not tmpfs or ramfs: unwrapped keys "
                          "would reach a disk; refused")


def _ensure_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    _check_private_dir(path)


def publish(archive_id: str, files: dict[str, bytes]) -> Path:
    """Write `files` (name -> bytes) into this archive's RAM directory, checked private RAM first."""
    base = base_dir()
    if not base.parent.is_dir():
        raise RamDirError(f"{base.parent} does not exist: no RAM directory to unlock into")
    _ensure_dir(base)
    where = ram_dir(archive_id)
    _ensure_dir(where)
    for name, data in files.items():
        write_secret(where / name, data)
    return where


def held_path(archive_id: str, name: str) -> Path | None:
    """The file `name` in this archive's RAM directory if it is there (no checks: see `read`)."""
    try:
        path = ram_dir(archive_id) / name
    except RamDirError:
        return None
    return path if path.is_file() else None


def read(archive_id: str, name: str) -> bytes | None:
    """A key from this archive's RAM directory, or None when it is not unlocked there.

    Raises RamDirError when the directory is there but not private RAM (never
    trusted, never silently ignored).
    """
    path = held_path(archive_id, name)
    if path is None:
        return None
    _check_private_dir(base_dir())
    _check_private_dir(path.parent)
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
        raise RamDirError(f"{path} is not a private file of this user: refused")
    return path.read_bytes()


def remove(archive_id: str) -> bool:
    """Remove this archive's RAM directory and what it holds; whether there was one."""
    where = ram_dir(archive_id)
    if not where.is_dir() or where.is_symlink():
        return False
    for entry in where.iterdir():
        entry.unlink(missing_ok=True)
    where.rmdir()
    return True
