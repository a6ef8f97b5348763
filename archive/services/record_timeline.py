"""The custody timeline of one record: the events that carry its commitments, oldest first.

A record's events do not name it in a column an index can find (`item_id`
is for items); its `record_changes` rows say which events carry its
commitments: its own event for a single change, or an imported file's event
(with the record's leaf in that file's Merkle tree).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlmodel import col, select

from archive.catalog.checkpoints import Checkpoint
from archive.catalog.events import Event
from archive.custody.log import event_entry
from archive.db import transaction
from archive.records.common import require
from archive.records.tables import RecordChange
from archive.roles import Role
from archive.services.errors import NotFound

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive


def record_id_for(session: Session, name: str) -> str | None:
    """The record a name means (a record id, or a ref of an incident, victim or source), else None."""
    from archive.records.store import KINDS, kind_of

    name = name.strip()
    try:
        kind_of(name)
        if session.exec(select(RecordChange.id).where(RecordChange.record_id == name).limit(1)).first() is not None:
            return name
    except KeyError:
        pass
    for kind in KINDS.values():
        model: Any = kind.model
        if "ref" in model.model_fields:
            found = session.exec(select(model.id).where(model.ref == name)).first()
            if found is not None:
                return str(found)
    return None


def is_record(archive: Archive, name: str) -> bool:
    """Whether a name given to `log show` means a record (records first: refs are the users' own names)."""
    with transaction(archive.engine) as session:
        return record_id_for(session, name) is not None


def record_timeline(archive: Archive, name: str, *, role: Role) -> dict[str, Any]:
    """Every custody event that carries a commitment to a state of the record, with its change and leaf."""
    require(role, "reading a record's custody timeline")
    with transaction(archive.engine) as session:
        record_id = record_id_for(session, name)
        if record_id is None:
            raise NotFound(f"no item or record {name!r}")
        changes = session.exec(select(RecordChange).where(RecordChange.record_id == record_id)
                               .order_by(col(RecordChange.event_seq), col(RecordChange.batch_index))).all()
        seqs = sorted({c.event_seq for c in changes if c.event_seq is not None})
        events = {e.seq: e for e in session.exec(select(Event).where(col(Event.seq).in_(seqs))).all()}
        covered = session.execute(select(func.max(Checkpoint.tree_size))).scalar() or 0
    shown = []
    for change in changes:
        event = events.get(change.event_seq) if change.event_seq is not None else None
        if event is not None:
            event_entry(event)  # EventAltered: a row no event could hold
        shown.append({
            "seq": change.event_seq, "time": event.occurred_at if event else change.at,
            "type": event.event_type if event else None, "actor": event.actor if event else change.by,
            "outcome": event.outcome if event else None, "change": change.change,
            "commitment": change.commitment, "batch_index": change.batch_index,
            "details": dict(event.details) if event else {}, "leaf_hash": event.leaf_hash if event else None,
            "checkpointed": change.event_seq is not None and change.event_seq < covered,
        })
    return {"record": record_id, "checkpoint_size": covered, "events": shown}
