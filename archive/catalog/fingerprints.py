"""Perceptual fingerprints of items, and the near-duplicate candidates they suggest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel

if TYPE_CHECKING:
    from sqlmodel import Session


class Fingerprint(SQLModel, table=True):
    """One 64-bit perceptual hash of one view of a photo, or of one sampled video frame.

    `value` is the unsigned hash stored as a signed 64-bit integer (a BIGINT on
    every database); `variant` names the view ("full", "c94", "tfull" …, "frame"),
    `offset_ms` the frame's time in a video (0 for photos).
    """

    __tablename__ = "fingerprints"

    id: int | None = Field(default=None, primary_key=True)
    item_id: str = Field(foreign_key="items.id", index=True, max_length=36)
    kind: str = Field(max_length=16)  # phash | dhash
    variant: str = Field(max_length=16)
    offset_ms: int = 0
    value: int = Field(sa_column=Column(BigInteger, nullable=False))


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
