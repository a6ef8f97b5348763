"""MakePreview: a thumbnail (photo) or poster frame (video) for the web pages, encrypted to the preview identity.

Why at ingest: the plaintext is in hand only now; later it costs an unlock
of the access identity and a decryption of the original. The picture is
decoded and re-encoded in a sandbox child (`ingest.thumbnails`: at most 320
px, EXIF orientation applied, no metadata of any kind), crosses back as
bytes in memory, and is at once encrypted with age to the preview recipient
(`keys/preview.pub`): the catalog row holds ciphertext only, which neither
the access identity nor the custodian key opens, so previews can be shown by
a server that cannot read originals, and a seized catalog shows no picture.

Never refuses a file: a broken picture, a bomb, a decoder that crashes or
hangs gets no preview and the reason is recorded with `ingestion.fail` (a
crash or hang is tried again, with more time, by the next back-fill). No
preview is kept for an item linked to a witness's interview
(`archive.services.previews.drop_previews_linked_to_interviews`, run in
`save`, also for a later arrival of the same bytes from such a witness).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.pipeline import Ingestion, Step
from ingest.sandbox import MIB, Limits

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.context import Archive

PREVIEW = "preview"  # the step's name and its `Ingestion.results` key
MEDIA_TYPE = "image/jpeg"
# At ingest the third task a file's analysis may run: with metadata (10 s) and fingerprint (10 s for a photo,
# 11 s for a video) a file is acknowledged within 30 s whatever it holds. A camera JPEG takes ~15 ms (reduced
# decode); a HEIC is decoded whole (16 MP: ~2.6 s on a 2-CPU machine), so a much larger one may get none at
# ingest: the back-fill (`evidence previews backfill --retry`, no acknowledgement waiting) has more time.
INGEST_LIMITS = {"photo": Limits(memory=1536 * MIB, cpu_seconds=5, wall_seconds=5.0),
                 "video": Limits(memory=2048 * MIB, cpu_seconds=8, wall_seconds=5.0)}
BACKFILL_LIMITS = Limits(memory=2048 * MIB, cpu_seconds=40, wall_seconds=30.0)
SPENT = ("timeout", "cpu")  # a fingerprint decode stopped so: the file's decoding time is spent
NO_RECIPIENT = "no preview identity in keys/ (`evidence keys add-access` makes one): no preview made"


@dataclass
class PreviewResult:
    """A preview ready for the catalog: its kind and the age ciphertext of the JPEG."""

    kind: str  # thumbnail | poster
    sealed: bytes
    width: int
    height: int


class NoPreview(Exception):
    """Why a file got no preview (recorded on the item): the file yields none, which is settled."""


class DecoderFailed(NoPreview):
    """The decoder crashed, hung or ran out of memory: tried again by a back-fill, with more time."""


def make_preview(source: bytes | Path, medium: str, recipient: str, *, limits: Limits | None = None
                 ) -> PreviewResult:
    """Decode in a sandbox child, encrypt to `recipient`; the JPEG itself is dropped before this returns.

    Raises NoPreview with the reason (the child's, or its crash, hang or memory exhaustion).
    """
    from archive.age import Recipient, encrypt_bytes
    from ingest import sandbox

    limits = limits or INGEST_LIMITS[medium]
    try:
        out = sandbox.run(PREVIEW, source, {"medium": medium}, limits)
    except sandbox.SandboxFailure as exc:
        raise DecoderFailed(exc.reason) from None
    if "none" in out:
        raise NoPreview(str(out["none"]))
    try:
        jpeg = base64.b64decode(str(out["jpeg"]), validate=True)
        width, height = int(out["width"]), int(out["height"])
    except (KeyError, ValueError, TypeError) as exc:
        raise NoPreview(f"the decoder sent no usable picture ({type(exc).__name__})") from None
    if not jpeg.startswith(b"\xff\xd8") or not (0 < width <= 320 and 0 < height <= 320):
        raise NoPreview("the decoder sent no usable picture")  # a subverted child may lie; never stored as is
    sealed = encrypt_bytes(jpeg, [Recipient.parse(recipient)])
    return PreviewResult("poster" if medium == "video" else "thumbnail", sealed, width, height)


def medium_for(media_type: str | None) -> str | None:
    """photo | video for a type previews are made of (the fingerprinter's media), else None."""
    from ingest.steps.fingerprint import medium_of

    return medium_of(media_type)


class MakePreview(Step):
    name = PREVIEW
    analysis = True
    runs_on_duplicates = True  # makes nothing for one, but drops a preview once its witness hands it over

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        if ingestion.duplicate or PREVIEW in ingestion.results:
            return
        medium = medium_for(ingestion.media_type)
        if medium is None:
            return  # neither a picture nor a video: nothing to show
        recipient = archive.runtime.keys.preview_recipient()
        if recipient is None:
            ingestion.fail(self.name, NO_RECIPIENT)
            return
        if any(e.event_type == "fingerprint" and e.details.get("sandbox") in SPENT for e in ingestion.events):
            ingestion.results[PREVIEW] = None  # the same decoders would hang again: the file's time is spent
            ingestion.fail(self.name, "no preview: the fingerprint decoder was stopped on this file; "
                                      "`evidence previews backfill --retry` tries again with more time")
            return
        source = ingestion.plaintext if ingestion.plaintext is not None else ingestion.plaintext_path
        if source is None:
            ingestion.fail(self.name, "no plaintext available to make a preview from")
            return
        try:
            ingestion.results[PREVIEW] = make_preview(source, medium, recipient)
        except DecoderFailed as exc:  # no row: the next analysis or preview back-fill tries again
            ingestion.fail(self.name, f"no preview: {exc}")
        except NoPreview as exc:
            ingestion.results[PREVIEW] = None  # marked in the catalog: a back-fill does not try it again
            ingestion.fail(self.name, f"no preview: {exc}")

    def save(self, ingestion: Ingestion, session: Session) -> None:
        from archive.services.previews import drop_previews_linked_to_interviews, store_preview

        if ingestion.item_id is None:
            return
        if PREVIEW in ingestion.results and not ingestion.duplicate:
            store_preview(session, ingestion.item_id, ingestion.results[PREVIEW])
        if ingestion.incoming.source_id:  # a new item has no links yet: only the source handing it over counts
            drop_previews_linked_to_interviews(session, [ingestion.item_id])
