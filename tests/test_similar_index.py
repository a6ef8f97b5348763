"""The Hamming index answers exactly what a full scan answers, with and without its tables."""

from __future__ import annotations

import numpy as np
import pytest

from archive.hamming import HammingIndex, popcount
from archive.similarity import Probe, SimilarityIndex


@pytest.mark.parametrize("radius", [0, 3, 8, 11, 15, 20])
def test_tables_agree_with_a_scan(radius: int) -> None:
    rng = np.random.default_rng(radius)
    values = rng.integers(0, 2**64, size=50_000, dtype=np.uint64)
    index = HammingIndex(values, force_tables=True)
    assert index.uses_tables
    queries = [int(values[i]) ^ int(rng.integers(0, 2**63)) & int(rng.integers(0, 2**63)) for i in range(20)]
    queries += [int(values[i]) ^ (1 << (i % 64)) for i in range(20)]
    for q in queries:
        rows, dist = index.search(q, radius)
        expect = np.flatnonzero(popcount(values ^ np.uint64(q)) <= radius)
        assert sorted(rows.tolist()) == expect.tolist()
        assert (dist == popcount(values[rows] ^ np.uint64(q))).all()


def test_close_values_are_found_among_random_ones() -> None:
    rng = np.random.default_rng(7)
    values = rng.integers(0, 2**64, size=100_000, dtype=np.uint64)
    target = int(values[1234])
    near = target ^ 0b1011_0000_0000_0001_0000_0000_0000_0001_0000_0000_0000_0001_0000_0000_0001_0000
    index = HammingIndex(values, force_tables=True)
    rows, dist = index.search(near, 11)
    assert 1234 in rows.tolist()
    assert int(dist[rows.tolist().index(1234)]) == bin(target ^ near).count("1")


def test_pair_rule_and_query_exclusion() -> None:
    rows = [("a", "phash", "full", 0, 0), ("a", "dhash", "full", 0, 0),
            ("b", "phash", "full", 0, (1 << 12) - 1), ("b", "dhash", "full", 0, 0),  # 12 + 0 -> 6
            ("c", "phash", "full", 0, (1 << 12) - 1), ("c", "dhash", "full", 0, (1 << 12) - 1)]  # 12 + 12 -> 12
    index = SimilarityIndex.from_rows(rows)
    found = index.search(Probe("photo", [(0, 0, 0)]), 11)
    assert [(m.id, m.distance) for m in found] == [("a", 0), ("b", 6)]
    assert [m.id for m in index.search(Probe("photo", [(0, 0, 0)]), 12, exclude="a")] == ["b", "c"]
    assert index.search(Probe("video", [(0, 0, 0)]), 11) == []  # photos and videos are compared apart


def test_rows_added_after_the_tables_are_found_too() -> None:
    rng = np.random.default_rng(3)
    values = rng.integers(0, 2**64, size=20_000, dtype=np.uint64)
    index = HammingIndex(values[:10_000], force_tables=True)
    for start in range(10_000, 20_000, 2_500):
        index.extend(values[start : start + 2_500])
    assert len(index) == 20_000
    for i in range(0, 20_000, 400):
        q = int(values[i]) ^ (1 << (i % 64)) ^ (1 << ((i + 7) % 64))
        rows, _ = index.search(q, 11)
        assert sorted(rows.tolist()) == np.flatnonzero(popcount(values ^ np.uint64(q)) <= 11).tolist()


def test_similarity_index_grows_item_by_item() -> None:
    index = SimilarityIndex.from_rows([("a", "phash", "full", 0, 5), ("a", "dhash", "full", 0, 5)])
    index.extend([("b", "phash", "frame", 0, 5), ("b", "dhash", "frame", 0, 5),
                  ("b", "phash", "frame", 1000, 7), ("b", "dhash", "frame", 1000, 7)])
    assert [m.id for m in index.search(Probe("photo", [(5, 5, 0)]))] == ["a"]
    found = index.search(Probe("video", [(5, 5, 0), (7, 7, 1)]))
    assert [(m.id, m.frame_match_share) for m in found] == [("b", 1.0)]


def test_table_path_and_scan_path_agree() -> None:
    rng = np.random.default_rng(11)
    base = rng.integers(0, 2**64, size=(3000, 2), dtype=np.uint64)
    rows = []
    for i, (p, d) in enumerate(base.tolist()):
        rows += [(f"item{i // 3}", "phash", f"v{i % 3}", 0, p), (f"item{i // 3}", "dhash", f"v{i % 3}", 0, d)]
    scan = SimilarityIndex.from_rows(rows)
    tables = SimilarityIndex.from_rows(rows)
    tables.phash = HammingIndex(tables.phash.values, force_tables=True)
    tables.dhash = HammingIndex(tables.dhash.values, force_tables=True)
    flips = rng.integers(0, 2**64, size=(40, 2), dtype=np.uint64)
    for _ in range(2):
        flips &= rng.integers(0, 2**64, size=(40, 2), dtype=np.uint64)  # about 8 bits set each
    views = [(int(base[i * 70, 0] ^ f[0]), int(base[i * 70, 1] ^ f[1]), 0) for i, f in enumerate(flips)]
    probe = Probe("photo", views)
    for radius in (4, 8, 11, 14):
        assert [(m.id, m.distance) for m in scan.search(probe, radius)] == [
            (m.id, m.distance) for m in tables.search(probe, radius)
        ]
    assert scan.search(probe, 11)
