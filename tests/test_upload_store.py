"""The encrypted segment store: a partial upload is unreadable at rest, and any tampering is noticed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.upload_store import (
    SegmentReader,
    Segments,
    SegmentWriter,
    StoreDamaged,
    new_secret,
    secret_digest,
    secret_matches,
    segment_key,
)

UPLOAD = "up-" + "0" * 32
OTHER = "up-" + "1" * 32


def _store(home: Path, upload_id: str = UPLOAD, secret: str | None = None) -> tuple[Segments, str]:
    secret = secret or new_secret()
    segments = Segments(home, upload_id, segment_key(secret, upload_id))
    segments.create()
    return segments, secret


def _write(segments: Segments, data: bytes, size: int = 1000) -> None:
    writer = SegmentWriter(segments, 0, segment_size=size)
    for at in range(0, len(data), 333):
        writer.feed(data[at:at + 333])
    assert writer.flush() == len(data)


def test_segments_read_back_in_order_and_hold_no_plaintext(tmp_path: Path) -> None:
    data = os.urandom(5000)
    segments, _ = _store(tmp_path)
    _write(segments, data)
    assert segments.offsets() == [0, 1000, 2000, 3000, 4000]
    assert SegmentReader(segments, len(data)).read() == data
    stored = b"".join(p.read_bytes() for p in segments.folder.iterdir())
    for at in range(0, len(data) - 16, 16):
        assert data[at:at + 16] not in stored
    for path in segments.folder.iterdir():
        assert path.stat().st_mode & 0o077 == 0


def test_the_secret_is_kept_only_as_its_hash(tmp_path: Path) -> None:
    secret = new_secret()
    assert len(secret) >= 43 and secret_matches(secret, secret_digest(secret))
    assert not secret_matches(new_secret(), secret_digest(secret))


def test_a_wrong_secret_reads_nothing(tmp_path: Path) -> None:
    segments, _ = _store(tmp_path)
    _write(segments, b"x" * 3000)
    intruder = Segments(tmp_path, UPLOAD, segment_key(new_secret(), UPLOAD))
    with pytest.raises(StoreDamaged):
        intruder.read(0)


@pytest.mark.parametrize("attack", ["flip", "truncate", "swap", "move", "other-upload", "delete"])
def test_tampering_with_a_stored_segment_is_detected(tmp_path: Path, attack: str) -> None:
    data = os.urandom(3000)
    secret = new_secret()
    segments, _ = _store(tmp_path, secret=secret)
    _write(segments, data)
    first, second = segments.folder / f"{0:020d}.seg", segments.folder / f"{1000:020d}.seg"
    if attack == "flip":
        blob = bytearray(second.read_bytes())
        blob[40] ^= 0x01
        second.write_bytes(bytes(blob))
    elif attack == "truncate":
        second.write_bytes(second.read_bytes()[:-1])
    elif attack == "swap":
        a, b = first.read_bytes(), second.read_bytes()
        first.write_bytes(b)
        second.write_bytes(a)
    elif attack == "move":
        second.rename(segments.folder / f"{999:020d}.seg")
    elif attack == "other-upload":  # a segment of another upload under the same secret, same offset
        others, _ = _store(tmp_path, OTHER, secret)
        _write(others, os.urandom(3000))
        second.write_bytes((others.folder / f"{1000:020d}.seg").read_bytes())
    else:
        second.unlink()
    with pytest.raises(StoreDamaged):
        SegmentReader(segments, len(data)).read()


def test_an_abandoned_body_leaves_nothing_behind(tmp_path: Path) -> None:
    segments, _ = _store(tmp_path)
    _write(segments, b"a" * 1000)
    writer = SegmentWriter(segments, 1000, segment_size=500)
    writer.feed(b"b" * 1200)
    writer.abandon()
    assert segments.offsets() == [0]
    assert SegmentReader(segments, 1000).read() == b"a" * 1000


def test_one_request_at_a_time(tmp_path: Path) -> None:
    from ingest.upload_store import Busy

    segments, _ = _store(tmp_path)
    with segments.lock():
        with pytest.raises(Busy):
            with Segments(tmp_path, UPLOAD).lock():
                pass
    with Segments(tmp_path, UPLOAD).lock():
        pass
