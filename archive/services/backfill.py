"""Analysis back-fill: metadata and fingerprints for items that never got them.

Why: ingest analyses a file once, when it arrives (a later arrival of the same
bytes only adds provenance). An item ingested before a step existed, or whose
analysis failed for a reason since fixed (a sandbox crash, say), would never
get that step's result. `queue_analysis_backfill` finds such items from what
the catalog holds and commits one `analysis` job per item, with one custody
event; the worker's handler, `run_analysis`, decodes the original through the
same ingest steps and sandbox children, and stores their results with the
steps' own custody events ("metadata extraction", "fingerprint").

What counts as missing (`missing_steps`):
- metadata: no `ItemMetadata` row, or one whose extraction never finished
  (the step noted that its sandbox child died: the row's clear `complete` is False);
- fingerprint: a photo or video with no `ItemFingerprints` row and no fingerprint
  job under way, unless its last fingerprint event settled that there is
  nothing to fingerprint (outcome "warning": uniform, too small …). A failure
  (the decoder crashed) or a success whose rows are gone counts as missing.

Like the `fingerprint` job it needs plaintext, hence an identity that opens
originals (`archive.services.analysis.plaintext`, which never writes it to
disk); without one the job waits and says so. Idempotent: the handler checks
again what is missing when it runs, and replaces rather than adds results.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive.services.errors import ServiceError

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.catalog.items import Item
    from archive.catalog.jobs import Job
    from archive.catalog.metadata import ItemMetadata
    from archive.context import Archive
    from ingest.pipeline import Ingestion

METADATA = "metadata"
FINGERPRINT = "fingerprint"
STEPS = (METADATA, FINGERPRINT)
# PREMIS has no event type for planning work; this one is the archive's own.
ANALYSIS_QUEUED = "analysis queued"


@dataclass
class BackfillQueued:
    """What `queue_analysis_backfill` found and queued."""

    steps: list[str]
    only_missing: bool
    items_checked: int
    jobs: int
    by_step: dict[str, int] = field(default_factory=dict)  # step -> items queued for it
    # True when the worker cannot run them yet: no identity that opens originals is available to it.
    needs_identity: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ItemState:
    """What the catalog holds of one item's analysis results."""

    media_type: str | None
    metadata_complete: bool | None  # None: no metadata row; False: a sandbox child died during extraction
    fingerprinted: bool
    last_fingerprint_outcome: str | None  # of the latest fingerprint event (None: never ran)
    fingerprint_pending: bool  # a fingerprint job queued or running
    queued_steps: set[str] = field(default_factory=set)  # steps an analysis job already queued will run
    queued_redo: bool = False  # that job runs them whether or not they are missing


def _check_steps(steps: Iterable[str]) -> list[str]:
    """The steps asked for, in the order they run; a step no back-fill knows is an error."""
    asked = set(steps)
    unknown = sorted(asked - set(STEPS))
    known = ", ".join(STEPS)
    if unknown:
        raise ServiceError(f"unknown analysis step(s) {', '.join(unknown)}: the steps that back-fill are {known}")
    if not asked:
        raise ServiceError(f"no analysis step named: the steps that back-fill are {known}")
    return [step for step in STEPS if step in asked]


def missing_steps(state: ItemState, steps: Iterable[str]) -> list[str]:
    """Which of `steps` this item lacks a result for (see the module docstring)."""
    missing: list[str] = []
    for step in steps:
        if step == METADATA:
            if not state.metadata_complete:
                missing.append(step)
        elif step == FINGERPRINT and applies(step, state) and not (
            state.fingerprinted or state.fingerprint_pending or state.last_fingerprint_outcome == "warning"
        ):
            missing.append(step)
    return missing


def applies(step: str, state: ItemState) -> bool:
    """Whether a step has anything to do for this item at all (fingerprints: photos and videos only)."""
    from ingest.steps.fingerprint import medium_of

    return step != FINGERPRINT or medium_of(state.media_type) is not None


def item_states(session: Session, item_ids: list[str] | None = None) -> dict[str, ItemState]:
    """Every item's (or these items') analysis state, in a handful of queries however many items there are."""
    from sqlmodel import col, select

    from archive.catalog.events import Event
    from archive.catalog.fingerprints import ItemFingerprints
    from archive.catalog.items import Item
    from archive.catalog.jobs import ANALYSIS, QUEUED, RUNNING, Job
    from archive.catalog.jobs import FINGERPRINT as FINGERPRINT_JOB
    from archive.catalog.metadata import ItemMetadata
    from ingest.steps.fingerprint import FINGERPRINT_EVENT

    def only(query: Any, column: Any) -> Any:
        return query if item_ids is None else query.where(col(column).in_(item_ids))

    items = session.exec(only(select(Item.id, Item.media_type), Item.id)).all()
    metadata = {
        item_id: (media_type, complete)
        for item_id, media_type, complete in session.exec(
            only(select(ItemMetadata.item_id, ItemMetadata.media_type, ItemMetadata.complete), ItemMetadata.item_id)
        ).all()
    }
    fingerprinted = set(session.exec(only(select(ItemFingerprints.item_id), ItemFingerprints.item_id)).all())
    outcomes: dict[str, str] = {}
    events = only(select(Event.item_id, Event.outcome).where(Event.event_type == FINGERPRINT_EVENT), Event.item_id)
    for item_id, outcome in session.exec(events.order_by(col(Event.seq))).all():
        if item_id is not None:
            outcomes[item_id] = outcome  # the latest wins
    pending = set(session.exec(only(
        select(Job.item_id).where(col(Job.kind) == FINGERPRINT_JOB, col(Job.state).in_((QUEUED, RUNNING))),
        Job.item_id,
    )).all())
    queued: dict[str, set[str]] = {}
    redo: set[str] = set()
    analyses = select(Job.item_id, Job.payload).where(col(Job.kind) == ANALYSIS, col(Job.state) == QUEUED)
    for item_id, payload in session.exec(only(analyses, Job.item_id)).all():
        if item_id is not None:
            queued.setdefault(item_id, set()).update(payload.get("steps") or STEPS)
            if not payload.get("only_missing", True):
                redo.add(item_id)
    states: dict[str, ItemState] = {}
    for item_id, media_type in items:
        meta_type, complete = metadata.get(item_id, (None, None))
        states[item_id] = ItemState(
            media_type=media_type or meta_type,
            metadata_complete=complete,
            fingerprinted=item_id in fingerprinted,
            last_fingerprint_outcome=outcomes.get(item_id),
            fingerprint_pending=item_id in pending,
            queued_steps=queued.get(item_id, set()),
            queued_redo=item_id in redo,
        )
    return states


def queue_analysis_backfill(
    archive: Archive, *, steps: Iterable[str] = STEPS, only_missing: bool = True
) -> BackfillQueued:
    """Queue one `analysis` job per item lacking a result of `steps` (every item they apply to, when not
    `only_missing`), committed with one custody event."""
    from archive.catalog.jobs import ANALYSIS, enqueue
    from archive.custody.log import append_event
    from archive.db import transaction
    from archive.services.analysis import can_decode

    wanted = _check_steps(steps)
    with transaction(archive.engine) as session:
        states = item_states(session)
        by_step = dict.fromkeys(wanted, 0)
        jobs = 0
        for item_id, state in states.items():
            todo = missing_steps(state, wanted) if only_missing else [s for s in wanted if applies(s, state)]
            if not todo or (only_missing and set(todo) <= state.queued_steps):
                continue  # nothing lacking, or a job already queued will do it
            # Merged into a job already queued for the item: one that redoes everything keeps doing so.
            keep = only_missing and not state.queued_redo
            enqueue(session, ANALYSIS, item_id=item_id, payload={"steps": todo, "only_missing": keep})
            jobs += 1
            for step in todo:
                by_step[step] += 1
        if jobs:
            append_event(session, ANALYSIS_QUEUED, actor=archive.actor,
                         details={"steps": wanted, "only_missing": only_missing, "jobs": jobs, **by_step})
    return BackfillQueued(
        steps=wanted, only_missing=only_missing, items_checked=len(states), jobs=jobs, by_step=by_step,
        needs_identity=bool(jobs) and not can_decode(archive),
    )


def run_analysis(archive: Archive, job: Job) -> None:
    """The worker's handler for an `analysis` job: run the missing steps on the original, store their results.

    Checks again what is missing (a job taken again after its worker died,
    or made redundant since, does nothing). Analysis failures are recorded on
    the item as at ingest, never retried in a loop: the next back-fill asks again.
    """
    from sqlmodel import Session, col, select

    from archive.catalog.items import Item, Provenance
    from archive.catalog.metadata import ItemMetadata
    from archive.db import read_only
    from archive.services.analysis import plaintext
    from archive.services.errors import NotFound
    from archive.services.previews import preview_after_analysis

    if job.item_id is None:
        return
    asked = [s for s in STEPS if s in job.payload.get("steps", STEPS)]
    only_missing = bool(job.payload.get("only_missing", True))
    with Session(read_only(archive.engine)) as session:
        item = session.get(Item, job.item_id)
        if item is None:
            return  # the item is gone: nothing to analyse
        state = item_states(session, [item.id])[item.id]
        needed = missing_steps(state, asked) if only_missing else [s for s in asked if applies(s, state)]
        row = session.get(ItemMetadata, item.id)
        errors = _sealed_errors(archive, row)
        first = session.exec(
            select(Provenance).where(Provenance.item_id == item.id).order_by(col(Provenance.id)).limit(1)
        ).first()
    if not needed:
        return
    try:
        with plaintext(archive, item.id, purpose="analysis back-fill") as source:
            ingestion = _analyse(archive, item, state, source, needed, errors, first)
            preview_after_analysis(archive, ingestion, source)  # a deferred upload's, or one whose decoder crashed
    except NotFound:
        return
    _store(archive, ingestion, needed)


def _analyse(
    archive: Archive,
    item: Item,
    state: ItemState,
    source: bytes | Path,
    needed: list[str],
    errors: list[dict[str, str]],
    first: Any,
) -> Ingestion:
    """Run the ingest steps for `needed` on the plaintext; their results, failures and events on an Ingestion."""
    from archive.catalog.secrets import item_secret, provenance_fields
    from ingest.pipeline import Incoming, Ingestion, Step
    from ingest.steps.fingerprint import FingerprintMedia
    from ingest.steps.identify import Identify
    from ingest.steps.metadata import ExtractMetadata

    where = source if isinstance(source, Path) else Path("original")
    arrival = provenance_fields(archive, first) if first is not None else {}
    incoming = Incoming(
        path=where,
        original_name=arrival.get("original_name") or "",
        declared_type=arrival.get("declared_type"),
    )
    secret = item_secret(archive, item)
    ingestion = Ingestion(incoming=incoming, actor=archive.actor, item_id=item.id, sha256=secret.sha256,
                          size=secret.size, media_type=state.media_type)
    if isinstance(source, bytes):
        ingestion.plaintext = source
    else:
        ingestion.plaintext_path = source
    steps: list[Step] = []
    if METADATA in needed:
        steps += [Identify(), ExtractMetadata()]  # extraction needs the format identified from the bytes
    if FINGERPRINT in needed:
        steps.append(FingerprintMedia())
    redone = {step.name for step in steps}
    # The item's other failures stay; those of the steps run again are replaced by what they find now.
    ingestion.errors = [e for e in errors if e.get("step") not in redone]
    for step in steps:
        step.run(ingestion, archive)
    ingestion.plaintext = None
    ingestion.plaintext_path = None
    return ingestion


def _store(archive: Archive, ingestion: Ingestion, needed: list[str]) -> None:
    """The steps' results, the item's failures and the steps' custody events, in one transaction."""
    from archive.catalog.items import Item
    from archive.catalog.jobs import FINGERPRINT as FINGERPRINT_JOB
    from archive.catalog.jobs import enqueue
    from archive.catalog.metadata import ItemMetadata, metadata_fields, reseal
    from archive.catalog.sealing import PENDING, sealer_for
    from archive.custody.log import append_event
    from archive.db import transaction
    from archive.services.analysis import store_fingerprints
    from ingest.steps.fingerprint import FingerprintResult
    from ingest.steps.metadata import SEALER, ExtractMetadata, _plain

    item_id = ingestion.item_id
    assert item_id is not None
    with transaction(archive.engine) as session:
        if session.get(Item, item_id) is None:
            return  # deleted while we decoded it
        row = session.get(ItemMetadata, item_id)
        sealer = sealer_for(archive)
        if METADATA in needed:
            if row is not None:
                session.delete(row)
                session.flush()
            ingestion.results.setdefault(SEALER, sealer)
            ExtractMetadata().save(ingestion, session)  # the row as ingest writes it, failures included
        elif row is not None and sealer.keys is not None and row.key_version != PENDING:
            fields = metadata_fields(sealer.keys, row)
            fields["errors"] = _plain(list(ingestion.errors))
            reseal(row, sealer, fields)  # the failures are sealed with the rest
            session.add(row)
        result: FingerprintResult | None = ingestion.results.get("fingerprint")
        if FINGERPRINT in needed and result is not None:
            store_fingerprints(session, sealer, item_id, result.hashes, result.probe)  # candidates: catalog only
            if not result.complete:  # the rest of a long video, as after ingest
                enqueue(session, FINGERPRINT_JOB, item_id=item_id, payload={"start": result.covered or 0.0})
        for pending in ingestion.events:
            append_event(session, pending.event_type, actor=archive.actor, item_id=item_id,
                         objects=pending.objects, outcome=pending.outcome,
                         details={**pending.details, "backfill": True})


def _sealed_errors(archive: Archive, row: ItemMetadata | None) -> list[dict[str, str]]:
    """The item's recorded failures, opened from its sealed metadata (kept when the steps run again)."""
    from archive.catalog.metadata import metadata_fields
    from archive.catalog.sealing import PENDING, sealer_for
    from archive.services.analysis import NeedsIdentity

    if row is None:
        return []
    keys = sealer_for(archive).keys
    if keys is None or row.key_version == PENDING:
        raise NeedsIdentity("needs the catalog key (`evidence unlock`) to read the item's sealed metadata")
    return list(metadata_fields(keys, row).get("errors") or [])
