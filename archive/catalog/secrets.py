"""Item and provenance secrets: the one way in and out of their sealed fields.

A seized catalog must not confirm that the archive holds a known file, nor say
who sent it. So an item's SHA-256, exact size and commitment salt, and an
arrival's source, note, original name and declared type, live only sealed
(`archive.keys.catalog`), bound to their table and row id. Deduplication
finds an item by a keyed hash of its SHA-256 (`lookup`), never the hash.

A process without the catalog key (locked: an ingest-only server) still keeps
evidence: it seals rows *pending* (key version 0) with age to the archive's
recipients, public keys only, and leaves their lookups empty.
`archive.services.settle` re-seals them under the catalog key once unlocked.
Reading a pending row needs the access identity.

Rows that predate sealing (an archive migrated by 0007) keep their plaintext
in `legacy_items` / `legacy_provenance` until `archive.services.legacy` seals
them; readers here fall back to those tables meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.orm import object_session
from sqlmodel import col, select

from archive.catalog import sealing
from archive.catalog.items import Item, Provenance
from archive.keys.catalog import CatalogKeyError, CatalogKeys, padded_json

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlmodel import Session

    from archive.age import Identity, Recipient
    from archive.context import Archive

__all__ = [
    "CatalogKeys", "ItemSecret", "Opener", "Pending", "Sealer", "find_item_by_sha256", "item_secret",
    "new_item", "new_provenance", "open_row", "opener", "plain", "provenance_fields", "seal_row", "sealer",
    "size_bucket", "bucket_floor",
]

ITEMS = "items"
PROVENANCE = "provenance"
SHA256_LOOKUP = "sha256"
PENDING = 0  # the key version of a row sealed with age by a locked process
PENDING_FORMAT = "evidence-pending/1"
PROVENANCE_FIELDS = ("source", "note", "original_name", "declared_type")
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


@dataclass(frozen=True)
class ItemSecret:
    """What an item's row holds sealed."""

    sha256: str
    size: int
    salt: str | None  # the commitment's salt (None only for an item whose commitment is not added yet)
    merged_into: str | None = None  # settlement found these bytes were that item's (status `merged`)


@dataclass
class Pending:
    """Sealing for a locked process: age to the archive's recipients, which it holds as public keys only."""

    recipients: list[Recipient]


Sealer = CatalogKeys | Pending | sealing.Sealer  # the last: archive.catalog.sealing's, accepted alike


def plain(keys: Sealer) -> CatalogKeys | Pending:
    """`sealing.Sealer` as the catalog key or pending sealing (the two modules agree on rows)."""
    if isinstance(keys, sealing.Sealer):
        return keys.keys if keys.keys is not None else Pending(list(keys._recipients))
    return keys


@dataclass
class Opener:
    """What this process can open: rows under the catalog key, and pending rows with the access identity.

    Either part may be missing; `open` raises `Locked` for a row it cannot open.
    The identities are asked for only when a pending row is met.
    """

    keys: CatalogKeys | None
    identities: Callable[[], list[Identity]] = field(default=lambda: [])

    def open(self, table: str, row_id: object, version: int, blob: bytes) -> dict[str, Any]:
        from archive.services.errors import Locked

        if version == PENDING:
            return _open_pending(self.identities(), table, row_id, blob)
        if self.keys is None:
            raise Locked("the catalog key is not unlocked here: a custodian must run `evidence unlock`")
        return self.keys.open(table, row_id, version, blob)


def size_bucket(size: int) -> str:
    """The power-of-two class of a size ("1-2 MiB"): enough for statistics, too coarse to name a file."""
    if size <= 0:
        return "0 B"
    low = 1 << (size.bit_length() - 1)

    def unit(n: int) -> tuple[int, str]:
        i = 0
        while n >= 1024 and i < len(_UNITS) - 1 and n % 1024 == 0:
            n //= 1024
            i += 1
        return n, _UNITS[i]

    (a, ua), (b, ub) = unit(low), unit(low * 2)
    return f"{a}-{b} {ua}" if ua == ub else f"{a} {ua}-{b} {ub}"


def bucket_floor(label: str | None) -> int:
    """The lower bound in bytes of a `size_bucket` label (0 when unknown)."""
    if not label:
        return 0
    low = label.split("-", 1)[0].strip()
    number, _, unit = low.partition(" ")
    unit = unit or label.rsplit(" ", 1)[-1]
    try:
        return int(number) * 1024 ** _UNITS.index(unit)
    except ValueError:
        return 0


# --- sealing and opening one row -------------------------------------------------------------

def sealer(archive: Archive) -> Sealer:
    """The catalog key when this process holds it, else pending sealing to the archive's recipients."""
    from archive.services.errors import Locked

    try:
        return archive.runtime.keys.catalog()
    except Locked:
        return Pending(pending_recipients(archive))


def pending_recipients(archive: Archive) -> list[Recipient]:
    """Who a pending row is sealed to: the archive's recipients and, whatever they say, the access identity.

    Settlement opens pending rows with the access identity; a row sealed
    without it (recipients edited, or an archive older than the identity)
    could be settled only with the custodian's, offline.
    """
    from archive.age import Recipient

    recipients = list(archive.recipients())
    access = archive.runtime.keys.access_recipient()
    if access and access not in {str(r) for r in recipients}:
        recipients.append(Recipient.parse(access))
    return recipients


def opener(archive: Archive) -> Opener:
    """Everything this process can open rows with (see `Opener`)."""
    from archive.services.errors import Locked

    try:
        keys: CatalogKeys | None = archive.runtime.keys.catalog()
    except Locked:
        keys = None
    return Opener(keys, lambda: access_identities(archive))


def access_identities(archive: Archive) -> list[Identity]:
    """The identities that open pending rows: the access identity (`Locked` when not unlocked here)."""
    ring: Any = archive.runtime.keys
    if hasattr(ring, "access_identities"):
        return list(ring.access_identities())
    from archive.services.originals import identities_at  # before the access identity existed

    return identities_at(archive, None)


def seal_row(keys: Sealer, table: str, row_id: object, fields: dict[str, Any]) -> tuple[int, bytes]:
    """(key version, sealed blob) of a row's secret fields; version 0 when sealed pending."""
    keys = plain(keys)
    if isinstance(keys, CatalogKeys):
        return keys.seal(table, row_id, fields)
    from archive.age import encrypt_bytes

    document = {"format": PENDING_FORMAT, "table": table, "id": str(row_id), "fields": fields}
    return PENDING, encrypt_bytes(padded_json(document), keys.recipients)  # padded as `CatalogKeys.seal` pads


def _open_pending(identities: list[Identity], table: str, row_id: object, blob: bytes) -> dict[str, Any]:
    from archive.age import AgeError, decrypt_bytes
    from archive.services.errors import Locked

    try:
        document = json.loads(decrypt_bytes(bytes(blob), identities))
    except (AgeError, ValueError) as exc:
        # Locked, not an internal error: the row waits for an identity that opens it (the custodian's).
        raise Locked(f"{table} row {row_id} was written while locked and the access identity does not open it "
                     f"({type(exc).__name__}): a custodian settles it with `evidence keys settle --identity "
                     "FILE` (the custodian identity)") from None
    if isinstance(document, dict) and "format" not in document:
        return document  # the bare fields, as `sealing.Sealer` writes them (no row binding inside)
    # age authenticates no sender: the row binding is checked here, as the catalog key's AAD would.
    if (not isinstance(document, dict) or document.get("format") != PENDING_FORMAT
            or document.get("table") != table or document.get("id") != str(row_id)
            or not isinstance(document.get("fields"), dict)):
        raise CatalogKeyError(f"pending {table} row {row_id} is not this row's: moved or forged")
    return dict(document["fields"])


def _as_opener(keys: Archive | Opener | CatalogKeys | Pending | None) -> Opener:
    if isinstance(keys, Opener):
        return keys
    if isinstance(keys, CatalogKeys):
        return Opener(keys)
    if keys is None or isinstance(keys, Pending):
        return Opener(None)
    return opener(keys)


def open_row(keys: Archive | Opener | CatalogKeys | Pending | None, table: str, row_id: object,
             version: int | None, blob: bytes | None) -> dict[str, Any] | None:
    """A row's sealed fields; None for a legacy row not sealed yet. `Locked` when this process cannot open it."""
    if version is None or blob is None:
        return None
    return _as_opener(keys).open(table, row_id, version, blob)


# --- items ---------------------------------------------------------------------------------

def new_item(keys: Sealer, *, id: str, sha256: str, size: int, salt: str | None, media_type: str | None,
             status: str, created_at: str) -> Item:
    """A new item row: its secrets sealed, its lookup filled (empty when pending), its size bucketed."""
    keys = plain(keys)
    version, blob = seal_row(keys, ITEMS, id, {"sha256": sha256, "size": size, "salt": salt})
    lookup = keys.lookup(SHA256_LOOKUP, sha256) if isinstance(keys, CatalogKeys) else None
    return Item(id=id, sealed=blob, key_version=version, lookup=lookup, size_bucket=size_bucket(size),
                media_type=media_type, status=status, created_at=created_at)


def item_secret(keys: Archive | Opener | CatalogKeys | Pending | None, item: Item) -> ItemSecret:
    """An item's SHA-256, size and salt. `Locked` when this process cannot open the row."""
    fields = open_row(keys, ITEMS, item.id, item.key_version, item.sealed)
    if fields is None:
        fields = _legacy(item, "SELECT sha256, size FROM legacy_items WHERE id = :id", ("sha256", "size"))
    return ItemSecret(sha256=str(fields["sha256"]), size=int(fields["size"]),
                      salt=None if fields.get("salt") is None else str(fields["salt"]),
                      merged_into=None if fields.get("merged_into") is None else str(fields["merged_into"]))


def find_item_by_sha256(session: Session, keys: CatalogKeys, sha256: str) -> Item | None:
    """The item holding these bytes, by keyed hash under every held key version (rotation finds either)."""
    found = session.exec(select(Item).where(col(Item.lookup).in_(keys.lookups(SHA256_LOOKUP, sha256)))).first()
    if found is not None or not has_legacy(session, "legacy_items"):
        return found
    legacy = session.execute(text("SELECT id FROM legacy_items WHERE sha256 = :h"), {"h": sha256}).first()
    return None if legacy is None else session.get(Item, legacy[0])


# --- provenance ----------------------------------------------------------------------------

def new_provenance(keys: Sealer, *, item_id: str, source: str | None, note: str | None,
                   original_name: str | None, declared_type: str | None, received_at: str,
                   actor: str) -> Provenance:
    """A new arrival row. Its fields are sealed bound to its id, known only once inserted (see `_seal_inserted`)."""
    keys = plain(keys)
    row = Provenance(item_id=item_id, received_at=received_at, actor=actor)
    fields = {"source": source, "note": note, "original_name": original_name, "declared_type": declared_type}
    object.__setattr__(row, "_evidence_seal", (keys, fields))
    return row


@event.listens_for(Provenance, "after_insert")
def _seal_inserted(_mapper: Any, connection: Connection, target: Provenance) -> None:
    """Seal a new arrival's fields under its fresh id, in the same transaction as its insert."""
    from sqlalchemy.orm.attributes import set_committed_value

    pending = target.__dict__.pop("_evidence_seal", None)
    if pending is None:
        return
    keys, fields = pending
    if target.actor:
        from archive.catalog.users import write_minted

        write_minted(connection, target.actor)  # a locked process's id: its users row commits with it
    version, blob = seal_row(keys, PROVENANCE, target.id, fields)
    connection.execute(text("UPDATE provenance SET sealed = :s, key_version = :v WHERE id = :id"),
                       {"s": blob, "v": version, "id": target.id})
    set_committed_value(target, "sealed", blob)
    set_committed_value(target, "key_version", version)


def provenance_fields(keys: Archive | Opener | CatalogKeys | Pending | None, row: Provenance) -> dict[str, Any]:
    """One arrival as `archive.objects.provenance_fields` shapes it (actor: the user id). `Locked` if unopenable."""
    fields = open_row(keys, PROVENANCE, row.id, row.key_version, row.sealed)
    if fields is None:
        fields = _legacy(row, "SELECT source, note, original_name, declared_type FROM legacy_provenance "
                              "WHERE id = :id", PROVENANCE_FIELDS)
    return {**{name: fields.get(name) for name in PROVENANCE_FIELDS},
            "received_at": row.received_at, "actor": row.actor}


# --- legacy rows ---------------------------------------------------------------------------

_NO_LEGACY: set[tuple[str, str]] = set()  # (catalog URL, table) seen without legacy rows: they never return


def has_legacy(session: Session, table: str) -> bool:
    """Whether a legacy plaintext table still exists (looked up once per process after it is gone)."""
    from sqlalchemy import inspect

    bind = session.get_bind()
    key = (str(bind.engine.url), table)
    if key in _NO_LEGACY:
        return False
    held = inspect(session.connection()).has_table(table)
    if not held:
        _NO_LEGACY.add(key)
    return held


def _legacy(row: Item | Provenance, query: str, names: tuple[str, ...]) -> dict[str, Any]:
    session = object_session(row)
    table = "legacy_items" if isinstance(row, Item) else "legacy_provenance"
    found = None
    if session is not None and has_legacy(session, table):  # type: ignore[arg-type]
        found = session.execute(text(query), {"id": row.id}).first()
    if found is None:
        raise CatalogKeyError(f"{table.removeprefix('legacy_')} row {row.id} holds no sealed fields")
    return dict(zip(names, found, strict=True))


# --- the registry rotation and settlement walk -------------------------------------------------

def _item_lookups(keys: CatalogKeys, fields: dict[str, Any]) -> dict[str, str | None]:
    if fields.get("merged_into"):  # the item holding the same bytes is the one a lookup finds
        return {"lookup": None}
    return {"lookup": keys.lookup(SHA256_LOOKUP, str(fields["sha256"]))}


sealing.register(sealing.SealedTable(ITEMS, "id", _item_lookups, ("lookup",)))
sealing.register(sealing.SealedTable(PROVENANCE, "id"))
