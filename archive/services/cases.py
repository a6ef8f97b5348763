"""Restricted cases (compartments): a custodian puts incidents into a case and names who may see them.

What a case hides, and from whom, is decided in one place
(`archive.records.compartments.hidden_for`); this module only writes cases.
Every function is for custodians (`Forbidden` otherwise). A case's name is
sealed under the catalog key (`archive.catalog.cases`, re-sealed by a key
rotation) and found again by its keyed lookup; every change is a custody
event whose details carry ids only (case, user, incident), never a name.

A case is named by its id (`case-` and 16 hex digits) or its name; a user by a
name or a `u-` id of an account (`evidence users add`); an incident by its ref
or id. Adding what is there already, or removing what is not, changes nothing
and records nothing (`changed: false`).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from archive.db import read_only, transaction
from archive.roles import Role
from archive.services.errors import Forbidden, Invalid, NotFound

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.catalog.cases import Case
    from archive.context import Archive
    from archive.keys.catalog import CatalogKeys

# The archive's own event types (PREMIS has none for compartments).
CASE_CREATED = "case created"
CASE_MEMBER_ADDED = "case member added"
CASE_MEMBER_REMOVED = "case member removed"
CASE_INCIDENT_ADDED = "case incident added"
CASE_INCIDENT_REMOVED = "case incident removed"
NAME_MAX = 200


def _custodian(role: Role, doing: str) -> None:
    if role != Role.CUSTODIAN:
        raise Forbidden(f"{doing} is for custodians only, not {role}")


def _keys(archive: Archive, doing: str) -> CatalogKeys:
    from archive.catalog.sealing import catalog_keys

    return catalog_keys(archive, f"{doing} (case names are sealed)")


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise Invalid("name: a case needs a name")
    name = name.strip()
    if len(name) > NAME_MAX or any(not c.isprintable() for c in name):
        raise Invalid(f"name: one line of at most {NAME_MAX} printable characters")
    return name


def _is_case_id(text: str) -> bool:
    return len(text) == 21 and text.startswith("case-") and all(c in "0123456789abcdef" for c in text[5:])


def _find_case(session: Session, archive: Archive, ref: str) -> Case:
    """A case by id, or by name (needs the catalog key); `NotFound` otherwise."""
    from archive.catalog.cases import LOOKUP, Case

    ref = (ref or "").strip()
    row = session.get(Case, ref) if _is_case_id(ref) else None
    if row is None and ref and not _is_case_id(ref):
        keys = _keys(archive, "finding a case by name")
        row = session.exec(select(Case).where(col(Case.lookup).in_(keys.lookups(LOOKUP, ref)))
                           .order_by(col(Case.created_at))).first()
    if row is None:
        raise NotFound(f"no case {ref[:80]!r} (by id or name: see `evidence cases list`)")
    return row


def _find_user(session: Session, archive: Archive, user: str) -> str:
    """The u- id of an account named by its user name or id; `NotFound` otherwise."""
    from archive.catalog.accounts import Account
    from archive.catalog.users import find, is_user_id

    user = (user or "").strip()
    user_id: str | None = user if is_user_id(user) else find(session, _keys(archive, "finding a user"), user)
    if user_id is None or session.get(Account, user_id) is None:
        raise NotFound(f"no user {user[:80]!r} with an account (see `evidence users list`)")
    return user_id


def _event(session: Session, archive: Archive, actor: str, event_type: str, case_id: str,
           **ids: str) -> None:
    from archive.custody.log import append_event

    append_event(session, event_type, actor=actor, objects=[case_id, *ids.values()],
                 details={"case": case_id, **ids})


def create_case(archive: Archive, name: str, *, role: Role) -> dict[str, Any]:
    """A new restricted case with no incidents and no members yet; `Invalid` for a name already used."""
    from archive.catalog.cases import LOOKUP, TABLE, Case
    from archive.custody.log import utc_now

    _custodian(role, "creating a restricted case")
    name = _check_name(name)
    keys = _keys(archive, "creating a case")
    actor = archive.actor  # resolved before the transaction (on SQLite it would wait for this one's lock)
    case_id = "case-" + secrets.token_hex(8)
    with transaction(archive.engine) as session:
        if session.exec(select(Case.id).where(col(Case.lookup).in_(keys.lookups(LOOKUP, name)))).first():
            raise Invalid("name: a case of that name exists already (see `evidence cases list`)")
        version, sealed = keys.seal(TABLE, case_id, {"name": name})
        now = utc_now()
        session.add(Case(id=case_id, sealed=sealed, key_version=version, lookup=keys.lookup(LOOKUP, name),
                         created_at=now))
        session.flush()
        _event(session, archive, actor, CASE_CREATED, case_id)
    return {"id": case_id, "name": name, "created_at": now, "members": [], "incidents": []}


def add_member(archive: Archive, case: str, user: str, *, role: Role) -> dict[str, Any]:
    """Let a user (an investigator's account) see the case's incidents and what is linked to them."""
    return _member(archive, case, user, role=role, add=True)


def remove_member(archive: Archive, case: str, user: str, *, role: Role) -> dict[str, Any]:
    """Take a user out of a case: from their next request on, its incidents are hidden from them again."""
    return _member(archive, case, user, role=role, add=False)


def _member(archive: Archive, case: str, user: str, *, role: Role, add: bool) -> dict[str, Any]:
    from archive.catalog.cases import CaseMember
    from archive.custody.log import utc_now

    _custodian(role, "changing a case's members")
    actor = archive.actor
    with transaction(archive.engine) as session:
        row = _find_case(session, archive, case)
        user_id = _find_user(session, archive, user)
        held = session.get(CaseMember, (row.id, user_id))
        changed = (held is None) == add
        if changed and add:
            session.add(CaseMember(case_id=row.id, user_id=user_id, added_at=utc_now()))
        elif changed and held is not None:
            session.delete(held)
        if changed:
            session.flush()
            _event(session, archive, actor, CASE_MEMBER_ADDED if add else CASE_MEMBER_REMOVED, row.id,
                   user=user_id)
        case_id = row.id
    return {"case": case_id, "user": user_id, "member": add, "changed": changed}


def add_incident(archive: Archive, case: str, incident_ref: str, *, role: Role) -> dict[str, Any]:
    """Put an incident (and so the items and victims linked to it) into a restricted case."""
    return _incident(archive, case, incident_ref, role=role, add=True)


def remove_incident(archive: Archive, case: str, incident_ref: str, *, role: Role) -> dict[str, Any]:
    """Take an incident out of a case (it is visible to every investigator again unless another case holds it)."""
    return _incident(archive, case, incident_ref, role=role, add=False)


def _incident(archive: Archive, case: str, incident_ref: str, *, role: Role, add: bool) -> dict[str, Any]:
    from archive.catalog.cases import CaseIncident
    from archive.custody.log import utc_now
    from archive.records.common import find
    from archive.records.tables import Incident

    _custodian(role, "changing a case's incidents")
    actor = archive.actor
    with transaction(archive.engine) as session:
        row = _find_case(session, archive, case)
        incident = find(session, Incident, str(incident_ref or ""), "incident")
        held = session.get(CaseIncident, (row.id, incident.id))
        changed = (held is None) == add
        if changed and add:
            session.add(CaseIncident(case_id=row.id, incident_id=incident.id, added_at=utc_now()))
        elif changed and held is not None:
            session.delete(held)
        if changed:
            session.flush()
            _event(session, archive, actor, CASE_INCIDENT_ADDED if add else CASE_INCIDENT_REMOVED, row.id,
                   incident=incident.id)
        case_id, incident_id, ref = row.id, incident.id, incident.ref
    return {"case": case_id, "incident": incident_id, "incident_ref": ref, "in_case": add, "changed": changed}


def list_cases(archive: Archive, *, role: Role) -> list[dict[str, Any]]:
    """Every case, oldest first: id, name (None while this process cannot open it), members (u- ids) and
    incidents (id and ref)."""
    from sqlmodel import Session

    from archive.catalog.cases import TABLE, Case, CaseIncident, CaseMember
    from archive.catalog.sealing import PENDING, keys_if_unlocked
    from archive.records.tables import Incident

    _custodian(role, "listing restricted cases")
    keys = keys_if_unlocked(archive)
    with Session(read_only(archive.engine)) as session:
        cases = session.exec(select(Case).order_by(col(Case.created_at), col(Case.id))).all()
        members: dict[str, list[str]] = {}
        for m in session.exec(select(CaseMember).order_by(col(CaseMember.added_at), col(CaseMember.user_id))):
            members.setdefault(m.case_id, []).append(m.user_id)
        incidents: dict[str, list[dict[str, str]]] = {}
        rows = session.exec(select(CaseIncident.case_id, Incident.id, Incident.ref)
                            .join(Incident, col(Incident.id) == col(CaseIncident.incident_id))
                            .order_by(col(Incident.ref))).all()
        for case_id, incident_id, ref in rows:
            incidents.setdefault(case_id, []).append({"id": incident_id, "ref": ref})
        out = []
        for c in cases:
            name = None
            if keys is not None and c.key_version != PENDING and c.key_version in keys.versions:
                name = str(keys.open(TABLE, c.id, c.key_version, c.sealed)["name"])
            out.append({"id": c.id, "name": name, "created_at": c.created_at, "members": members.get(c.id, []),
                        "incidents": incidents.get(c.id, [])})
    return out
