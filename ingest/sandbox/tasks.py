"""What the sandbox child can be asked to do: each task takes the file and plain options, returns plain data.

Every task here runs inside a sandbox child (see `ingest.sandbox`), never in
the ingest process. Results are dicts of plain values (str, int, float, bool,
None, lists, dicts) so they cross the process boundary as JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def metadata(source: bytes | Path, options: dict[str, Any]) -> dict[str, Any]:
    """`ingest.media.extract` on the file: normalized fields, raw groups, parser failures."""
    from ingest.media import extract
    from ingest.media.model import Detected

    given = options.get("detected")
    detected = Detected(**given) if given else None
    return extract(source, detected=detected, native=bool(options.get("native", True))).to_dict()


def photo_fingerprint(source: bytes | Path, options: dict[str, Any]) -> dict[str, Any]:
    """The upright views' hashes to store, and every rotation's views to search with."""
    from ingest.fingerprints.common import NoFingerprint
    from ingest.fingerprints.photo import load_reduced, views

    try:
        grey = load_reduced(source)
    except NoFingerprint as exc:
        return {"none": str(exc)}
    all_views = views(grey, ("id", "mirror", "flip", "rot180", "rot90", "rot270", "transpose", "transverse"))
    upright = [v for v in all_views if v.transform == "id"]
    if not upright:
        return {"none": "picture is uniform: nothing to fingerprint"}
    return {
        "hashes": [[k, v.variant, value, 0] for v in upright for k, value in (("phash", v.phash), ("dhash", v.dhash))],
        "probe": [[v.phash, v.dhash, 0] for v in all_views],
    }


def video_fingerprint(source: bytes | Path, options: dict[str, Any]) -> dict[str, Any]:
    """Frame hashes of one run from `start` for `budget` seconds, and how much of the video they cover."""
    from ingest.fingerprints.common import NoFingerprint
    from ingest.fingerprints.video import fingerprint_video

    try:
        run = fingerprint_video(source, start=float(options.get("start", 0.0)), budget=float(options["budget"]))
    except NoFingerprint as exc:
        return {"none": str(exc)}
    return {
        "frames": [[f.offset_ms, f.variant, f.phash, f.dhash] for f in run.frames],
        "duration": run.duration,
        "covered": run.covered,
        "complete": run.complete,
    }


def preview(source: bytes | Path, options: dict[str, Any]) -> dict[str, Any]:
    """A photo's thumbnail or a video's poster frame, metadata-free JPEG (base64: replies are JSON), or why none."""
    import base64

    from ingest.thumbnails import NoPreview, photo_preview, poster_frame

    try:
        made = poster_frame(source) if options.get("medium") == "video" else photo_preview(source)
    except NoPreview as exc:
        return {"none": str(exc)}
    return {"jpeg": base64.b64encode(made.jpeg).decode("ascii"), "width": made.width, "height": made.height}


def _warm() -> None:
    """Import the parsers and decoders once per child, before its first file."""
    import exifread  # noqa: F401
    import numpy  # noqa: F401
    import scipy.fftpack  # noqa: F401
    from PIL import Image  # noqa: F401

    import ingest.fingerprints.photo  # noqa: F401
    import ingest.media.normalize  # noqa: F401
    import ingest.media.photo  # noqa: F401
    import ingest.media.xmp  # noqa: F401


Task = Callable[[bytes | Path, dict[str, Any]], dict[str, Any]]
TASKS: dict[str, Task] = {
    "metadata": metadata,
    "photo_fingerprint": photo_fingerprint,
    "video_fingerprint": video_fingerprint,
    "preview": preview,
}
_warm()
