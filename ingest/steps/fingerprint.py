"""FingerprintMedia: perceptual hashes of a photo or video, and near-duplicate candidates.

Runs on the plaintext after Identify (and metadata), decoding in a sandbox
child (`ingest.sandbox`). It never refuses a file:
a picture too small, uniform, broken or a decompression bomb gets no
fingerprint and the reason is recorded on the item. Near-duplicates already in
the archive become candidate links for an investigator to confirm; nothing is
merged. The search for them runs in `save`, inside the item's transaction, so
files ingested side by side (worker processes) still find each other: on
SQLite that transaction holds the write lock, so every earlier item is visible
and no other can commit meanwhile. The hashes are sealed in one catalog row per item
(`archive.catalog.fingerprints`): they exist to match a known picture. The
custody event names no candidate (see `save`), and for a video whether all of it was fingerprinted (a coarse share: the
log is public, and an exact duration or frame count names a known video): decoding stops
after `INGEST_VIDEO_BUDGET` seconds, and a job committed with the item lets
the worker fingerprint the rest (`archive.services.analysis`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.pipeline import Ingestion, Step

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive
    from archive.similarity import Match, Probe
    from ingest.fingerprints.common import Hash
    from ingest.pipeline import PendingEvent

FINGERPRINT_EVENT = "fingerprint"  # no PREMIS event fits a perceptual hash; named as the step


# Seconds of frame decoding at ingest: a file is acknowledged within 30 s whatever it holds,
# and the worker fingerprints the rest of a long video as a job.
INGEST_VIDEO_BUDGET = 6.0
PENDING_NOTE = "frames sampled from the first"  # starts the item note the worker clears when it finishes


@dataclass
class FingerprintResult:
    medium: str  # photo | video
    hashes: list[Hash] = field(default_factory=list)
    probe: Probe | None = None  # what the near-duplicate search compares (photos: every rotation too)
    candidates: list[Match] = field(default_factory=list)
    event: PendingEvent | None = None
    # Videos: how much was fingerprinted. `covered` seconds from the start (all of it when `complete`).
    covered: float | None = None
    duration: float | None = None
    complete: bool = True


@dataclass
class Computed:
    """What one sandboxed fingerprinting run produced."""

    hashes: list[Hash]
    probe: Probe
    covered: float | None = None
    duration: float | None = None
    complete: bool = True


def medium_of(media_type: str | None) -> str | None:
    """Which fingerprinter fits a detected MIME type (None: neither)."""
    if not media_type:
        return None
    if media_type.startswith("image/"):
        return "photo"
    if media_type.startswith("video/") or media_type in ("application/mp4", "audio/mp4"):
        return "video"
    return None


def compute(
    source: bytes | Path, medium: str, *, start: float = 0.0, budget: float | None = None,
    prefetched: dict[str, Any] | Exception | None = None,
) -> Computed:
    """The hashes to store and the probe to search with, decoded in a sandbox child.

    `prefetched`: a photo's sandbox outcome already obtained with the metadata request.
    Raises NoFingerprint (the file has nothing to fingerprint, and why) or
    SandboxFailure (the decoder crashed, hung or ran out of memory).
    """
    from archive.similarity import Probe, frames_probe
    from ingest import sandbox
    from ingest.fingerprints.common import Hash, NoFingerprint

    if medium == "photo":
        if isinstance(prefetched, Exception):
            raise prefetched
        out = prefetched if prefetched is not None else sandbox.run("photo_fingerprint", source, {},
                                                                    sandbox.PHOTO_DECODE)
        if "none" in out:
            raise NoFingerprint(str(out["none"]))
        hashes = [Hash(str(k), str(v), int(value), int(offset)) for k, v, value, offset in out["hashes"]]
        return Computed(hashes, Probe("photo", [(int(p), int(d), int(g)) for p, d, g in out["probe"]]))
    budget = INGEST_VIDEO_BUDGET if budget is None else budget
    out = sandbox.run("video_fingerprint", source, {"start": start, "budget": budget}, sandbox.video_decode(budget))
    if "none" in out:
        raise NoFingerprint(str(out["none"]))
    frames = [(int(o), str(v), int(p), int(d)) for o, v, p, d in out["frames"]]
    hashes = [h for o, v, p, d in frames for h in (Hash("phash", v, p, o), Hash("dhash", v, d, o))]
    return Computed(
        hashes,
        frames_probe((o, p, d) for o, _, p, d in frames),
        covered=float(out["covered"]),
        duration=float(out["duration"]) if out.get("duration") is not None else None,
        complete=bool(out["complete"]),
    )


def coverage_details(covered: float | None, duration: float | None, complete: bool) -> dict[str, Any]:
    """How much of a video was fingerprinted, for the custody event: whether all of it, and a quarter at most.

    The log is public: a video's exact duration (or a frame or hash count,
    which follows from it) would let anyone holding a known video confirm
    that the archive holds it. The exact figures stay in the item's sealed note.
    """
    if complete:
        return {"complete": True, "covered_share": "all"}
    if not duration or duration <= 0:
        return {"complete": False, "covered_share": "unknown"}
    quarter = min(3, int(4 * (covered or 0.0) / duration))
    return {"complete": False, "covered_share": ("under 25 %", "25-50 %", "50-75 %", "over 75 %")[quarter]}


def pending_note(covered: float, duration: float | None) -> str:
    """The item's note while a video is only partly fingerprinted."""
    whole = f"{duration:.0f} s" if duration else "an unknown duration"
    return f"{PENDING_NOTE} {covered:.0f} s of {whole}; the worker fingerprints the rest"


class FingerprintMedia(Step):
    name = "fingerprint"
    analysis = True

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        from ingest.steps.metadata import remember_sealer

        remember_sealer(ingestion, archive)
        if "fingerprint" in ingestion.results:
            return
        from ingest.fingerprints.common import NoFingerprint
        from ingest.sandbox import SandboxFailure

        medium = medium_of(ingestion.media_type)
        if medium is None:
            return  # not a picture or a video: nothing to fingerprint, nothing to record
        source = ingestion.plaintext if ingestion.plaintext is not None else ingestion.plaintext_path
        if source is None:
            ingestion.fail(self.name, "no plaintext available to fingerprint")
            return
        from ingest.sandbox import PREFETCHED

        prefetched = (ingestion.results.pop(PREFETCHED, None) or {}).get("photo_fingerprint")
        try:
            done = compute(source, medium, prefetched=prefetched)
        except NoFingerprint as exc:
            ingestion.fail(self.name, str(exc))
            ingestion.event(FINGERPRINT_EVENT, "warning", medium=medium, fingerprinted=False)
            return
        except SandboxFailure as exc:  # the decoder crashed, hung or ran out of memory: recorded, file kept
            ingestion.fail(self.name, exc.reason)
            ingestion.event(FINGERPRINT_EVENT, "failure", medium=medium, fingerprinted=False, sandbox=exc.kind)
            return
        except Exception as exc:  # noqa: BLE001 - an analysis failure never loses the file
            ingestion.fail(self.name, f"{type(exc).__name__}: {exc}")
            ingestion.event(FINGERPRINT_EVENT, "failure", medium=medium, fingerprinted=False)
            return
        coverage: dict[str, Any] = {}
        if medium == "video":
            coverage = coverage_details(done.covered, done.duration, done.complete)
            if not done.complete:
                ingestion.fail(self.name, pending_note(done.covered or 0.0, done.duration))
        ingestion.event(FINGERPRINT_EVENT, "success", medium=medium, fingerprinted=True, **coverage)
        ingestion.results["fingerprint"] = FingerprintResult(
            medium, done.hashes, done.probe, event=ingestion.events[-1],
            covered=done.covered, duration=done.duration, complete=done.complete,
        )

    def save(self, ingestion: Ingestion, session: Session) -> None:
        from archive.catalog.fingerprints import replace_hashes
        from archive.custody.log import utc_now
        from archive.similarity import index_in, record_candidates
        from ingest.steps.metadata import step_sealer

        result: FingerprintResult | None = ingestion.results.get("fingerprint")
        if result is None or ingestion.item_id is None:
            return
        sealer = step_sealer(ingestion)
        if result.probe is not None and sealer.keys is not None:
            # Searched before this item's own rows are added, so the cached index never holds uncommitted rows.
            # A locked process cannot open the fingerprints, so it suggests none (the hashes are kept pending).
            # Not named in the custody event: the log's readers include investigators outside a case, and a
            # candidate's id would tell them that a restricted item looks like this one (they are in the catalog).
            result.candidates = index_in(session, sealer.keys).search(result.probe, exclude=ingestion.item_id)
        if result.hashes:
            replace_hashes(session, sealer, ingestion.item_id, result.hashes)
        record_candidates(session, ingestion.item_id, result.candidates, utc_now())
        if not result.complete:
            from archive.catalog.jobs import FINGERPRINT, enqueue

            # The rest of a long video, committed with the item: the worker resumes where ingest stopped.
            enqueue(session, FINGERPRINT, item_id=ingestion.item_id, payload={"start": result.covered or 0.0})
