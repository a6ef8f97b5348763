"""Candidate pairs of victim records that may be one person reported by several sources.

A plain table, not a record: the decision on a pair is kept here (so a
rejected pair is never suggested again and a confirmed one not twice), while
the decision itself is recorded with its custody event and history: a
confirmation as a `merge` change of both victim records, a rejection as a
`not_same_person` link. It holds no personal data: two victim ids, a score
and which clues agreed. Clues such as "same normalized name" still tell
whether two sealed names agree, so pairs that involve a person whose name is
withheld are shown to and decided by custodians only
(`archive.services.victims`).
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

STATES = ("candidate", "confirmed", "rejected")


class VictimMatch(SQLModel, table=True):
    """One pair (`a_id` < `b_id`): suggested with a score, then confirmed (merged) or rejected."""

    __tablename__ = "victim_matches"
    __table_args__ = (UniqueConstraint("a_id", "b_id"),)

    id: int | None = Field(default=None, primary_key=True)
    a_id: str = Field(max_length=24, index=True)
    b_id: str = Field(max_length=24, index=True)
    score: int  # per mille (no floats in what may be compared or exported)
    clues: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # e.g. "same date of death"
    state: str = Field(default="candidate", max_length=10, index=True)  # candidate | confirmed | rejected
    suggested_at: str = Field(max_length=32)
    decided_at: str | None = Field(default=None, max_length=32)
    decided_by: str | None = Field(default=None, max_length=64)


def pair(a: str, b: str) -> tuple[str, str]:
    """A pair's ids in the table's order."""
    return (a, b) if a < b else (b, a)
