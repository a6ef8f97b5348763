"""The sandbox: a child that hangs, loops, exhausts memory or crashes costs the file's analysis, never the file."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest import sandbox
from tests.conftest import Cli

PHOTO = "media/jpg/gps/DSCN0010.jpg"
# fault -> (spec for the environment, words the recorded reason must contain)
FAULTS = {
    "hang": ("hang@metadata", "time limit"),
    "cpu": ("cpu@metadata", "time limit"),  # the CPU-time limit, or the wall clock first on a loaded machine
    "oom": ("oom", "memory limit"),
    "segv": ("segv", "crashed (SIGSEGV)"),
}


@pytest.fixture()
def faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Arm the test hooks: a file carrying `MARK-<fault>` makes the sandbox child misbehave so."""
    spec = ",".join(f"{env}:MARK-{name}" for name, (env, _) in FAULTS.items())
    monkeypatch.setenv(sandbox.FAULT_ENV, spec)
    sandbox.shutdown()  # children read the hooks when they start
    yield
    monkeypatch.delenv(sandbox.FAULT_ENV)
    sandbox.shutdown()


def marked(corpus: Path, folder: Path, name: str, mark: str | None) -> Path:
    """A real photo with a JPEG comment segment right after SOI (the marker, or nothing)."""
    data = (corpus / PHOTO).read_bytes()
    text = (mark or "plain").encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + data[2:])
    return path


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_misbehaving_child_is_a_recorded_failure_and_the_file_is_kept(
    cli: Cli, corpus: Path, tmp_path: Path, faults: None, fault: str
) -> None:
    path = marked(corpus, tmp_path / "in", f"{fault}.jpg", f"MARK-{fault}")
    start = time.perf_counter()
    (report,) = cli.json_lines("ingest", str(path))
    assert time.perf_counter() - start < 30
    assert report["status"] == "preserved", report
    shown = cli.json("show", report["id"])
    words = FAULTS[fault][1]
    assert any(e["step"] == "metadata" and words in e["reason"] for e in shown["errors"]), shown["errors"]
    assert shown["metadata"]["media_type"] == "image/jpeg"  # known from Identify, outside the sandbox
    out = tmp_path / "back.jpg"
    cli("get", report["id"], "-o", str(out))
    assert out.read_bytes() == path.read_bytes()
    # The next file gets a fresh child and its full analysis.
    (good,) = cli.json_lines("ingest", str(marked(corpus, tmp_path / "in", "after.jpg", None)))
    after = cli.json("show", good["id"])
    assert after["metadata"]["make"] == "NIKON" and not [e for e in after["errors"] if e["step"] == "metadata"]


def test_a_batch_around_crashing_files_completes_with_every_report(
    cli: Cli, corpus: Path, tmp_path: Path, faults: None
) -> None:
    folder = tmp_path / "batch"
    for i in range(3):
        marked(corpus, folder, f"good-{i}.jpg", f"good {i}")
    marked(corpus, folder, "segv.jpg", "MARK-segv")
    marked(corpus, folder, "oom.jpg", "MARK-oom")
    reports = cli.json_lines("ingest", str(folder), "--workers", "2")
    assert sorted(Path(r["path"]).name for r in reports) == sorted(p.name for p in folder.iterdir())
    assert all(r["status"] == "preserved" for r in reports), reports
    listed = cli.json("list")
    assert len(listed) == 5


def test_the_hooks_need_the_environment_variable(corpus: Path, tmp_path: Path) -> None:
    sandbox.shutdown()
    path = marked(corpus, tmp_path, "segv.jpg", "MARK-segv")
    result = sandbox.run("metadata", path.read_bytes(), {}, sandbox.METADATA)
    assert result["normalized"]["make"] == "NIKON"


def test_children_are_reused_and_large_files_go_by_path(corpus: Path, tmp_path: Path) -> None:
    sandbox.shutdown()
    data = (corpus / PHOTO).read_bytes()
    for _ in range(5):
        assert sandbox.run("metadata", data, {}, sandbox.METADATA)["normalized"]["make"] == "NIKON"
    assert sandbox.pool().started == 1
    copy = tmp_path / "big.jpg"
    shutil.copy(corpus / PHOTO, copy)
    assert sandbox.run("metadata", copy, {}, sandbox.METADATA)["normalized"]["make"] == "NIKON"
    assert sandbox.pool().started == 1


def test_a_segfault_in_fingerprinting_keeps_the_metadata(
    cli: Cli, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(sandbox.FAULT_ENV, "segv@photo_fingerprint:MARK-decoder")
    sandbox.shutdown()
    try:
        (report,) = cli.json_lines("ingest", str(marked(corpus, tmp_path, "decoder.jpg", "MARK-decoder")))
    finally:
        monkeypatch.delenv(sandbox.FAULT_ENV)
        sandbox.shutdown()
    shown = cli.json("show", report["id"])
    assert shown["metadata"]["make"] == "NIKON"
    assert any(e["step"] == "fingerprint" and "SIGSEGV" in e["reason"] for e in shown["errors"])


def test_one_request_for_several_tasks_blames_each_failure_on_its_task(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A photo's metadata and fingerprint share one request (bytes sent once), each with its own outcome."""
    sandbox.shutdown()
    data = (corpus / PHOTO).read_bytes()
    tasks: list[tuple[str, dict[str, object], sandbox.Limits]] = [
        ("metadata", {}, sandbox.METADATA), ("photo_fingerprint", {}, sandbox.PHOTO_DECODE)
    ]
    meta, prints = sandbox.run_many(tasks, data)
    assert isinstance(meta, dict) and meta["normalized"]["make"] == "NIKON"
    assert isinstance(prints, dict) and prints["hashes"]
    assert sandbox.pool().started == 1
    monkeypatch.setenv(sandbox.FAULT_ENV, "segv@metadata:MARK-meta,hang@photo_fingerprint:MARK-print")
    sandbox.shutdown()
    try:
        crashed, after = sandbox.run_many(tasks, marked(corpus, tmp_path, "m.jpg", "MARK-meta").read_bytes())
        assert isinstance(crashed, sandbox.SandboxFailure) and crashed.kind == "crash"
        assert isinstance(after, dict) and after["hashes"]  # the task not reached ran alone, in a fresh child
        quick = sandbox.Limits(memory=sandbox.PHOTO_DECODE.memory, cpu_seconds=5, wall_seconds=2.0)
        found, hung = sandbox.run_many([tasks[0], ("photo_fingerprint", {}, quick)],
                                       marked(corpus, tmp_path, "p.jpg", "MARK-print").read_bytes())
        assert isinstance(found, dict) and found["normalized"]["make"] == "NIKON"
        assert isinstance(hung, sandbox.SandboxFailure) and hung.kind == "timeout"
    finally:
        monkeypatch.delenv(sandbox.FAULT_ENV)
        sandbox.shutdown()


@pytest.mark.parametrize("fault", ["hang", "cpu"])
def test_a_video_whose_every_parser_hangs_is_kept_within_30_seconds(
    cli: Cli, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """Every task on the file misbehaves (metadata, probing, frame decoding): the limits add up to under 30 s."""
    data = (corpus / "media" / "video" / "phone_gradients.mp4").read_bytes()
    first = int.from_bytes(data[:4], "big")  # the ftyp box; a `free` box carrying the marker follows it
    video = tmp_path / f"{fault}.mp4"
    video.write_bytes(data[:first] + (16).to_bytes(4, "big") + b"free" + b"VIDMARK!" + data[first:])
    monkeypatch.setenv(sandbox.FAULT_ENV, f"{fault}:VIDMARK!")
    sandbox.shutdown()
    try:
        start = time.perf_counter()
        (report,) = cli.json_lines("ingest", str(video))
        assert time.perf_counter() - start < 30
    finally:
        monkeypatch.delenv(sandbox.FAULT_ENV)
        sandbox.shutdown()
    assert report["status"] == "preserved"
    shown = cli.json("show", report["id"])
    assert {e["step"] for e in shown["errors"]} >= {"metadata", "fingerprint"}
    out = tmp_path / "back.mp4"
    cli("get", report["id"], "-o", str(out))
    assert out.read_bytes() == video.read_bytes()
