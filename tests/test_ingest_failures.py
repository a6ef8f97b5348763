"""Storage that fails under ingest (full, read-only), a process killed midway, large files."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import Cli

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs or a read-only bind needs root")


@contextmanager
def mounted(target: Path, *args: str) -> Iterator[None]:
    """Mount over a storage root; a fresh file system gets the root's marker, as a prepared disk would."""
    marker = target / ".evidence-root.json"
    saved = marker.read_bytes() if marker.exists() else None
    subprocess.run(["mount", *args, str(target)], check=True)
    try:
        if saved is not None and not marker.exists():
            marker.write_bytes(saved)
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def write_random(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, 1 << 20))
            digest.update(block)
            out.write(block)
            remaining -= len(block)
    return digest.hexdigest()


@needs_root
def test_full_root_degrades_and_both_full_refuses(cli: Cli, tmp_path: Path) -> None:
    site_a = cli.home / "storage" / "site-a"
    small = tmp_path / "small.bin"
    write_random(small, 100_000)
    big = tmp_path / "big.bin"
    write_random(big, 3 << 20)
    with mounted(site_a, "-t", "tmpfs", "-o", "size=1m", "tmpfs"):
        kept = cli.json_lines("ingest", str(small))[0]
        assert kept["status"] == "preserved"
        report = cli.json_lines("ingest", str(big))[0]
        assert report["status"] == "degraded"
        shown = cli.json("show", report["id"])
        assert [r["backend"] for r in shown["replicas"]] == ["site-b"]
        assert not list((site_a / ".staging").glob("*")), "a failed write leaves no staging file"
        with mounted(cli.home / "storage" / "site-b", "-t", "tmpfs", "-o", "size=1m", "tmpfs"):
            other = tmp_path / "other.bin"
            write_random(other, 3 << 20)
            refused = cli.json_lines("ingest", str(other), expect=1)[0]
            assert refused["status"] == "refused" and "full" in refused["error"]
        # what was kept before is untouched
        out = tmp_path / "out.bin"
        cli("get", kept["id"], "-o", str(out))
        assert out.read_bytes() == small.read_bytes()
    assert {i["status"] for i in cli.json("list")} == {"preserved", "degraded"}


@needs_root
def test_read_only_root_is_not_recorded_as_preserved(cli: Cli, tmp_path: Path, corpus: Path) -> None:
    site_b = cli.home / "storage" / "site-b"
    with mounted(site_b, "--bind", "-o", "ro", str(site_b)):
        report = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    assert report["status"] == "degraded"
    shown = cli.json("show", report["id"])
    assert [r["backend"] for r in shown["replicas"]] == ["site-a"]


def test_large_file_streams_and_round_trips(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "video.bin"
    digest = write_random(source, 150 << 20)  # above the in-memory analysis limit
    report = cli.json_lines("ingest", str(source))[0]
    assert report["sha256"] == digest and report["status"] == "preserved"
    out = tmp_path / "out.bin"
    cli("get", report["id"], "-o", str(out))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest


def test_sigkill_midway_leaves_catalog_and_storage_consistent(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    for i in range(6):
        write_random(folder / f"f{i}.bin", 40 << 20)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "api.cli", "--home", str(cli.home), "ingest", "--json", str(folder)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    proc.stdout.readline()  # at least one file acknowledged
    time.sleep(0.15)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def check_consistent() -> list[dict]:
        items = cli.json("list")
        for item in items:
            for replica in cli.json("show", item["id"])["replicas"]:
                path = cli.home / "storage" / replica["backend"] / replica["object"]
                assert hashlib.sha256(path.read_bytes()).hexdigest() == replica["ciphertext_sha256"]
        return items

    before = check_consistent()
    assert 1 <= len(before) < 6
    reports = cli.json_lines("ingest", str(folder))
    assert all(r["status"] == "preserved" for r in reports)
    after = check_consistent()
    assert len(after) == 6
    assert {i["id"] for i in before} <= {i["id"] for i in after}
    for root in ("site-a", "site-b"):
        assert not list((cli.home / "storage" / root / ".staging").glob("*")), "stale staging files are swept"
