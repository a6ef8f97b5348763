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
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from PIL import Image

from ingest.fingerprints.common import MIN_SIDE, Hash, NoFingerprint

# Pixel counts above this are treated as decompression bombs (as Pillow does above 2 x 89 MP).
MAX_PIXELS = 180_000_000
WORK_SIDE = 128  # the longer side of the reduced picture every hash is taken from
# Centre crops hashed besides the whole picture: (variant name, fraction of each side kept).
CROPS: tuple[tuple[str, float], ...] = (("full", 1.0), ("c94", 0.94), ("c80", 0.80))
FLAT_STD = 4.0  # a view whose 32 x 32 grey values vary less than this is treated as uniform
# EXIF orientation -> the transpose that shows the picture upright (as ImageOps.exif_transpose).
ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
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

    transform: str  # "id", "mirror", "rot90" …: how the query picture was turned
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
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # bombs past 2x raise anyway
            with Image.open(fp) as im:
                width, height = im.size
                if width * height > MAX_PIXELS:
                    raise NoFingerprint(f"picture declares {width}x{height} pixels: treated as a decompression bomb")
                if min(width, height) < MIN_SIDE:
                    raise NoFingerprint(f"picture is {width}x{height}, smaller than {MIN_SIDE} px on a side")
                orientation = orientation_of(im)
                if im.format == "JPEG":
                    im.draft("L", (WORK_SIDE * 2, WORK_SIDE * 2))
                if getattr(im, "n_frames", 1) > 1:
                    im.seek(0)
                grey = _to_grey(im)
    except NoFingerprint:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise NoFingerprint(f"decompression bomb: {exc}") from exc
    except Image.UnidentifiedImageError as exc:  # its message names the in-memory stream, not the file
        raise NoFingerprint("cannot decode picture: no image format Pillow reads matches it") from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a reason, never a crash
        raise NoFingerprint(f"cannot decode picture: {type(exc).__name__}: {exc}") from exc
    if orientation in ORIENTATIONS:
        grey = grey.transpose(ORIENTATIONS[orientation])
    return grey


def orientation_of(im: Image.Image) -> int:
    """The EXIF orientation (1-8) of a decoded picture, 1 when it has none or it cannot be read."""
    try:
        value = im.getexif().get(0x0112)
        return int(value) if value is not None else 1
    except Exception:  # noqa: BLE001 - a broken EXIF block only loses the orientation
        return 1


def on_white(im: Image.Image) -> Image.Image:
    """A picture with transparency laid on white (RGBA); any other picture as it is."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat.alpha_composite(rgba)
        return flat
    return im


def _to_grey(im: Image.Image) -> Image.Image:
    """The picture as 8-bit grey at most 2 × WORK_SIDE on its longer side (transparency on white)."""
    im = on_white(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        import numpy as np

        # 16-bit (and 32-bit) grey: scale to 8 bits; Pillow's own conversion would clip to white.
        wide = np.asarray(im, dtype=np.float64)
        top = float(wide.max()) or 1.0
        im = Image.fromarray((wide * (255.0 / top)).clip(0, 255).astype(np.uint8))
    grey = im.convert("L")
    grey.thumbnail((WORK_SIDE * 2, WORK_SIDE * 2), Image.Resampling.BOX)
    return grey


def canonical_forms(grey: Image.Image) -> list[tuple[str, Image.Image]]:
    """The picture at WORK_SIDE, and also with letterbox/pillarbox bars trimmed when it has any.

    Both are kept because trimming depends on content: brightening can turn a
    pale edge into a "bar" in a copy that the original did not have.
    """
    import numpy as np

    arr = np.asarray(grey, dtype=np.int16)
    forms = [("", _fit(grey))]
    top, bottom, left, right = _bars(arr)
    if top or bottom or left or right:
        trimmed = grey.crop((left, top, arr.shape[1] - right, arr.shape[0] - bottom))
        if min(trimmed.size) >= 16:
            forms.append(("t", _fit(trimmed)))
    return forms


def _fit(im: Image.Image) -> Image.Image:
    work = im.copy()
    work.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
    return work


def _bars(a: Any) -> tuple[int, int, int, int]:
    """Rows/columns of uniform black or white bars on each edge (at most a third of each side)."""
    import numpy as np

    h, w = a.shape

    def run(lines: Any, limit: int) -> int:
        means = lines.mean(axis=1)
        stds = lines.std(axis=1)
        ref = float(means[0])
        if not (ref < 24 or ref > 232):
            return 0
        ok = (np.abs(means - ref) <= 8) & (stds <= 6)
        n = int(np.argmin(ok)) if not ok.all() else len(ok)
        n = min(n, limit)
        return n if n >= 2 else 0

    return (
        run(a, h // 3),
        run(a[::-1], h // 3),
        run(a.T, w // 3),
        run(a.T[::-1], w // 3),
    )


def _grids(view: Image.Image) -> tuple[Any, Any, Any]:
    """The three small resizes every hash is computed from (as imagehash does them)."""
    import numpy as np

    lanczos = Image.Resampling.LANCZOS
    p = np.asarray(view.resize((32, 32), lanczos), dtype=np.float64)
    a = np.asarray(view.resize((9, 8), lanczos))
    b = np.asarray(view.resize((8, 9), lanczos))
    return p, a, b


# The same transposes on a numpy array (row-major), and whether they swap width and height.
_NP_OPS: dict[str, tuple[Callable[[Any], Any], bool]] = {
    "id": (lambda x: x, False),
    "mirror": (lambda x: x[:, ::-1], False),
    "flip": (lambda x: x[::-1], False),
    "rot180": (lambda x: x[::-1, ::-1], False),
    "rot90": (lambda x: x.T[::-1], True),  # counter-clockwise, as Image.Transpose.ROTATE_90
    "rot270": (lambda x: x[::-1].T, True),
    "transpose": (lambda x: x.T, True),
    "transverse": (lambda x: x[::-1, ::-1].T, True),
}


def _bits(diff: Any) -> int:
    import numpy as np

    return int.from_bytes(np.packbits(diff.reshape(-1)).tobytes(), "big")


def _hash_pair(p: Any, a: Any, b: Any, tname: str) -> tuple[int, int]:
    """pHash and dHash of the picture turned by `tname`, equal to imagehash's on the turned picture."""
    import numpy as np
    from scipy.fftpack import dct

    op, swaps = _NP_OPS[tname]
    pixels = op(p)
    coeffs = dct(dct(pixels, axis=0), axis=1)[:8, :8]
    phash = _bits(coeffs > np.median(coeffs))
    # A turned picture resized to 9 x 8 is the turned 8 x 9 (or 9 x 8) resize of the original.
    d = op(b if swaps else a).astype(np.int16)
    dhash = _bits(d[:, 1:] > d[:, :-1])
    return phash, dhash


def views(grey: Image.Image, transforms: tuple[str, ...] = ("id",)) -> list[ViewHash]:
    """pHash and dHash of every centre crop of every canonical form, in each requested orientation.

    Views that are nearly uniform are skipped: their hashes are noise and would
    match any other flat picture.
    """

    out = []
    for prefix, work in canonical_forms(grey):
        w, h = work.size
        for variant, keep in CROPS:
            if keep < 1.0:
                dx, dy = round(w * (1 - keep) / 2), round(h * (1 - keep) / 2)
                view = work.crop((dx, dy, w - dx, h - dy))
            else:
                view = work
            p, a, b = _grids(view)
            if float(p.std()) < FLAT_STD:
                continue
            for tname in transforms:
                phash, dhash = _hash_pair(p, a, b, tname)
                out.append(ViewHash(tname, prefix + variant, phash, dhash))
    return out


def frame_views(grey: Image.Image) -> list[tuple[str, int, int]]:
    """(variant, pHash, dHash) of a video frame: whole, and with bars trimmed when it has any."""
    out = []
    for prefix, work in canonical_forms(grey):
        p, a, b = _grids(work)
        if float(p.std()) >= FLAT_STD:
            out.append((prefix + "frame", *_hash_pair(p, a, b, "id")))
    return out


def photo_hashes(source: Source) -> list[Hash]:
    """The hashes stored for a picture: pHash and dHash of each view, upright orientation only."""
    found = views(load_reduced(source))
    if not found:
        raise NoFingerprint("picture is uniform: nothing to fingerprint")
    out: list[Hash] = []
    for v in found:
        out.append(Hash("phash", v.variant, v.phash))
        out.append(Hash("dhash", v.variant, v.dhash))
    return out


def query_views(source: Source | Image.Image, rotations: bool = True) -> list[ViewHash]:
    """The views a query tries: every view of every rotation/mirror (or of the upright picture only)."""
    grey = source if isinstance(source, Image.Image) else load_reduced(source)
    found = views(grey, tuple(_NP_OPS) if rotations else ("id",))
    if not found:
        raise NoFingerprint("picture is uniform: nothing to fingerprint")
    return found

