"""Find any run of 64 plaintext bytes of given files anywhere under some directories.

Used while uploads are half done: the promise is that nothing of a file in
progress is readable at rest, temporary files included. Two checks, one pass:

- shingles: a 64-byte window in every 4 KiB of each file (at the first place
  there, within 64 bytes, where it holds content rather than padding), so any
  run of at least 4 KiB + 127 bytes stored anywhere (at any alignment) holds
  one whole;
- random windows: 64-byte windows at random offsets, which also catch some
  shorter runs.

Windows of fewer than 16 distinct byte values (runs of zeros, padding), or
whose first 8 bytes (the lookup key) hold fewer than 6, are left out: any
file holds them.

Every 64-byte window of every file on disk is looked up (numpy: the 8-byte
prefix at each offset against a filter, then exact comparison), so a 100 MB
tree takes about a second.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WIDTH = 64
EVERY = 4096
FILTER_BITS = 22
BLOCK = 8 << 20
DISTINCT = 16  # a window with fewer distinct byte values is padding, not content


@dataclass(frozen=True)
class Finding:
    path: Path
    position: int
    source: str
    source_offset: int

    def __str__(self) -> str:
        return f"{self.path} @ {self.position}: 64 bytes of {self.source} from offset {self.source_offset}"


class Shingles:
    """64-byte windows of the files a test is sending, indexed by their first 8 bytes."""

    def __init__(self, sources: Mapping[str, bytes], *, random_windows: int = 64, seed: int = 0) -> None:
        rng = random.Random(seed)
        self.windows: dict[int, list[tuple[bytes, str, int]]] = {}
        for name, data in sources.items():
            if len(data) < WIDTH:
                continue
            offsets = set(range(0, len(data) - WIDTH + 1, EVERY))
            offsets.update(rng.randrange(0, len(data) - WIDTH + 1) for _ in range(random_windows))
            for start in sorted(offsets):
                # Slide to where the window has content: padding (a JPEG's runs of zeros) is found in any file
                # and proves nothing, and a common 8-byte prefix (the lookup key) would match everywhere.
                for offset in range(start, min(start + WIDTH, len(data) - WIDTH + 1)):
                    window = data[offset : offset + WIDTH]
                    if len(set(window)) >= DISTINCT and len(set(window[:8])) >= 6:
                        key = int.from_bytes(window[:8], "little")
                        self.windows.setdefault(key, []).append((window, name, offset))
                        break
        self.keys = np.array(sorted(self.windows), dtype=np.uint64)
        self.filter = np.zeros(1 << FILTER_BITS, dtype=bool)
        self.filter[(self.keys & np.uint64((1 << FILTER_BITS) - 1)).astype(np.int64)] = True

    def __len__(self) -> int:
        return sum(len(v) for v in self.windows.values())

    def scan_bytes(self, data: bytes, path: Path, base: int = 0) -> list[Finding]:
        """Every window of `data` that is one of ours (`base`: where `data` starts in its file)."""
        found: list[Finding] = []
        if len(data) < WIDTH or not len(self.keys):
            return found
        mask = np.uint64((1 << FILTER_BITS) - 1)
        last = len(data) - WIDTH  # the last offset a whole window starts at
        for shift in range(8):
            count = (last - shift) // 8 + 1
            if count <= 0:
                continue
            keys = np.frombuffer(data, dtype="<u8", count=count, offset=shift)
            maybe = np.nonzero(self.filter[(keys & mask).astype(np.int64)])[0]
            if not len(maybe):
                continue
            hits = maybe[np.isin(keys[maybe], self.keys)]
            for index in hits.tolist():
                position = shift + 8 * index
                window = data[position : position + WIDTH]
                for expected, name, offset in self.windows.get(int(keys[index]), []):
                    if window == expected:
                        found.append(Finding(path, base + position, name, offset))
        return found

    def scan_file(self, path: Path) -> list[Finding]:
        found: list[Finding] = []
        try:
            with open(path, "rb") as stream:
                base = 0
                tail = b""
                while block := stream.read(BLOCK):
                    data = tail + block
                    found.extend(self.scan_bytes(data, path, base - len(tail)))
                    tail = data[-(WIDTH - 1) :]
                    base += len(block)
        except (PermissionError, FileNotFoundError, IsADirectoryError, OSError):
            pass  # gone or unreadable meanwhile (a segment being replaced, a socket)
        return found

    def scan(self, roots: Iterable[Path]) -> tuple[list[Finding], int, int]:
        """Scan every regular file under `roots`. Returns findings, files scanned, bytes scanned."""
        found: list[Finding] = []
        files = scanned = 0
        for root in roots:
            for path in _regular_files(root):
                files += 1
                try:
                    scanned += path.stat().st_size
                except OSError:
                    continue
                found.extend(self.scan_file(path))
        return found, files, scanned


def _regular_files(root: Path) -> Iterable[Path]:
    if root.is_file():
        yield root
        return
    for dirpath, _dirs, names in os.walk(root, followlinks=False):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path
