"""Perceptual fingerprints of still pictures (JPEG, PNG, TIFF, WebP, HEIC …).

Why this shape: a re-posted picture is resized, recompressed, brightened,
stamped with a label, cropped a little, letterboxed, mirrored or rotated. One
pHash catches the first few but misses about a third of lightly cropped copies.
So each picture is hashed in a canonical form (EXIF orientation applied, grey,
uniform black or white bars trimmed) and in several centre crops, with two
algorithms (pHash and dHash) per view. A match needs both algorithms to agree
on the same pair of views, which keeps distinct pictures apart while the crops
absorb cropping. The query side also tries the eight rotations/mirrors of the
picture, so only one orientation is stored.

Decoding is reduced: JPEG is decoded at 1/2…1/8 scale straight to grey (Pillow
draft mode), which is most of the cost of fingerprinting a camera photo.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image

from ingest.fingerprints.common import MIN_SIDE, Hash, NoFingerprint

# Pixel counts above this are treated as decompression bombs (Pillow's own limit is 89 MP).
MAX_PIXELS = 300_000_000
WORK_SIDE = 128  # the longer side of the reduced picture every hash is taken from
# Centre crops hashed besides the whole picture: (variant name, fraction of each side kept).
CROPS: tuple[tuple[str, float], ...] = (("full", 1.0), ("c90", 0.90), ("c80", 0.80))
# EXIF orientation -> the transpose that shows the picture upright (as ImageOps.exif_transpose).
_ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# The eight rotations and mirrors a re-poster may apply; the query side tries each.
DIHEDRAL: tuple[tuple[str, Image.Transpose | None], ...] = (
    ("id", None),
    ("mirror", Image.Transpose.FLIP_LEFT_RIGHT),
    ("flip", Image.Transpose.FLIP_TOP_BOTTOM),
    ("rot180", Image.Transpose.ROTATE_180),
    ("rot90", Image.Transpose.ROTATE_90),
    ("rot270", Image.Transpose.ROTATE_270),
    ("transpose", Image.Transpose.TRANSPOSE),
    ("transverse", Image.Transpose.TRANSVERSE),
)

_heif_registered = False


def _register_heif() -> None:
    global _heif_registered
    if not _heif_registered:
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except ImportError:  # pragma: no cover - HEIC then simply does not open
            pass
        _heif_registered = True


Source = str | os.PathLike[str] | bytes | IO[bytes]


@dataclass(frozen=True)
class ViewHash:
    """The pHash and dHash of one view (a centre crop) of one orientation of a picture."""

    transform: str  # one of DIHEDRAL's names
    variant: str  # one of CROPS' names
    phash: int
    dhash: int


def load_reduced(source: Source) -> Image.Image:
    """Decode a picture small and grey, upright per its EXIF orientation.

    Raises NoFingerprint with the reason when it cannot or should not be hashed
    (not a picture, broken, smaller than 64 px on a side, a decompression bomb).
    """
    _register_heif()
    fp: IO[bytes] | str | os.PathLike[str] = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as im:
                width, height = im.size
                if width * height > MAX_PIXELS:
                    raise NoFingerprint(f"picture declares {width}x{height} pixels: treated as a decompression bomb")
                if min(width, height) < MIN_SIDE:
                    raise NoFingerprint(f"picture is {width}x{height}, smaller than {MIN_SIDE} px on a side")
                orientation = _orientation(im)
                if im.format == "JPEG":
                    im.draft("L", (WORK_SIDE * 2, WORK_SIDE * 2))
                if getattr(im, "n_frames", 1) > 1:
                    im.seek(0)
                grey = _to_grey(im)
    except NoFingerprint:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise NoFingerprint(f"decompression bomb: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a reason, never a crash
        raise NoFingerprint(f"cannot decode picture: {type(exc).__name__}: {exc}") from exc
    if orientation in _ORIENT:
        grey = grey.transpose(_ORIENT[orientation])
    return grey


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112)
        return int(value) if value is not None else 1
    except Exception:  # noqa: BLE001 - a broken EXIF block only loses the orientation
        return 1


def _to_grey(im: Image.Image) -> Image.Image:
    """The picture as 8-bit grey at most 2 × WORK_SIDE on its longer side (transparency on white)."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat.alpha_composite(rgba)
        im = flat
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = im.point(lambda v: v / 256).convert("L")  # type: ignore[arg-type,operator]
    grey = im.convert("L")
    grey.thumbnail((WORK_SIDE * 2, WORK_SIDE * 2), Image.Resampling.BOX)
    return grey


def canonical(grey: Image.Image) -> Image.Image:
    """The picture with letterbox/pillarbox bars trimmed, at WORK_SIDE on its longer side."""
    import numpy as np

    arr = np.asarray(grey, dtype=np.int16)
    top, bottom, left, right = _bars(arr)
    if top or bottom or left or right:
        grey = grey.crop((left, top, arr.shape[1] - right, arr.shape[0] - bottom))
    work = grey.copy()
    work.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
    return work


def _bars(arr: object) -> tuple[int, int, int, int]:
    """Rows/columns of uniform black or white bars on each edge (at most a third of each side)."""
    import numpy as np

    a = np.asarray(arr)
    h, w = a.shape

    def run(lines: Iterator[object], limit: int) -> int:
        n = 0
        ref: float | None = None
        for line in lines:
            v = np.asarray(line)
            mean = float(v.mean())
            if ref is None:
                if not (mean < 24 or mean > 232):
                    return 0
                ref = mean
            if abs(mean - ref) > 8 or float(v.std()) > 6 or n >= limit:
                break
            n += 1
        return n if n >= 2 else 0

    top = run((a[i] for i in range(h)), h // 3)
    bottom = run((a[h - 1 - i] for i in range(h)), h // 3)
    left = run((a[:, j] for j in range(w)), w // 3)
    right = run((a[:, w - 1 - j] for j in range(w)), w // 3)
    return top, bottom, left, right


def views(work: Image.Image, transforms: tuple[str, ...] = ("id",)) -> list[ViewHash]:
    """pHash and dHash of every centre crop of every requested orientation of a canonical picture."""
    import imagehash

    out = []
    names = dict(DIHEDRAL)
    for tname in transforms:
        method = names[tname]
        base = work if method is None else work.transpose(method)
        w, h = base.size
        for variant, keep in CROPS:
            if keep < 1.0:
                dx, dy = round(w * (1 - keep) / 2), round(h * (1 - keep) / 2)
                view = base.crop((dx, dy, w - dx, h - dy))
            else:
                view = base
            out.append(ViewHash(tname, variant, _as_int(imagehash.phash(view)), _as_int(imagehash.dhash(view))))
    return out


def _as_int(h: object) -> int:
    return int(str(h), 16)


def photo_hashes(source: Source) -> list[Hash]:
    """The hashes stored for a picture: pHash and dHash of each centre crop, upright orientation only."""
    work = canonical(load_reduced(source))
    out: list[Hash] = []
    for v in views(work):
        out.append(Hash("phash", v.variant, v.phash))
        out.append(Hash("dhash", v.variant, v.dhash))
    return out


def query_views(source: Source | Image.Image, rotations: bool = True) -> list[ViewHash]:
    """The views a query tries: every crop of every rotation/mirror (or of the upright picture only)."""
    grey = source if isinstance(source, Image.Image) else load_reduced(source)
    work = canonical(grey)
    return views(work, tuple(n for n, _ in DIHEDRAL) if rotations else ("id",))


def is_picture_path(path: Path) -> bool:
    """Cheap test by name, for choosing which fingerprinter to try first (content decides in the end)."""
    return path.suffix.lower() in {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif", ".gif", ".bmp"}
