"""Exporting evidence bundles: the one use case `evidence export` and `POST /v1/exports` both call.

The order is what makes a bundle provable:

1. choose what goes (`selection.select_export`: compartments, consent, overrides) and for whom;
2. record *export started* (`dissemination`): purpose, the recipients' key fingerprints, the bundle key,
   the items and records included; then sign a checkpoint that covers it;
3. gather every carried event with its inclusion proof against that one checkpoint, the records and salts;
4. write each part: originals decrypted once with the access identity, streamed through the hashes
   into the zip or tar and, with recipients, age encryption (`bag.write_bag`, `output.open_output`);
5. record the *transfer*: the SHA-256 of each file produced, provable later from the archive.

Anything that fails after step 2 is recorded as a failed transfer, and every file of the export is removed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from archive.exports import formats
from archive.exports.formats import BundleInfo, Withheld
from archive.roles import Role
from archive.services.errors import Forbidden, Invalid, ServiceError

if TYPE_CHECKING:
    from archive.age import Recipient
    from archive.context import Archive
    from archive.exports.bag import BagFile
    from archive.exports.records import RecordSet
    from archive.exports.selection import ExportRequest, Selection

CHUNK = 1 << 20
_UNSET = "not configured (set {} under [export] in the archive's config.toml)"


@dataclass
class ExportResult:
    """What an export wrote and recorded."""

    export_id: str
    purpose: str
    files: list[dict[str, Any]]  # {"path" (None when streamed), "part", "sha256", "size"}
    to: str | None
    recipients: list[str]  # key fingerprints
    encrypted: bool
    counts: dict[str, int]
    withheld: list[Withheld]
    overridden: list[str]
    started_seq: int
    transfer_seq: int
    checkpoint_size: int

    def as_dict(self) -> dict[str, Any]:
        return {"export": self.export_id, "purpose": self.purpose, "files": self.files, "to": self.to,
                "recipients": self.recipients, "encrypted": self.encrypted, "counts": self.counts,
                "withheld": [w.as_dict() for w in self.withheld], "overridden": self.overridden,
                "started_event": self.started_seq, "transfer_event": self.transfer_seq,
                "checkpoint_size": self.checkpoint_size}


@dataclass
class _Keys:
    recipients: list[Recipient]
    fingerprints: list[str]
    to: str | None


@dataclass
class _Custody:
    checkpoint: str  # the signed note
    checkpoint_size: int
    files: dict[str, bytes] = field(default_factory=dict)  # bag path -> bytes
    entries: dict[int, dict[str, Any]] = field(default_factory=dict)  # seq -> decoded entry


def _exporter(role: Role) -> None:
    if role not in (Role.CUSTODIAN, Role.INVESTIGATOR):
        raise Forbidden(f"exporting evidence needs the custodian or investigator role, not {role}")


def _keys(archive: Archive, purpose: str, role: Role, to: str | None, recipients: Sequence[str],
          plaintext: bool) -> _Keys:
    """Who can open the bundle: a registered recipient (whose kind must be the purpose), ad-hoc keys (custodians),
    or nobody but whoever holds the file (`--plaintext`, said explicitly)."""
    from archive.age import Recipient

    if plaintext and (to or recipients):
        raise Invalid("--plaintext writes an unencrypted bundle: give it without --to or --recipient")
    if not plaintext and not to and not recipients:
        raise Invalid("a bundle is encrypted to its recipient: give --to NAME (a registered recipient) or, as a "
                      "custodian, --recipient age1…; --plaintext writes it unencrypted")
    if recipients and role is not Role.CUSTODIAN:
        raise Forbidden("ad-hoc recipients (--recipient) are for custodians; export to a registered recipient (--to)")
    keys: list[Recipient] = []
    texts: list[str] = []
    if to:
        from archive.exports.recipients import resolve_recipient

        registered = resolve_recipient(archive, to, role=role)
        if registered.kind != purpose:
            raise Invalid(f"{to} is a {registered.kind} recipient: its bundles have purpose {registered.kind}, "
                          f"not {purpose}")
        texts.append(registered.age_recipient)
    texts.extend(recipients)
    for text in texts:
        try:
            keys.append(Recipient.parse(text))
        except Exception as exc:  # noqa: BLE001 - any malformed key: one clear refusal
            raise Invalid(f"{text[:16]}…: not an age recipient (age1…)") from exc
    return _Keys(keys, [formats.fingerprint(str(k)) for k in keys], to or None)


def _check_request(purpose: str, fmt: str, out: Path | None, stream: BinaryIO | None, split_size: int | None) -> None:
    if purpose not in formats.PURPOSES:
        raise Invalid(f"purpose {purpose!r}: one of {', '.join(formats.PURPOSES)}")
    if fmt not in formats.FORMATS:
        raise Invalid(f"format {fmt!r}: zip or tar")
    if (out is None) == (stream is None):
        raise ServiceError("an export writes either to a file or to a stream")
    if stream is not None and split_size is not None:
        raise Invalid("a split export writes several files: not over a single stream (use `evidence export`)")
    if split_size is not None and split_size < 1:
        raise Invalid("--split-size must be positive")
    if out is not None and out.exists():
        raise Invalid(f"{out} exists already; an export never overwrites a file")


def plan_export(archive: Archive, request: ExportRequest, *, role: Role) -> dict[str, Any]:
    """What an export would carry and withhold, and why: counts and reasons, never identities."""
    from archive.exports.selection import select_export

    _exporter(role)
    if request.purpose not in formats.PURPOSES:
        raise Invalid(f"purpose {request.purpose!r}: one of {', '.join(formats.PURPOSES)}")
    selection = select_export(archive, request, role=role)
    return {"purpose": selection.purpose, "counts": _counts(selection), "items": selection.items,
            "overridden": selection.overridden, "withheld": [w.as_dict() for w in selection.withheld]}


def _counts(selection: Selection) -> dict[str, int]:
    return {"items": len(selection.items), "incidents": len(selection.incidents), "victims": len(selection.victims),
            "sources": len(selection.sources), "links": len(selection.links)}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _start(archive: Archive, export_id: str, selection: Selection, keys: _Keys, fmt: str, bundle_vkey: str,
           override_reason: str | None) -> int:
    """The `export started` event and the export's row, in one transaction; returns the event's seq."""
    from archive.catalog.exports import STARTED, Export
    from archive.catalog.secrets import seal_row, sealer
    from archive.custody.log import DISSEMINATION, append_event
    from archive.db import transaction

    details = {"action": formats.EXPORT_STARTED, "export": export_id, "purpose": selection.purpose, "format": fmt,
               "encrypted": bool(keys.recipients), "recipients": keys.fingerprints, "to": keys.to,
               "bundle_key": bundle_vkey, "items": sorted(selection.items), "records": sorted(selection.record_ids()),
               "overrides": sorted(selection.overridden)}
    _ = archive.actor
    with transaction(archive.engine) as session:
        event = append_event(session, DISSEMINATION, actor=archive.actor, details=details)
        version, sealed = seal_row(sealer(archive), "exports", export_id,
                                   {"to": keys.to, "override_reason": override_reason, "files": []})
        session.add(Export(id=export_id, purpose=selection.purpose, state=STARTED, actor=archive.actor,
                           started_seq=event.seq, created_at=event.occurred_at, updated_at=event.occurred_at,
                           sealed=sealed, key_version=version))
    return event.seq


def _finish(archive: Archive, export_id: str, files: list[dict[str, Any]], failure: str | None = None) -> int:
    """The `transfer` event (outcome failure when the export did not complete) and the row's final state."""
    from archive.catalog.exports import FAILED, TRANSFERRED, Export
    from archive.catalog.secrets import open_row, seal_row, sealer
    from archive.custody.log import TRANSFER, append_event
    from archive.db import transaction

    parts = len(files)
    details: dict[str, Any] = {"action": formats.TRANSFERRED, "export": export_id,
                               "files": [{"part": f["part"], "of": parts, "sha256": f["sha256"]} for f in files]}
    if failure is not None:
        details["failure"] = failure
    with transaction(archive.engine) as session:
        event = append_event(session, TRANSFER, actor=archive.actor, outcome="failure" if failure else "success",
                             details=details)
        row = session.get(Export, export_id)
        if row is not None:
            fields = open_row(archive, "exports", export_id, row.key_version, row.sealed) or {}
            fields["files"] = [str(f["path"]) for f in files if f.get("path")]
            row.key_version, row.sealed = seal_row(sealer(archive), "exports", export_id, fields)
            row.state = FAILED if failure else TRANSFERRED
            row.transfer_seq = event.seq
            row.updated_at = event.occurred_at
            session.add(row)
    return event.seq


def _custody(archive: Archive, selection: Selection, change_events: set[int], started_seq: int) -> _Custody:
    """Sign a checkpoint covering the export's start; every carried event with its tlog-proof against it."""
    from sqlmodel import col, select

    from archive.catalog.checkpoints import Checkpoint
    from archive.catalog.events import Event
    from archive.custody.entry import encode, leaf_hash
    from archive.custody.log import event_entry
    from archive.custody.merkle import inclusion_proof
    from archive.custody.proof_format import TlogProof
    from archive.custody.service import CustodyError, checkpoint, verifier_key
    from archive.custody.tiles import TileStore
    from archive.custody.verify import VerificationError, verify_inclusion
    from archive.db import transaction

    signed = checkpoint(archive)
    size = int(signed["tree_size"])
    if size <= started_seq:
        raise CustodyError("the checkpoint does not cover the export's start; run `evidence log verify`")
    wanted_items = set(selection.items)
    with transaction(archive.engine) as session:
        stored = session.get(Checkpoint, size)
        if stored is None:
            raise CustodyError(f"checkpoint {size} is not stored")
        events: list[Event] = []
        ids = sorted(wanted_items)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            events += session.exec(select(Event).where(col(Event.item_id).in_(chunk), col(Event.seq) < size)).all()
        seqs = sorted({*change_events, started_seq} - {e.seq for e in events})
        for start in range(0, len(seqs), 500):
            events += session.exec(select(Event).where(col(Event.seq).in_(seqs[start:start + 500]))).all()
        events.sort(key=lambda e: e.seq)
        tiles = TileStore(session)
        tiles.preload(lambda source: [inclusion_proof(source, e.seq, size) for e in events])
        custody = _Custody(stored.note, size)
        root = bytes.fromhex(stored.root_hash)
        for event in events:
            if event.seq >= size:
                continue
            entry = event_entry(event)
            encoded = encode(entry)
            path = inclusion_proof(tiles, event.seq, size)
            try:
                verify_inclusion(leaf_hash(encoded), event.seq, size, path, root)
            except VerificationError as exc:
                raise CustodyError(f"event {event.seq} does not verify against checkpoint {size} ({exc}); "
                                   "run `evidence log verify`") from exc
            custody.files[f"{formats.EVENTS}{event.seq}.json"] = encoded
            custody.files[f"{formats.PROOFS}{event.seq}.tlog-proof"] = \
                TlogProof(event.seq, tuple(path), stored.note).encode().encode("utf-8")
            custody.entries[event.seq] = entry
    custody.files[formats.CHECKPOINT] = stored.note.encode("utf-8")
    custody.files[formats.LOG_VKEY] = (verifier_key(archive).encode() + "\n").encode("ascii")
    return custody


def _settings(archive: Archive) -> dict[str, str]:
    section = archive.settings.extra.get("export", {})
    return {str(k): str(v) for k, v in section.items()} if isinstance(section, dict) else {}


def _bag_info(info: BundleInfo) -> dict[str, str]:
    from archive.exports.texts import external_description

    fields = {
        "Source-Organization": info.organization,
        "Contact-Name": info.contact_name,
        "Contact-Email": info.contact_email,
        "External-Description": external_description(info),
        "External-Identifier": info.export_id + (f"-{info.part}-of-{info.parts}" if info.parts > 1 else ""),
        "Bagging-Date": info.created_at[:10],
        "BagIt-Profile-Identifier": formats.PROFILE_IDENTIFIER,
        "Evidence-Export-Id": info.export_id,
        "Evidence-Purpose": info.purpose,
        "Evidence-Origin": info.origin,
        "Evidence-Export-Event": str(info.started_seq),
    }
    if info.parts > 1:
        fields["Bag-Group-Identifier"] = info.export_id
        fields["Bag-Count"] = f"{info.part} of {info.parts}"
    return fields


def _original_chunks(archive: Archive, item_id: str, seen: dict[str, str]) -> Iterator[bytes]:
    """The item's plaintext, verified against the log's commitment as it streams (an `access` event each);
    the first copy that opens is used: a bag under way cannot restart a file. `seen["sha256"]`: the digest
    the check computed, which the writer takes instead of hashing the same bytes again."""
    from archive.age import AgeError
    from archive.services.errors import IntegrityError
    from archive.services.originals import open_original
    from storage.base import StorageError

    original = open_original(archive, item_id, purpose="export")
    for copy in original.copies:
        started = False
        try:
            for chunk in copy.chunks():
                started = True
                yield chunk
        except (AgeError, IntegrityError, StorageError, OSError) as exc:
            copy.record_bad(exc)  # a read is a check too: marked, and a repair queued
            original.failures.append(f"{copy.replica.backend}: {exc}")
            if started:  # bytes of it are in the bag already: this part cannot switch copies
                raise IntegrityError(f"item {item_id}: the copy on {copy.replica.backend} failed part-way "
                                     f"({exc}); the export was stopped") from exc
            continue
        seen["sha256"] = copy.sha256
        return
    raise original.refuse()


def _payload(archive: Archive, items: list[str], placement: dict[str, tuple[str, int]], facts: dict[str, Any],
             small: dict[str, bytes]) -> Iterator[BagFile]:
    from archive.exports.bag import BagFile

    for item_id in items:
        seen: dict[str, str] = {}
        yield BagFile(placement[item_id][0], int(facts[item_id]["size"]),
                      lambda item_id=item_id, seen=seen: _original_chunks(archive, item_id, seen),  # type: ignore[misc]
                      sha256=lambda seen=seen: seen.get("sha256", ""))  # type: ignore[misc]
    for path in sorted(small):
        data = small[path]
        yield BagFile(path, len(data), lambda data=data: iter((data,)))  # type: ignore[misc]


def _certificates(records: RecordSet, custody: _Custody, info: BundleInfo) -> dict[str, bytes]:
    from archive.exports.certificate import certificate_pdf

    by_item: dict[str, list[dict[str, Any]]] = {}
    for seq in sorted(custody.entries):
        entry = custody.entries[seq]
        if entry.get("item"):
            by_item.setdefault(str(entry["item"]), []).append(entry)
    return {f"{formats.CERTIFICATES}{item['id']}.pdf":
            certificate_pdf(item, by_item.get(str(item["id"]), []), custody.checkpoint, info)
            for item in records.items}


def _tag_files(info: BundleInfo, withheld: list[Withheld]) -> dict[str, bytes]:
    from archive.exports.texts import bagit_profile, readme_text, withheld_text

    script = (Path(__file__).parent / "verify_script.py").read_bytes()
    return {"README.txt": readme_text(info).encode("utf-8"), "verify.py": script,
            "withheld.txt": withheld_text(withheld, info).encode("utf-8"),
            "bagit-profile.json": (json.dumps(bagit_profile(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")}


def _small_files(records: RecordSet, custody: _Custody, certificates: dict[str, bytes], bundle_vkey: str
                 ) -> dict[str, bytes]:
    files = {f"{formats.RECORDS}{name}": data for name, data in records.files.items()}
    files.update(custody.files)
    files.update(certificates)
    files[formats.BUNDLE_VKEY] = (bundle_vkey + "\n").encode("ascii")
    files[formats.SALTS] = (json.dumps(records.salts, indent=1, sort_keys=True) + "\n").encode("ascii")
    return files


def export_bundle(archive: Archive, request: ExportRequest, *, role: Role, out: Path | None = None,
                  stream: BinaryIO | None = None, to: str | None = None, recipients: Sequence[str] = (),
                  plaintext: bool = False, fmt: str = "zip", split_size: int | None = None) -> ExportResult:
    """Write an evidence bundle (see the module docstring) to `out` (its parts beside it when split) or `stream`."""
    from archive.custody.bundle_key import bundle_signer
    from archive.custody.service import log_signer
    from archive.exports.bag import write_bag
    from archive.exports.output import open_output
    from archive.exports.packing import estimate_overhead, per_file_overhead, plan_parts
    from archive.exports.records import build_records, item_facts
    from archive.exports.selection import select_export

    _exporter(role)
    _check_request(request.purpose, fmt, out, stream, split_size)
    keys = _keys(archive, request.purpose, role, to, recipients, plaintext)
    selection = select_export(archive, request, role=role)
    if not selection.items and not selection.record_ids():
        raise Invalid("nothing to export: the selection holds no item and no record"
                      + (" (everything was withheld: see the plan)" if selection.withheld else ""))
    facts = item_facts(archive, selection.items)
    signer = bundle_signer(archive)
    bundle_vkey = signer.verifier.encode()
    export_id = formats.new_export_id()
    started = _start(archive, export_id, selection, keys, fmt, bundle_vkey, request.override_reason)
    written: list[dict[str, Any]] = []
    try:
        paths = {i: formats.original_path(i, facts[i].get("media_type"), facts[i].get("original_name"))
                 for i in selection.items}
        first = build_records(archive, selection, placement={i: (paths[i], 1) for i in selection.items})
        custody = _custody(archive, selection, first.change_events, started)
        settings = _settings(archive)
        origin = log_signer(archive).name
        info = BundleInfo(export_id=export_id, origin=origin, purpose=selection.purpose, created_at=_now(),
                          organization=settings.get("organization") or origin,
                          contact_name=settings.get("contact_name") or _UNSET.format("contact_name"),
                          contact_email=settings.get("contact_email") or _UNSET.format("contact_email"),
                          encrypted=bool(keys.recipients), recipients=tuple(keys.fingerprints), to=keys.to,
                          started_seq=started, checkpoint_size=custody.checkpoint_size,
                          counts={**_counts(selection), "events": len(custody.entries)})
        withheld = [*selection.withheld, *first.withheld]
        certificates = _certificates(first, custody, info)
        small = _small_files(first, custody, certificates, bundle_vkey)
        tags = _tag_files(info, withheld)
        carried = {path: len(data) for path, data in {**small, **tags}.items()}
        name = formats.bag_name(export_id, 99, 99)  # the longest a part's folder can be named here
        # The files the writer makes (bagit.txt, bag-info.txt, tag manifests, signature): a few KiB at most.
        overhead = estimate_overhead(fmt, carried, name=name, recipients=len(keys.recipients)) + 8192 \
            + 4 * len(selection.items)  # a part number of more digits in items.json
        per_file = max((per_file_overhead(fmt, paths[i], name) for i in selection.items), default=0)
        parts = plan_parts({i: int(facts[i]["size"]) for i in selection.items}, overhead=overhead, per_file=per_file,
                           limit=split_size, encrypted=bool(keys.recipients))
        records = first
        if len(parts) > 1:
            placement = {i: (paths[i], k) for k, part in enumerate(parts, start=1) for i in part}
            records = build_records(archive, selection, placement=placement)
            small = _small_files(records, custody, certificates, bundle_vkey)
        for k, part_items in enumerate(parts, start=1):
            part_info = replace(info, part=k, parts=len(parts))
            target = formats.part_path(out, k, len(parts)) if out is not None else None
            with open_output(target, stream=stream, recipients=keys.recipients or None) as sink:
                write_bag(sink, name=part_info.name, fmt=fmt, payload=_payload(archive, part_items, {
                    i: (paths[i], k) for i in part_items}, facts, small), bag_info=_bag_info(part_info),
                    tag_files=_tag_files(part_info, withheld), sign=signer.sign_note)
            written.append({"path": str(target) if target is not None else None, "part": k, "sha256": sink.sha256,
                            "size": sink.size})
    except BaseException as exc:
        for done in written:
            if done["path"]:
                Path(done["path"]).unlink(missing_ok=True)
        try:
            _finish(archive, export_id, written, failure=type(exc).__name__)
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise
    transfer = _finish(archive, export_id, written)
    return ExportResult(export_id, selection.purpose, written, keys.to, keys.fingerprints, bool(keys.recipients),
                        info.counts, withheld, sorted(selection.overridden), started, transfer,
                        custody.checkpoint_size)
