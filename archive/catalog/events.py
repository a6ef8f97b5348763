"""The custody events table: append-only, one gapless sequence (the log's leaves)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


class Event(SQLModel, table=True):
    """One custody event. `seq` is the Merkle leaf index, starting at 0."""

    __tablename__ = "events"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    occurred_at: str = Field(max_length=32)
    actor: str = Field(max_length=255)
    event_type: str = Field(max_length=64, index=True)
    item_id: str | None = Field(default=None, index=True, max_length=36)
    objects: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    outcome: str = Field(max_length=16)  # success | failure | warning
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    leaf_hash: str = Field(max_length=64)


class LogHead(SQLModel, table=True):
    """A single row holding the log's size; locking it serialises appends."""

    __tablename__ = "log_head"

    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    size: int = 0
