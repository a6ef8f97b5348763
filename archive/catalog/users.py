"""Users: the random ids that events and provenance name instead of people.

A custody log is handed to outsiders and a catalog may be seized; neither may
say who handled the evidence. Events and provenance therefore carry a user id
(`u-` and 16 random hex digits); the name behind it is sealed here under the
catalog key, and found again by a keyed hash of the name. A process without
the catalog key (locked) cannot compute that hash, so it writes a *pending*
row sealed with age to the archive's recipients; settlement
(`archive.services.settle`) seals it properly. A name used by two locked
processes may thus get two ids: both stay valid, and `resolve` keeps using
the oldest.

A locked process cannot find a name's id, so each would get a new one; its
row is therefore *minted* (`mint`: the id chosen and the row sealed, in
memory) and written only in the transaction that first records the id
(`write_minted`, called by `append_event` and by a new arrival's insert), or
by `Archive.actor` when it is read outside any transaction. A command that
only reads (`status`, `list`, `show` while locked) records nobody and so
writes no users row; and the id is still known before any write transaction,
none having to be opened for it (on SQLite that would wait for the lock the
caller holds).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, LargeBinary, text
from sqlmodel import Field, SQLModel, col, select

from archive.catalog import sealing

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.catalog.secrets import Opener, Sealer
    from archive.context import Runtime
    from archive.keys.catalog import CatalogKeys

TABLE = "users"
LOOKUP = "user-name"
SYSTEM = "archive"  # the archive's own actions: a literal, not a person


class User(SQLModel, table=True):
    """One person (or automation) acting on the archive, by random id."""

    __tablename__ = TABLE

    id: str = Field(primary_key=True, max_length=18)
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # {"name": ...}
    key_version: int = Field(index=True)  # 0: pending, sealed with age
    lookup: str | None = Field(default=None, index=True, max_length=64)
    created_at: str = Field(max_length=32)


def _lookups(keys: CatalogKeys, fields: dict[str, Any]) -> dict[str, str | None]:
    return {"lookup": keys.lookup(LOOKUP, str(fields["name"]))}


sealing.register(sealing.SealedTable(TABLE, "id", _lookups, ("lookup",)))


_MINTED: dict[str, dict[str, Any]] = {}  # user id -> its pending row, not written yet (see `mint`)


def mint(sealer: Sealer, name: str, now: str) -> str:
    """A new id for `name` whose pending row waits in memory until something records the id."""
    from archive.catalog.secrets import plain, seal_row

    user_id = new_user_id()
    version, blob = seal_row(plain(sealer), TABLE, user_id, {"name": name})
    _MINTED[user_id] = {"id": user_id, "sealed": blob, "key_version": version, "created_at": now}
    return user_id


def is_minted(user_id: str) -> bool:
    """Whether `user_id` was minted here and its row may not be written yet."""
    return user_id in _MINTED


def write_minted(conn: Any, actor: str) -> None:
    """Write a minted id's row in the caller's transaction (`conn`: a Session or a Connection); else nothing.

    Idempotent: the row is looked for first. It is forgotten once a
    `archive.db.transaction` that wrote it commits.
    """
    row = _MINTED.get(actor)
    if row is None:
        return
    if conn.execute(text("SELECT 1 FROM users WHERE id = :id"), {"id": actor}).first() is None:
        conn.execute(text("INSERT INTO users (id, sealed, key_version, lookup, created_at) "
                          "VALUES (:id, :sealed, :key_version, NULL, :created_at)"), row)
    info = getattr(conn, "info", None)
    if isinstance(info, dict) and hasattr(conn, "get_transaction"):  # a Session: after its commit, done
        info.setdefault("after_commit", []).append(lambda: _MINTED.pop(actor, None))


def new_user_id() -> str:
    return "u-" + secrets.token_hex(8)


def is_user_id(actor: str) -> bool:
    return len(actor) == 18 and actor.startswith("u-") and all(c in "0123456789abcdef" for c in actor[2:])


def find(session: Session, sealer: Sealer, name: str) -> str | None:
    """The oldest id sealed under this name, or None (always None while locked: no lookup key)."""
    from archive.catalog.secrets import CatalogKeys, plain

    keys = plain(sealer)
    if not isinstance(keys, CatalogKeys):
        return None
    hashes = keys.lookups(LOOKUP, name)
    row = session.exec(
        select(User.id).where(col(User.lookup).in_(hashes)).order_by(col(User.created_at), col(User.id)).limit(1)
    ).first()
    return row


def resolve(session: Session, sealer: Sealer, name: str, now: str) -> str:
    """The id acting under `name`, created (sealed, or pending when locked) on first use."""
    if name == SYSTEM:
        return SYSTEM
    found = find(session, sealer, name)
    if found is not None:
        return found
    from archive.catalog.secrets import CatalogKeys, plain, seal_row

    keys = plain(sealer)
    user_id = new_user_id()
    version, blob = seal_row(keys, TABLE, user_id, {"name": name})
    lookup = keys.lookup(LOOKUP, name) if isinstance(keys, CatalogKeys) else None
    session.add(User(id=user_id, sealed=blob, key_version=version, lookup=lookup, created_at=now))
    session.flush()
    return user_id


def resolve_for(session: Session, runtime: Runtime, name: str, recipients: list[str], now: str) -> str:
    """`resolve` before an `Archive` can be opened (the archive being created): the recipients given."""
    from archive.age import Recipient
    from archive.catalog.secrets import Pending
    from archive.services.errors import Locked

    try:
        sealer: Sealer = runtime.keys.catalog()
    except Locked:
        sealer = Pending([Recipient.parse(text) for text in recipients])
    user_id = resolve(session, sealer, name, now)
    runtime.actor_ids[name] = user_id
    return user_id


def name_of(session: Session, opener: Opener | CatalogKeys | None, user_id: str) -> str | None:
    """The name behind an id, when this process can open it (None otherwise)."""
    from archive.catalog.secrets import open_row

    if not is_user_id(user_id):
        return user_id if user_id == SYSTEM else None
    user = session.get(User, user_id)
    if user is None:
        return None
    fields = open_row(opener, TABLE, user.id, user.key_version, user.sealed)
    return None if fields is None else str(fields.get("name"))
