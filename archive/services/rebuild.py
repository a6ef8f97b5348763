"""Rebuilding the item catalog from one storage site, for the day the database is lost.

Every original has an encrypted manifest beside it (`<object>.manifest`), and
an encrypted addendum for each later arrival of the same bytes
(`<object>.<random>.arrival`; names and formats in `archive.objects`). With the
custodian identity, these on one backend are enough to recreate each item, its
stored copy and every provenance row (who sent it, when, under which name).

age authenticates no sender: anyone holding the public recipient can write a
well-formed manifest. So each manifest is held against the copy of the custody
log the site keeps (checked against its signed checkpoints, and a witnessed
one when given): the commitment recomputed from the manifest's item id, salt
and SHA-256 must be the log's, the original's ciphertext must hash to what the
log recorded for that copy (and the manifest to what the log recorded for it),
and the original must decrypt to the SHA-256 the manifest gives. A manifest
that fails is *rejected*: listed in the report (`rejected`: not recorded by the
log, forged, or its original substituted) and never entered in the catalog;
its objects are left untouched on the site for a custodian to examine. Items
ingested after the site's last checkpoint are rejected too (nothing signed
vouches for them): decrypt them with `age` and ingest them again.

A site with no usable log (none, or one that does not verify) can vouch for
nothing. Given a witness's key or checkpoint, such a site is refused before
anything is made, unless the custodian accepts manifests alone
(`accept_unchecked`). Without a witness, or so accepted, its items are
recovered *unchecked*: said loudly in the report, listed in the catalog
(setting `unchecked_items`) and in the log (the recovery events say
`"checked": false`), and still unchecked in any later rebuild of the same site.

The rebuilt catalog lives in a *new* home whose configuration points at the
same backend, so the old home is never overwritten. The new custody log opens
with the rebuild itself (PREMIS "recovery") and a fixity check for each copy,
and goes back to the site at the end (the site's copy of the log continues):
Records (incidents, victims, sources, links) come back from the site's journal,
each change checked against the same log (`archive.records.replay`);
a later rebuild of the same site takes those events over too, and reports
them apart from the archive's own (`rebuild_events`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import select

from archive.catalog.items import Item, Provenance, Replica
from archive.config import CONFIG_NAME, Policy, Settings, StorageSpec
from archive.custody.expected import LogIndex
from archive.custody.log import FIXITY_CHECK, append_event, utc_now
from archive.objects import ARRIVAL_FORMAT, ARRIVAL_SUFFIX, MANIFEST_FORMAT, MANIFEST_SUFFIX, Role, unseal
from archive.services.errors import CheckFailed, ServiceError
from archive.services.repair import CORRUPT, MISSING, REPLACED, VERIFIED, status_for
from storage.base import StorageError

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.age import Identity
    from archive.catalog.secrets import Sealer
    from archive.context import Archive
    from archive.custody.checkpoint import Signer
    from archive.custody.mirror import MirroredLog
    from archive.custody.verify import CheckpointBody, Verifier
    from storage.base import Backend, Marker

# PREMIS event type (id.loc.gov/vocabulary/preservation/eventType/rec).
RECOVERY = "recovery"
# A manifest from before the item's commitment, which a newer one beside the same original replaces.
SUPERSEDED = "superseded"
# The catalog setting listing the items recovered from their manifests alone (no log vouched for them).
UNCHECKED_ITEMS = "unchecked_items"
REBUILD_ACTION = "rebuild catalog"
SITE_KEY = "from the site itself: compare it with the key your witnesses hold"
ITEM_ACTION = "item recreated from manifest"


@dataclass
class Found:
    """One manifest read back, and what re-hashing its original showed."""

    manifest_name: str
    manifest_sha256: str
    manifest_size: int
    document: dict[str, Any]
    state: str  # verified | missing | corrupt
    version_id: str | None = None
    ciphertext_sha256: str | None = None  # of the original as read now
    why: str | None = None  # what made it missing or corrupt


@dataclass
class Arrival:
    """One addendum read back: a later arrival of the bytes beside `document["object"]`."""

    name: str
    sha256: str
    size: int
    document: dict[str, Any]


@dataclass
class RebuildReport:
    home: str
    backend: str
    manifests: int = 0
    arrivals: int = 0
    items: int = 0
    replicas: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)  # manifests the log does not vouch for
    superseded: int = 0  # manifests from before the item's commitment (a newer one carries its salt)
    log_events: int = 0  # custody events taken over from the site's copy of the log
    rebuild_events: int = 0  # of those, written by earlier rebuilds of this site (not the archive's own)
    rebuilds: int = 0  # earlier rebuilds the taken-over log records
    log_key: str = "none"  # "given", "from the site itself…", or "none" (no log was checked)
    unchecked: list[str] = field(default_factory=list)  # items no custody log vouched for
    journal_objects: int = 0  # objects of the site's journal of record changes (archive.records.journal)
    records: int = 0  # incidents, victims, sources, links … restored from it
    record_changes: int = 0  # their changes (history) restored, each checked against the site's log
    vocab_terms: int = 0  # vocabulary terms restored from the journal
    vocab_checked: bool | None = None  # True: the vocabulary restored is the one the site's log vouches for

    @property
    def checked(self) -> bool:
        return not self.unchecked

    def as_dict(self) -> dict[str, Any]:
        return {"home": self.home, "backend": self.backend, "manifests": self.manifests,
                "arrivals": self.arrivals, "items": self.items,
                "replicas": self.replicas, "problems": self.problems, "rejected": self.rejected,
                "superseded": self.superseded,
                "log_events": self.log_events, "rebuild_events": self.rebuild_events, "rebuilds": self.rebuilds,
                "log_key": self.log_key, "unchecked": self.unchecked, "journal_objects": self.journal_objects,
                "records": self.records, "record_changes": self.record_changes, "vocab_terms": self.vocab_terms,
                "vocab_checked": self.vocab_checked}


def _absolute_spec(spec: StorageSpec, home: Path) -> StorageSpec:
    """The same backend, with a local path made absolute so it works from the new home."""
    options = dict(spec.options)
    if spec.kind == "local":
        path = Path(options["path"])
        options["path"] = str(path if path.is_absolute() else (home / path).absolute())
    return StorageSpec(spec.name, spec.kind, options)


@dataclass
class SiteLog:
    """What the site's copy of the custody log allows: take it over, only check against it, or neither."""

    present: bool = False  # the site has a copy at all (a new log then needs a name of its own)
    accepted: bool = False  # the custodian accepts manifests alone, the log failing (`accept_unchecked`)
    log: MirroredLog | None = None  # checked; None when absent or when it does not verify
    signer: Signer | None = None  # the sealed signing key, when the log may be continued
    verifier: Verifier | None = None


def _refuse_unchecked(why: str) -> CheckFailed:
    return CheckFailed(f"{why}: it vouches for no item, and a witness's key or checkpoint was given, so nothing "
                       "was recovered (nothing was created). If you accept the manifests alone (anyone with the "
                       "public recipient can write one), rebuild again with --accept-unchecked: every item is "
                       "then marked unchecked, in the catalog and in the log")


def check_witness(vkey: str | None, witnessed: str | None) -> tuple[Verifier | None, CheckpointBody | None]:
    """The witness's key and checkpoint, checked before anything is read or made (`ServiceError`: exit 2)."""
    from archive.custody.verify import VerificationError, Verifier, open_note, parse_checkpoint

    if witnessed is not None and vkey is None:
        raise ServiceError("--checkpoint needs --vkey: a witness's checkpoint is checked with the witness's key, "
                           "never with the one the site keeps")
    try:
        verifier = Verifier.decode(vkey) if vkey is not None else None
    except VerificationError as exc:
        raise ServiceError(f"the verifier key given is not a log key ({exc})") from exc
    if witnessed is None or verifier is None:
        return verifier, None
    try:
        return verifier, parse_checkpoint(open_note(witnessed, verifier))
    except VerificationError as exc:
        raise ServiceError(f"the checkpoint given is not a checkpoint signed with the key given ({exc})") from exc


def _check_witness_archive(verifier: Verifier | None, body: CheckpointBody | None, archive_id: str | None) -> None:
    """A key or checkpoint of another archive's log is a mistake in use, said before anything is made."""
    from archive.custody.checkpoint import ORIGIN_PREFIX

    if archive_id is None:
        return
    ours = ORIGIN_PREFIX + archive_id
    for what, name in (("verifier key", verifier.name if verifier else None),
                       ("checkpoint", body.origin if body else None)):
        if name is not None and name != ours and not name.startswith(ours + "-rebuilt-"):
            raise ServiceError(f"the {what} given is for the log {name!r}, not this site's archive ({ours})")


def _site_log(
    backend: Backend,
    identities: list[Identity],
    vkey: str | None,
    witness: CheckpointBody | None,
    report: RebuildReport,
    *,
    accept_unchecked: bool = False,
) -> SiteLog:
    """The site's copy of the custody log, checked, and the signing key it keeps sealed.

    The verifier key should come from outside the site (a witness, the
    published log.vkey); without one the site's own is used and the report says
    so. A `witnessed` checkpoint (a signed note someone outside kept) must be
    extended by the site's log, so a log rolled back on the site is not taken
    over. A log that is missing or does not verify is reported and not taken
    over. With a witness's key or checkpoint given, the rebuild is then refused
    (`CheckFailed`, before anything is made) unless `accept_unchecked`;
    otherwise the items are recovered unchecked, and said so: one bad byte in
    the log must not cost the evidence, nor may a deleted log launder a
    planted item.
    """
    from archive.custody.merkle import MemoryTree
    from archive.custody.mirror import CHECKPOINTS, MirrorError, read_mirrored_log
    from archive.custody.recover import RecoveryError, check_take_over, unseal_signing_key
    from archive.custody.verify import VerificationError, Verifier

    witnessed = vkey is not None or witness is not None
    if next(iter(backend.list(CHECKPOINTS)), None) is None:
        if witnessed and not accept_unchecked:
            raise _refuse_unchecked("the site holds no copy of the custody log")
        report.problems.append({"log": "the site holds no copy of the custody log: NO ITEM WAS CHECKED against "
                                "any log, and a new log was started"})
        return SiteLog(accepted=accept_unchecked)
    found = SiteLog(present=True, accepted=accept_unchecked)
    try:
        verifier = Verifier.decode(vkey) if vkey else None
        site_log = read_mirrored_log(backend, verifier)
        verifier = verifier or Verifier.decode(site_log.vkey or "")
        if witness is not None:
            body = witness
            entries = site_log.entries[: body.tree_size]
            from archive.custody.entry import leaf_hash

            tree = MemoryTree(b"".join(leaf_hash(entry) for entry in entries))
            if len(entries) < body.tree_size or tree.root(body.tree_size) != body.root_hash:
                raise VerificationError(f"it does not extend the witnessed checkpoint of {body.tree_size} events "
                                        f"(the site's log holds {site_log.tree_size}): it was rolled back or rewritten")
    except (MirrorError, VerificationError, StorageError) as exc:
        if witnessed and not accept_unchecked:
            raise _refuse_unchecked(f"the site's copy of the custody log does not verify ({exc})") from exc
        report.problems.append({"log": f"the site's copy of the custody log does not verify ({exc}); it was not "
                                "taken over, NO ITEM WAS CHECKED against any log, and a new log was started under "
                                "a new name"})
        return found
    found.log, found.verifier = site_log, verifier
    report.log_key = "given" if vkey is not None else SITE_KEY
    try:
        found.signer = unseal_signing_key(backend, identities)
    except RecoveryError as exc:
        raise ServiceError(str(exc)) from exc
    if found.signer is not None:
        try:
            check_take_over(site_log, found.signer, verifier)
        except (RecoveryError, VerificationError) as exc:
            if vkey is not None:  # the log verifies with the witness's key: items are checked against it
                report.problems.append({"log": f"the site's copy of the custody log cannot be continued ({exc}); "
                                        "items are checked against it, and a new log was started under a new name"})
                found.signer = None
                return found
            # Signed by some other key than the one sealed beside it, and no outside key: trusted for nothing.
            report.problems.append({"log": f"the site's copy of the custody log cannot be continued ({exc}); "
                                    "it was not taken over, NO ITEM WAS CHECKED against any log, and a new log "
                                    "was started under a new name"})
            found.signer = found.log = found.verifier = None
            report.log_key = "none"
    elif found.signer is None:
        report.problems.append({"log": "the site keeps no sealed signing key: items are checked against its "
                                "log, and a new log was started under a new name"})
    return found


def _read_marker(backend: Backend) -> Marker | None:
    """The site's marker (the archive it belongs to, its name there), if it has one."""
    try:
        return backend.read_marker()
    except StorageError as exc:
        raise ServiceError(f"storage site {backend.name!r}: {exc}") from exc


def _read_all(backend: Backend, name: str) -> bytes:
    with backend.open_reader(name) as stream:
        return bytes(stream.read())


def _plaintext_sha256(backend: Backend, name: str, version_id: str | None, identities: list[Identity]) -> str:
    from archive.age import decrypt_stream

    digest = hashlib.sha256()
    with backend.open_reader(name, version_id) as stream:
        for chunk in decrypt_stream(stream, identities):
            digest.update(chunk)
    return digest.hexdigest()


def _examine(backend: Backend, name: str, identities: list[Identity]) -> Found:
    """Read one manifest, re-hash its original's ciphertext, and decrypt it to check its SHA-256."""
    from archive.age import AgeError

    data = _read_all(backend, name)
    document = unseal(data, identities, MANIFEST_FORMAT)
    found = Found(name, hashlib.sha256(data).hexdigest(), len(data), document, VERIFIED)
    original = str(document["object"])
    info = backend.stat(original)
    if info is None:
        found.state, found.why = MISSING, "original missing"
        return found
    found.version_id = info.version_id
    found.ciphertext_sha256, _ = backend.sha256_of(original, info.version_id)
    if found.ciphertext_sha256 != document.get("ciphertext_sha256"):
        found.state, found.why = CORRUPT, "the original's ciphertext is not the one its manifest names"
        return found
    try:
        plain = _plaintext_sha256(backend, original, info.version_id, identities)
    except AgeError as exc:
        found.state, found.why = CORRUPT, f"the original does not decrypt ({exc})"
        return found
    if plain != document.get("sha256"):
        found.state, found.why = CORRUPT, "the original decrypts to other bytes than its manifest's SHA-256"
    return found


def _against_log(index: LogIndex, site: str, found: Found) -> str | None:
    """Why the site's log does not vouch for this manifest, or None when it does.

    A genuine manifest whose original holds other bytes than the log recorded
    is kept, its original marked corrupt (a repair may restore it from another
    site): the item is the log's, only that copy is not.
    """
    from archive.custody.commit import commitment

    document = found.document
    item_id, salt, sha256 = str(document["item_id"]), document.get("salt"), str(document["sha256"])
    logged = index.commitment(item_id)
    if logged is None:
        return "not recorded by the log: the site's log commits to no such item"
    if salt is None and _predates_commitment(index, item_id, f"{site}:{found.manifest_name}", found.manifest_sha256):
        return SUPERSEDED
    if not isinstance(salt, str) or commitment(item_id, salt, sha256) != logged:
        return "forged manifest: it does not match the log's commitment to its item"
    for key, role, digest in ((f"{site}:{document['object']}", "original", found.ciphertext_sha256),
                              (f"{site}:{found.manifest_name}", "manifest", found.manifest_sha256)):
        copy = index.copy(key)
        if copy is None:
            if key in index.unhashed or digest is None:  # from before hashes were logged, or the original is gone
                continue
            return f"not recorded by the log: the log holds no {role} {key}"
        if copy.item != item_id or copy.role != role:
            return f"the log records {key} as the {copy.role} of item {copy.item}"
        if digest == copy.ciphertext_sha256:
            continue
        if role == "manifest":
            return "the manifest was substituted: its bytes are not the ones the log recorded"
        found.state, found.why = CORRUPT, "the original holds other bytes than the custody log recorded"
    return None


def _read_arrival(backend: Backend, name: str, identities: list[Identity]) -> Arrival:
    data = _read_all(backend, name)
    document = unseal(data, identities, ARRIVAL_FORMAT)
    if not isinstance(document.get("sha256"), str) or not isinstance(document.get("provenance"), dict):
        raise ValueError("the addendum names no sha256 or provenance")
    return Arrival(name, hashlib.sha256(data).hexdigest(), len(data), document)


def _provenance_key(sealed: dict[str, Any]) -> tuple[str, ...]:
    """Arrivals are the same when everything sealed about them is (copies beside several originals)."""
    fields = ("received_at", "source", "note", "original_name", "declared_type", "actor")
    return tuple(str(sealed.get(name) or "") for name in fields)


def rebuild_catalog(
    spec: StorageSpec,
    identity_path: Path,
    new_home: Path,
    actor: str,
    *,
    recipients: list[str] | None = None,
    secrets_home: Path | None = None,
    vkey: str | None = None,
    witnessed: str | None = None,
    accept_unchecked: bool = False,
) -> RebuildReport:
    """Recreate the catalog in `new_home` from the manifests on the one site `spec` describes.

    Nothing but the site and the custodian identity is needed: the archive id
    comes from the site's marker, so the rebuilt archive is the same archive
    (its log continues under the same origin). `secrets_home` is where to find
    the site's credentials (an old home's keys/, else the new home's, else the
    environment). A witness's key (`vkey`) and checkpoint (`witnessed`) are
    checked first; with either, a site whose log is missing or does not
    verify is refused unless `accept_unchecked` (see the module docstring).
    """
    import secrets as random

    from archive.age import AgeError, Identity
    from archive.catalog.settings import ARCHIVE_ID, POLICY, RECIPIENTS, add_site, put_setting
    from archive.context import Runtime
    from archive.db import transaction
    from storage.registry import build_backend
    from storage.secrets import SECRETS_NAME, Secrets

    backend_name = spec.name
    new_home = new_home.expanduser().absolute()
    if (new_home / CONFIG_NAME).exists():
        raise ServiceError(f"{new_home} already holds an archive: rebuild into a new, empty home")
    if not identity_path.is_file():
        raise ServiceError(f"no identity file at {identity_path}")
    identities = Identity.read(identity_path)
    witness_key, witness = check_witness(vkey, witnessed)
    if spec.kind == "local":
        spec = _absolute_spec(spec, Path.cwd())
    keys_dir = (secrets_home or new_home) / "keys"
    backend = build_backend(spec, new_home, Secrets(keys_dir / SECRETS_NAME))
    found_marker = _read_marker(backend)
    marker = found_marker.archive_id if found_marker else None
    if found_marker is not None and found_marker.backend != spec.name:  # the site keeps its own name
        spec = StorageSpec(found_marker.backend, spec.kind, spec.options)
        backend_name = spec.name
        backend = build_backend(spec, new_home, Secrets(keys_dir / SECRETS_NAME))
    backend.expected_archive_id = marker
    _check_witness_archive(witness_key, witness, marker)
    problem = backend.health()
    if problem is not None:
        raise ServiceError(f"storage site {backend_name!r} does not answer: {problem}")

    report = RebuildReport(home=str(new_home), backend=backend_name)
    archive_id = marker or random.token_hex(16)
    site = _site_log(backend, identities, vkey, witness, report, accept_unchecked=accept_unchecked)
    site_log, signer, verifier = site.log, site.signer, site.verifier
    if signer is not None:
        origin = signer.name
    elif site.present:  # the old log cannot be signed on: a new one, under a name of its own
        origin = f"evidence-archive/{archive_id}-rebuilt-{random.token_hex(4)}"
    else:
        origin = f"evidence-archive/{archive_id}"

    new_home.mkdir(parents=True, exist_ok=True)
    keys = new_home / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    custodian = str(identities[0].recipient)
    (keys / "custodian.pub").write_text(custodian + "\n", encoding="utf-8")
    if signer is not None:
        from archive.custody.checkpoint import SIGNING_KEY_NAME, VKEY_NAME, write_new

        write_new(keys / SIGNING_KEY_NAME, signer.encode() + "\n")
        (keys / VKEY_NAME).write_text(signer.verifier.encode() + "\n", encoding="ascii")
        _restore_receipt_key(backend, identities, keys, origin, report)
        _restore_bundle_key(backend, identities, keys, origin, report)
    settings = Settings(home=new_home, extra={"log": {"origin": origin}})
    settings.save()
    _new_catalog_key(keys)
    runtime = Runtime(settings)
    # What the site's log says (checked against its signed checkpoints): every manifest must agree.
    index = None if site_log is None else LogIndex.of(json.loads(entry) for entry in site_log.entries)
    taken_over = False
    with transaction(runtime.engine) as session:
        if session.exec(select(Item).limit(1)).first() is not None:
            raise ServiceError(f"the catalog of {new_home} is not empty ({settings.catalog_url()})")
        put_setting(session, ARCHIVE_ID, archive_id)
        put_setting(session, RECIPIENTS, list(recipients or [custodian]))
        put_setting(session, POLICY, Policy(copies=1, minimum=1, backends=[spec.name]).as_dict())
        add_site(session, spec)
        if site_log is not None and signer is not None and verifier is not None:
            from archive.custody.recover import take_over

            recovered = take_over(session, site_log, signer, verifier)
            report.log_events = recovered.events
            report.rebuilds, report.rebuild_events = _earlier_rebuilds(site_log.entries)
            taken_over = True
    rebuilt = runtime.archive(actor)
    _ = rebuilt.actor  # resolved before any transaction: a first use writes its users row
    try:
        start: dict[str, Any] = {"action": REBUILD_ACTION, "backend": backend_name, "phase": "start"}
        if index is None:  # said in the log itself: nothing below was checked against any log
            start["checked"] = False
            start["unchecked"] = ("accepted by the custodian: manifests alone" if site.accepted
                                  else "the site has no custody log that verifies: manifests alone")
        # Items a log vouched for only because an earlier, unchecked rebuild of this site wrote it.
        unchecked_before = set() if site_log is None else _unchecked_before(site_log.entries)
        with transaction(rebuilt.engine) as session:
            append_event(session, RECOVERY, actor=rebuilt.actor, details=start)
        by_item: dict[str, list[Found]] = {}
        superseded: list[Found] = []
        arrivals: dict[str, list[Arrival]] = {}
        for info in backend.list(""):
            if info.name.endswith(ARRIVAL_SUFFIX):
                report.arrivals += 1
                try:
                    arrival = _read_arrival(backend, info.name, identities)
                except (AgeError, ValueError, KeyError, TypeError, StorageError, OSError) as exc:
                    report.problems.append({"arrival": info.name, "problem": f"unreadable addendum: {exc}"})
                    continue
                why = None if index is None else _arrival_against_log(index, backend_name, arrival)
                if why is not None:
                    report.rejected.append({"arrival": info.name, "item": str(arrival.document.get("item_id")),
                                            "problem": why})
                    continue
                arrivals.setdefault(str(arrival.document["sha256"]), []).append(arrival)
                continue
            if not info.name.endswith(MANIFEST_SUFFIX):
                continue
            report.manifests += 1
            try:
                found = _examine(backend, info.name, identities)
            except (AgeError, ValueError, KeyError, StorageError, OSError) as exc:
                report.problems.append({"manifest": info.name, "problem": f"unreadable manifest: {exc}"})
                with transaction(rebuilt.engine) as session:
                    append_event(session, RECOVERY, actor=rebuilt.actor, outcome="failure",
                                 objects=[f"{backend_name}:{info.name}"],
                                 details={"problem": "unreadable manifest"})
                continue
            why = None if index is None else _against_log(index, backend_name, found)
            if why == SUPERSEDED:
                report.superseded += 1
                superseded.append(found)
                continue
            if why is not None:
                report.rejected.append({"manifest": info.name, "item": str(found.document.get("item_id")),
                                        "problem": why})
                with transaction(rebuilt.engine) as session:
                    append_event(session, RECOVERY, actor=rebuilt.actor, outcome="failure",
                                 objects=[f"{backend_name}:{info.name}"],
                                 details={"problem": "manifest rejected: the site's custody log does not vouch "
                                          "for it"})
                continue
            if found.state != VERIFIED:
                report.problems.append({"manifest": info.name, "item": str(found.document.get("item_id")),
                                        "problem": f"original {found.state}", "detail": found.why or ""})
            # By content, not by id: an ingest that published its copies but never
            # committed (killed, or beaten to the same bytes by a concurrent ingest)
            # leaves a second manifest, under another id, for the same bytes.
            by_item.setdefault(str(found.document["sha256"]), []).append(found)
        for sha256, founds in by_item.items():
            founds.sort(key=lambda f: (str(f.document.get("received_at") or ""), str(f.document["item_id"])))
            item_id = str(founds[0].document["item_id"])
            others = sorted({str(f.document["item_id"]) for f in founds} - {item_id})
            if others:
                report.problems.append({"item": item_id, "problem": "the same bytes under other ids, "
                                        f"from ingests that were never acknowledged: {', '.join(others)}"})
            if index is None:
                report.problems.append({"item": item_id, "problem": "NOT CHECKED against a custody log (the site "
                                        "has none that verifies): recovered from its manifest alone"})
            elif item_id in unchecked_before:
                report.problems.append({"item": item_id, "problem": "NOT CHECKED: the log vouches for it only "
                                        "because an earlier rebuild recovered it from its manifest alone"})
            checked = index is not None and item_id not in unchecked_before
            if not checked:
                report.unchecked.append(item_id)
            _commit_item(rebuilt, backend_name, item_id, founds, report, arrivals.pop(sha256, []),
                         new_log=not taken_over, checked=checked)
        kept_items = {str(f.document["item_id"]) for group in by_item.values() for f in group}
        for old in superseded:  # genuine, but without the salt no read could check it against the log
            if str(old.document["item_id"]) not in kept_items:
                report.rejected.append({"manifest": old.manifest_name, "item": str(old.document["item_id"]),
                                        "problem": "written before the item's commitment and never written again "
                                        "with its salt (let the worker repair the item first): not recovered"})
        for orphans in arrivals.values():  # later arrivals of bytes whose manifest this site lacks
            report.problems.extend({"arrival": a.name, "item": str(a.document.get("item_id")),
                                    "problem": "addendum without a manifest for its bytes"} for a in orphans)
        _restore_records(rebuilt, backend, identities, index, report, new_log=not taken_over,
                         marker_claim=found_marker.created_at if found_marker else "",
                         log_size=site_log.tree_size if site_log is not None else 0)
        with transaction(rebuilt.engine) as session:
            if report.unchecked:
                from archive.catalog.settings import put_setting

                put_setting(session, UNCHECKED_ITEMS, sorted(report.unchecked))
            append_event(session, RECOVERY, actor=rebuilt.actor,
                         details={"action": REBUILD_ACTION, "backend": backend_name, "phase": "end",
                                  "manifests": report.manifests, "items": report.items,
                                  "problems": len(report.problems), "rejected": len(report.rejected),
                                  "unchecked": len(report.unchecked)})
        warning = runtime.finish()  # sign over the recovery, and put the continued log back on the site
        if warning:
            report.problems.append({"log": warning})
        from archive.custody.service import conflict_message, mirror_conflicts, mirror_to_sites

        for name, why in mirror_conflicts(mirror_to_sites(rebuilt)).items():  # the site's copy is left as it is
            report.problems.append({"log": f"the new log was not put on the site: {conflict_message(name, why)}"})
    finally:
        rebuilt.close()
    return report


def _restore_records(rebuilt: Archive, backend: Backend, identities: list[Identity], index: LogIndex | None,
                     report: RebuildReport, *, new_log: bool, marker_claim: str, log_size: int) -> None:
    """Incidents, victims, sources and links from the site's journal, each change checked against its log."""
    from archive.records.replay import restore_records

    restored = restore_records(rebuilt, backend, identities, index, new_log=new_log, marker_claim=marker_claim,
                               log_size=log_size)
    report.journal_objects = restored.objects
    report.records, report.record_changes = restored.records, restored.changes
    report.vocab_terms, report.vocab_checked = restored.vocab_terms, restored.vocab_checked
    report.rejected += restored.rejected
    report.problems += restored.problems
    if restored.rejected:
        from archive.db import transaction

        with transaction(rebuilt.engine) as session:
            append_event(session, RECOVERY, actor=rebuilt.actor, outcome="failure",
                         details={"problem": "journal entries rejected: the site's custody log does not vouch "
                                  "for them", "rejected": len(restored.rejected)})


def _commit_item(rebuilt: Archive, backend_name: str, item_id: str, founds: list[Found], report: RebuildReport,
                 arrivals: list[Arrival], *, new_log: bool, checked: bool) -> None:
    """Enter one item, its copies and its arrivals; the log either already holds them (taken over) or,
    for a new log, gets the item's commitment and a baseline for each copy, so fixity and `get` check
    against the log from the first day."""
    from archive.catalog.secrets import new_item, new_provenance, sealer
    from archive.custody.commit import add_commitment, commitment_details
    from archive.custody.log import MESSAGE_DIGEST
    from archive.db import transaction

    doc = founds[0].document
    any_good = any(f.state == VERIFIED for f in founds)
    now = utc_now()
    keys = sealer(rebuilt)
    salt = doc.get("salt") if isinstance(doc.get("salt"), str) else None
    with transaction(rebuilt.engine) as session:
        if new_log:
            note = f"recovered from the manifest on {backend_name} into a new log"
            if salt is not None:
                append_event(session, MESSAGE_DIGEST, actor=rebuilt.actor, item_id=item_id,
                             details={**commitment_details(item_id, salt, str(doc["sha256"])), "note": note})
            else:  # a manifest from before commitments
                salt = add_commitment(session, rebuilt.actor, item_id, str(doc["sha256"]))
        item = new_item(keys, id=item_id, sha256=str(doc["sha256"]), size=int(doc["size"]), salt=salt,
                        media_type=doc.get("media_type"), status="degraded",
                        created_at=str(doc.get("received_at") or now))
        session.add(item)
        session.flush()
        received = sorted(founds, key=lambda f: str(f.document.get("received_at") or ""))[0].document
        sealed = received.get("provenance") or {}  # manifests written since provenance was sealed in them
        session.add(_structured(new_provenance(
            keys, item_id=item_id, original_name=received.get("original_name"),
            received_at=str(received.get("received_at") or now), actor=str(sealed.get("actor") or rebuilt.actor),
            source=sealed.get("source"), declared_type=sealed.get("declared_type"),
            note=sealed.get("note") if sealed else f"recovered from the manifest on {backend_name}"), sealed))
        _add_later_arrivals(session, keys, item_id, sealed, arrivals)
        rows: list[Replica] = []

        def copy_event(row: Replica, found_sha256: str | None, result: str) -> None:
            details: dict[str, Any] = {"backend": backend_name, "role": row.role, "result": result,
                                       "algorithm": "SHA-256", "against": "manifest",
                                       "ciphertext_sha256": row.ciphertext_sha256}
            if new_log:
                details["baseline"] = True  # the new log's first record of this copy
            if found_sha256 is not None and found_sha256 != row.ciphertext_sha256:
                details["found_ciphertext_sha256"] = found_sha256
            append_event(session, FIXITY_CHECK, actor=rebuilt.actor, item_id=item_id,
                         objects=[f"{backend_name}:{row.object_name}"],
                         outcome="success" if result == "ok" else "failure", details=details)

        for found in founds:
            document = found.document
            # A bad copy beside a good one is an old copy a repair already replaced.
            state = REPLACED if found.state != VERIFIED and any_good else found.state
            recipients = list(document.get("recipients", []))
            original = Replica(item_id=item_id, role="original", backend=backend_name,
                               object_name=str(document["object"]), version_id=found.version_id,
                               ciphertext_sha256=str(document["ciphertext_sha256"]),
                               recipients=recipients, state=state, verified_at=now)
            manifest = Replica(item_id=item_id, role="manifest", backend=backend_name,
                               object_name=found.manifest_name, ciphertext_sha256=found.manifest_sha256,
                               recipients=recipients, state=REPLACED if state == REPLACED else VERIFIED,
                               verified_at=now)
            session.add(original)
            session.add(manifest)
            rows += [original, manifest]
            copy_event(original, found.ciphertext_sha256, "ok" if found.state == VERIFIED else found.state)
            copy_event(manifest, None, "ok")
            for arrival in arrivals:
                if arrival.document.get("object") == original.object_name:
                    rows.append(Replica(item_id=item_id, role=str(Role.ARRIVAL), backend=backend_name,
                                        object_name=arrival.name, ciphertext_sha256=arrival.sha256,
                                        recipients=recipients, state=manifest.state, verified_at=now))
                    session.add(rows[-1])
                    copy_event(rows[-1], None, "ok")
        item.status = status_for(rebuilt, [r for r in rows if r.state != REPLACED])
        session.add(item)
        append_event(session, RECOVERY, actor=rebuilt.actor, item_id=item_id,
                     objects=[f"{backend_name}:{f.manifest_name}" for f in founds],
                     outcome="success" if any_good else "warning",
                     details={"action": ITEM_ACTION, "status": item.status, "checked": checked})
    report.items += 1
    report.replicas += len(founds)


def _add_later_arrivals(session: Session, keys: Sealer, item_id: str, first: dict[str, Any],
                        arrivals: list[Arrival]) -> None:
    """One provenance row per distinct later arrival, in the order they were received."""
    from archive.catalog.secrets import new_provenance

    seen = {_provenance_key(first)} if first else set()
    for arrival in sorted(arrivals, key=lambda a: _provenance_key(a.document["provenance"])):
        sealed = arrival.document["provenance"]
        if (key := _provenance_key(sealed)) in seen:
            continue
        seen.add(key)
        session.add(_structured(new_provenance(
            keys, item_id=item_id, source=sealed.get("source"), note=sealed.get("note"),
            original_name=sealed.get("original_name"), declared_type=sealed.get("declared_type"),
            received_at=str(sealed.get("received_at") or utc_now()), actor=str(sealed.get("actor") or "")), sealed))


def _structured(row: Provenance, sealed: dict[str, Any]) -> Provenance:
    """The arrival's channel and source record as its manifest or addendum holds them (when it was given)."""
    channel, source_id = sealed.get("channel"), sealed.get("source_id")
    row.channel = channel if isinstance(channel, str) else None
    row.source_id = source_id if isinstance(source_id, str) else None
    return row


def _earlier_rebuilds(entries: list[bytes]) -> tuple[int, int]:
    """How many rebuilds of this site the log records, and how many of its events they wrote (start to end)."""
    rebuilds = events = 0
    inside = False
    for entry in entries:
        fields = json.loads(entry)
        details = fields.get("details") or {}
        ours = fields.get("type") == RECOVERY and isinstance(details, dict) and details.get("action") == REBUILD_ACTION
        if ours and details.get("phase") == "start":
            rebuilds, inside = rebuilds + 1, True
        if inside:
            events += 1
        if ours and details.get("phase") == "end":
            inside = False
    return rebuilds, events


def _unchecked_before(entries: list[bytes]) -> set[str]:
    """Items an earlier rebuild recovered unchecked: the log holds them only on their manifests' word."""
    found = set()
    for entry in entries:
        fields = json.loads(entry)
        details = fields.get("details") or {}
        if (fields.get("type") == RECOVERY and isinstance(details, dict) and details.get("action") == ITEM_ACTION
                and details.get("checked") is False and fields.get("item")):
            found.add(str(fields["item"]))
    return found


def _predates_commitment(index: LogIndex, item_id: str, key: str, digest: str) -> bool:
    """A manifest this archive wrote before the item's commitment was added: genuine, but it lacks the salt
    (a repair has written one with it beside the same original since)."""
    first = index.commitments.get(item_id)
    copy = index.copy(key)
    if first is None or (copy is not None and (copy.item != item_id or copy.ciphertext_sha256 != digest)):
        return False
    return key in index.unhashed or (copy is not None and copy.seq < first[1])


def _arrival_against_log(index: LogIndex, site: str, arrival: Arrival) -> str | None:
    """Why the site's log does not vouch for this addendum (a planted arrival), or None when it does."""
    key = f"{site}:{arrival.name}"
    copy = index.copy(key)
    if copy is None:
        return None if key in index.unhashed else "not recorded by the log: the log holds no such addendum"
    if copy.item != str(arrival.document.get("item_id")) or copy.ciphertext_sha256 != arrival.sha256:
        return "the addendum was substituted: its bytes are not the ones the log recorded"
    return None


def _new_catalog_key(keys_dir: Path) -> None:
    """A rebuilt catalog seals under a key of its own: nothing sealed under the lost one survives."""
    from archive.custody.checkpoint import write_new
    from archive.keys.catalog import CATALOG_KEY_NAME, CatalogKeys

    path = keys_dir / CATALOG_KEY_NAME
    if not path.exists():
        write_new(path, CatalogKeys.generate().encode())


def _restore_receipt_key(backend: Backend, identities: list[Identity], keys_dir: Path, origin: str,
                         report: RebuildReport) -> None:
    """The receipt key the site keeps sealed, so receipts go on verifying under the key contributors pinned
    (`archive.custody.receipts`); a site without one (older) leaves a new key to be made at first use."""
    from archive.custody.receipts import ReceiptError, install_receipt_key, receipt_key_name, unseal_receipt_key

    try:
        signer = unseal_receipt_key(backend, identities)
    except (ReceiptError, StorageError) as exc:
        report.problems.append({"receipts": f"the receipt key on the site cannot be opened ({exc}); a new one will "
                                "sign receipts from now on"})
        return
    if signer is not None and signer.name == receipt_key_name(origin):
        install_receipt_key(keys_dir, signer)


def _restore_bundle_key(backend: Backend, identities: list[Identity], keys_dir: Path, origin: str,
                        report: RebuildReport) -> None:
    """The bundle key the site keeps sealed, so bundles go on verifying under the key recipients pinned
    (`archive.custody.bundle_key`); a site without one leaves a new key to be made at the first export."""
    from archive.custody.bundle_key import BundleKeyError, bundle_key_name, install_bundle_key, unseal_bundle_key

    try:
        signer = unseal_bundle_key(backend, identities)
    except (BundleKeyError, StorageError) as exc:
        report.problems.append({"bundles": f"the bundle key on the site cannot be opened ({exc}); a new one will "
                                "sign bundles from now on"})
        return
    if signer is not None and signer.name == bundle_key_name(origin):
        install_bundle_key(keys_dir, signer)
