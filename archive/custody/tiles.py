"""The tree's hashes kept in the catalog as tiles (the C2SP tlog-tiles layout), for fast proofs.

Tile (L, N) holds up to 256 hashes of tree level 8·L, entries 256·N onwards;
level-0 tiles are the leaf hashes. A complete subtree at level l is then
at most 128 hashes of one tile folded together, so any proof reads a few
tiles whatever the log's size. Tiles only grow: a new checkpoint appends to
the rightmost tile of each level and adds new ones; nothing is rewritten.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import bindparam, insert, select, update
from sqlmodel import Session, col

from archive.catalog.checkpoints import LogTile
from archive.custody.merkle import HASH_SIZE, ProofError, SubtreeSource, subtree_root

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
TILE_BYTES = TILE_WIDTH * HASH_SIZE


# One statement, compiled once, whatever the tiles asked for.
_TILES_AT_LEVEL = select(col(LogTile.idx), col(LogTile.hashes)).where(
    col(LogTile.level) == bindparam("level"), col(LogTile.idx).in_(bindparam("indexes", expanding=True))
)


def tile_of(level: int, index: int) -> tuple[int, int]:
    """The tile (tile level, tile index) holding what the subtree at (level, index) is computed from."""
    tile_level, height = divmod(level, TILE_HEIGHT)
    return tile_level, (index << height) // TILE_WIDTH


class _Recorder:
    """A stand-in source that only notes which tiles a computation would read."""

    def __init__(self) -> None:
        self.tiles: set[tuple[int, int]] = set()

    def subtree(self, level: int, index: int) -> bytes:
        self.tiles.add(tile_of(level, index))
        return bytes(HASH_SIZE)


class TileStore:
    """Reads (and, while issuing a checkpoint, extends) the stored tiles of one session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._cache: dict[tuple[int, int], bytes] = {}

    def tile(self, level: int, index: int) -> bytes:
        key = (level, index)
        if key not in self._cache:
            found = self.session.execute(_TILES_AT_LEVEL, {"level": level, "indexes": [index]}).first()
            self._cache[key] = bytes(found[1]) if found else b""
        return self._cache[key]

    def preload(self, computation: Callable[[SubtreeSource], object]) -> None:
        """Fetch up front every tile `computation` will read: one query per tile level, a handful for a proof."""
        recorder = _Recorder()
        computation(recorder)
        wanted = recorder.tiles - self._cache.keys()
        for level in sorted({lv for lv, _ in wanted}):
            indexes = sorted(ix for lv, ix in wanted if lv == level)
            for index, hashes in self.session.execute(_TILES_AT_LEVEL, {"level": level, "indexes": indexes}):
                self._cache[(level, index)] = bytes(hashes)
        for key in wanted:
            self._cache.setdefault(key, b"")

    def subtree(self, level: int, index: int) -> bytes:
        tile_level, height = divmod(level, TILE_HEIGHT)
        first = index << height  # entry index in row 8·tile_level
        width = 1 << height
        offset = (first % TILE_WIDTH) * HASH_SIZE
        row = self.tile(tile_level, first // TILE_WIDTH)[offset : offset + width * HASH_SIZE]
        if len(row) != width * HASH_SIZE:
            raise ProofError(f"stored tiles do not hold the subtree at level {level}, index {index}")
        return subtree_root(row)

    def extend(self, old_size: int, leaves: bytes) -> None:
        """Add leaf hashes for leaves old_size, old_size+1, … and every subtree they complete."""
        level, start, row = 0, old_size, leaves
        while row:
            first_tile = start // TILE_WIDTH
            kept = (start % TILE_WIDTH) * HASH_SIZE
            prefix = self.tile(level, first_tile) if kept else b""
            if len(prefix) != kept:
                raise ProofError(f"stored tile ({level}, {first_tile}) holds {len(prefix) // HASH_SIZE} hashes, "
                                 f"expected {kept // HASH_SIZE}")
            combined = prefix + row
            chunks = [combined[i : i + TILE_BYTES] for i in range(0, len(combined), TILE_BYTES)]
            new_rows = []
            for n, chunk in enumerate(chunks):
                key = (level, first_tile + n)
                self._cache[key] = chunk
                if n == 0 and kept:
                    self.session.execute(
                        update(LogTile)
                        .where(col(LogTile.level) == level, col(LogTile.idx) == key[1])
                        .values(hashes=chunk)
                    )
                else:
                    new_rows.append({"level": level, "idx": key[1], "hashes": chunk})
            if new_rows:
                self.session.execute(insert(LogTile), new_rows)
            row = b"".join(subtree_root(chunk) for chunk in chunks if len(chunk) == TILE_BYTES)
            level, start = level + 1, first_tile
