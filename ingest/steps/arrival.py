"""Steps an arrival from outside (an upload) adds to the pipeline: its incident, and its own bookkeeping.

`LinkIncident`: the sender named an incident (a ref or id); the item is linked
to it in the item's transaction, credited to the sender. The name is resolved
with the sender's own visibility (`archive.records.compartments`): an incident
in a restricted case the sender is not a member of is no incident to it (a
contributor is a member of no case here, whatever the case rows say), so a hint
can neither plant material in a case nor test whether a ref exists. A name that
is no incident the sender may see is a failure recorded on the arrival (a
custody event, and on a new item's failures), never a refusal: the evidence is
kept all the same, and the sender is told nothing about which incidents exist.
An item the archive already held is not moved by a contributor's hint (nor by
anyone's hint when the sender may not see the item): linking it would let the
least trusted role decide where existing evidence is filed, and hide it from
everyone outside a case. The hint is recorded on the arrival instead (a
validation event naming the incident's id, result "held") for a custodian or
investigator to review and link by hand. Either way the arrival writes one event,
as a new file's would.

`AnalyseLikeNew`: a duplicate skips analysis (its item has it already) and
publishes no copies, so it would be answered sooner than a new file and write
fewer custody events; a contributor timing the answer, or comparing the
`event <seq>` of consecutive receipts, would learn that the archive held the
file. For an arrival whose sender must not learn that, the duplicate's analysis
runs all the same on a scratch `Ingestion` whose results are thrown away, and the
arrival records what really happened to its bytes with the events a new file
would have written in their place:

- the analysis events of that run (format identification, metadata extraction,
  fingerprint), marked `"arrival": <provenance id>` (a later arrival's analysis,
  not the item's) and without candidate ids;
- per storage site, a PREMIS "deletion" of the arrival's staged copy, written and
  then dropped unpublished (details: the backend, `"staged": true`; no object
  name, so `log verify` and `rebuild-catalog` look for nothing), or the
  replication failure that kept it from being staged at all, where no addendum
  was written there instead.

So a new file writes, per site, a copy and its manifest (two events), or one
failure; a duplicate writes the addendum and the deletion (two), or one event
(the addendum, or the failure) where its copy could not be staged. Equal in the
common cases (checked: photos, videos and other bytes, one or two sites, a site
down). They still differ where the archive's state changes the work: a duplicate
that restores a lost or damaged copy (it writes the copy, its manifest, an
addendum, and a fixity failure for each bad row found: three more for one lost
site); a stream too large to analyse in the request (a new file's "analysis
queued", then the worker's events); a video longer than the ingest budget (the
worker's later fingerprint event); a manifest or an addendum that could not be
written. (An incident hint costs one event either way: the link, or the failure.) A file sent
while the archive is locked is kept as new either way (settlement merges it
later, with its own events). Path ingest by a custodian (`evidence ingest`) does
not run this step: a held file costs it fewer events.

`OnCommit`: runs a callback inside the item's transaction just before it
commits, after every custody event of the arrival is appended (so the callback
can name the arrival's ingestion event). An upload marks itself done there,
so the upload row and the item commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from archive.custody.log import DELETION, REPLICATION, VALIDATION
from archive.roles import Role
from ingest.pipeline import Ingestion, PendingEvent, Step

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive
    from archive.keys.catalog import CatalogKeys
    from archive.records.compartments import Hidden

NO_CASE = ""  # the user id a contributor's visibility is computed for: a member of no case
HELD_REASON = ("the item was already held: an upload's incident hint does not link it; a custodian or "
               "investigator may link it after review")


def uploader_role(session: Session, user_id: str) -> Role:
    """The sender's role, from its account; anything unknown or disabled counts as a contributor (the least)."""
    from archive.catalog.accounts import Account

    row = session.get(Account, user_id)
    if row is None or row.disabled_at is not None:
        return Role.CONTRIBUTOR
    try:
        return Role(row.role)
    except ValueError:
        return Role.CONTRIBUTOR


def hidden_from(session: Session, user_id: str, role: Role) -> Hidden:
    """What the sender may not see; a contributor sees no restricted incident at all."""
    from archive.records.compartments import hidden_for

    return hidden_for(session, NO_CASE if role == Role.CONTRIBUTOR else user_id, role)


class LinkIncident(Step):
    name = "incident"
    runs_on_duplicates = True

    def __init__(self, incident: str, role: Role | None = None) -> None:
        """`role`: the sender's; None reads it from the sender's account (the ingestion's actor)."""
        self.incident = incident.strip()
        self.role = role
        self._keys: CatalogKeys | None = None

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        from archive.services.errors import Locked

        try:
            self._keys = archive.runtime.keys.catalog()
        except Locked:
            self._keys = None

    def save(self, ingestion: Ingestion, session: Session) -> None:
        from archive.records.tables import Incident
        from archive.services.errors import ServiceError
        from archive.services.links import Target, connect, kind_for, resolve

        if ingestion.item_id is None or not self.incident:
            return
        if self._keys is None:
            self._failed(ingestion, "locked", "the archive was locked (no catalog key): the item was not linked "
                                              "to the incident named")
            return
        role = self.role or uploader_role(session, ingestion.actor)
        hidden = hidden_from(session, ingestion.actor, role)
        try:  # only reads: a name that is nothing (or nothing the sender may see) leaves nothing written
            target = resolve(session, self._keys, self.incident, "incident", hidden=hidden)
            if session.get(Incident, target.id) is None or target.id in hidden.incidents:
                raise LookupError
        except (ServiceError, LookupError):
            self._failed(ingestion, "unknown", "the incident named in the upload's metadata is not one the "
                                               "archive holds: not linked")
            return
        if ingestion.duplicate and (role == Role.CONTRIBUTOR or ingestion.item_id in hidden.items):
            self._failed(ingestion, "held", HELD_REASON, incident=target.id)
            return
        kind, a, b = kind_for(Target("item", ingestion.item_id, ingestion.item_id), target)
        connect(session, self._keys, ingestion.actor, kind, a, b, certainty=None, note=None,
                reason="named by the contributor of an upload")

    @staticmethod
    def _failed(ingestion: Ingestion, why: str, reason: str, **details: str) -> None:
        ingestion.fail("incident", reason)
        ingestion.event(VALIDATION, "failure", check="incident link", result=why, **details)


class AnalyseLikeNew(Step):
    name = "like-new"
    runs_on_duplicates = True

    def __init__(self, steps: list[Step]) -> None:
        self.kinds = [type(step) for step in steps if step.analysis]

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        if not ingestion.duplicate:
            return
        scratch = Ingestion(incoming=ingestion.incoming, actor=ingestion.actor, sha256=ingestion.sha256,
                            size=ingestion.size, plaintext=ingestion.plaintext, sample=ingestion.sample)
        for kind in self.kinds:
            try:
                kind().run(scratch, archive)
            except Exception:  # noqa: BLE001 - thrown away, like everything it found
                continue
        for pending in scratch.events:  # what the analysis of these bytes found: recorded, as a new file's is
            pending.details.pop("candidates", None)  # none were searched for (and ids would name others' items)
            pending.details["arrival"] = True  # CommitToCatalog puts the arrival's provenance id here
            ingestion.events.append(pending)

    def save(self, ingestion: Ingestion, session: Session) -> None:
        """The fate of each staged copy, where a new file would have recorded its copy (see the module docstring)."""
        if not ingestion.duplicate:
            return
        found = ingestion.results.get("deduplicate")
        discarded: list[str] = list(getattr(found, "discarded", []))
        for backend in discarded:
            ingestion.events.append(PendingEvent(DELETION, "success", {
                "backend": backend, "staged": True,
                "reason": "a later arrival's copy, never published: the archive already holds these bytes"}))
        addenda = {stored.backend for stored in ingestion.arrivals}
        reported = {p.details.get("backend") for p in ingestion.events if p.event_type == REPLICATION}
        for backend, reason in ingestion.storage_errors.items():
            if backend not in addenda and backend not in reported and backend not in discarded:
                ingestion.events.append(PendingEvent(REPLICATION, "failure",
                                                     {"backend": backend, "reason": reason, "staged": True}))


class OnCommit(Step):
    name = "on-commit"
    runs_on_duplicates = True

    def __init__(self, callback: Callable[[Ingestion, Session], None]) -> None:
        self.callback = callback

    def save(self, ingestion: Ingestion, session: Session) -> None:
        from sqlalchemy import event

        def before_commit(session: Session) -> None:
            self.callback(ingestion, session)

        event.listen(session, "before_commit", before_commit, once=True)
