"""Items that lack metadata or fingerprints get them through a back-fill job, the plaintext never on disk."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest import sandbox
from tests.conftest import Cli, stored_hashes

PHOTO = "media/jpg/gps/DSCN0010.jpg"
VIDEO = "media/video/phone_gradients.mp4"  # 12 s


def sql(cli: Cli, query: str, *args: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(cli.home / "catalog.db") as db:
        return db.execute(query, args).fetchall()


def forget_analysis(cli: Cli, *item_ids: str) -> None:
    """Leave the items as a version before metadata and fingerprints existed would have: no rows of either."""
    marks = ",".join("?" * len(item_ids))
    with sqlite3.connect(cli.home / "catalog.db") as db:
        db.execute(f"DELETE FROM item_metadata WHERE item_id IN ({marks})", item_ids)  # noqa: S608 - placeholders
        db.execute(f"DELETE FROM item_fingerprints WHERE item_id IN ({marks})", item_ids)  # noqa: S608


def analysis_of(cli: Cli, item_id: str) -> tuple[Any, list[tuple[Any, ...]]]:
    """What `show` gives as the item's metadata, and its fingerprints as rows."""
    shown = cli.json("show", item_id)["metadata"]
    return shown, list(stored_hashes(cli.home, item_id))


def events(cli: Cli, event_type: str, item_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    query = "SELECT outcome, details FROM events WHERE event_type = ?"
    args: list[object] = [event_type]
    if item_id is not None:
        query += " AND item_id = ?"
        args.append(item_id)
    return [(outcome, json.loads(details)) for outcome, details in sql(cli, query + " ORDER BY seq", *args)]


def uniform_png(folder: Path) -> Path:
    """A picture with nothing to fingerprint (one colour): ingest settles that, the back-fill leaves it."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), (90, 90, 90)).save(buffer, "PNG")
    path = folder / "grey.png"
    path.write_bytes(buffer.getvalue())
    return path


def test_items_from_before_the_steps_get_metadata_and_fingerprints_back(
    cli: Cli, corpus: Path, tmp_path: Path
) -> None:
    photo, video = (cli.json_lines("ingest", str(corpus / name))[0]["id"] for name in (PHOTO, VIDEO))
    notes = tmp_path / "notes.txt"
    notes.write_text("a witness statement, typed up\n")
    (text,) = cli.json_lines("ingest", str(notes))
    (grey,) = cli.json_lines("ingest", str(uniform_png(tmp_path)))
    before = {item: analysis_of(cli, item) for item in (photo, video)}
    assert before[photo][0]["make"] == "NIKON" and before[photo][1] and before[video][1]
    forget_analysis(cli, photo, video)
    assert cli.json("show", photo)["metadata"] is None

    queued = cli.json("analyze", "--backfill")
    assert queued["jobs"] == 2 and queued["by_step"] == {"metadata": 2, "fingerprint": 2}, queued
    assert queued["items_checked"] == 4 and queued["needs_identity"] is False
    assert sorted(i for (i,) in sql(cli, "SELECT item_id FROM jobs WHERE kind = 'analysis'")) == sorted([photo, video])
    ((outcome, details),) = events(cli, "analysis queued")
    assert outcome == "success" and details["jobs"] == 2 and details["fingerprint"] == 2
    assert photo not in json.dumps(details)  # counts, not ids
    # Asked again before the worker ran: the queued jobs will do it, nothing is added.
    assert cli.json("analyze", "--backfill")["jobs"] == 0
    assert len(events(cli, "analysis queued")) == 1

    _, out, _ = cli("worker", "--once")
    assert "2 done" in out, out
    assert sql(cli, "SELECT DISTINCT state FROM jobs WHERE kind = 'analysis'") == [("done",)]
    for item in (photo, video):
        assert analysis_of(cli, item) == before[item]  # the same fields, the same hashes
        (extracted,) = [d for _, d in events(cli, "metadata extraction", item) if d.get("backfill")]
        assert extracted["failures"] == 0 and extracted["parsers"]
        (fingerprinted,) = [(o, d) for o, d in events(cli, "fingerprint", item) if d.get("backfill")]
        assert fingerprinted[0] == "success" and fingerprinted[1]["fingerprinted"] is True  # no count
        assert [d["action"] for _, d in events(cli, "access", item)] == ["analysis back-fill"]
    assert cli.json("show", text["id"])["metadata"] is not None  # never touched: it lacked nothing
    assert not [d for _, d in events(cli, "fingerprint", grey["id"]) if d.get("backfill")]

    # Nothing lacking any more, and the log is whole.
    assert cli.json("analyze", "--backfill")["jobs"] == 0
    cli("log", "verify")


def test_analysing_everything_again_replaces_rather_than_adds(cli: Cli, corpus: Path) -> None:
    from archive.catalog.jobs import ANALYSIS, Job
    from archive.context import Archive
    from archive.services.backfill import run_analysis

    (photo,) = cli.json_lines("ingest", str(corpus / PHOTO))
    (near,) = cli.json_lines("ingest", str(corpus / "media/jpg/Canon_40D.jpg"))
    before = analysis_of(cli, photo["id"])
    candidates = sql(cli, "SELECT item_id, other_id FROM candidates")

    queued = cli.json("analyze", "--backfill", "--all", "--step", "fingerprint")
    assert queued["jobs"] == 2 and queued["by_step"] == {"fingerprint": 2} and queued["only_missing"] is False
    cli("worker", "--once")
    archive = Archive.open(cli.home)
    try:  # the same job run twice, as when a worker dies after its commit: the same rows
        run_analysis(archive, Job(kind=ANALYSIS, item_id=photo["id"], payload={"steps": ["fingerprint"],
                                  "only_missing": False}, next_run_at="", created_at="", updated_at=""))
    finally:
        archive.close()
    assert analysis_of(cli, photo["id"]) == before
    assert sql(cli, "SELECT item_id, other_id FROM candidates") == candidates
    assert sql(cli, "SELECT COUNT(*) FROM item_metadata") == [(2,)]
    cli("log", "verify")


def test_an_analysis_that_crashed_is_backfilled_once_the_cause_is_fixed(
    cli: Cli, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (corpus / PHOTO).read_bytes()
    path = tmp_path / "crashes.jpg"  # a JPEG comment carrying the test hook's marker
    path.write_bytes(data[:2] + b"\xff\xfe\x00\x0cMARK-crash" + data[2:])
    monkeypatch.setenv(sandbox.FAULT_ENV, "segv:MARK-crash")
    sandbox.shutdown()  # children read the hooks when they start
    try:
        (report,) = cli.json_lines("ingest", str(path))
    finally:
        monkeypatch.delenv(sandbox.FAULT_ENV)
        sandbox.shutdown()  # the crash is fixed: fresh children without the hook
    item = report["id"]
    crashed = cli.json("show", item)
    assert {e["step"] for e in crashed["errors"] if "SIGSEGV" in e["reason"]} == {"metadata", "fingerprint", "preview"}
    assert crashed["metadata"]["make"] is None

    queued = cli.json("analyze", "--backfill")
    assert queued["by_step"] == {"metadata": 1, "fingerprint": 1}, queued
    cli("worker", "--once")
    fixed = cli.json("show", item)
    assert fixed["metadata"]["make"] == "NIKON"
    assert not [e for e in fixed["errors"] if "SIGSEGV" in e["reason"]], fixed["errors"]
    assert stored_hashes(cli.home, item)
    assert cli.json("analyze", "--backfill")["jobs"] == 0
    cli("log", "verify")


def test_without_the_access_identity_the_backfill_waits_and_says_so(cli: Cli, corpus: Path) -> None:
    (report,) = cli.json_lines("ingest", str(corpus / PHOTO))
    forget_analysis(cli, report["id"])
    keys = cli.home / "keys"
    (keys / "custodian.key").rename(cli.home / "custodian.key.offline")  # offline, as in production
    key, locked = keys / "access.key", cli.home / "access.key.locked"
    key.rename(locked)  # the access identity not unlocked here
    _, out, err = cli("analyze", "--backfill")
    assert "queued 1 analysis jobs" in out and "needs the access identity" in err
    cli("worker", "--once")
    ((state, error),) = sql(cli, "SELECT state, last_error FROM jobs WHERE kind = 'analysis'")
    assert state == "queued" and "needs the access identity to decode the original" in error
    assert cli.json("show", report["id"])["metadata"] is None

    locked.rename(key)
    sql(cli, "UPDATE jobs SET next_run_at = '2000-01-01T00:00:00.000000Z' WHERE kind = 'analysis'")  # past backoff
    cli("worker", "--once")
    assert sql(cli, "SELECT state FROM jobs WHERE kind = 'analysis'") == [("done",)]
    assert cli.json("show", report["id"])["metadata"]["make"] == "NIKON"


def test_an_unknown_step_is_an_error_that_names_the_steps(cli: Cli) -> None:
    from archive.context import Archive
    from archive.services.backfill import queue_analysis_backfill
    from archive.services.errors import ServiceError

    archive = Archive.open(cli.home)
    try:
        with pytest.raises(ServiceError, match="unknown analysis step.*thumbnail.*metadata, fingerprint"):
            queue_analysis_backfill(archive, steps=["thumbnail"])
    finally:
        archive.close()
    code, _, err = cli("analyze", expect=2)
    assert "--backfill" in err


# --------------------------------------------------------------------------- plaintext never at rest

_WRITES: list[str] = []
_WATCHING: list[bool] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Every file this process opens for writing while a test watches (open() and os.open alike)."""
    if event != "open" or not _WATCHING:
        return
    path, mode, flags = args
    writing = bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)) or any(c in (mode or "") for c in "wax+")
    if writing and isinstance(path, str | bytes | os.PathLike):
        _WRITES.append(os.fsdecode(path))


@pytest.fixture()
def watched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """An empty TMPDIR and HOME for this process and fresh sandbox children, and a record of files opened to write."""
    if not getattr(sys, "_evidence_backfill_audit", False):
        sys.addaudithook(_audit)  # hooks cannot be removed: installed once, silent unless watching
        sys._evidence_backfill_audit = True  # type: ignore[attr-defined]
    folders = {"tmp": tmp_path / "tmp", "home": tmp_path / "user-home"}
    for folder in folders.values():
        folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folders["tmp"]))
    monkeypatch.setenv("HOME", str(folders["home"]))
    monkeypatch.setattr(tempfile, "tempdir", str(folders["tmp"]))
    sandbox.shutdown()  # children started from now on inherit the empty TMPDIR and HOME
    _WRITES.clear()
    _WATCHING.append(True)
    try:
        yield folders
    finally:
        _WATCHING.clear()
        sandbox.shutdown()


def holding(root: Path, sample: bytes) -> list[Path]:
    """Files under `root` that contain `sample`."""
    return [p for p in root.rglob("*") if p.is_file() and sample in p.read_bytes()]


def _recording(method: Callable[..., Any], sources: list[str]) -> Callable[..., Any]:
    def wrapper(pool: sandbox.Pool, *args: Any) -> Any:
        source = next(a for a in args if isinstance(a, bytes | Path))
        sources.append(str(source) if isinstance(source, Path) else "bytes")
        return method(pool, *args)

    return wrapper


def test_backfill_and_fingerprint_jobs_keep_the_plaintext_off_disk(
    cli: Cli, corpus: Path, monkeypatch: pytest.MonkeyPatch, watched: dict[str, Path]
) -> None:
    import archive.services.analysis as analysis
    import ingest.steps.fingerprint as step

    monkeypatch.setattr(step, "INGEST_VIDEO_BUDGET", 0.0)  # one frame at ingest: a fingerprint job for the rest
    (video,) = cli.json_lines("ingest", str(corpus / VIDEO))
    (photo,) = cli.json_lines("ingest", str(corpus / PHOTO))
    forget_analysis(cli, photo["id"])
    sql(cli, "DELETE FROM item_metadata WHERE item_id = ?", video["id"])
    # Every original through the in-memory file the child opens by path (as a large one would go).
    monkeypatch.setattr(analysis, "SMALL_ORIGINAL", 0)
    sources: list[str] = []  # what each request to a sandbox child named as its file
    for name in ("run", "run_many"):  # the pool's entry points (one request may carry several tasks)
        if hasattr(sandbox.Pool, name):
            monkeypatch.setattr(sandbox.Pool, name, _recording(getattr(sandbox.Pool, name), sources))
    cli("analyze", "--backfill")
    _WRITES.clear()  # from here on the worker decrypts
    _, out, _ = cli("worker", "--once")
    assert "retry" not in out, out
    assert sorted(sql(cli, "SELECT kind, state FROM jobs WHERE kind != 'fixity'")) == [
        ("analysis", "done"), ("analysis", "done"), ("fingerprint", "done")
    ]
    assert cli.json("show", photo["id"])["metadata"]["make"] == "NIKON"
    assert len({offset for _, _, offset, _ in stored_hashes(cli.home, video["id"])}) >= 11
    proc = f"/proc/{os.getpid()}/fd/"
    assert sources and all(s.startswith(proc) for s in sources), sources

    # Nothing written outside the archive's own catalog, keys and storage; the temporary folder stays empty.
    outside = [p for p in _WRITES if not Path(p).resolve().is_relative_to(cli.home.resolve())
               and not p.startswith(("/dev/", "/proc/"))]
    assert outside == []
    assert list(watched["tmp"].iterdir()) == []
    for name, item in ((PHOTO, photo), (VIDEO, video)):
        original = (corpus / name).read_bytes()
        sample = original[len(original) // 2: len(original) // 2 + 4096]  # compressed picture data
        for root in (cli.home, watched["home"], watched["tmp"]):
            assert holding(root, sample) == [], (item["id"], root)
