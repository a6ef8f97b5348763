"""The custody log as C2SP tlog-tiles, read from the catalog for the HTTP API (`/v1/log/…`).

The same objects, byte for byte, that `archive.custody.mirror` writes to
every storage site: hash tiles and entry bundles under `tile/`, with
tlog-tiles' index encoding (`x001/x234/067`, a partial tile's width after
`.p/`). Everything is bounded by the latest signed checkpoint: a tile no
checkpoint covers is not served (it could not be verified), so a client
sees exactly one consistent tree. Reads only, on the read-only engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlmodel import Session, col

from archive.catalog.checkpoints import Checkpoint
from archive.custody.mirror import LOG_PREFIX, _entries, _tile, pack_bundle, tile_name
from archive.custody.tiles import TILE_HEIGHT, TILE_WIDTH
from archive.db import read_only
from archive.services.errors import NotFound

if TYPE_CHECKING:
    from archive.context import Archive

MAX_LEVEL = 7  # 8 tile levels cover 2**64 leaves
_PATH = re.compile(r"^(entries|0|[1-9][0-9]?)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?$")


@dataclass(frozen=True)
class Tile:
    data: bytes
    full: bool  # a full tile (or bundle) never changes; a partial one is superseded once its tile fills


def latest_note(archive: Archive) -> str:
    """The latest signed checkpoint note, verbatim (`NotFound` before the first checkpoint)."""
    with Session(read_only(archive.engine)) as session:
        note = session.execute(
            select(col(Checkpoint.note)).order_by(col(Checkpoint.tree_size).desc()).limit(1)).scalar()
    if note is None:
        raise NotFound("no checkpoint yet: the log has not been signed (the worker signs one within seconds "
                       "of the first event, or run `evidence log checkpoint`)")
    return str(note)


def parse_tile_path(path: str) -> tuple[int | str, int, int]:
    """(level or 'entries', index, width) of a tlog-tiles path under `tile/`; `NotFound` unless canonical."""
    found = _PATH.match(path)
    if found is None:
        raise NotFound("no such tile")
    level_text, groups, width_text = found.groups()
    level: int | str = level_text if level_text == "entries" else int(level_text)
    index = int(groups.replace("x", "").replace("/", ""))
    width = int(width_text) if width_text else TILE_WIDTH
    if width > TILE_WIDTH or (isinstance(level, int) and level > MAX_LEVEL) or \
            tile_name(level, index, width) != f"{LOG_PREFIX}tile/{path}" or (width_text and width == TILE_WIDTH):
        raise NotFound("no such tile")
    return level, index, width


def read_tile(archive: Archive, path: str) -> Tile:
    """The tile or entry bundle at `path` (under `tile/`) of the tree the latest checkpoint signed."""
    level, index, width = parse_tile_path(path)
    with Session(read_only(archive.engine)) as session:
        size = session.execute(select(col(Checkpoint.tree_size)).order_by(col(Checkpoint.tree_size).desc())
                               .limit(1)).scalar() or 0
        row_width = size if level == "entries" else size >> (TILE_HEIGHT * int(level))
        if index * TILE_WIDTH + width > row_width:
            raise NotFound("no such tile: beyond the tree the latest checkpoint signed")
        if level == "entries":
            start = index * TILE_WIDTH
            data = pack_bundle(_entries(session, start, start + width))
        else:
            data = _tile(session, int(level), index, width)
    return Tile(data, width == TILE_WIDTH)
