"""The age recipients every new original is encrypted to: list, add, remove.

They live in the catalog, so a change commits with its custody event (nobody
adds a recipient, and so a new reader of every future original, without a
record) and every running ingest and worker uses the new list at its next
use case. Existing objects keep the recipients they were encrypted to (each
replica row records them); only new copies follow the change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from archive.services.errors import ServiceError
from archive.services.policy import POLICY_ASSIGNMENT  # a change to the rules new objects follow

if TYPE_CHECKING:
    from archive.context import Archive



@dataclass
class Recipients:
    recipients: list[str]
    added: str | None = None
    removed: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_recipients(archive: Archive) -> Recipients:
    return Recipients(list(archive.config.recipients))


def _change(archive: Archive, new: list[str], details: dict[str, Any]) -> None:
    from archive.catalog.settings import RECIPIENTS, put_setting
    from archive.custody.log import append_event
    from archive.db import transaction

    with transaction(archive.engine) as session:
        append_event(session, POLICY_ASSIGNMENT, actor=archive.actor,
                     details={"recipients": new, "previous": list(archive.config.recipients), **details})
        put_setting(session, RECIPIENTS, new)
    archive.refresh()


def add_recipient(archive: Archive, text: str) -> Recipients:
    """Encrypt every new original to one more age recipient (a second custodian, an escrow key)."""
    from archive.age import AgeError, Recipient

    try:
        recipient = str(Recipient.parse(text.strip()))
    except (AgeError, ValueError) as exc:
        raise ServiceError(f"{text.strip()[:80]!r} is not an age recipient (age1…)") from exc
    current = list(archive.config.recipients)
    if recipient in current:
        raise ServiceError("that recipient is already in the list")
    _change(archive, [*current, recipient], {"added": recipient})
    return Recipients(list(archive.config.recipients), added=recipient)


def remove_recipient(archive: Archive, text: str) -> Recipients:
    """Stop encrypting new originals to a recipient; neither the last one nor the access identity can go.

    Without the access recipient, reads through the archive could not open new
    originals, and rows a locked process writes could not be settled.
    """
    from archive.services.errors import CheckFailed

    current = list(archive.config.recipients)
    recipient = text.strip()
    if recipient not in current:
        raise ServiceError("that recipient is not in the list")
    if len(current) == 1:
        raise CheckFailed("the last recipient cannot be removed: new originals would be readable by no one")
    if recipient == archive.runtime.keys.access_recipient():
        raise CheckFailed("the access recipient (keys/access.pub) cannot be removed: viewing, downloading and "
                          "exporting need it, and settling what a locked server wrote opens it with it")
    _change(archive, [r for r in current if r != recipient], {"removed": recipient})
    return Recipients(list(archive.config.recipients), removed=recipient)
