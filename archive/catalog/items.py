"""Items (one per distinct original), their stored copies and their provenance."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, LargeBinary
from sqlmodel import Field, SQLModel


class ItemStatus(StrEnum):
    """An acknowledged item's standing against the replication policy."""

    PRESERVED = "preserved"  # every copy the policy asks for exists and is verified
    DEGRADED = "degraded"  # fewer verified copies than the target; the worker is repairing it
    MERGED = "merged"  # ingested while locked, found on settlement to be another item's bytes: all moved there


class ReplicaState(StrEnum):
    """What the last check found of one stored object."""

    VERIFIED = "verified"
    MISSING = "missing"
    CORRUPT = "corrupt"
    REPLACED = "replaced"  # a missing or corrupt copy a repair has replaced: history, no longer checked


class Item(SQLModel, table=True):
    """One original, identified by a random id; the same bytes are one item."""

    __tablename__ = "items"

    id: str = Field(primary_key=True, max_length=36)
    # Sealed {"sha256", "size", "salt"} (archive.catalog.secrets); version 0: pending, sealed with age.
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    key_version: int | None = Field(default=None, index=True)
    lookup: str | None = Field(default=None, index=True, unique=True, max_length=64)  # keyed hash of the SHA-256
    size_bucket: str | None = Field(default=None, max_length=32)  # power-of-two class, for statistics
    media_type: str | None = Field(default=None, max_length=255)
    status: str = Field(max_length=16)  # an ItemStatus
    created_at: str = Field(max_length=32)


class Replica(SQLModel, table=True):
    """One stored, encrypted object: what fixity needs, no key required."""

    __tablename__ = "replicas"

    id: int | None = Field(default=None, primary_key=True)
    item_id: str = Field(foreign_key="items.id", index=True, max_length=36)
    role: str = Field(max_length=16)  # original | manifest
    backend: str = Field(max_length=64, index=True)
    object_name: str = Field(max_length=255)
    version_id: str | None = Field(default=None, max_length=255)
    ciphertext_sha256: str = Field(max_length=64)
    recipients: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    checksum_detail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    state: str = Field(default=ReplicaState.VERIFIED, max_length=16)  # a ReplicaState
    verified_at: str = Field(max_length=32)


class Provenance(SQLModel, table=True):
    """Who handed the archive these bytes, when, and under which name."""

    __tablename__ = "provenance"

    id: int | None = Field(default=None, primary_key=True)
    item_id: str = Field(foreign_key="items.id", index=True, max_length=36)
    # Sealed {"source", "note", "original_name", "declared_type"}; version 0: pending, sealed with age.
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    key_version: int | None = Field(default=None, index=True)
    received_at: str = Field(max_length=32)
    actor: str = Field(max_length=255)  # a user id (archive.catalog.users) or "archive", never a name
    # How it came (archive.records.vocab CHANNELS: upload, email, messaging, social_media, field_researcher,
    # legacy_disk) and the source record that handed it over, when known.
    channel: str | None = Field(default=None, max_length=24)
    source_id: str | None = Field(default=None, index=True, max_length=24)
