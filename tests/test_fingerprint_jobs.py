"""Long videos: ingest says how much it fingerprinted, and the worker finishes the rest as a job."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Cli, stored_hashes

VIDEO = "media/video/phone_gradients.mp4"  # 12 s


def rows(cli: Cli, query: str, *args: object) -> list[tuple]:
    with sqlite3.connect(cli.home / "catalog.db") as db:
        return db.execute(query, args).fetchall()


def ingest_partly(cli: Cli, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    import ingest.steps.fingerprint as step

    monkeypatch.setattr(step, "INGEST_VIDEO_BUDGET", 0.0)  # one frame at ingest: the rest is left to the worker
    (report,) = cli.json_lines("ingest", str(corpus / VIDEO))
    return str(report["id"])


def test_ingest_records_coverage_and_the_worker_finishes_the_video(
    cli: Cli, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = ingest_partly(cli, corpus, monkeypatch)
    shown = cli.json("show", item)
    assert any(e["step"] == "fingerprint" and "frames sampled from the first 1 s of 12 s" in e["reason"]
               for e in shown["errors"]), shown["errors"]
    (details,) = rows(cli, "SELECT details FROM events WHERE event_type = 'fingerprint' AND item_id = ?", item)
    coverage = json.loads(details[0])
    assert coverage["complete"] is False and coverage["covered_share"] == "under 25 %"  # 1 s of 12: no duration
    partial = len({offset for _, _, offset, _ in stored_hashes(cli.home, item)})
    assert partial == 1
    ((kind, state),) = rows(cli, "SELECT kind, state FROM jobs WHERE item_id = ? AND kind = 'fingerprint'", item)
    assert state == "queued"

    cli("worker", "--once")
    ((state, error),) = rows(cli, "SELECT state, last_error FROM jobs WHERE kind = 'fingerprint'")
    assert state == "done", error
    frames = len({offset for _, _, offset, _ in stored_hashes(cli.home, item)})
    assert frames >= 11  # about one sampled frame per second of the 12
    assert not [e for e in cli.json("show", item)["errors"] if e["step"] == "fingerprint"]
    last = json.loads(rows(cli, "SELECT details FROM events WHERE event_type = 'fingerprint' ORDER BY seq DESC")[0][0])
    assert last["complete"] is True and last["covered_share"] == "all" and last["resumed"] is True


def test_without_the_access_identity_the_job_waits_and_says_why(
    cli: Cli, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_partly(cli, corpus, monkeypatch)
    keys = cli.home / "keys"
    (keys / "custodian.key").rename(cli.home / "custodian.key.offline")  # the key is offline, as in production
    (keys / "access.key").rename(cli.home / "access.key.locked")  # and the access identity not unlocked here
    cli("worker", "--once")
    ((state, error),) = rows(cli, "SELECT state, last_error FROM jobs WHERE kind = 'fingerprint'")
    assert state == "queued" and "needs the access identity to decode the original" in error
