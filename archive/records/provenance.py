"""Structured provenance changes as records: what the journal replays and `log verify` checks.

An arrival (a `provenance` row) gets its channel and source record at ingest
(clear columns, written by the ingest's own transaction, and inside its
sealed manifest or addendum) or later with `evidence provenance ITEM`. A
later change is a record change like any other (kind `provenance`, record id
`prv-<16 hex of SHA-256 of its item and time received>`, a salted commitment in a custody event naming the item),
whose state is

    {"item_id", "arrival", "received_at", "channel", "source_id"}

(no personal data: a vocabulary key and a random id). Arrival ids are the
catalog's own and change in a rebuilt catalog, so the arrival is found again
by its item and `received_at` (`arrival_for`).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from archive.catalog.items import Provenance

if TYPE_CHECKING:
    from sqlmodel import Session

KIND = "provenance"
PREFIX = "prv"
FIELDS = ("channel", "source_id")


def record_id(row: Provenance) -> str:
    """The arrival's record id: from its item and time received, which a rebuilt catalog keeps (its arrival
    ids differ) and which the log already names (not the catalog's arrival counter, which tells how many
    arrivals the archive has had)."""
    return record_id_for(row.item_id, row.received_at)


def record_id_for(item_id: str, received_at: str) -> str:
    digest = hashlib.sha256(f"evidence-arrival/1 {item_id} {received_at}".encode()).hexdigest()
    return f"{PREFIX}-{digest[:16]}"


def provenance_state(row: Provenance, channel: str | None, source_id: str | None) -> dict[str, Any]:
    return {"item_id": row.item_id, "arrival": row.id, "received_at": row.received_at, "channel": channel,
            "source_id": source_id}


def arrival_for(session: Session, state: dict[str, Any]) -> Provenance | None:
    """The arrival a change's state names: by id, else (a rebuilt catalog) by item and time received."""
    row = session.get(Provenance, state.get("arrival"))
    if row is not None and row.item_id == state.get("item_id") and row.received_at == state.get("received_at"):
        return row
    return session.exec(select(Provenance).where(Provenance.item_id == state.get("item_id"),
                                                 Provenance.received_at == state.get("received_at"))
                        .order_by(col(Provenance.id))).first()


def apply(session: Session, state: dict[str, Any]) -> bool:
    """Replay one change (journal, rebuild): the arrival's columns as the state says; False if no such arrival."""
    row = arrival_for(session, state)
    if row is None:
        return False
    row.channel, row.source_id = state.get("channel"), state.get("source_id")
    session.add(row)
    return True


def differs(session: Session, state: dict[str, Any]) -> list[str] | None:
    """For `log verify`: the columns of the arrival not as its latest change says (None: no such arrival)."""
    row = arrival_for(session, state)
    if row is None:
        return None
    return [f for f in FIELDS if getattr(row, f) != state.get(f)]
