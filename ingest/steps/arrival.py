"""Steps an arrival from outside (an upload) adds to the pipeline: its incident, and its own bookkeeping.

`LinkIncident`: the sender named an incident (a ref or id); the item is linked
to it by the archive itself, in the item's transaction. A name that is no
incident is a failure recorded on the arrival (a custody event, and on the
item's failures), never a refusal: the evidence is kept all the same, and the
sender is told nothing about which incidents exist.

`AnalyseLikeNew`: a duplicate skips analysis (its item has it already), so it
would be answered sooner than a new file, and a contributor timing the answer
would learn that the archive held the file. For an arrival whose sender must
not learn that, the duplicate's analysis runs all the same, on a scratch
`Ingestion` whose results are thrown away.

`OnCommit`: runs a callback inside the item's transaction just before it
commits, after every custody event of the arrival is appended (so the callback
can name the arrival's ingestion event). An upload marks itself done there,
so the upload row and the item commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from archive.custody.log import VALIDATION
from ingest.pipeline import Ingestion, Step

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive
    from archive.keys.catalog import CatalogKeys

SYSTEM = "archive"


class LinkIncident(Step):
    name = "incident"
    runs_on_duplicates = True

    def __init__(self, incident: str) -> None:
        self.incident = incident.strip()
        self._keys: CatalogKeys | None = None
        self._locked = False

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        from archive.services.errors import Locked

        try:
            self._keys = archive.runtime.keys.catalog()
        except Locked:
            self._locked = True

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
        try:  # only reads: a name that is nothing leaves nothing written
            target = resolve(session, self._keys, self.incident, "incident")
            if session.get(Incident, target.id) is None:
                raise LookupError
        except (ServiceError, LookupError):
            self._failed(ingestion, "unknown", "the incident named in the upload's metadata is not one the "
                                               "archive holds: not linked")
            return
        kind, a, b = kind_for(Target("item", ingestion.item_id, ingestion.item_id), target)
        connect(session, self._keys, SYSTEM, kind, a, b, certainty=None, note=None,
                reason="named by the contributor of an upload")

    @staticmethod
    def _failed(ingestion: Ingestion, why: str, reason: str) -> None:
        ingestion.fail("incident", reason)
        ingestion.event(VALIDATION, "failure", check="incident link", result=why)


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
