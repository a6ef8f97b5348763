"""The `export_recipients` and `exports` tables: who bundles go to, and each export made.

A recipient is registered once by a custodian (`evidence recipients add NAME
--age KEY --kind un|court|partner`), so investigators export to it by name and
its kind fixes the rules (`archive.exports.selection`). Its name, kind and age
public key are in clear: an organisation and a public key identify no victim,
witness or file.

An export row is what the two custody events of an export (`dissemination`,
"export started", and `transfer`) need besides themselves: its purpose and
state in clear, and sealed under the catalog key the recipient's name, the
custodian's override reason and the files written (names chosen by the
exporter may say more than ids).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, LargeBinary
from sqlmodel import Field, SQLModel

from archive.catalog import sealing

RECIPIENTS_TABLE = "export_recipients"
TABLE = "exports"

STARTED = "started"
TRANSFERRED = "transferred"
FAILED = "failed"


class ExportRecipient(SQLModel, table=True):
    """A registered recipient of evidence bundles: a UN mechanism, a court, a partner organisation."""

    __tablename__ = RECIPIENTS_TABLE

    id: str = Field(primary_key=True, max_length=24)  # rcp-<16 hex>
    name: str = Field(max_length=128, unique=True, index=True)
    kind: str = Field(max_length=16)  # un | court | partner
    age_recipient: str = Field(max_length=128)  # age1…
    fingerprint: str = Field(max_length=64)  # SHA-256 (hex) of the age recipient text
    active: bool = Field(default=True)
    created_at: str = Field(max_length=32)
    created_by: str = Field(max_length=64)  # a user id
    removed_at: str | None = Field(default=None, max_length=32)


class Export(SQLModel, table=True):
    """One export: its purpose, how far it got, and the events that record it."""

    __tablename__ = TABLE

    id: str = Field(primary_key=True, max_length=24)  # exp-<16 hex>
    purpose: str = Field(max_length=16)  # un | court | partner | internal
    state: str = Field(max_length=16)  # started | transferred | failed
    actor: str = Field(max_length=64)  # a user id
    started_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    transfer_seq: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_at: str = Field(max_length=32)
    updated_at: str = Field(max_length=32)
    # Sealed {"to": recipient name | None, "override_reason": str | None, "files": [names written]}.
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    key_version: int = Field(default=0, index=True)


sealing.register(sealing.SealedTable(TABLE, "id"))
