"""The worker on PostgreSQL: several workers at once never run a job twice."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from tests.conftest import Cli
from tests.test_worker import bring_back, configure, take_down

pytestmark = pytest.mark.postgres


@pytest.fixture()
def pg_cli(fresh_postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", fresh_postgres)
    runner = Cli(tmp_path / "home")
    runner("init", "--operator", "tester")
    configure(runner.home, worker={"backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.2},
              fixity={"interval_seconds": 0})
    return runner


def test_two_workers_never_run_the_same_job(pg_cli: Cli) -> None:
    from archive.catalog.jobs import Job, enqueue
    from archive.context import Archive
    from archive.db import transaction
    from archive.services.worker import Worker

    setup = Archive.open(pg_cli.home)
    with transaction(setup.engine) as session:
        ids = [enqueue(session, "count").id or 0 for _ in range(40)]
    seen: list[int | None] = []
    lock = threading.Lock()

    def handler(_archive: Any, job: Any) -> None:
        time.sleep(0.01)
        with lock:
            seen.append(job.id)

    workers = [Worker(Archive.open(pg_cli.home), owner=f"w{n}", handlers={"count": handler}) for n in range(2)]
    threads = [threading.Thread(target=w.run, kwargs={"once": True}) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert sorted(i or 0 for i in seen) == sorted(ids)  # each exactly once
        assert all(w.ran for w in workers)  # both took part
        with Session(setup.engine) as session:
            assert {job.state for job in session.exec(select(Job)).all()} == {"done"}
    finally:
        for w in workers:
            w.archive.close()
        setup.close()


def test_a_claim_skips_a_row_another_worker_has_locked(pg_cli: Cli) -> None:
    from archive.catalog.jobs import Job, claim, enqueue
    from archive.context import Archive
    from archive.db import transaction

    archive = Archive.open(pg_cli.home)
    try:
        with transaction(archive.engine) as session:
            first = enqueue(session, "count").id
            second = enqueue(session, "count").id
        with Session(archive.engine) as holder, holder.begin():
            holder.exec(select(Job).where(Job.id == first).with_for_update()).one()
            started = time.monotonic()
            job = claim(archive.engine, "other", lease_seconds=30)
            assert job is not None and job.id == second and time.monotonic() - started < 5
    finally:
        archive.close()


def test_degraded_ingest_is_repaired_on_postgres(pg_cli: Cli, corpus: Path) -> None:
    take_down(pg_cli.home, "site-a")
    report = pg_cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    assert report["status"] == "degraded"
    bring_back(pg_cli.home, "site-a")
    pg_cli("worker", "--once")
    assert pg_cli.json("show", report["id"])["status"] == "preserved"
    assert pg_cli.json("fixity", "--all")["ok"] == 4
