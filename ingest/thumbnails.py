"""Previews for the web pages: a small JPEG of a photo, or a poster frame of a video, carrying no metadata.

Runs inside a sandbox child only (`ingest.sandbox.tasks.preview`): the
decoders walk whatever a hostile file claims. What comes out is re-encoded
from pixels alone: the picture is copied into a fresh image with no `info`,
so no EXIF (GPS, camera, dates), XMP, ICC profile, comment or thumbnail of
the original can ride along (Pillow's JPEG writer would otherwise carry a
source's comment and XMP over). The EXIF orientation is applied first, so
the preview is upright without any tag saying how to turn it.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from typing import IO, Any

from PIL import Image

from ingest.fingerprints.photo import ORIENTATIONS, on_white, orientation_of

MAX_SIDE = 320  # the preview's longer side, in pixels
QUALITY = 80
MAX_PIXELS = 180_000_000  # larger declared pictures (or video frames) are treated as decompression bombs
POSTER_AT = 1.0  # seconds into a video for its poster frame (the first frame when it is shorter)
MAX_POSTER_FRAMES = 240  # frames decoded at most while looking for the poster (a stream of broken frames ends)
Source = str | os.PathLike[str] | bytes | IO[bytes]


class NoPreview(Exception):
    """The file yields no preview; the message says why (recorded on the item, the file kept)."""


@dataclass(frozen=True)
class Made:
    """A preview: the JPEG bytes and their size in pixels."""

    jpeg: bytes
    width: int
    height: int


def _heif() -> None:
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:  # pragma: no cover - HEIC then simply does not open
        pass


def photo_preview(source: Source) -> Made:
    """The picture upright, at most MAX_SIDE on its longer side, as a metadata-free JPEG; NoPreview if none."""
    _heif()
    fp: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # past 2x Pillow raises anyway
            with Image.open(fp) as im:
                width, height = im.size
                if width * height > MAX_PIXELS or width <= 0 or height <= 0:
                    raise NoPreview(f"picture declares {width}x{height} pixels: treated as a decompression bomb")
                orientation = orientation_of(im)
                if getattr(im, "n_frames", 1) > 1:
                    im.seek(0)
                if im.format == "JPEG":
                    im.draft("RGB", (MAX_SIDE * 2, MAX_SIDE * 2))  # decoded at 1/2…1/8 scale: most of the cost
                rgb = _to_rgb(im)
    except NoPreview:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise NoPreview(f"decompression bomb: {exc}") from exc
    except Image.UnidentifiedImageError as exc:  # its message names the in-memory stream, not the file
        raise NoPreview("cannot decode picture: no image format Pillow reads matches it") from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a reason, never a crash
        raise NoPreview(f"cannot decode picture: {type(exc).__name__}: {exc}") from exc
    if orientation in ORIENTATIONS:
        rgb = rgb.transpose(ORIENTATIONS[orientation])
    return encode(rgb)


def poster_frame(source: Source) -> Made:
    """A frame about POSTER_AT seconds in (or the first, for a shorter video) as a preview; NoPreview if none."""
    import av

    fp: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        container: Any = av.open(fp)
    except Exception as exc:  # noqa: BLE001 - any demuxer failure is a reason, never a crash
        raise NoPreview(f"cannot open video: {type(exc).__name__}: {exc}") from exc
    try:
        if not container.streams.video:
            raise NoPreview("no video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
        if width * height > MAX_PIXELS:
            raise NoPreview(f"video declares {width}x{height} pixels: treated as a decompression bomb")
        duration = float(container.duration / 1e6) if container.duration else None
        target = POSTER_AT if duration is None or duration > POSTER_AT else 0.0
        picture = _frame_at(container, stream, target)
    except NoPreview:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken stream gets no poster, never a crash
        raise NoPreview(f"cannot decode video: {type(exc).__name__}: {exc}") from exc
    finally:
        container.close()
    return encode(picture)


def _frame_at(container: Any, stream: Any, target: float) -> Image.Image:
    """The first frame at or after `target` seconds, else the last one decoded before the stream ended."""
    found: Image.Image | None = None
    for count, frame in enumerate(container.decode(stream)):
        if frame.width * frame.height > MAX_PIXELS:
            raise NoPreview(f"video frame of {frame.width}x{frame.height} pixels: treated as a decompression bomb")
        t = frame.time if frame.time is not None else 0.0
        if found is None or t + 1e-6 >= target or count + 1 >= MAX_POSTER_FRAMES:
            scale = min(1.0, (MAX_SIDE * 2) / max(frame.width, frame.height, 1))
            found = frame.reformat(width=max(1, round(frame.width * scale)),
                                   height=max(1, round(frame.height * scale)), format="rgb24").to_image()
        if t + 1e-6 >= target or count + 1 >= MAX_POSTER_FRAMES:
            break
    if found is None:
        raise NoPreview("no decodable video frame")
    return found


def encode(picture: Image.Image) -> Made:
    """Shrink to MAX_SIDE and write a baseline JPEG from the pixels alone (a fresh image: no info, no profile)."""
    picture = picture.convert("RGB")
    picture.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    bare = Image.frombytes("RGB", picture.size, picture.tobytes())
    out = io.BytesIO()
    bare.save(out, "JPEG", quality=QUALITY, optimize=True)
    return Made(out.getvalue(), bare.width, bare.height)


def _to_rgb(im: Image.Image) -> Image.Image:
    """The decoded picture as 8-bit RGB (transparency on white, 16-bit scaled, colours in sRGB when profiled)."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        return on_white(im).convert("RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        import numpy as np

        wide = np.asarray(im, dtype=np.float64)
        top = float(wide.max()) or 1.0
        return Image.fromarray((wide * (255.0 / top)).clip(0, 255).astype(np.uint8)).convert("RGB")
    profile = im.info.get("icc_profile")
    if profile and im.mode in ("RGB", "CMYK"):
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            converted = ImageCms.profileToProfile(im, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
            if converted is not None:
                return converted
        except Exception:  # noqa: BLE001 - a broken profile only costs colour fidelity
            pass
    return im.convert("RGB")
