"""The sealed tables of the catalog, and sealing a row whether or not this process is unlocked.

Why a registry: rotation of the catalog key (`archive.services.rotate`) must
re-seal every sealed row of every table and recompute the keyed lookups that
find them, without knowing what each table holds. Each module that owns a
sealed table registers it here once, at import, with its primary key column
and how to recompute the row's lookup columns from its opened fields.

Every registered table has the columns `sealed` (the fields as
`CatalogKeys.seal` returns them) and `key_version` (the catalog key version
they are sealed under; 0: *pending*, written by a locked process, sealed with
age to the archive's recipients and settled on unlock, see
`archive.services.settle`).

`Sealer` is what a writer uses: under the catalog key when this process holds
it, else a pending row (public keys only, lookups NULL). Ingest never needs a
secret, so a server that was never unlocked keeps ingesting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archive.age import Recipient
    from archive.context import Archive
    from archive.keys.catalog import CatalogKeys

PENDING = 0  # key_version of a row sealed with age by a locked process, awaiting settling

Lookups = Callable[["CatalogKeys", dict[str, Any]], dict[str, str | None]]


def _no_lookups(_keys: CatalogKeys, _fields: dict[str, Any]) -> dict[str, str | None]:
    return {}


@dataclass(frozen=True)
class SealedTable:
    """One table with sealed rows: its name, its primary key column, and its lookup columns.

    `lookups(keys, fields)` returns {column: keyed hash or None} for the row
    whose opened fields are `fields`, under `keys.current`: rotation writes
    them beside the re-sealed fields so equality searches keep finding the row.
    """

    name: str
    key: str
    lookups: Lookups = field(default=_no_lookups)
    lookup_columns: tuple[str, ...] = ()


_TABLES: dict[str, SealedTable] = {}


def register(table: SealedTable) -> SealedTable:
    """Add a sealed table (idempotent: a module imported twice registers the same table once)."""
    _TABLES[table.name] = table
    return table


def registered() -> list[SealedTable]:
    """Every sealed table, after importing the modules that own them (so none is forgotten)."""
    import archive.catalog  # noqa: F401 - the table modules register themselves when imported

    for module in ("archive.catalog.metadata", "archive.catalog.fingerprints", "archive.catalog.items",
                   "archive.catalog.users", "archive.catalog.cases", "archive.catalog.secrets",
                   "archive.records.store", "archive.records.changes", "archive.catalog.uploads"):
        try:
            __import__(module)
        except ModuleNotFoundError:
            continue  # a table module not written yet holds no sealed rows
    return [_TABLES[name] for name in sorted(_TABLES)]


class Sealer:
    """Seals rows under the catalog key, or as pending rows when this process is locked."""

    def __init__(self, keys: CatalogKeys | None, recipients: list[Recipient] | None = None) -> None:
        if keys is None and not recipients:
            raise ValueError("a locked sealer needs the archive's recipients")
        self.keys = keys
        self._recipients = recipients or []

    @property
    def locked(self) -> bool:
        return self.keys is None

    def seal(self, table: str, row_id: object, fields: dict[str, Any]) -> tuple[int, bytes]:
        """(key version, sealed bytes) for the row; version 0 (pending) when locked."""
        if self.keys is not None:
            return self.keys.seal(table, row_id, fields)
        from archive.age import encrypt_bytes
        from archive.keys.catalog import padded_json

        return PENDING, encrypt_bytes(padded_json(fields), self._recipients)  # padded as `CatalogKeys.seal` pads

    def lookup(self, purpose: str, value: str) -> str | None:
        """The keyed hash of `value` under the current version; None when locked (filled in on settling)."""
        return None if self.keys is None else self.keys.lookup(purpose, value)


def sealer_for(archive: Archive) -> Sealer:
    """The sealer of this process: the catalog key if unlocked, else pending rows to the archive's recipients."""
    from archive.catalog.secrets import pending_recipients
    from archive.services.errors import Locked

    try:
        return Sealer(archive.runtime.keys.catalog())
    except Locked:
        return Sealer(None, pending_recipients(archive))  # the access identity among them, always


def catalog_keys(archive: Archive, purpose: str) -> CatalogKeys:
    """The catalog key, or `Locked` naming what needs it (for readers of sealed fields)."""
    from archive.services.errors import Locked

    try:
        return archive.runtime.keys.catalog()
    except Locked as exc:
        raise Locked(f"{purpose} needs the catalog key: {exc}") from None


def open_row(keys: CatalogKeys, table: str, row_id: object, version: int, blob: bytes | None) -> dict[str, Any]:
    """A row's sealed fields; `Locked` for a pending row not settled yet (it opens after `evidence unlock`)."""
    from archive.services.errors import Locked

    if blob is None:
        return {}
    if version == PENDING:
        raise Locked(f"{table} row {row_id} was written while the archive was locked and is not settled yet: "
                     "it opens once a custodian runs `evidence unlock`")
    return keys.open(table, row_id, version, blob)


def catalog_keys_or_locked(sealer: Sealer, purpose: str) -> CatalogKeys:
    """The sealer's catalog key, or `Locked` naming what needs it."""
    from archive.services.errors import Locked

    if sealer.keys is None:
        raise Locked(f"{purpose} needs the catalog key: a custodian must run `evidence unlock`")
    return sealer.keys


def keys_if_unlocked(archive: Archive) -> CatalogKeys | None:
    """The catalog key when this process holds it, else None (readers that can show the clear columns)."""
    from archive.services.errors import Locked

    try:
        return archive.runtime.keys.catalog()
    except Locked:
        return None
