"""Appending custody events: one gapless sequence, whatever the number of writers.

The next sequence number comes from the single `log_head` row, read with a row
lock (`FOR UPDATE` on PostgreSQL; SQLite's write lock does the same), so two
transactions can never take the same number and a rolled-back transaction
leaves no gap. The event is written in the caller's transaction, together with
whatever it records.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select

from archive.catalog.events import Event, LogHead
from archive.custody.entry import canonical, entry_fields, leaf_hash

# PREMIS event types (https://id.loc.gov/vocabulary/preservation/eventType) used here,
# and the project's own terms where PREMIS has none.
INGESTION = "ingestion"
MESSAGE_DIGEST = "message digest calculation"
ENCRYPTION = "encryption"
REPLICATION = "replication"
FIXITY_CHECK = "fixity check"
VALIDATION = "validation"
METADATA_EXTRACTION = "metadata extraction"
DELETION = "deletion"
TRANSFER = "transfer"
ACCESS = "access"
CREATION = "creation"
INFORMATION_PACKAGE_CREATION = "information package creation"


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def append_event(
    session: Session,
    event_type: str,
    *,
    actor: str,
    item_id: str | None = None,
    objects: list[str] | None = None,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
    occurred_at: str | None = None,
) -> Event:
    """Add one event to the log inside the caller's transaction."""
    head = session.exec(select(LogHead).where(LogHead.id == 1).with_for_update()).first()
    if head is None:
        head = LogHead(id=1, size=0)
        session.add(head)
    seq = head.size
    head.size = seq + 1
    event = Event(
        seq=seq,
        occurred_at=occurred_at or utc_now(),
        actor=actor,
        event_type=event_type,
        item_id=item_id,
        objects=list(objects or []),
        outcome=outcome,
        details=dict(details or {}),
        leaf_hash="",
    )
    event.leaf_hash = leaf_hash(canonical(event_entry(event))).hex()
    session.add(head)
    session.add(event)
    session.flush()
    return event


def event_entry(event: Event) -> dict[str, Any]:
    """The fields of a stored event, as they are encoded for the Merkle leaf."""
    return entry_fields(
        seq=event.seq,
        occurred_at=event.occurred_at,
        actor=event.actor,
        event_type=event.event_type,
        item_id=event.item_id,
        objects=list(event.objects),
        outcome=event.outcome,
        details=dict(event.details),
    )
