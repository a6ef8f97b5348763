"""Registered recipients of evidence bundles: a custodian registers a UN mechanism, a court or a partner once,
with its age public key, so investigators export to it by name and never handle keys.

Every change is a custody event (`recipient added`, `recipient removed`) naming the recipient's id, name,
kind and key fingerprint: who could open which bundles is itself part of the chain of custody. A removed
recipient stays in the table (inactive) so past export events still resolve to it.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

from sqlmodel import select

from archive.catalog.exports import ExportRecipient
from archive.exports.formats import RECIPIENT_KINDS, fingerprint
from archive.roles import Role
from archive.services.errors import Forbidden, Invalid, NotFound

if TYPE_CHECKING:
    from archive.context import Archive

RECIPIENT_ADDED = "recipient added"
RECIPIENT_REMOVED = "recipient removed"

_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,128}")
_READERS = (Role.CUSTODIAN, Role.INVESTIGATOR)


def _custodian(role: Role, doing: str) -> None:
    if role is not Role.CUSTODIAN:
        raise Forbidden(f"{doing} needs the custodian role, not {role}")


def _reader(role: Role) -> None:
    if role not in _READERS:
        raise Forbidden(f"recipients are for custodians and investigators, not {role}")


def _check_name(name: str) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not _NAME.fullmatch(name):
        raise Invalid("a recipient's name is 1-128 characters, no control characters")
    return name


def _age_key(text: str) -> str:
    from archive.age import Recipient

    text = text.strip() if isinstance(text, str) else ""
    if not text.startswith("age1"):
        raise Invalid("--age takes an age public key (age1…), not an identity, passphrase or file name")
    try:
        return str(Recipient.parse(text))
    except Exception as exc:  # noqa: BLE001 - any malformed key: one clear refusal
        raise Invalid(f"{text[:16]}…: not an age recipient (age1…): {exc}") from exc


def recipient_view(row: ExportRecipient) -> dict[str, Any]:
    """What a recipient is, for the CLI and HTTP: no user names, the key and its fingerprint."""
    return {"id": row.id, "name": row.name, "kind": row.kind, "age_recipient": row.age_recipient,
            "fingerprint": row.fingerprint, "active": row.active, "created_at": row.created_at,
            "removed_at": row.removed_at}


def add_recipient(archive: Archive, name: str, age_key: str, kind: str, *, role: Role) -> dict[str, Any]:
    """Register a recipient (custodians only); a removed recipient's name can be registered again."""
    from archive.custody.log import append_event, utc_now
    from archive.db import transaction

    _custodian(role, "registering a recipient")
    name = _check_name(name)
    if kind not in RECIPIENT_KINDS:
        raise Invalid(f"--kind must be one of {', '.join(RECIPIENT_KINDS)}, not {kind!r}")
    key = _age_key(age_key)
    actor = archive.actor  # resolved before the transaction (on SQLite it would wait for this one's lock)
    now = utc_now()
    with transaction(archive.engine) as session:
        row = session.exec(select(ExportRecipient).where(ExportRecipient.name == name)).first()
        if row is not None and row.active:
            raise Invalid(f"a recipient named {name!r} is registered already (remove it first to change its key)")
        if row is None:
            row = ExportRecipient(id=f"rcp-{secrets.token_hex(8)}", name=name, kind=kind, age_recipient=key,
                                  fingerprint=fingerprint(key), created_at=now, created_by=actor)
        else:
            row.kind, row.age_recipient, row.fingerprint = kind, key, fingerprint(key)
            row.active, row.created_at, row.created_by, row.removed_at = True, now, actor, None
        session.add(row)
        session.flush()
        append_event(session, RECIPIENT_ADDED, actor=actor, objects=[row.id],
                     details={"recipient": row.id, "name": name, "kind": kind, "fingerprint": row.fingerprint})
        view = recipient_view(row)
    return view


def list_recipients(archive: Archive, *, role: Role, removed: bool = False) -> list[dict[str, Any]]:
    """The registered recipients by name (the removed ones too with `removed`)."""
    from archive.db import transaction

    _reader(role)
    with transaction(archive.engine) as session:
        stmt = select(ExportRecipient)
        if not removed:
            stmt = stmt.where(ExportRecipient.active == True)  # noqa: E712 - SQL, not Python truth
        rows = session.exec(stmt).all()
        return [recipient_view(row) for row in sorted(rows, key=lambda r: r.name)]


def remove_recipient(archive: Archive, name: str, *, role: Role) -> dict[str, Any]:
    """Stop exporting to a recipient (custodians only): its row stays, inactive, for past exports' sake."""
    from archive.custody.log import append_event, utc_now
    from archive.db import transaction

    _custodian(role, "removing a recipient")
    actor = archive.actor
    now = utc_now()
    with transaction(archive.engine) as session:
        row = session.exec(select(ExportRecipient).where(ExportRecipient.name == name)).first()
        if row is None or not row.active:
            raise NotFound(f"no registered recipient named {name!r} (see `evidence recipients list`)")
        row.active, row.removed_at = False, now
        session.add(row)
        session.flush()
        append_event(session, RECIPIENT_REMOVED, actor=actor, objects=[row.id],
                     details={"recipient": row.id, "name": row.name, "kind": row.kind,
                              "fingerprint": row.fingerprint})
        view = recipient_view(row)
    return view


def resolve_recipient(archive: Archive, name: str, *, role: Role) -> ExportRecipient:
    """The active recipient registered under `name` (detached), NotFound otherwise."""
    from archive.db import transaction

    _reader(role)
    with transaction(archive.engine) as session:
        row = session.exec(select(ExportRecipient).where(ExportRecipient.name == name)).first()
        if row is None or not row.active:
            raise NotFound(f"no registered recipient named {name!r} (see `evidence recipients list`)")
        session.expunge(row)
        return row
