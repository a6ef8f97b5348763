"""Perceptual fingerprints of items (sealed), and the near-duplicate candidates they suggest.

Candidates stay in clear: a pair of item ids and a distance says that two
items look alike, nothing about what they show nor who made them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, SQLModel

from archive.catalog.sealing import SealedTable, open_row, register

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.catalog.sealing import Sealer
    from archive.keys.catalog import CatalogKeys
    from ingest.fingerprints.common import Hash

SEALED_TABLE = "item_fingerprints"
register(SealedTable(SEALED_TABLE, "item_id"))


class ItemFingerprints(SQLModel, table=True):
    """Every perceptual hash of one item, sealed in one row bound to the item id.

    Sealed because a fingerprint exists to match a known picture: in clear, a
    stolen catalog would confirm that the archive holds it. One row per item
    also hides how many frames a video has (its duration). `id` grows with
    every write, so a process's in-memory index refreshes incrementally by it
    (`archive.similarity`). The sealed fields are
    `{"hashes": [[kind, variant, offset_ms, unsigned value], ...]}`.
    """

    __tablename__ = "item_fingerprints"

    id: int | None = Field(default=None, primary_key=True)
    item_id: str = Field(foreign_key="items.id", unique=True, max_length=36)
    key_version: int = Field(default=0, index=True)
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


def seal_hashes(sealer: Sealer, item_id: str, hashes: list[Hash]) -> ItemFingerprints:
    """The row holding an item's hashes, sealed to its id."""
    fields = {"hashes": [[h.kind, h.variant, h.offset_ms, h.value] for h in hashes]}
    version, blob = sealer.seal(SEALED_TABLE, item_id, fields)
    return ItemFingerprints(item_id=item_id, key_version=version, sealed=blob)


def open_hashes(keys: CatalogKeys, item_id: str, version: int, blob: bytes) -> list[Hash]:
    """An item's hashes from its sealed row (`Locked` for a row not settled yet)."""
    from ingest.fingerprints.common import Hash

    fields = open_row(keys, SEALED_TABLE, item_id, version, blob)
    return [Hash(str(k), str(v), int(value), int(offset)) for k, v, offset, value in fields.get("hashes", [])]


def replace_hashes(session: Session, sealer: Sealer, item_id: str, hashes: list[Hash]) -> None:
    """Store an item's hashes in place of any it had (a new row, so the index sees the change by id)."""
    from sqlalchemy import delete
    from sqlmodel import col

    session.execute(delete(ItemFingerprints).where(col(ItemFingerprints.item_id) == item_id))
    if hashes:
        session.add(seal_hashes(sealer, item_id, hashes))
    session.flush()


class Candidate(SQLModel, table=True):
    """A suggested near-duplicate, found when `item_id` was ingested; an investigator
    confirms or rejects it. Items are never merged automatically."""

    __tablename__ = "candidates"

    id: int | None = Field(default=None, primary_key=True)
    item_id: str = Field(foreign_key="items.id", index=True, max_length=36)
    other_id: str = Field(foreign_key="items.id", index=True, max_length=36)
    distance: int
    frame_match_share: float | None = None
    state: str = Field(default="candidate", max_length=16)  # candidate | confirmed | rejected
    created_at: str = Field(max_length=32)


def candidates_for(session: Session, item_id: str) -> list[dict[str, Any]]:
    """The near-duplicate candidates recorded for an item (found when it, or the other, was ingested).

    Here, beside the table, so that showing an item needs no similarity index (nor NumPy).
    """
    from sqlmodel import or_, select

    rows = session.exec(
        select(Candidate).where(or_(Candidate.item_id == item_id, Candidate.other_id == item_id))
    ).all()
    best: dict[str, dict[str, Any]] = {}
    for c in rows:
        other = c.other_id if c.item_id == item_id else c.item_id
        entry: dict[str, Any] = {"id": other, "distance": c.distance, "state": c.state}
        if c.frame_match_share is not None:
            entry["frame_match_share"] = c.frame_match_share
        if other not in best or entry["distance"] < best[other]["distance"]:
            best[other] = entry
    return sorted(best.values(), key=lambda e: (e["distance"], e["id"]))
