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

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from archive.catalog.events import Event, LogHead
from archive.custody.entry import canonical, entry_fields, leaf_hash
from archive.services.errors import IntegrityError

# PREMIS event types (https://id.loc.gov/vocabulary/preservation/eventType) used here,
# and the project's own terms where PREMIS has none.
INGESTION = "ingestion"
MESSAGE_DIGEST = "message digest calculation"
ENCRYPTION = "encryption"
REPLICATION = "replication"
FIXITY_CHECK = "fixity check"
VALIDATION = "validation"
FORMAT_IDENTIFICATION = "format identification"
METADATA_EXTRACTION = "metadata extraction"
DELETION = "deletion"
TRANSFER = "transfer"  # an export's files written (issue 12)
DISSEMINATION = "dissemination"  # an export started: what it carries, for whom (issue 12)
ACCESS = "access"
CREATION = "creation"
INFORMATION_PACKAGE_CREATION = "information package creation"


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_HEAD = "custody.log_head"  # session.info key: (transaction, next sequence number)
# Statements built once, so SQLAlchemy compiles them once.
_EVENTS: Table = Event.__table__  # type: ignore[attr-defined]
_HEAD_TABLE: Table = LogHead.__table__  # type: ignore[attr-defined]
_INSERT_EVENT = insert(_EVENTS)
_SET_SIZE = update(_HEAD_TABLE).where(_HEAD_TABLE.c.id == 1).values(size=bindparam("new_size"))


def _next_seq(session: Session) -> int:
    """The next sequence number; the first append of a transaction locks `log_head` for the rest."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    cached = session.info.get(_HEAD)
    if cached is not None and cached[0] is transaction:
        return int(cached[1])
    stmt = sa_select(col(LogHead.size)).where(col(LogHead.id) == 1).with_for_update()
    size = session.execute(stmt).scalar_one_or_none()
    if size is None:
        session.execute(insert(_HEAD_TABLE).values(id=1, size=0))
        size = 0
    return int(size)


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
    """Add one event to the log inside the caller's transaction; returns a detached copy of it.

    Written with two Core statements rather than through the ORM: appends sit
    on every ingest step's path and a batch must run at thousands a second.
    """
    if actor.startswith("u-"):
        from archive.catalog.users import write_minted

        write_minted(session, actor)  # a locked process's id: its users row commits with its first record
    seq = _next_seq(session)
    values: dict[str, Any] = {
        "seq": seq,
        "occurred_at": occurred_at or utc_now(),
        "actor": actor,
        "event_type": event_type,
        "item_id": item_id,
        "objects": list(objects or []),
        "outcome": outcome,
        "details": dict(details or {}),
    }
    entry = entry_fields(**{k: v for k, v in values.items() if k != "seq"}, seq=seq)
    values["leaf_hash"] = leaf_hash(canonical(entry)).hex()
    session.execute(_INSERT_EVENT, values)
    session.execute(_SET_SIZE, {"new_size": seq + 1})
    session.info[_HEAD] = (session.get_nested_transaction() or session.get_transaction(), seq + 1)
    return Event(**values)


class EventAltered(IntegrityError):
    """A stored event whose columns no event could hold (its objects not a list of names, its details not an
    object, either not JSON at all): someone wrote the row."""


def event_entry(event: Event) -> dict[str, Any]:
    """The fields of a stored event, as they are encoded for the Merkle leaf (`EventAltered` when garbled)."""
    objects, details = event.objects, event.details
    if not isinstance(objects, list) or not all(isinstance(o, str) for o in objects) \
            or not isinstance(details, dict):
        raise EventAltered(f"custody event {event.seq} is altered (its objects or details are not what an event "
                           "holds); run `evidence log verify`")
    return entry_fields(
        seq=event.seq,
        occurred_at=event.occurred_at,
        actor=event.actor,
        event_type=event.event_type,
        item_id=event.item_id,
        objects=list(objects),
        outcome=event.outcome,
        details=dict(details),
    )
