"""The durable worker: degraded ingest heals itself; leases, retries and backoff (SQLite)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from tests.conftest import Cli

JPG = "media/jpg/Canon_40D.jpg"


def configure(home: Path, **sections: dict[str, Any]) -> None:
    from archive.config import load_settings

    settings = load_settings(home)
    for name, values in sections.items():
        settings.extra[name] = values
    settings.save()


def take_down(home: Path, name: str) -> None:
    """Make a local backend unusable: its root becomes a plain file (root can't chmod its way out)."""
    root = home / "storage" / name
    root.rename(root.with_name(name + ".away"))
    root.write_text("this backend is down\n")


def bring_back(home: Path, name: str) -> None:
    root = home / "storage" / name
    root.unlink()
    root.with_name(name + ".away").rename(root)


def rows(home: Path, model: Any, *where: Any) -> list[Any]:
    from archive.context import Archive

    archive = Archive.open(home)
    try:
        with Session(archive.engine) as session:
            return list(session.exec(select(model).where(*where)).all())
    finally:
        archive.close()


@pytest.fixture()
def quick(cli: Cli) -> Cli:
    """An archive whose worker retries fast and runs no scheduled fixity."""
    configure(cli.home, worker={"backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.2, "poll_seconds": 0.05},
              fixity={"interval_seconds": 0})
    return cli


def test_degraded_ingest_commits_a_repair_job_and_the_worker_heals_it(quick: Cli, corpus: Path) -> None:
    from archive.catalog.items import Replica
    from archive.catalog.jobs import Job

    home = quick.home
    take_down(home, "site-b")
    report = quick.json_lines("ingest", str(corpus / JPG))[0]
    assert report["status"] == "degraded" and report["id"]
    jobs = rows(home, Job)
    assert [(j.kind, j.item_id, j.state) for j in jobs] == [("repair", report["id"], "queued")]
    status = quick.json("status")
    assert status["items"]["degraded"] == 1
    site_b = next(b for b in status["backends"] if b["name"] == "site-b")
    assert site_b["answers"] is False and site_b["error"]

    # While the backend is down the job fails and is retried later, never dropped.
    _, out, _ = quick("worker", "--once")
    assert "1 retry" in out
    job = rows(home, Job)[0]
    assert job.state == "queued" and job.attempts == 1 and "site-b" in (job.last_error or "")

    bring_back(home, "site-b")
    time.sleep(0.3)  # past the (capped) backoff
    _, out, _ = quick("worker", "--once")
    assert "1 done" in out
    shown = quick.json("show", report["id"])
    assert shown["status"] == "preserved"
    assert {r["backend"] for r in shown["replicas"] if r["state"] == "verified"} == {"site-a", "site-b"}
    assert {m["backend"] for m in shown["manifests"] if m["state"] == "verified"} == {"site-a", "site-b"}
    assert rows(home, Job)[0].state == "done"
    replicas = rows(home, Replica, Replica.backend == "site-b")
    assert {r.role for r in replicas} == {"original", "manifest"}
    # The new copy decrypts to the original, and fixity agrees.
    assert quick.json("fixity", "--all")["ok"] == 4
    out_file = home.parent / "back.jpg"
    quick("get", report["id"], "-o", str(out_file))
    assert out_file.read_bytes() == (corpus / JPG).read_bytes()


def test_refused_below_minimum_leaves_no_job(quick: Cli, corpus: Path) -> None:
    from archive.catalog.jobs import Job

    quick("policy", "set", "--copies", "2", "--minimum", "2")
    take_down(quick.home, "site-b")
    report = quick.json_lines("ingest", str(corpus / JPG), expect=1)[0]
    assert report["status"] == "refused" and "policy needs 2" in report["error"]
    assert rows(quick.home, Job) == []


def _archive(home: Path) -> Any:
    from archive.context import Archive

    return Archive.open(home)


def test_a_job_whose_lease_expired_is_taken_again(quick: Cli) -> None:
    from archive.catalog.jobs import Job, claim, enqueue, finish
    from archive.db import transaction
    from archive.services.worker import Worker

    archive = _archive(quick.home)
    try:
        with transaction(archive.engine) as session:
            job_id = enqueue(session, "count").id
        dead = claim(archive.engine, "dead-worker", lease_seconds=0.2)
        assert dead is not None and dead.id == job_id
        seen: list[int] = []
        worker = Worker(archive, owner="live", handlers={"count": lambda _a, job: seen.append(job.id or 0)})
        assert worker.run_one() is False  # the lease still runs: not taken
        time.sleep(0.3)
        assert worker.run_one() is True
        assert seen == [job_id]
        job = rows(quick.home, Job)[0]
        assert job.state == "done" and job.attempts == 2 and job.lease_owner is None
        # The dead worker's late completion is refused: the lease is no longer its own.
        assert finish(archive.engine, dead, "dead-worker") is False
    finally:
        archive.close()


def test_failures_back_off_exponentially_up_to_the_cap_and_unknown_kinds_fail() -> None:
    from archive.catalog.jobs import backoff_delay

    delays = [backoff_delay(n, base=1.0, cap=30.0) for n in range(1, 9)]
    assert 0.8 <= delays[0] <= 1.0 and 1.6 <= delays[1] <= 2.0 and 3.2 <= delays[2] <= 4.0
    assert all(d <= 30.0 for d in delays) and delays[-1] >= 24.0


def test_unknown_job_kind_is_failed_not_retried_forever(quick: Cli) -> None:
    from archive.catalog.jobs import Job, enqueue
    from archive.db import transaction
    from archive.services.worker import Worker

    archive = _archive(quick.home)
    try:
        with transaction(archive.engine) as session:
            enqueue(session, "no-such-kind")
        Worker(archive).run(once=True)
    finally:
        archive.close()
    job = rows(quick.home, Job)[0]
    assert job.state == "failed" and "no handler" in (job.last_error or "")


def test_heartbeat_keeps_a_long_job_leased(quick: Cli) -> None:
    from archive.catalog.jobs import claim, enqueue
    from archive.db import transaction
    from archive.services.worker import Worker, WorkerSettings

    archive = _archive(quick.home)
    try:
        with transaction(archive.engine) as session:
            enqueue(session, "slow")
        stolen: list[Any] = []

        def slow(_archive: Any, _job: Any) -> None:
            time.sleep(0.5)  # more than two lease lengths
            stolen.append(claim(archive.engine, "thief", lease_seconds=1))

        settings = WorkerSettings(lease_seconds=0.2)
        Worker(archive, settings=settings, handlers={"slow": slow}).run(once=True)
        assert stolen == [None]
    finally:
        archive.close()


def test_scheduled_fixity_runs_in_the_worker_and_reschedules_itself(cli: Cli, corpus: Path) -> None:
    from archive.catalog.events import Event
    from archive.catalog.jobs import FIXITY_SINGLETON, Job

    configure(cli.home, fixity={"interval_seconds": 3600, "batch_items": 3, "rate_bytes_per_second": 0})
    cli("ingest", str(corpus / "media" / "jpg" / "gps"))
    # Each `--once` run does one slice of the pass (three items), then hands the turn on.
    _, out, _ = cli("worker", "--once")
    assert "1 rescheduled" in out
    assert len(rows(cli.home, Event, Event.event_type == "fixity check")) == 3 * 4
    _, out, _ = cli("worker", "--once")
    checks = rows(cli.home, Event, Event.event_type == "fixity check")
    assert len(checks) == 4 * 4  # four items, two originals and two manifests each
    job = rows(cli.home, Job, Job.unique_key == FIXITY_SINGLETON)[0]
    # The pass is complete: the next one is due after the interval.
    assert job.state == "queued" and job.next_run_at > checks[-1].occurred_at


def test_a_full_disk_degrades_and_the_worker_repairs_once_there_is_room(quick: Cli, tmp_path: Path) -> None:
    import os
    import subprocess

    root = quick.home / "storage" / "site-b"
    marker = (root / ".evidence-root.json").read_bytes()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(root)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        (root / ".evidence-root.json").write_bytes(marker)  # the new disk is prepared as this archive's site
        big = tmp_path / "video.bin"
        big.write_bytes(os.urandom(300 * 1024))
        report = quick.json_lines("ingest", str(big))[0]
        assert report["status"] == "degraded"
        assert not list(root.rglob("o/*"))  # nothing half-written left behind on the full disk
        _, out, _ = quick("worker", "--once")
        assert "1 retry" in out
        subprocess.run(["mount", "-o", "remount,size=4m", str(root)], check=True)
        time.sleep(0.3)
        quick("worker", "--once")
        assert quick.json("show", report["id"])["status"] == "preserved"
        assert quick.json("fixity", "--all")["ok"] == 4
    finally:
        subprocess.run(["umount", str(root)], check=False)
