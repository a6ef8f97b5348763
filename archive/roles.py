"""Who is asking: the roles every service function's contract is written against.

Custodians hold the keys and may see everything, including a witness's real
identity and the names families asked to withhold. Investigators document:
they read and write incidents, victims, sources and links, and see aliases,
never identities nor withheld names. Contributors upload and read nothing
back. The HTTP API maps each route to a role; the CLI acts as a custodian.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    CUSTODIAN = "custodian"
    INVESTIGATOR = "investigator"
    CONTRIBUTOR = "contributor"


def sees_identities(role: Role) -> bool:
    """A witness's real identity and contacts, and withheld victim names: custodians only."""
    return role == Role.CUSTODIAN


def documents(role: Role) -> bool:
    """May read and write the documentation model (incidents, victims, sources, links)."""
    return role in (Role.CUSTODIAN, Role.INVESTIGATOR)
