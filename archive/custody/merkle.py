"""RFC 9162 section 2.1: Merkle tree hashes and the proofs built from them.

Everything here works on *complete subtrees*: the subtree at (level, index)
covers leaves [index·2^level, (index+1)·2^level). Any range the RFC's
recursion visits is a run of such subtrees, so a proof needs O(log n) of
them, and where they come from (leaves in memory, stored tiles) is the
caller's business: see `SubtreeSource`.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) = SHA-256()


class ProofError(ValueError):
    """A proof was asked for sizes or indexes the tree does not have."""


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right), RFC 9162 section 2.1.1."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class SubtreeSource(Protocol):
    def subtree(self, level: int, index: int) -> bytes:
        """The hash of the complete subtree of 2^level leaves starting at leaf index·2^level."""
        ...


def fold_row(row: bytes) -> bytes:
    """The next tree level up from a row of hashes: hash each complete pair, drop an odd last one."""
    sha = hashlib.sha256
    return b"".join(sha(b"\x01" + row[i : i + 64]).digest() for i in range(0, len(row) - 63, 64))


def subtree_root(row: bytes) -> bytes:
    """The root of a complete subtree given its 2^k bottom-row hashes."""
    while len(row) > HASH_SIZE:
        row = fold_row(row)
    return row


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def range_hash(source: SubtreeSource, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range the RFC recursion can visit (start aligned to its largest part)."""
    if end <= start:
        raise ProofError(f"empty range [{start}, {end})")
    parts: list[bytes] = []
    at = start
    for level in range((end - start).bit_length() - 1, -1, -1):
        if (end - start) >> level & 1:
            if at % (1 << level):
                raise ProofError(f"range [{start}, {end}) is not aligned to the tree")
            parts.append(source.subtree(level, at >> level))
            at += 1 << level
    acc = parts.pop()
    while parts:
        acc = node_hash(parts.pop(), acc)
    return acc


def tree_root(source: SubtreeSource, size: int) -> bytes:
    """MTH of the first `size` leaves."""
    return EMPTY_ROOT if size == 0 else range_hash(source, 0, size)


def inclusion_proof(source: SubtreeSource, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]), RFC 9162 section 2.1.3.1, ordered from the leaf upwards."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []

    def walk(m: int, start: int, n: int) -> None:
        if n == 1:
            return
        k = _largest_power_of_two_below(n)
        if m < k:
            walk(m, start, k)
            path.append(range_hash(source, start + k, start + n))
        else:
            walk(m - k, start + k, n - k)
            path.append(range_hash(source, start, start + k))

    walk(index, 0, size)
    return path


def consistency_proof(source: SubtreeSource, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[new_size]), RFC 9162 section 2.1.4.1; empty when either size is trivial."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []

    def sub(m: int, start: int, n: int, whole: bool) -> None:
        if m == n:
            if not whole:
                proof.append(range_hash(source, start, start + n))
            return
        k = _largest_power_of_two_below(n)
        if m <= k:
            sub(m, start, k, whole)
            proof.append(range_hash(source, start + k, start + n))
        else:
            sub(m - k, start + k, n - k, False)
            proof.append(range_hash(source, start, start + k))

    sub(old_size, 0, new_size, True)
    return proof


class MemoryTree:
    """Every complete subtree of a list of leaf hashes, one bytes row per level (about 2·32 bytes a leaf)."""

    def __init__(self, leaves: bytes) -> None:
        if len(leaves) % HASH_SIZE:
            raise ValueError("leaf hashes must be 32 bytes each")
        self.levels = [bytes(leaves)]
        while len(self.levels[-1]) >= 2 * HASH_SIZE:
            self.levels.append(fold_row(self.levels[-1]))

    @property
    def size(self) -> int:
        return len(self.levels[0]) // HASH_SIZE

    def subtree(self, level: int, index: int) -> bytes:
        row = self.levels[level] if level < len(self.levels) else b""
        value = row[index * HASH_SIZE : (index + 1) * HASH_SIZE]
        if len(value) != HASH_SIZE:
            raise ProofError(f"no complete subtree at level {level}, index {index}")
        return value

    def root(self, size: int | None = None) -> bytes:
        return tree_root(self, self.size if size is None else size)
