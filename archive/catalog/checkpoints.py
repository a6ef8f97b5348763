"""Tables of the verifiable log: signed checkpoints, the tree's stored tiles, the tree's size.

The tiles are a cache of the tree's hashes (RFC 9162 nodes) laid out as in
C2SP tlog-tiles: tile (level L, index N) holds up to 256 consecutive hashes of
tree level 8·L. Proofs read a handful of them instead of every leaf. The
checkpoints are the only authority: verification recomputes everything from
the events and compares against their signed roots.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, LargeBinary
from sqlmodel import Field, SQLModel


class Checkpoint(SQLModel, table=True):
    """A signed statement of (origin, tree size, root hash), kept forever."""

    __tablename__ = "checkpoints"

    tree_size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: str = Field(max_length=64)  # lowercase hex, as in the note (which is base64)
    note: str  # the C2SP signed note, byte for byte as signed
    key_id: str = Field(max_length=8)
    issued_at: str = Field(max_length=32)


class LogTile(SQLModel, table=True):
    """Hashes of tree level 8·level, entries [256·idx, 256·idx + len(hashes)/32)."""

    __tablename__ = "log_tiles"

    level: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hashes: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class LogState(SQLModel, table=True):
    """A single row: how many leaves the tiles hold. Locking it serialises checkpoint issuers."""

    __tablename__ = "log_state"

    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    tree_size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
