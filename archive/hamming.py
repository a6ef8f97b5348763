"""Finding every 64-bit fingerprint within a Hamming distance of a query, fast.

Why not a plain scan: one numpy pass over N fingerprints costs N × ~1.3 ns, and
a video brings hundreds of frame fingerprints, each queried in 8 orientations.
Above `SCAN_LIMIT` entries the index switches to multi-index hashing (Norouzi,
Punjani and Fleet, 2012): the 64 bits are cut into four 16-bit chunks, and by
the pigeonhole principle anything within distance r of the query agrees with
it on at least one chunk to within floor(r / 4) bits. Each chunk has a
counting-sort table (a permutation of the rows ordered by that chunk, and the
start of each of the 65,536 buckets), so a query reads only the buckets near
its own chunks and checks those few candidates exactly. The answer is exact,
not approximate. Memory: 8 bytes per fingerprint plus 4 × 4 bytes of
permutations, about 24 bytes per fingerprint (240 MB for 10 million).
"""

from __future__ import annotations

from functools import lru_cache
from itertools import combinations
from typing import Any

import numpy as np

SCAN_LIMIT = 1 << 20  # below this, a linear numpy scan is as fast as the tables
CHUNKS = 4
CHUNK_BITS = 16


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits per element (numpy 2's bitwise_count, with a fallback for numpy 1)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    v = x.view(np.uint8).reshape(*x.shape, 8)
    return np.unpackbits(v, axis=-1).sum(axis=-1)  # pragma: no cover - numpy < 2


@lru_cache(maxsize=16)
def _masks(bits: int, radius: int) -> np.ndarray:
    """Every `bits`-bit value with at most `radius` bits set: the flips to try in one chunk."""
    out = [0]
    for r in range(1, radius + 1):
        for positions in combinations(range(bits), r):
            m = 0
            for p in positions:
                m |= 1 << p
            out.append(m)
    return np.array(out, dtype=np.uint64)


class HammingIndex:
    """An index over unsigned 64-bit values; `search` returns row numbers and distances.

    Rows appended after the tables were built (`extend`) are scanned linearly
    until they are many enough to be worth rebuilding the tables for.
    """

    def __init__(self, values: Any, *, force_tables: bool = False) -> None:
        self.values = np.ascontiguousarray(np.asarray(values, dtype=np.uint64))
        self._perms: list[np.ndarray] = []
        self._starts: list[np.ndarray] = []
        self._tabled = 0  # rows [0, _tabled) are in the tables, the rest are scanned
        self._force = force_tables
        if len(self.values) >= SCAN_LIMIT or force_tables:
            self._build()

    def extend(self, values: Any) -> None:
        """Append rows (numbered after the existing ones)."""
        new = np.asarray(values, dtype=np.uint64)
        if len(new) == 0:
            return
        self.values = np.concatenate([self.values, new])
        wants_tables = bool(self._perms) or self._force or len(self.values) >= SCAN_LIMIT
        tail = len(self.values) - self._tabled
        if wants_tables and tail > max(SCAN_LIMIT // 4, self._tabled // 8):
            self._build()

    def __len__(self) -> int:
        return len(self.values)

    @property
    def uses_tables(self) -> bool:
        return bool(self._perms)

    def _build(self) -> None:
        """(Re)build the chunk tables; assigned at the end, so a concurrent search sees old or new, whole."""
        values = self.values
        n = len(values)
        row_type = np.uint32 if n < (1 << 32) else np.uint64
        perms, starts_list = [], []
        for c in range(CHUNKS):
            key = ((values >> np.uint64(c * CHUNK_BITS)) & np.uint64(0xFFFF)).astype(np.uint16)
            # A stable sort of 16-bit keys is a radix sort in numpy: linear time.
            perms.append(np.argsort(key, kind="stable").astype(row_type))
            counts = np.bincount(key, minlength=1 << CHUNK_BITS)
            starts = np.zeros((1 << CHUNK_BITS) + 1, dtype=np.int64)
            np.cumsum(counts, out=starts[1:])
            starts_list.append(starts)
        self._perms, self._starts, self._tabled = perms, starts_list, n

    def nbytes(self) -> int:
        """Memory held by the index (values and tables)."""
        return int(self.values.nbytes + sum(p.nbytes for p in self._perms) + sum(s.nbytes for s in self._starts))

    def search(self, query: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows whose value is within `radius` bits of `query`, and their distances (unsorted)."""
        q = np.uint64(query)
        if not self._perms or radius >= 4 * CHUNKS:
            return self._scan(q, radius, 0)
        rows, dist = self._search_tables(query, radius)
        if self._tabled < len(self.values):
            tail_rows, tail_dist = self._scan(q, radius, self._tabled)
            rows, dist = np.concatenate([rows, tail_rows]), np.concatenate([dist, tail_dist])
        return rows, dist

    def _scan(self, q: np.uint64, radius: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        dist = popcount(self.values[start:] ^ q)
        rows = np.flatnonzero(dist <= radius)
        return rows + start, dist[rows].astype(np.int64)

    def _search_tables(self, query: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.uint64(query)
        sub_radius = radius // CHUNKS
        masks = _masks(CHUNK_BITS, sub_radius)
        found = []
        for c in range(CHUNKS):
            chunk = (query >> (c * CHUNK_BITS)) & 0xFFFF
            keys = (np.uint64(chunk) ^ masks).astype(np.int64)
            lo = self._starts[c][keys]
            hi = self._starts[c][keys + 1]
            lengths = hi - lo
            total = int(lengths.sum())
            if total == 0:
                continue
            # Concatenate the bucket ranges without a Python loop.
            offsets = np.repeat(lo - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
            found.append(self._perms[c][np.arange(total) + offsets])
        if not found:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        candidates = np.concatenate(found)
        near = candidates[popcount(self.values[candidates] ^ q) <= radius]
        # A row can sit in the query's buckets of several chunks: dedupe the (few) survivors only.
        rows = np.unique(near).astype(np.int64)
        return rows, popcount(self.values[rows] ^ q).astype(np.int64)
