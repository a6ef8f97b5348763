"""CommitToCatalog: the item, its copies, its provenance, every step's results and
the custody events, in one transaction. When it commits, the file is acknowledged."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from archive.catalog.items import Item, Provenance, Replica
from archive.catalog.secrets import Sealer, new_item, new_provenance, sealer
from archive.custody.log import FIXITY_CHECK, INGESTION, MESSAGE_DIGEST, append_event, utc_now
from archive.db import transaction
from archive.objects import Role
from ingest.pipeline import Ingestion, Refused, Step

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive
    from storage.base import StoredObject


class ConcurrentIngest(Refused):
    """Another ingest committed the same bytes first: retrying makes this arrival a duplicate."""

    code = "concurrent"


def _replica(ingestion: Ingestion, stored: StoredObject, role: str, now: str) -> Replica:
    assert ingestion.item_id is not None
    return Replica(
        item_id=ingestion.item_id,
        role=str(role),
        backend=stored.backend,
        object_name=stored.name,
        version_id=stored.version_id,
        ciphertext_sha256=stored.sha256,
        recipients=list(ingestion.recipients),
        checksum_detail=stored.checksum_detail,
        state="verified",
        verified_at=now,
    )


def _name_arrival(ingestion: Ingestion, provenance: Provenance) -> None:
    """Events of a restore say which arrival's bytes made the copy (its provenance row), and so does the
    arrival's digest event before them: the log index allows a restore only for the arrival it is ingesting.
    So do the events of a later arrival's own analysis (`ingest.steps.arrival.AnalyseLikeNew`, marked
    `"arrival": true`): they describe these bytes, arriving again, not the item's first analysis."""
    for pending in ingestion.events:
        if pending.details.get("restored_from") or pending.details.get("arrival") is True or (
                pending.event_type == MESSAGE_DIGEST and pending.details.get("duplicate") is True):
            pending.details["arrival"] = provenance.id
            pending.details["received_at"] = provenance.received_at


class CommitToCatalog(Step):
    name = "catalog"
    runs_on_duplicates = True

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        keys = sealer(archive)  # locked: the rows are sealed pending, to be settled once unlocked
        try:
            with transaction(archive.engine) as session:
                self._write(ingestion, session, ingestion.pipeline, archive, keys)
        except IntegrityError as exc:
            # The same bytes committed by another ingest a moment ago: the transaction
            # rolled back, so our copies were never acknowledged and are surplus.
            ingestion.withdraw(archive)
            raise ConcurrentIngest("the same file was being ingested concurrently; retry to add provenance") from exc

    def _write(
        self, ingestion: Ingestion, session: Session, steps: list[Step], archive: Archive, keys: Sealer
    ) -> None:
        assert ingestion.item_id is not None and ingestion.sha256 is not None and ingestion.size is not None
        now = utc_now()
        received_at = ingestion.results.setdefault("received_at", now)
        if not ingestion.duplicate:
            session.add(
                new_item(
                    keys,
                    id=ingestion.item_id,
                    sha256=ingestion.sha256,
                    size=ingestion.size,
                    salt=ingestion.salt,
                    media_type=ingestion.media_type,
                    status=ingestion.status or "degraded",
                    created_at=received_at,
                )
            )
            for stored in ingestion.stored:
                session.add(_replica(ingestion, stored, Role.ORIGINAL, now))
            for stored in ingestion.manifests:
                session.add(_replica(ingestion, stored, Role.MANIFEST, now))
            session.flush()
        incoming = ingestion.incoming
        provenance = new_provenance(
            keys,
            item_id=ingestion.item_id,
            source=incoming.source,
            note=incoming.note,
            original_name=incoming.original_name,
            declared_type=incoming.declared_type,
            received_at=received_at,
            actor=ingestion.actor,
        )
        provenance.channel, provenance.source_id = incoming.channel, incoming.source_id  # clear columns
        session.add(provenance)
        if ingestion.duplicate:
            session.flush()
            self._duplicate(ingestion, session, archive, provenance, now)
        for step in steps:
            if not ingestion.duplicate or step.runs_on_duplicates:
                step.save(ingestion, session)
        # Every event of an arrival carries a random nonce, so that none can be guessed: a contributor is given
        # its ingestion event's inclusion proof, whose path holds the hashes of its neighbours (this arrival's
        # other events); a guessable one (a duplicate's discarded staged copy, say) would tell it, by hashing,
        # whether the file was already held.
        for pending in ingestion.events:
            append_event(
                session,
                pending.event_type,
                actor=ingestion.actor,
                item_id=ingestion.item_id,
                objects=pending.objects,
                outcome=pending.outcome,
                details={**pending.details, "nonce": secrets.token_hex(16)},
            )
        append_event(
            session,
            INGESTION,
            actor=ingestion.actor,
            item_id=ingestion.item_id,
            outcome="success",
            details={"duplicate": ingestion.duplicate, "status": ingestion.status, "nonce": secrets.token_hex(16)},
        )

    def _duplicate(
        self, ingestion: Ingestion, session: Session, archive: Archive, provenance: Provenance, now: str
    ) -> None:
        """A later arrival: its addenda and any copies it restored, checked against the catalog as it is now."""
        from archive.services.repair import MISSING, VERIFIED, live_replicas, refresh_status, retire_replaced
        from ingest.steps.dedupe import DuplicateArrival

        assert ingestion.item_id is not None
        item = session.get(Item, ingestion.item_id)
        assert item is not None
        found: DuplicateArrival | None = ingestion.results.get("deduplicate")
        current = live_replicas(session, item.id)
        vanished = found.vanished if found is not None else {}
        for row in current:  # found bad when looked at just now: recorded like a fixity check
            if row.id in vanished and row.state == VERIFIED:
                row.state = vanished[row.id]
                session.add(row)
                detail = ("absent" if row.state == MISSING else "other bytes than recorded") + \
                    " when the same file arrived again"
                append_event(session, FIXITY_CHECK, actor=ingestion.actor, item_id=item.id,
                             objects=[f"{row.backend}:{row.object_name}"], outcome="failure",
                             details={"backend": row.backend, "role": row.role, "result": row.state, "detail": detail,
                                      "ciphertext_sha256": row.ciphertext_sha256,
                                      "algorithm": "stat" if row.state == MISSING else "SHA-256"})
        for stored in ingestion.stored:
            retire_replaced(session, current, stored.backend)
            session.add(_replica(ingestion, stored, Role.ORIGINAL, now))
        for stored in ingestion.manifests:
            session.add(_replica(ingestion, stored, Role.MANIFEST, now))
        for stored in ingestion.arrivals:
            session.add(_replica(ingestion, stored, Role.ARRIVAL, now))
        session.flush()
        _name_arrival(ingestion, provenance)
        ingestion.status = refresh_status(session, archive, item)
