"""Where the archive's secret keys live in `keys/`, and writing one so a crash never leaves half a key.

The access identity is an age identity file (`access.key`, its public half in
`access.pub`); the catalog key is `catalog.key` (see `archive.keys.catalog`);
the preview identity (`preview.key`, public `preview.pub`) opens the web
pages' thumbnails only, so a server showing previews need not open originals.
Once protected, each is replaced by its age passphrase file (`<name>.age`).
"""

from __future__ import annotations

import os
from pathlib import Path

from archive.keys.catalog import CATALOG_KEY_NAME

ACCESS_KEY_NAME = "access.key"
ACCESS_PUB_NAME = "access.pub"
WRAPPED_SUFFIX = ".age"
PREVIEW_KEY_NAME = "preview.key"
PREVIEW_PUB_NAME = "preview.pub"
SECRET_NAMES = (ACCESS_KEY_NAME, CATALOG_KEY_NAME, PREVIEW_KEY_NAME)  # what `keys protect` wraps and `unlock` unwraps
# Absent from a home made before previews existed (`keys add-access` makes it): unlock and protect go on without it.
OPTIONAL_NAMES = (PREVIEW_KEY_NAME,)


def wrapped_name(name: str) -> str:
    return name + WRAPPED_SUFFIX


def write_secret(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically and durably, readable by its owner only.

    A temporary file beside it (created 0600, never wider), fsync, rename,
    fsync of the directory: a reader sees the old key or the new one, never a
    torn one, and a rotation's new key version survives a power cut.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def signature(path: Path) -> tuple[int, int, int] | None:
    """What changes when a key file is replaced (inode, mtime, size), or None when it is absent."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
