"""Custody-log use cases, one function each, for the CLI and (read-only) the HTTP API.

Everything returns plain data (dicts ready for JSON, or an `AuditReport`);
hashes are lowercase hex except inside signed notes, which are byte-exact
C2SP text. Proofs are checked here with the same verifier an auditor would
use before they are handed out, so a damaged tile cache can never produce a
wrong proof silently.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlmodel import col

from archive.catalog.checkpoints import Checkpoint
from archive.catalog.events import Event, LogHead
from archive.custody.checkpoint import VKEY_NAME, Signer
from archive.custody.entry import encode, leaf_hash
from archive.custody.issue import LogCorrupt, issue_checkpoint
from archive.custody.log import event_entry
from archive.custody.merkle import ProofError, consistency_proof, inclusion_proof
from archive.custody.tiles import TileStore
from archive.custody.verify import VerificationError, Verifier, verify_consistency, verify_inclusion
from archive.db import transaction
from archive.services.errors import Ambiguous, NotFound, ServiceError

if TYPE_CHECKING:
    from archive.context import Archive
    from archive.custody.audit import AuditReport

# Automatic checkpoints: at most this long after the previous one while events are waiting.
CHECKPOINT_DELAY_SECONDS = 5.0
MIN_PREFIX = 8


class CustodyError(ServiceError):
    """The custody log cannot do what was asked; the message says why."""


def _checkpoint_json(checkpoint: Checkpoint, new: bool | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "tree_size": checkpoint.tree_size,
        "root_hash": checkpoint.root_hash,
        "note": checkpoint.note,
        "issued_at": checkpoint.issued_at,
    }
    if new is not None:
        data["new"] = new
    return data


def log_signer(archive: Archive) -> Signer:
    """The checkpoint signer, read once per process."""
    return archive.runtime.keys.signer()


def checkpoint(archive: Archive) -> dict[str, Any]:
    """Sign the log as it stands now (or return the latest checkpoint if nothing was added since).

    The result also holds what each site got (`mirror`) and the sites whose copy of the log disagrees
    with this catalog's (`conflicts`, site name -> why): the caller must say so loudly.
    """
    signer = log_signer(archive)
    try:
        with transaction(archive.engine) as session:
            issued, new = issue_checkpoint(session, signer)
    except LogCorrupt as exc:
        raise CustodyError(f"refusing to sign a checkpoint: {exc}") from exc
    mirrored = mirror_to_sites(archive, signer)
    result = _checkpoint_json(issued, new)
    result["mirror"] = mirrored
    # A site whose copy disagrees (a catalog rolled back and grown again) is never overwritten: say so loudly.
    result["conflicts"] = mirror_conflicts(mirrored)
    return result


def mirror_conflicts(mirrored: dict[str, Any]) -> dict[str, str]:
    """Site name -> what disagrees, for the sites whose copy of the log is not this catalog's log."""
    return {name: str(r.get("error")) for name, r in mirrored.items() if isinstance(r, dict) and r.get("conflict")}


def conflict_message(site: str, why: str) -> str:
    return f"the log on site {site} disagrees with this catalog's log: rolled back? ({why})"


def mirror_to_sites(archive: Archive, signer: Signer | None = None) -> dict[str, Any]:
    """Put the log up to the latest checkpoint on every storage site (see `archive.custody.mirror`), and
    then the journal of record changes the checkpoint covers (`archive.records.journal`).

    Never fails the caller: a site that cannot take it now says why in the result and catches up next time;
    a site whose copy conflicts is marked `conflict` (see `mirror_conflicts`) and is never overwritten.
    """
    from dataclasses import asdict

    from archive.custody.mirror import mirror_log

    try:
        signer = signer or log_signer(archive)
        vkey = signer.verifier.encode()

        def sealed() -> bytes:
            from archive.custody.recover import seal_signing_key

            return seal_signing_key(signer, archive.recipients())

        results = mirror_log(archive.engine, archive.backends.values(), vkey=vkey, sealed_key=sealed)
    except Exception as exc:  # noqa: BLE001 - the checkpoint stands whatever happens to its copies
        return {"error": str(exc) or type(exc).__name__}
    out: dict[str, Any] = {name: asdict(result) for name, result in results.items()}
    # The journal of record changes goes where the log just went, so the site's log covers each change it gets.
    from archive.records.journal import publish_journal

    journals = publish_journal(archive, [name for name, result in results.items() if result.error is None])
    for name, journal in journals.items():
        if journal.objects or journal.error:
            out[name]["journal"] = asdict(journal)
    return out


def _age_seconds(issued_at: str) -> float:
    issued = datetime.strptime(issued_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return (datetime.now(UTC) - issued).total_seconds()


def maybe_checkpoint(archive: Archive, max_age_seconds: float | None = None) -> dict[str, Any] | None:
    """Issue a checkpoint if events wait for one and the last is older than `max_age_seconds`.

    The delay defaults to the config's `[log] checkpoint_delay_seconds`, else
    CHECKPOINT_DELAY_SECONDS. Cheap when there is nothing to do (two small
    reads), so it can end every CLI command and every turn of the worker loop.
    """
    if max_age_seconds is None:
        max_age_seconds = float(archive.settings.extra.get("log", {}).get("checkpoint_delay_seconds",
                                                                         CHECKPOINT_DELAY_SECONDS))
    with transaction(archive.engine) as session:
        head = session.get(LogHead, 1)
        newest = col(Checkpoint.tree_size).desc()
        latest = session.execute(
            select(col(Checkpoint.tree_size), col(Checkpoint.issued_at)).order_by(newest).limit(1)
        ).first()
    size = head.size if head else 0
    if latest is not None and (latest[0] >= size or _age_seconds(latest[1]) < max_age_seconds):
        return None
    return checkpoint(archive)


def latest_checkpoint(archive: Archive) -> dict[str, Any] | None:
    with transaction(archive.engine) as session:
        latest = session.execute(select(Checkpoint).order_by(col(Checkpoint.tree_size).desc()).limit(1)).scalar()
    return None if latest is None else _checkpoint_json(latest)


def _stored_checkpoint(session: Any, size: int) -> Checkpoint:
    found = session.get(Checkpoint, size)
    if found is None:
        raise CustodyError(f"no checkpoint of size {size} (see `evidence log checkpoint`)")
    return found


def _chosen_checkpoint(session: Any, checkpoint_size: int | None) -> Checkpoint:
    if checkpoint_size is not None:
        return _stored_checkpoint(session, checkpoint_size)
    latest = session.execute(select(Checkpoint).order_by(col(Checkpoint.tree_size).desc()).limit(1)).scalar()
    if latest is None:
        raise CustodyError("no checkpoint yet; run `evidence log checkpoint`")
    return latest


def _inclusion_document(event: Event, checkpoint: Checkpoint, tiles: TileStore) -> dict[str, Any]:
    """What `log prove --json` prints; checked here as an auditor would before anyone sees it."""
    entry = event_entry(event)
    encoded = encode(entry)
    leaf = leaf_hash(encoded)
    proof = inclusion_proof(tiles, event.seq, checkpoint.tree_size)
    try:
        verify_inclusion(leaf, event.seq, checkpoint.tree_size, proof, bytes.fromhex(checkpoint.root_hash))
    except VerificationError as exc:
        raise CustodyError(f"event {event.seq} does not verify against checkpoint {checkpoint.tree_size} ({exc}); "
                           "run `evidence log verify`") from exc
    return {
        "event": entry,
        "entry": encoded.decode("utf-8"),
        "leaf_index": event.seq,
        "leaf_hash": leaf.hex(),
        "tree_size": checkpoint.tree_size,
        "root_hash": checkpoint.root_hash,
        "inclusion_proof": [h.hex() for h in proof],
        "note": checkpoint.note,
    }


def prove_inclusion(archive: Archive, seq: int, checkpoint_size: int | None = None) -> dict[str, Any]:
    """The event, its leaf hash, and its audit path to a signed root (by default the latest checkpoint)."""
    with transaction(archive.engine) as session:
        event = session.get(Event, seq)
        if event is None:
            raise CustodyError(f"no event with sequence number {seq}")
        chosen = _chosen_checkpoint(session, checkpoint_size)
        if chosen.tree_size <= seq:
            if checkpoint_size is None:
                raise CustodyError(f"event {seq} is not covered by a checkpoint yet; run `evidence log checkpoint`")
            raise CustodyError(f"checkpoint {checkpoint_size} does not cover event {seq}")
        tiles = TileStore(session)
        tiles.preload(lambda source: inclusion_proof(source, seq, chosen.tree_size))
        return _inclusion_document(event, chosen, tiles)


def item_proofs(archive: Archive, ref: str, checkpoint_size: int | None = None) -> dict[str, Any]:
    """Everything an outsider needs to check an item's custody offline: for export bundles.

    The verifier key, one checkpoint (the latest unless given), and the
    inclusion proof of each of the item's events it covers; later events are
    listed by sequence number as not yet provable.
    """
    with transaction(archive.engine) as session:
        item_id = _resolve_item_id(session, ref)
        chosen = _chosen_checkpoint(session, checkpoint_size)
        stmt = select(Event).where(col(Event.item_id) == item_id).order_by(col(Event.seq))
        events = session.execute(stmt).scalars().all()
        covered = [e for e in events if e.seq < chosen.tree_size]
        tiles = TileStore(session)
        tiles.preload(lambda source: [inclusion_proof(source, e.seq, chosen.tree_size) for e in covered])
        proofs = [_inclusion_document(e, chosen, tiles) for e in covered]
    return {
        "item": item_id,
        "vkey": verifier_key(archive).encode(),
        "checkpoint": _checkpoint_json(chosen),
        "proofs": proofs,
        "uncovered": [e.seq for e in events if e.seq >= chosen.tree_size],
    }


def prove_consistency(archive: Archive, old_size: int, new_size: int) -> dict[str, Any]:
    """The RFC 9162 proof that checkpoint `old_size` is a prefix of checkpoint `new_size`."""
    if old_size > new_size:
        raise CustodyError(f"the old size ({old_size}) must not exceed the new size ({new_size})")
    with transaction(archive.engine) as session:
        old, new = _stored_checkpoint(session, old_size), _stored_checkpoint(session, new_size)
        try:
            tiles = TileStore(session)
            tiles.preload(lambda source: consistency_proof(source, old_size, new_size))
            proof = consistency_proof(tiles, old_size, new_size)
        except ProofError as exc:
            raise CustodyError(str(exc)) from exc
    try:
        verify_consistency(old_size, new_size, bytes.fromhex(old.root_hash), bytes.fromhex(new.root_hash), proof)
    except VerificationError as exc:
        raise CustodyError(f"checkpoints {old_size} and {new_size} are not consistent: {exc}") from exc
    return {
        "old_size": old_size,
        "new_size": new_size,
        "old_root_hash": old.root_hash,
        "new_root_hash": new.root_hash,
        "consistency_proof": [h.hex() for h in proof],
        "old_note": old.note,
        "new_note": new.note,
    }


def _resolve_item_id(session: Any, ref: str) -> str:
    """An item id from a full id or a unique prefix (the items service when present, else the events)."""
    from archive.services.items import resolve_item

    try:
        return str(resolve_item(session, ref).id)
    except NotFound:
        pass  # an id only the log knows (a refused upload, say)
    if len(ref) < MIN_PREFIX:
        raise NotFound(f"an item reference needs at least {MIN_PREFIX} characters: {ref!r}")
    pattern = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    stmt = select(col(Event.item_id)).where(col(Event.item_id).like(pattern, escape="\\")).distinct().limit(2)
    found = [row[0] for row in session.execute(stmt)]
    if not found:
        raise NotFound(f"no item matches {ref!r}")
    if len(found) > 1:
        raise Ambiguous(f"{ref!r} matches more than one item; give more characters")
    return str(found[0])


def item_timeline(archive: Archive, ref: str) -> dict[str, Any]:
    """Every custody event about one item, oldest first, and whether a checkpoint covers it yet."""
    with transaction(archive.engine) as session:
        item_id = _resolve_item_id(session, ref)
        stmt = select(Event).where(col(Event.item_id) == item_id).order_by(col(Event.seq))
        events = session.execute(stmt).scalars().all()
        covered = session.execute(select(func.max(Checkpoint.tree_size))).scalar() or 0
    for e in events:
        event_entry(e)  # EventAltered: a row no event could hold
    return {
        "item": item_id,
        "checkpoint_size": covered,
        "events": [
            {
                "seq": e.seq,
                "time": e.occurred_at,
                "type": e.event_type,
                "actor": e.actor,
                "outcome": e.outcome,
                "objects": list(e.objects),
                "details": dict(e.details),
                "leaf_hash": e.leaf_hash,
                "checkpointed": e.seq < covered,
            }
            for e in events
        ],
    }


def verifier_key(archive: Archive, vkey_text: str | None = None) -> Verifier:
    """The key checkpoints must verify with: the one given, else the home's published keys/log.vkey."""
    if vkey_text is None:
        path = archive.settings.keys_dir / VKEY_NAME
        if not path.exists():
            return log_signer(archive).verifier
        vkey_text = path.read_text(encoding="ascii")
    try:
        return Verifier.decode(vkey_text)
    except VerificationError as exc:
        raise CustodyError(f"bad verifier key: {exc}") from exc


def verify_log(archive: Archive, vkey_text: str | None = None) -> AuditReport:
    """Recompute the tree from every stored event and hold it against every checkpoint, then the catalog
    against the log: the log's rules (one commitment per item, copy hashes changed only from a source)
    and every item's commitment and every live replica's hash (`archive.custody.crosscheck`)."""
    from archive.custody.audit import RuleBroken, audit_log
    from archive.custody.crosscheck import cross_check, log_index

    verifier = verifier_key(archive, vkey_text)
    origin = archive.settings.extra.get("log", {}).get("origin")
    report = audit_log(archive.engine, verifier, origin)
    index = log_index(archive.engine)
    for broken in index.problems:
        about = f"item {broken.item}: " if broken.item else ""
        report.add(RuleBroken(broken.seq, about + broken.message))
    report.catalog = cross_check(archive, index)
    return report
