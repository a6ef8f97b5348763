"""The `uploads` table: uploads in progress (tus, WebDAV) and how each one ended.

A catalog may be seized; it must not say what a contributor is sending. So
the row keeps in clear only what the server needs without the client: who
began it (`owner`, a random user id, and `token_id`), the SHA-256 of its
secret (`secret_digest`: never the secret), its `state`, and its stamps. The
declared `length` and the `offset` reached are in clear only while the upload
is open (the server checks every PATCH against them) and are wiped when it
ends. Everything the contributor said (`fields`: file name, type, source,
channel, note, incident, declared SHA-256) and the outcome (`result`: item,
SHA-256, size, received, event, status, reason, receipt) are sealed under a
key derived from the upload's secret (`ingest.upload_store.field_key`), which
only the client holds: readable only when the client asks again.

Columns other helpers read (receipts: `GET /v1/receipts/{upload_id}`):
- `id` (the upload id), `owner` (user id), `token_id`, `state`
  (open | completing | done | refused | terminated | expired);
- `item_id`, `event_seq`: the arrival's item and its ingestion event (clear:
  the custody log names both with the owner as actor already), set when done;
- `sealed` / `key_version`: a registered sealed table (`archive.catalog.sealing`)
  whose fields are `{"filename": …, "receipt": <signed note text> | None}`,
  opened with `open_upload_fields` (catalog key, or the access identity for a
  row sealed pending by a locked server); `stored_receipt(archive, upload_id)`
  -> (owner, receipt note | None) | None reads it. `refusal`: a stable reason code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Column, LargeBinary
from sqlmodel import Field, SQLModel

from archive.catalog import sealing

if TYPE_CHECKING:
    from archive.context import Archive

TABLE = "uploads"

OPEN = "open"
COMPLETING = "completing"  # every byte is in; the ingest runs (or was cut off: the next request finishes it)
DONE = "done"
REFUSED = "refused"
TERMINATED = "terminated"
EXPIRED = "expired"
ACTIVE = (OPEN, COMPLETING)
ENDED = (DONE, REFUSED, TERMINATED, EXPIRED)


class Upload(SQLModel, table=True):
    """One upload, from creation to its end (see the module docstring for what is sealed)."""

    __tablename__ = TABLE

    id: str = Field(primary_key=True, max_length=40)
    owner: str = Field(index=True, max_length=18)
    token_id: str = Field(index=True, max_length=24)
    secret_digest: str = Field(max_length=64)
    state: str = Field(index=True, max_length=16)
    length: int | None = Field(default=None, sa_column=Column(BigInteger))
    offset: int | None = Field(default=None, sa_column=Column(BigInteger))
    fields: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # sealed under the secret's key
    result: bytes | None = Field(default=None, sa_column=Column(LargeBinary))  # sealed under the secret's key
    refusal: str | None = Field(default=None, max_length=32)
    item_id: str | None = Field(default=None, max_length=36)
    event_seq: int | None = Field(default=None, sa_column=Column(BigInteger))
    claim: str | None = Field(default=None, max_length=32)  # the completion that holds the row
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # catalog-sealed {"filename", "receipt"}
    key_version: int = Field(index=True)
    created_at: str = Field(max_length=32)
    updated_at: str = Field(max_length=32)
    expires_at: str = Field(index=True, max_length=32)
    completed_at: str | None = Field(default=None, max_length=32)


sealing.register(sealing.SealedTable(TABLE, "id"))


def seal_upload_fields(archive: Archive, upload_id: str, fields: dict[str, Any]) -> tuple[int, bytes]:
    """(key version, blob) of the catalog-sealed part: the catalog key, or pending while locked."""
    from archive.catalog.secrets import seal_row, sealer

    return seal_row(sealer(archive), TABLE, upload_id, fields)


def open_upload_fields(archive: Archive, row: Upload) -> dict[str, Any]:
    """The catalog-sealed part of a row (`Locked` when this process cannot open it)."""
    from archive.catalog.secrets import open_row, opener

    return open_row(opener(archive), TABLE, row.id, row.key_version, row.sealed) or {}


def stored_receipt(archive: Archive, upload_id: str) -> tuple[str, str | None] | None:
    """(owner's user id, the signed receipt note, None until done) of an upload; None for an unknown id.

    The note is the one the completing response carried. Opening it needs the
    catalog key (or the access identity for a row a locked server sealed
    pending): `Locked` otherwise.
    """
    from sqlmodel import Session

    from archive.db import read_only

    with Session(read_only(archive.engine)) as session:
        row = session.get(Upload, upload_id)
    if row is None:
        return None
    if row.state != DONE:
        return row.owner, None
    receipt = open_upload_fields(archive, row).get("receipt")
    return row.owner, (str(receipt) if receipt else None)
