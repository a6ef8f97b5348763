"""Handing large plaintext to a sandbox child without it ever touching a disk.

Small sources cross the pipe as bytes; a large one goes into an anonymous
in-memory file (`memfd`), sealed against change, which the child opens as
`/proc/<parent pid>/fd/<n>`. It vanishes with its last descriptor, so a crash
leaves nothing behind: no temporary file to sweep, no plaintext at rest.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def memory_file(chunks: Iterable[bytes], name: str = "evidence-plaintext") -> int:
    """Write `chunks` into a new memfd and seal it; its descriptor (the caller closes it)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        # The child opens it read-only; sealed, not even a subverted child could alter what later tasks read.
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                    fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def fd_path(fd: int) -> Path:
    """The path a sandbox child (this process's child) opens the memfd by."""
    return Path(f"/proc/{os.getpid()}/fd/{fd}")


@contextmanager
def in_memory(chunks: Iterable[bytes], name: str = "evidence-plaintext") -> Iterator[Path]:
    """`chunks` as a sealed in-memory file, for as long as the block runs."""
    fd = memory_file(chunks, name)
    try:
        yield fd_path(fd)
    finally:
        os.close(fd)
