"""Copies of the corpus photos as re-posters make them, for the fingerprint quality tests."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageOps

PHOTO_GLOBS = ("jpg/**/*.jpg", "jpg/**/*.jpeg", "heic/**/*.heif", "tiff/*.tiff", "exiftool/*.jpg", "exiftool/*.png",
               "exiftool/*.webp")


def corpus_photos(media: Path) -> list[Path]:
    """Every corpus photo file (decodable or not: the tests decide)."""
    found: set[Path] = set()
    for pattern in PHOTO_GLOBS:
        found.update(media.glob(pattern))
    return sorted(found)


def group_of(path: Path) -> str:
    """The picture a file shows: the eight orientation files are one picture."""
    return "orientation" if path.parent.name == "orientation" else str(path)


def upright(path: Path, limit: int = 1024) -> Image.Image | None:
    """The picture as a viewer shows it (orientation applied), at most `limit` px, or None if undecodable."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    try:
        with Image.open(path) as im:
            im.draft("RGB", (limit, limit))
            out = ImageOps.exif_transpose(im)
            out.load()
            out = out.convert("RGB")
    except Exception:  # noqa: BLE001 - broken corpus files are skipped here, tested elsewhere
        return None
    out.thumbnail((limit, limit))
    return out


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _jpeg(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _crop(im: Image.Image, share: float) -> Image.Image:
    w, h = im.size
    dx, dy = round(w * share), round(h * share)
    return im.crop((dx, dy, w - dx, h - dy))


def _label(im: Image.Image) -> Image.Image:
    """A white label over 5 % of the picture (40 % wide, 12.5 % high), near the bottom left."""
    im = im.copy()
    w, h = im.size
    x, y = round(w * 0.05), round(h * 0.8)
    ImageDraw.Draw(im).rectangle((x, y, x + round(w * 0.4) - 1, y + round(h * 0.125) - 1), fill="white")
    return im


def _letterbox(im: Image.Image) -> Image.Image:
    """Black bars above and below, as a 4:3 picture posted in a taller frame."""
    w, h = im.size
    framed = Image.new("RGB", (w, round(h * 4 / 3)), "black")
    framed.paste(im, (0, (framed.height - h) // 2))
    return framed


# The transformations the issue requires (recall >= 0.95 over all of them).
REQUIRED: dict[str, Callable[[Image.Image], bytes]] = {
    "half": lambda im: _png(im.resize((max(1, im.width // 2), max(1, im.height // 2)), Image.Resampling.LANCZOS)),
    "jpeg35": lambda im: _jpeg(im, 35),
    "crop3": lambda im: _png(_crop(im, 0.03)),
    "bright30": lambda im: _png(ImageEnhance.Brightness(im).enhance(1.3)),
    "label5": lambda im: _png(_label(im)),
    "png": _png,
}

# Beyond the minimum: what re-posters also do.
EXTRA: dict[str, Callable[[Image.Image], bytes]] = {
    "mirror": lambda im: _png(ImageOps.mirror(im)),
    "rot90": lambda im: _png(im.transpose(Image.Transpose.ROTATE_90)),
    "crop10": lambda im: _png(_crop(im, 0.10)),
    "letterbox": lambda im: _png(_letterbox(im)),
    "grey": lambda im: _png(im.convert("L")),
}
