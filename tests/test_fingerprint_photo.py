"""Photo fingerprints: the reduced decode, the refusals with reasons, and agreement with imagehash."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from ingest.fingerprints.common import NoFingerprint, to_signed, to_unsigned
from ingest.fingerprints.photo import _fit, _grids, _hash_pair, load_reduced, photo_hashes, query_views

TURNS = {
    "id": None,
    "mirror": Image.Transpose.FLIP_LEFT_RIGHT,
    "flip": Image.Transpose.FLIP_TOP_BOTTOM,
    "rot180": Image.Transpose.ROTATE_180,
    "rot90": Image.Transpose.ROTATE_90,
    "rot270": Image.Transpose.ROTATE_270,
    "transpose": Image.Transpose.TRANSPOSE,
    "transverse": Image.Transpose.TRANSVERSE,
}


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def test_hashes_are_imagehash_phash_and_dhash_of_each_turned_picture(corpus: Path) -> None:
    work = _fit(load_reduced(corpus / "media/jpg/gps/DSCN0010.jpg"))
    p, a, b = _grids(work)
    for name, method in TURNS.items():
        turned = work if method is None else work.transpose(method)
        phash, dhash = _hash_pair(p, a, b, name)
        assert phash == int(str(imagehash.phash(turned)), 16), name
        # dHash may differ by a rounding tie in the resize of a turned picture.
        assert bin(dhash ^ int(str(imagehash.dhash(turned)), 16)).count("1") <= 1, name


def test_jpeg_is_decoded_reduced_and_upright(corpus: Path) -> None:
    grey = load_reduced(corpus / "media/jpg/orientation/landscape_6.jpg")  # stored 450 x 600, shown 600 x 450
    assert grey.mode == "L"
    assert grey.width > grey.height
    assert max(grey.size) <= 256


def test_heic_is_fingerprinted(corpus: Path) -> None:
    hashes = photo_hashes(corpus / "media/heic/samplefilehub.heif")
    assert {h.kind for h in hashes} == {"phash", "dhash"}
    assert all(0 <= h.value < 1 << 64 for h in hashes)


@pytest.mark.parametrize("size", [(63, 200), (200, 63), (16, 16), (1, 1)])
def test_pictures_under_64_px_on_a_side_get_no_fingerprint(size: tuple[int, int]) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    with pytest.raises(NoFingerprint, match="smaller than 64 px"):
        photo_hashes(_png(Image.fromarray(noise)))


def test_uniform_picture_gets_no_fingerprint() -> None:
    with pytest.raises(NoFingerprint, match="uniform"):
        photo_hashes(_png(Image.new("RGB", (300, 200), (0, 0, 255))))


def test_undecodable_bytes_give_a_reason_not_a_crash(corpus: Path) -> None:
    with pytest.raises(NoFingerprint, match="cannot decode"):
        photo_hashes(b"\xff\xd8\xff\xe0 not really a jpeg")
    data = (corpus / "media/jpg/gps/DSCN0010.jpg").read_bytes()
    try:
        photo_hashes(data[: len(data) // 3])  # truncated: either a reason or a (partial) fingerprint
    except NoFingerprint as exc:
        assert str(exc)


def test_decompression_bomb_is_skipped_with_reason() -> None:
    """A tiny PNG declaring 50,000 x 50,000 pixels is not decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 0, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 1000))
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")
    assert len(bomb) < 200
    with pytest.raises(NoFingerprint, match="decompression bomb"):
        photo_hashes(bomb)


def test_query_views_cover_eight_turns_and_every_crop(corpus: Path) -> None:
    views = query_views(corpus / "media/jpg/gps/DSCN0010.jpg")
    assert {v.transform for v in views} == set(TURNS)
    assert {"full", "c94", "c80"} <= {v.variant for v in views}


def test_signed_storage_round_trip() -> None:
    for value in (0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1):
        signed = to_signed(value)
        assert -(1 << 63) <= signed < 1 << 63
        assert to_unsigned(signed) == value
