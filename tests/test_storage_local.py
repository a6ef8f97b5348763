"""The local storage root: atomic, verified, never overwriting, swept after crashes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage.base import ObjectMissing, StorageError
from storage.local import STAGING, LocalBackend


def test_write_verify_read_list_delete(tmp_path: Path) -> None:
    backend = LocalBackend("a", tmp_path)
    stored = backend.put_bytes("o/ab/abcdef", b"hello")
    assert stored.sha256 == hashlib.sha256(b"hello").hexdigest() and stored.size == 5
    with backend.open_reader("o/ab/abcdef") as stream:
        assert stream.read() == b"hello"
    assert [i.name for i in backend.list()] == ["o/ab/abcdef"]
    assert backend.sha256_of("o/ab/abcdef") == (stored.sha256, 5)
    backend.delete("o/ab/abcdef")
    assert backend.stat("o/ab/abcdef") is None
    with pytest.raises(ObjectMissing):
        backend.open_reader("o/ab/abcdef")


def test_names_are_never_reused_or_escaping(tmp_path: Path) -> None:
    backend = LocalBackend("a", tmp_path / "root")
    backend.put_bytes("o/x", b"first")
    with pytest.raises(StorageError, match="already exists"):
        backend.put_bytes("o/x", b"second")
    assert (tmp_path / "root" / "o" / "x").read_bytes() == b"first"
    for bad in ("../evil", "/etc/passwd", "o/../../x", ".staging/x", ""):
        with pytest.raises(StorageError, match="invalid object name"):
            backend.open_writer(bad)


def test_a_mismatch_is_not_published(tmp_path: Path) -> None:
    backend = LocalBackend("a", tmp_path)
    writer = backend.open_writer("o/y")
    writer.write(b"bytes")
    with pytest.raises(StorageError, match="does not match"):
        writer.commit(hashlib.sha256(b"other").hexdigest())
    assert backend.stat("o/y") is None
    assert not list((tmp_path / STAGING).iterdir())


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    backend = LocalBackend("a", tmp_path)
    writer = backend.open_writer("o/z")
    writer.write(os.urandom(1000))
    writer.abort()
    writer.abort()
    assert backend.stat("o/z") is None and not list((tmp_path / STAGING).iterdir())


def test_sweep_removes_staging_of_dead_processes_only(tmp_path: Path) -> None:
    backend = LocalBackend("a", tmp_path)
    live = backend.open_writer("o/live")
    live.write(b"in progress")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / STAGING / f"{dead.stdout.strip()}-deadbeef.tmp").write_bytes(b"left by a killed ingest")
    assert backend.sweep_staging() == 1
    assert len(list((tmp_path / STAGING).iterdir())) == 1
    live.abort()


def test_missing_root_reports_unhealthy(tmp_path: Path) -> None:
    assert LocalBackend("a", tmp_path / "nope").health() is not None
    assert LocalBackend("a", tmp_path).health() is None


@pytest.mark.parametrize("compare", [False, True])
def test_a_copy_changed_on_disk_before_commit_is_caught(tmp_path: Path, compare: bool) -> None:
    """Both verification modes (hash the read-back; compare it with the bytes sent) catch a bad copy."""
    backend = LocalBackend("a", tmp_path)
    writer = backend.open_writer("o/w")
    if compare:
        writer.digest_covers_sent_bytes()
    data = os.urandom(300_000)
    writer.write(data)
    staged = next((tmp_path / STAGING).iterdir())
    with open(staged, "r+b") as stream:  # the disk (or the kernel) hands back other bytes
        stream.seek(1234)
        stream.write(b"\x00" if data[1234] else b"\x01")
    with pytest.raises(StorageError, match="does not match"):
        writer.commit(hashlib.sha256(data).hexdigest())
    assert backend.stat("o/w") is None


def test_comparison_mode_verifies_large_writes_in_segments(tmp_path: Path) -> None:
    backend = LocalBackend("a", tmp_path)
    writer = backend.open_writer("o/big")
    writer.digest_covers_sent_bytes()
    digest = hashlib.sha256()
    for _ in range(80):  # 80 MiB: more than two read-back segments
        block = os.urandom(1 << 20)
        digest.update(block)
        writer.write(block)
    stored = writer.commit(digest.hexdigest())
    assert stored.size == 80 << 20 and backend.sha256_of("o/big")[0] == digest.hexdigest()
