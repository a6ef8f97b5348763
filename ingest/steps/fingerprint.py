"""FingerprintMedia: perceptual hashes of a photo or video, and near-duplicate candidates.

Runs on the plaintext after Identify (and metadata). It never refuses a file:
a picture too small, uniform, broken or a decompression bomb gets no
fingerprint and the reason is recorded on the item. Near-duplicates already in
the archive become candidate links for an investigator to confirm; nothing is
merged. The search for them runs in `save`, inside the item's transaction, so
files ingested side by side (worker processes) still find each other: on
SQLite that transaction holds the write lock, so every earlier item is visible
and no other can commit meanwhile. The custody event carries counts and item
ids only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ingest.pipeline import Ingestion, Step

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive
    from archive.similarity import Match, Probe
    from ingest.fingerprints.common import Hash
    from ingest.pipeline import PendingEvent

FINGERPRINT_EVENT = "fingerprint"  # no PREMIS event fits a perceptual hash; named as the step


@dataclass
class FingerprintResult:
    medium: str  # photo | video
    hashes: list[Hash] = field(default_factory=list)
    probe: Probe | None = None  # what the near-duplicate search compares (photos: every rotation too)
    candidates: list[Match] = field(default_factory=list)
    event: PendingEvent | None = None


def medium_of(media_type: str | None) -> str | None:
    """Which fingerprinter fits a detected MIME type (None: neither)."""
    if not media_type:
        return None
    if media_type.startswith("image/"):
        return "photo"
    if media_type.startswith("video/") or media_type in ("application/mp4", "audio/mp4"):
        return "video"
    return None


def compute(source: Any, medium: str) -> tuple[list[Hash], Probe]:
    """The hashes to store and the probe to search with (photos: every rotation and mirror too)."""
    from archive.similarity import Probe, frames_probe

    if medium == "photo":
        from ingest.fingerprints.common import Hash, NoFingerprint
        from ingest.fingerprints.photo import load_reduced, views

        grey = load_reduced(source)
        all_views = views(grey, ("id", "mirror", "flip", "rot180", "rot90", "rot270", "transpose", "transverse"))
        upright = [v for v in all_views if v.transform == "id"]
        if not upright:
            raise NoFingerprint("picture is uniform: nothing to fingerprint")
        hashes = [h for v in upright for h in (Hash("phash", v.variant, v.phash), Hash("dhash", v.variant, v.dhash))]
        return hashes, Probe("photo", [(v.phash, v.dhash, 0) for v in all_views])
    from ingest.fingerprints.common import Hash
    from ingest.fingerprints.video import frame_hashes

    frames = frame_hashes(source)
    hashes = [
        h
        for f in frames
        for h in (Hash("phash", f.variant, f.phash, f.offset_ms), Hash("dhash", f.variant, f.dhash, f.offset_ms))
    ]
    return hashes, frames_probe((f.offset_ms, f.phash, f.dhash) for f in frames)


class FingerprintMedia(Step):
    name = "fingerprint"

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        if "fingerprint" in ingestion.results:
            return
        from ingest.fingerprints.common import NoFingerprint

        medium = medium_of(ingestion.media_type)
        if medium is None:
            return  # not a picture or a video: nothing to fingerprint, nothing to record
        source = ingestion.plaintext if ingestion.plaintext is not None else ingestion.plaintext_path
        if source is None:
            ingestion.fail(self.name, "no plaintext available to fingerprint")
            return
        try:
            hashes, probe = compute(source, medium)
        except NoFingerprint as exc:
            ingestion.fail(self.name, str(exc))
            ingestion.event(FINGERPRINT_EVENT, "warning", medium=medium, fingerprinted=False)
            return
        except Exception as exc:  # noqa: BLE001 - an analysis failure never loses the file
            ingestion.fail(self.name, f"{type(exc).__name__}: {exc}")
            ingestion.event(FINGERPRINT_EVENT, "failure", medium=medium, fingerprinted=False)
            return
        ingestion.event(FINGERPRINT_EVENT, "success", medium=medium, fingerprints=len(hashes), candidates=[])
        ingestion.results["fingerprint"] = FingerprintResult(medium, hashes, probe, event=ingestion.events[-1])

    def save(self, ingestion: Ingestion, session: Session) -> None:
        from sqlalchemy import insert

        from archive.catalog.fingerprints import Fingerprint
        from archive.custody.log import utc_now
        from archive.similarity import index_in, record_candidates
        from ingest.fingerprints.common import to_signed

        result: FingerprintResult | None = ingestion.results.get("fingerprint")
        if result is None or ingestion.item_id is None:
            return
        if result.probe is not None:
            # Searched before this item's own rows are added, so the cached index never holds uncommitted rows.
            result.candidates = index_in(session).search(result.probe, exclude=ingestion.item_id)
            if result.event is not None:
                result.event.details["candidates"] = [m.id for m in result.candidates]
        if result.hashes:
            # One multi-row insert: a video brings hundreds of rows, a photo a dozen.
            session.execute(
                insert(Fingerprint),
                [
                    {"item_id": ingestion.item_id, "kind": h.kind, "variant": h.variant, "offset_ms": h.offset_ms,
                     "value": to_signed(h.value)}
                    for h in result.hashes
                ],
            )
        record_candidates(session, ingestion.item_id, result.candidates, utc_now())
