"""Restricted cases (compartments): incidents only a case's members may see.

An incident in a case takes the items and victims linked to it along; an
investigator outside the case sees none of them, in search, statistics and
exports alike. The case's name is sealed under the catalog key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, SQLModel

from archive.catalog import sealing

if TYPE_CHECKING:
    from archive.keys.catalog import CatalogKeys

TABLE = "cases"
LOOKUP = "case-name"


class Case(SQLModel, table=True):
    __tablename__ = TABLE

    id: str = Field(primary_key=True, max_length=24)  # case- and 16 hex digits
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # {"name": ...}
    key_version: int = Field(index=True)
    lookup: str | None = Field(default=None, index=True, max_length=64)
    created_at: str = Field(max_length=32)


class CaseMember(SQLModel, table=True):
    __tablename__ = "case_members"

    case_id: str = Field(primary_key=True, max_length=24)
    user_id: str = Field(primary_key=True, index=True, max_length=18)
    added_at: str = Field(max_length=32)


class CaseIncident(SQLModel, table=True):
    __tablename__ = "case_incidents"

    case_id: str = Field(primary_key=True, max_length=24)
    incident_id: str = Field(primary_key=True, index=True, max_length=24)
    added_at: str = Field(max_length=32)


def _lookups(keys: CatalogKeys, fields: dict[str, Any]) -> dict[str, str | None]:
    return {"lookup": keys.lookup(LOOKUP, str(fields["name"]))}


sealing.register(sealing.SealedTable(TABLE, "id", _lookups, ("lookup",)))  # rotation re-seals case names
