"""Near-duplicate index: 10 million random 64-bit fingerprints, query time at the default distance.

    python bench/bench_index.py                  # 10,000,000 fingerprints, 200 queries
    python bench/bench_index.py --count 1000000

Prints the build time, the index's memory (its arrays, and the growth of the
process's resident set), and the median / 90th percentile time of one query
for everything within the default distance (11), for the multi-index-hashing
tables and for a plain numpy scan of the same values, checking that both give
the same answer. Half the queries are near a stored value (so there is an
answer), half are random. Then the same for a whole photo probe (48 views:
8 orientations x 3 crops x pHash+dHash) against 5,000,000 stored views
(10,000,000 fingerprints).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archive.hamming import HammingIndex, popcount  # noqa: E402
from archive.similarity import DEFAULT_MAX_DISTANCE, Probe, SimilarityIndex  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def near(rng: np.random.Generator, value: int, bits: int) -> int:
    for position in rng.choice(64, size=bits, replace=False):
        value ^= 1 << int(position)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--radius", type=int, default=DEFAULT_MAX_DISTANCE)
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    values = rng.integers(0, 2**64, size=args.count, dtype=np.uint64)

    before = rss_mb()
    start = time.perf_counter()
    index = HammingIndex(values, force_tables=True)
    build = time.perf_counter() - start
    grown = rss_mb() - before
    print(f"fingerprints: {args.count:,}  radius: {args.radius}")
    print(f"build: {build:.2f} s   index memory: {index.nbytes() / 2**20:.0f} MiB "
          f"({index.nbytes() / args.count:.1f} B per fingerprint; values {values.nbytes / 2**20:.0f} MiB of it), "
          f"RSS growth while building {grown:.0f} MiB")

    queries = [near(rng, int(values[rng.integers(len(values))]), int(rng.integers(0, args.radius + 1)))
               for _ in range(args.queries // 2)]
    queries += [int(q) for q in rng.integers(0, 2**64, size=args.queries - len(queries), dtype=np.uint64)]
    index.search(queries[0], args.radius)  # warm up
    tables, scans, found = [], [], 0
    for q in queries:
        t = time.perf_counter()
        rows, _ = index.search(q, args.radius)
        tables.append(time.perf_counter() - t)
        t = time.perf_counter()
        expect = np.flatnonzero(popcount(values ^ np.uint64(q)) <= args.radius)
        scans.append(time.perf_counter() - t)
        assert sorted(rows.tolist()) == expect.tolist(), "index and scan disagree"
        found += len(rows)

    def ms(xs: list[float], pct: float = 50) -> float:
        return float(np.percentile(xs, pct)) * 1e3

    print(f"query, tables: median {ms(tables):.2f} ms   p90 {ms(tables, 90):.2f} ms")
    print(f"query, numpy scan: median {ms(scans):.2f} ms   p90 {ms(scans, 90):.2f} ms")
    print(f"answers: {found} rows over {len(queries)} queries (identical from both)")
    del index

    # A whole photo probe against 5 M stored views (pHash + dHash = 10 M fingerprints).
    views = args.count // 2
    similar = SimilarityIndex()
    similar.item_ids = [f"item{i}" for i in range(views // 6)]
    similar.item_of = np.arange(views, dtype=np.int64) // 6
    similar.is_video = np.zeros(views, dtype=bool)
    similar.frames = np.ones(len(similar.item_ids), dtype=np.int64)
    similar.phash = HammingIndex(values[:views], force_tables=True)
    similar.dhash = HammingIndex(values[views : 2 * views], force_tables=True)
    times = []
    for _ in range(20):
        row = int(rng.integers(views))
        probe_views = [(near(rng, int(values[row]), 4), near(rng, int(values[views + row]), 4), 0)]
        probe_views += [(int(a), int(b), 0) for a, b in rng.integers(0, 2**64, size=(47, 2), dtype=np.uint64)]
        t = time.perf_counter()
        matches = similar.search(Probe("photo", probe_views))
        times.append(time.perf_counter() - t)
        assert f"item{row // 6}" in {m.id for m in matches}
    print(f"photo probe (48 views) against {views:,} stored views: median {statistics.median(times) * 1e3:.1f} ms, "
          f"index memory {similar.nbytes() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
