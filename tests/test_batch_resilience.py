"""A batch never dies with a file: a worker process that dies has its files run again, every file is reported."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from archive.services.batch import KILL_ENV, MAX_WORKER_DEATHS
from tests.conftest import Cli

PHOTOS = ["media/jpg/gps/DSCN0010.jpg", "media/jpg/Canon_40D.jpg", "media/jpg/Nikon_D70.jpg",
          "media/jpg/Pentax_K10D.jpg"]


def test_a_worker_killed_after_committing_a_file_costs_no_report(
    cli: Cli, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    monkeypatch.setenv(KILL_ENV, str(notes))
    folder = tmp_path / "batch"
    folder.mkdir()
    for i, photo in enumerate(PHOTOS):
        shutil.copy(corpus / photo, folder / f"{i}.jpg")
    shutil.copy(corpus / "media/jpg/Sony_HDR-HC3.jpg", folder / "die-once.jpg")  # killed once, after its commit
    shutil.copy(corpus / "media/jpg/Fujifilm_FinePix_E500.jpg", folder / "die-always-x.jpg")
    reports = {Path(r["path"]).name: r for r in cli.json_lines("ingest", str(folder), "--workers", "2", expect=None)}
    assert sorted(reports) == sorted(p.name for p in folder.iterdir())  # every file has its report
    for i in range(len(PHOTOS)):
        assert reports[f"{i}.jpg"]["status"] == "preserved"
    once = reports["die-once.jpg"]
    assert once["status"] == "preserved" and once["duplicate"]  # committed before the kill: run again, a duplicate
    always = reports["die-always-x.jpg"]
    assert always["status"] == "refused" and f"died {MAX_WORKER_DEATHS} times on this file alone" in always["error"]
    # Acknowledged all the same (the kill came after the commit): the refusal says it may have been.
    assert len(cli.json("list")) == len(PHOTOS) + 2


def test_the_concurrent_refusal_has_a_typed_code() -> None:
    from ingest.pipeline import Refused
    from ingest.steps.catalog import ConcurrentIngest

    assert issubclass(ConcurrentIngest, Refused) and ConcurrentIngest.code == "concurrent" != Refused.code
