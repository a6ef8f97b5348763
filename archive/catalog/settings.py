"""Configuration that changes while the archive runs: storage sites, the policy, the recipients.

It lives in the catalog, not in `config.toml`, so that a change commits in the
same transaction as its custody event, and every job reads it fresh: a worker
started before `storage add` or `policy set` sees the change at its next job.
`config.toml` keeps only what a process needs to start.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, func
from sqlmodel import Field, Session, SQLModel, col, select

from archive.config import Policy, RuntimeConfig, StorageSpec


class StorageSite(SQLModel, table=True):
    """One storage backend: its kind and non-secret options (credentials never come here)."""

    __tablename__ = "storage_sites"

    name: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    position: int = 0  # the order sites were added in: the policy's default order
    created_at: str = Field(max_length=32)


class ArchiveSetting(SQLModel, table=True):
    """One named setting (`policy`, `recipients`, `archive_id`) as a JSON value."""

    __tablename__ = "archive_settings"

    key: str = Field(primary_key=True, max_length=64)
    value: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    updated_at: str = Field(max_length=32)


ARCHIVE_ID = "archive_id"
POLICY = "policy"
RECIPIENTS = "recipients"


def read_config(session: Session) -> RuntimeConfig | None:
    """The current `RuntimeConfig`, or None for a catalog that has none yet (an older home)."""
    values = {row.key: row.value for row in session.exec(select(ArchiveSetting)).all()}
    if ARCHIVE_ID not in values:
        return None
    sites = session.exec(select(StorageSite).order_by(col(StorageSite.position), col(StorageSite.name))).all()
    return RuntimeConfig(
        archive_id=str(values[ARCHIVE_ID]),
        recipients=[str(r) for r in values.get(RECIPIENTS) or []],
        storage=[StorageSpec(site.name, site.kind, dict(site.options)) for site in sites],
        policy=Policy.from_dict(values.get(POLICY) or {}),
    )


def put_setting(session: Session, key: str, value: Any) -> None:
    from archive.catalog.jobs import now_stamp

    row = session.get(ArchiveSetting, key)
    if row is None:
        row = ArchiveSetting(key=key, value=value, updated_at=now_stamp())
    else:
        row.value = value
        row.updated_at = now_stamp()
    session.add(row)


def add_site(session: Session, spec: StorageSpec) -> None:
    from archive.catalog.jobs import now_stamp

    last = session.exec(select(func.max(StorageSite.position))).one()
    session.add(
        StorageSite(name=spec.name, kind=spec.kind, options=dict(spec.options),
                    position=(last or 0) + 1, created_at=now_stamp())
    )
    session.flush()


def remove_site(session: Session, name: str) -> None:
    row = session.get(StorageSite, name)
    if row is not None:
        session.delete(row)
        session.flush()
