"""Looking at items and reading originals back: list, show, get.

Every reader takes the caller's `role` (the CLI acts as a custodian):

- custodians see every item, with every field this process can open;
- investigators see the same fields, but not an item a restricted case hides
  from them (`archive.records.compartments`): it is not found, with the same
  message as an id nobody ever ingested, and is missing from lists;
- auditors get the non-personal view (`AuditedItem`, `AuditedRecord`): the
  id, status, the day it was received, where its copies are and in what state,
  and the custody events' sequence numbers; never a hash, a size, a name,
  provenance, metadata, places or notes, and never the original;
- contributors read nothing back (`Forbidden`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from archive.db import read_only
from archive.roles import Role, sees_personal
from archive.services.errors import Ambiguous, Forbidden, Invalid, NotFound, ServiceError

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.catalog.items import Item
    from archive.context import Archive
    from archive.services.originals import Original

MIN_PREFIX = 8


def not_found(ref: str) -> NotFound:
    """The error for an item nobody may see here: the one an unknown reference gets, word for word."""
    return NotFound(f"no item {ref.strip().lower()!r}")


def resolve_item(session: Session, ref: str, hidden: frozenset[str] = frozenset()) -> Item:
    """An item by its id or a unique prefix of at least 8 characters, as if the `hidden` ones did not exist
    (a prefix they share with a visible item is not ambiguous, one only they match is not found)."""
    from sqlmodel import col, select

    from archive.catalog.items import Item
    from archive.records.compartments import excluding

    ref = ref.strip().lower()
    item = session.get(Item, ref)
    if item is not None and item.id not in hidden:
        return item
    if len(ref) < MIN_PREFIX:
        raise ServiceError(f"item reference {ref!r} is too short: give at least {MIN_PREFIX} characters")
    if not all(c in "0123456789abcdef-" for c in ref):
        raise not_found(ref)
    matches = session.exec(select(Item).where(col(Item.id).startswith(ref), excluding(col(Item.id), hidden))
                           .limit(2)).all()
    if not matches:
        raise not_found(ref)
    if len(matches) > 1:
        raise Ambiguous(f"{ref!r} matches more than one item: give more characters")
    return matches[0]


LOCKED_NOTE = "sealed: the catalog key is not unlocked here (`evidence unlock`)"


@dataclass
class ItemSummary:
    """One line of `list`: what the item is, never who sent it. SHA-256 and size need the catalog key."""

    id: str
    sha256: str | None
    size: int | None
    status: str
    duplicate: bool
    size_bucket: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StoredCopy:
    """One stored object of an item (an original, or a manifest or addendum beside it)."""

    backend: str
    object: str
    state: str
    version_id: str | None = None
    ciphertext_sha256: str | None = None
    recipients: list[str] | None = None
    verified_at: str | None = None


@dataclass
class Arrival:
    """One time the bytes were handed to the archive, and by whom."""

    source: str | None
    note: str | None
    original_name: str | None
    declared_type: str | None
    received_at: str
    actor: str  # the user id (or "archive")
    actor_name: str | None = None  # the name behind it, when this process can open it
    arrival: int | None = None  # the provenance row's id (`evidence provenance ITEM --arrival N`)
    channel: str | None = None  # how it came: upload, email, messaging, social_media, field_researcher, legacy_disk
    source_id: str | None = None  # the source record that handed it over
    source_ref: str | None = None  # that source's ref


@dataclass
class ItemRecord:
    """Everything the catalog knows about one item."""

    id: str
    sha256: str | None  # None: sealed, and this process cannot open it (see `locked`)
    size: int | None
    size_bucket: str | None
    media_type: str | None
    status: str
    created_at: str
    duplicate: bool
    replicas: list[StoredCopy]
    manifests: list[StoredCopy]
    arrivals: list[StoredCopy]  # the sealed addenda of later arrivals, beside each original
    provenance: list[Arrival]
    metadata: dict[str, Any] | None  # the normalized fields; None when none could be read
    errors: list[dict[str, Any]]
    candidates: list[dict[str, Any]]  # near-duplicates for an investigator to confirm
    locked: list[str] = field(default_factory=list)  # what is sealed and could not be opened here, and why
    merged_into: str | None = None  # status `merged`: the item that holds these bytes and all that came with them

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("manifests", "arrivals"):  # side objects: where and in what state, no more
            data[key] = [{"backend": c["backend"], "object": c["object"], "state": c["state"]} for c in data[key]]
        return data


@dataclass
class AuditedItem:
    """One line of `list` for an auditor: what the custody log says of an item, nothing personal."""

    id: str
    status: str
    received_day: str  # the day it was first received (UTC), no finer

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AuditedRecord:
    """One item for an auditor: its states, where its copies are, and the custody events that name it.

    Never a hash, a size, a media type, a name, provenance, metadata, places or
    notes: only what an auditor needs to check the log against the catalog.
    """

    id: str
    status: str
    received_day: str
    replicas: list[dict[str, Any]]  # {"backend", "role", "state", "verified_day"}
    events: list[int]  # the sequence numbers of the custody events that name the item

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _readers(role: Role, doing: str) -> None:
    """`Forbidden` for a role that reads nothing of the catalog (contributors)."""
    if not sees_personal(role) and role != Role.AUDITOR:
        raise Forbidden(f"{doing} needs the custodian, investigator or auditor role, not {role}")


def bad_cursor(after: str) -> Invalid:
    """The error for an `after` that is no entry of the list the caller sees (unknown, merged or hidden alike)."""
    return Invalid(f"after: {after[:80]!r} is not an entry of this list (give the id of the last one seen)")


def keyset_after(conn: Any, after: str | None, hidden: frozenset[str]) -> Any:
    """The WHERE clause "listed after item `after`" in the lists' order (received, then id); true for None.

    `bad_cursor` for an id that is not a listed item the caller may see: a hidden item's id is refused with
    the same words as one never ingested, so a cursor tells nothing of what is hidden.
    """
    from sqlalchemy import and_, or_, select, true

    if after is None:
        return true()
    found = conn.execute(select(ITEMS.c.created_at, ITEMS.c.status).where(ITEMS.c.id == after)).first()
    if found is None or found[1] == "merged" or after in hidden:
        raise bad_cursor(after)
    created = found[0]
    return or_(ITEMS.c.created_at > created, and_(ITEMS.c.created_at == created, ITEMS.c.id > after))


def _items_table() -> Any:
    """The columns of `items` the lists read, as a lightweight Core table (no ORM, no table classes)."""
    from sqlalchemy import LargeBinary, column, table

    return table("items", column("id"), column("sealed", LargeBinary), column("key_version"),
                 column("size_bucket"), column("status"), column("created_at"))


ITEMS = _items_table()


@overload
def list_items(archive: Archive, *, role: Literal[Role.CUSTODIAN, Role.INVESTIGATOR] = ...,
               limit: int | None = None, after: str | None = None) -> list[ItemSummary]: ...
@overload
def list_items(archive: Archive, *, role: Role, limit: int | None = None,
               after: str | None = None) -> list[ItemSummary] | list[AuditedItem]: ...


def list_items(archive: Archive, *, role: Role = Role.CUSTODIAN, limit: int | None = None,
               after: str | None = None) -> list[ItemSummary] | list[AuditedItem]:
    """Every item, oldest first: `ItemSummary` each, or `AuditedItem` for an auditor.

    `limit` and `after` page the list in SQL (keyset: at most `limit` items
    listed after the item `after`, see `keyset_after`), so a page of a list of
    100,000 items reads and opens only its own rows; ask for `limit + 1` to
    learn whether another page follows. Without them, every item.

    One SQL query through SQLAlchemy Core: listing needs neither the ORM, pydantic
    nor the table classes, whose imports would cost `evidence list` half a second.
    Each row's SHA-256 and size are opened with the catalog key; without it (or
    for a row written while locked and not settled yet) they are None and the
    size class stands in. Items merged into another on settlement are not listed,
    nor those a restricted case hides from the caller: taken out in SQL, before
    the page is cut, so a page is never short because of them.
    """
    from sqlalchemy import literal_column, select

    from archive.records.compartments import excluding, hidden_in
    from archive.services.errors import Locked

    _readers(role, "listing items")
    if limit is not None and limit < 1:
        raise Invalid("limit: give at least 1")
    arrivals: Any = literal_column("(SELECT count(*) FROM provenance p WHERE p.item_id = items.id)")
    keys = None
    if sees_personal(role):
        try:
            keys = archive.runtime.keys.catalog()
        except Locked:
            keys = None
    with read_only(archive.engine).connect() as conn:
        hidden = hidden_in(archive, conn, role).items
        query = (select(ITEMS.c.id, ITEMS.c.sealed, ITEMS.c.key_version, ITEMS.c.size_bucket, ITEMS.c.status,
                        arrivals, ITEMS.c.created_at)
                 .where(ITEMS.c.status != "merged", excluding(ITEMS.c.id, hidden), keyset_after(conn, after, hidden))
                 .order_by(ITEMS.c.created_at, ITEMS.c.id))
        rows = conn.execute(query.limit(limit) if limit is not None else query).all()
    if role == Role.AUDITOR:
        return [AuditedItem(str(r[0]), str(r[4]), str(r[6])[:10]) for r in rows]
    held = set(keys.versions) if keys is not None else set()
    out = []
    for id_, sealed, version, bucket, status, arrivals_, _created in rows:
        sha256 = size = None
        if keys is not None and version in held and sealed is not None:
            fields = keys.open("items", id_, version, sealed)
            sha256, size = str(fields["sha256"]), int(fields["size"])
        out.append(ItemSummary(str(id_), sha256, size, str(status), int(arrivals_) > 1, bucket))
    return out


def count_items(archive: Archive, *, role: Role = Role.CUSTODIAN) -> int:
    """How many items `list_items` lists for the caller (one SQL count, nothing opened)."""
    from sqlalchemy import func, select

    from archive.records.compartments import excluding, hidden_in

    _readers(role, "counting items")
    with read_only(archive.engine).connect() as conn:
        hidden = hidden_in(archive, conn, role).items
        return int(conn.execute(select(func.count()).select_from(ITEMS)
                                .where(ITEMS.c.status != "merged", excluding(ITEMS.c.id, hidden))).scalar_one())


def _audited(session: Session, item: Item) -> AuditedRecord:
    from sqlmodel import col, select

    from archive.catalog.events import Event
    from archive.catalog.items import Replica

    replicas = session.exec(select(Replica).where(Replica.item_id == item.id).order_by(col(Replica.id))).all()
    seqs = session.exec(select(Event.seq).where(Event.item_id == item.id).order_by(col(Event.seq))).all()
    return AuditedRecord(
        id=item.id, status=item.status, received_day=item.created_at[:10],
        replicas=[{"backend": r.backend, "role": r.role, "state": r.state,
                   "verified_day": r.verified_at[:10] if r.verified_at else None} for r in replicas],
        events=[int(s) for s in seqs])


def visible_item(session: Session, archive: Archive, ref: str, role: Role) -> Item:
    """The item `ref` names, as the caller may see it: one a restricted case hides is not found (the same
    message as an unknown reference), and so is an item merged into a hidden one. Contributors: `Forbidden`."""
    from archive.catalog.items import ItemStatus
    from archive.catalog.secrets import item_secret
    from archive.records.compartments import hidden_in

    _readers(role, "reading an item")
    hidden = hidden_in(archive, session, role).items
    item = resolve_item(session, ref, hidden)
    if hidden and item.status == ItemStatus.MERGED:
        try:
            holder = item_secret(archive, item).merged_into
        except Exception:  # noqa: BLE001 - locked: the holder cannot be told, so neither can this item
            raise not_found(ref) from None
        if holder in hidden:
            raise not_found(ref)
    return item


@overload
def show_item(archive: Archive, ref: str, *, role: Literal[Role.CUSTODIAN, Role.INVESTIGATOR] = ...) -> ItemRecord: ...
@overload
def show_item(archive: Archive, ref: str, *, role: Role) -> ItemRecord | AuditedRecord: ...


def show_item(archive: Archive, ref: str, *, role: Role = Role.CUSTODIAN) -> ItemRecord | AuditedRecord:
    """Everything the catalog knows about one item (`ItemRecord`) that the caller may see; for an auditor
    the non-personal `AuditedRecord`. A hidden item is not found (see `visible_item`)."""
    from sqlmodel import Session, col, select

    from archive.catalog.items import Provenance, Replica
    from archive.catalog.metadata import ItemMetadata, errors_of, normalized_view
    from archive.catalog.sealing import keys_if_unlocked
    from archive.catalog.secrets import item_secret, opener, provenance_fields
    from archive.catalog.users import name_of
    from archive.keys.catalog import CatalogKeyError
    from archive.objects import Role as ObjectRole
    from archive.records.compartments import hidden_in
    from archive.services.errors import Locked

    keys = opener(archive)
    locked: list[str] = []
    sha256: str | None
    size: int | None
    merged_into: str | None
    with Session(read_only(archive.engine)) as session:
        item = visible_item(session, archive, ref, role)
        if role == Role.AUDITOR:
            return _audited(session, item)
        hidden = hidden_in(archive, session, role).items
        try:
            secret = item_secret(keys, item)
            sha256, size, merged_into = secret.sha256, secret.size, secret.merged_into
        except (Locked, CatalogKeyError) as exc:
            sha256 = size = merged_into = None
            locked.append(f"sha256, size: {exc}")
        replicas = session.exec(select(Replica).where(Replica.item_id == item.id).order_by(col(Replica.id))).all()
        provenance = session.exec(
            select(Provenance).where(Provenance.item_id == item.id).order_by(col(Provenance.id))
        ).all()
        extracted = session.get(ItemMetadata, item.id)

        def copies(role: str) -> list[StoredCopy]:
            return [
                StoredCopy(r.backend, r.object_name, r.state, r.version_id, r.ciphertext_sha256,
                           list(r.recipients), r.verified_at)
                for r in replicas
                if r.role == role
            ]

        arrivals = []
        for p in provenance:
            try:
                opened = provenance_fields(keys, p)
                name = name_of(session, keys, p.actor)
            except (Locked, CatalogKeyError) as exc:
                opened, name = {}, None
                if not any(entry.startswith("provenance") for entry in locked):
                    locked.append(f"provenance (source, note, original name, declared type): {exc}")
            arrivals.append(Arrival(opened.get("source"), opened.get("note"), opened.get("original_name"),
                                    opened.get("declared_type"), p.received_at, p.actor, name, p.id, p.channel,
                                    p.source_id, _source_ref(session, p.source_id)))

        return ItemRecord(
            id=item.id,
            sha256=sha256,
            size=size,
            size_bucket=item.size_bucket,
            media_type=item.media_type,
            status=item.status,
            created_at=item.created_at,
            duplicate=len(provenance) > 1,
            replicas=copies(ObjectRole.ORIGINAL),
            manifests=copies(ObjectRole.MANIFEST),
            arrivals=copies(ObjectRole.ARRIVAL),
            provenance=arrivals,
            metadata=normalized_view(extracted, keys_if_unlocked(archive)),
            errors=errors_of(extracted, keys_if_unlocked(archive)),
            candidates=[c for c in _candidates(session, item.id) if c["id"] not in hidden],
            locked=locked,
            merged_into=merged_into,
        )


def _source_ref(session: Session, source_id: str | None) -> str | None:
    """The ref of an arrival's source record (a clear column: shown while locked too)."""
    from archive.records.tables import Source

    row = session.get(Source, source_id) if source_id else None
    return row.ref if row is not None else None


def _candidates(session: Session, item_id: str) -> list[dict[str, Any]]:
    from archive.catalog.fingerprints import candidates_for

    return candidates_for(session, item_id)


@dataclass
class Retrieved:
    """An original written out after its SHA-256 matched."""

    id: str
    sha256: str
    size: int
    backend: str
    failures: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def get_item(
    archive: Archive,
    ref: str,
    output: Path,
    identity_path: Path | None = None,
    *,
    overwrite: bool = False,
    role: Role = Role.CUSTODIAN,
) -> Retrieved:
    """Decrypt an original to `output`, refusing unless its SHA-256 matches the custody log's commitment.

    Copies are tried in turn; the plaintext goes to a temporary file beside
    `output` and is renamed only after the hash matched, so a bad copy never
    leaves a wrong file under the requested name. Reading is a custody event.
    Custodians and investigators only; a hidden item is not found.
    """
    output = output.absolute()
    if not output.parent.is_dir():
        raise ServiceError(f"there is no folder {output.parent} to write the original into")
    if os.path.lexists(output) and not overwrite:  # a dangling link too: never replaced unasked
        raise ServiceError(f"{output} already exists; nothing was overwritten")
    original = open_original_for(archive, ref, role=role, identity_path=identity_path)
    for copy in original.copies:
        fd, tmp_name = tempfile.mkstemp(prefix=".evidence-get-", dir=output.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in copy.chunks():
                    out.write(chunk)
            os.replace(tmp, output)
        except Exception as exc:  # noqa: BLE001 - any failure of one copy: try the next
            tmp.unlink(missing_ok=True)
            original.failures.append(f"{copy.replica.backend}: {exc}")
            copy.record_bad(exc)
            continue
        except BaseException:  # Ctrl-C, SIGTERM: leave no partial plaintext behind
            tmp.unlink(missing_ok=True)
            raise
        # What was computed from the bytes written and checked against the log's commitment, not the catalog's.
        return Retrieved(original.item.id, copy.sha256, copy.size, copy.replica.backend, original.failures)
    raise original.refuse()


def open_original_for(archive: Archive, ref: str, *, role: Role, identity_path: Path | None = None,
                      purpose: str = "decrypt original") -> Original:
    """`archive.services.originals.open_original` for a caller: custodians and investigators only
    (`Forbidden` otherwise), an item a restricted case hides from the caller not found."""
    from sqlmodel import Session

    from archive.services.originals import open_original

    if not sees_personal(role):
        raise Forbidden(f"reading an original needs the custodian or investigator role, not {role}")
    with Session(read_only(archive.engine)) as session:
        item_id = visible_item(session, archive, ref, role).id
    return open_original(archive, item_id, identity_path, purpose=purpose)
