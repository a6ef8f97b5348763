"""Who is asking: the roles every service function's contract is written against.

Custodians hold the keys and may see everything, including a witness's real
identity and the names families asked to withhold. Investigators document:
they read and write incidents, victims, sources and links, and see aliases,
never identities nor withheld names. Contributors upload and read nothing
back but their own receipts. Auditors read the custody log, its proofs and
the catalog's non-personal fields (ids, states, counts), never media and
never names. The HTTP API maps each route to roles (`api.http.matrix`); the
CLI acts as a custodian.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    CUSTODIAN = "custodian"
    INVESTIGATOR = "investigator"
    CONTRIBUTOR = "contributor"
    AUDITOR = "auditor"


def sees_identities(role: Role) -> bool:
    """A witness's real identity and contacts, and withheld victim names: custodians only."""
    return role == Role.CUSTODIAN


def documents(role: Role) -> bool:
    """May read and write the documentation model (incidents, victims, sources, links)."""
    return role in (Role.CUSTODIAN, Role.INVESTIGATOR)


def sees_personal(role: Role) -> bool:
    """May see personal fields at all (names, places, provenance, metadata, media): not auditors, not contributors."""
    return role in (Role.CUSTODIAN, Role.INVESTIGATOR)
