"""Finished jobs are pruned by the worker after `[worker] job_retention_days`, at most once an hour, with an event."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.test_worker import bring_back, configure, take_down

DAY = 86400.0


def sql(cli: Cli, query: str, *args: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(cli.home / "catalog.db") as db:
        return db.execute(query, args).fetchall()


def ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def add_job(cli: Cli, kind: str, state: str, updated_seconds_ago: float, *, due_in: float = 0.0) -> int:
    """A job row as the queue leaves it (a done repair, a failed unknown kind …), last changed that long ago."""
    changed = ago(updated_seconds_ago)
    with sqlite3.connect(cli.home / "catalog.db") as db:
        cursor = db.execute(
            "INSERT INTO jobs (kind, payload, state, attempts, next_run_at, created_at, updated_at) "
            "VALUES (?, '{}', ?, 1, ?, ?, ?)",
            (kind, state, ago(-due_in), changed, changed),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid


def deletions(cli: Cli) -> list[dict[str, Any]]:
    return [json.loads(d) for (d,) in sql(cli, "SELECT details FROM events WHERE event_type = 'deletion' ORDER BY seq")]


def an_hour_passes(cli: Cli) -> None:
    sql(cli, "UPDATE cursors SET value = ? WHERE name = 'jobs:pruned'", ago(3601))


@pytest.fixture()
def quick(cli: Cli) -> Cli:
    configure(cli.home, worker={"backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.2, "poll_seconds": 0.05},
              fixity={"interval_seconds": 0})
    return cli


def test_done_and_failed_jobs_past_the_retention_are_deleted_with_one_event(quick: Cli) -> None:
    old_done = [add_job(quick, "repair", "done", 31 * DAY) for _ in range(3)]
    old_failed = add_job(quick, "mystery", "failed", 40 * DAY)
    recent = add_job(quick, "repair", "done", 29 * DAY)  # within the default 30 days
    waiting = add_job(quick, "repair", "queued", 90 * DAY, due_in=DAY)  # old but not finished: never pruned

    quick("worker", "--once")
    left = {row[0] for row in sql(quick, "SELECT id FROM jobs")}
    assert left == {recent, waiting} and not left & {*old_done, old_failed}
    (event,) = deletions(quick)
    assert event["deleted"] == "finished jobs" and (event["done"], event["failed"]) == (3, 1)
    assert event["retention_seconds"] == 30 * 86400
    assert set(event) == {"deleted", "done", "failed", "retention_seconds", "older_than"}  # counts, never ids
    ((actor, item),) = sql(quick, "SELECT actor, item_id FROM events WHERE event_type = 'deletion'")
    assert item is None and actor

    # Within the hour: nothing more is pruned, however many workers ask.
    another = add_job(quick, "repair", "done", 60 * DAY)
    quick("worker", "--once")
    assert another in {row[0] for row in sql(quick, "SELECT id FROM jobs")}
    an_hour_passes(quick)
    quick("worker", "--once")
    assert another not in {row[0] for row in sql(quick, "SELECT id FROM jobs")}
    assert [(e["done"], e["failed"]) for e in deletions(quick)] == [(3, 1), (1, 0)]
    # An hour with nothing to delete adds no event.
    an_hour_passes(quick)
    quick("worker", "--once")
    assert len(deletions(quick)) == 2
    quick("log", "verify")


def test_a_real_repair_job_is_pruned_after_a_short_retention(quick: Cli, corpus: Path) -> None:
    configure(quick.home, worker={"backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.2, "poll_seconds": 0.05,
                                  "job_retention_days": 1 / DAY})  # one second
    take_down(quick.home, "site-b")
    (report,) = quick.json_lines("ingest", str(corpus / "media/jpg/Canon_40D.jpg"))
    assert report["status"] == "degraded"
    bring_back(quick.home, "site-b")
    quick("worker", "--once")
    assert sql(quick, "SELECT kind, state FROM jobs") == [("repair", "done")]
    assert quick.json("status")["items"]["preserved"] == 1

    time.sleep(1.2)  # past the retention
    an_hour_passes(quick)
    quick("worker", "--once")
    assert sql(quick, "SELECT COUNT(*) FROM jobs") == [(0,)]
    (event,) = deletions(quick)
    assert (event["done"], event["failed"], event["retention_seconds"]) == (1, 0, 1)
    quick("log", "verify")


def test_a_negative_retention_is_refused(cli: Cli) -> None:
    from archive.config import ConfigError
    from archive.context import Archive
    from archive.services.retention import prune_finished_jobs

    archive = Archive.open(cli.home)
    try:
        with pytest.raises(ConfigError, match="must not be negative"):
            prune_finished_jobs(archive, retention_days=-1)
    finally:
        archive.close()
