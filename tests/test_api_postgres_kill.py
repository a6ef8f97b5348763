"""PostgreSQL, one API server, two `evidence worker` processes SIGKILLed again and again during uploads.

Acknowledged means kept, whatever happens to the workers: every upload the
server acknowledged ends preserved, and the catalog holds no second item,
replica or custody event for anything a killed worker had half done (its job
is taken again after the lease runs out; handlers are idempotent). One of the
two sites is down for the first third of the uploads, so those items arrive
degraded and the repairs race the kills.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.api_support import REPO, make_home, serve, token_for
from tests.conftest import Cli
from tests.test_worker import bring_back, configure, take_down
from tests.tus_uploads import Sent, check_receipt, receipt_vkey, upload

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(400)]

FILES = 30


class Workers:
    """Two `evidence worker` processes; `kill_one()` SIGKILLs one and starts a fresh one in its place."""

    def __init__(self, home: Path, env: dict[str, str], log: Path) -> None:
        self.home, self.env, self.log = home, env, log
        self.procs: list[subprocess.Popen[bytes]] = [self._start(), self._start()]
        self.kills = 0

    def _start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen([sys.executable, "-c", "from api.cli.main import main; main()",
                                     "--home", str(self.home), "worker", "-v"],
                                    stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=REPO,
                                    start_new_session=True)

    def kill_one(self, rng: random.Random, pid: int | None = None) -> None:
        """SIGKILL the worker `pid` (or one at random) and start another in its place."""
        pids = [proc.pid for proc in self.procs]
        index = pids.index(pid) if pid in pids else rng.randrange(len(self.procs))
        proc = self.procs[index]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.kills += 1
        self.procs[index] = self._start()

    def pids(self) -> set[int]:
        return {proc.pid for proc in self.procs}

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _query(home: Path, sql: str) -> list[Any]:
    from archive.context import Archive

    archive = Archive.open(home)
    try:
        with archive.engine.connect() as conn:
            return list(conn.execute(text(sql)).all())
    finally:
        archive.close()


def test_sigkilled_workers_lose_nothing_and_duplicate_nothing(
    fresh_postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", fresh_postgres)
    home = make_home(tmp_path / "home")
    configure(home, worker={"lease_seconds": 3, "poll_seconds": 0.2, "backoff_base_seconds": 0.1,
                            "backoff_cap_seconds": 0.5}, fixity={"interval_seconds": 0})
    token = token_for(home, "field", "contributor")
    env = {**os.environ, "EVIDENCE_DATABASE_URL": fresh_postgres}
    rng = random.Random(7)
    files: list[tuple[Path, bytes]] = []
    for n in range(FILES):
        data = os.urandom(rng.randrange(500_000, 4_000_000))
        path = tmp_path / "client" / f"u{n:02d}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        files.append((path, data))

    take_down(home, "site-b")  # the first uploads arrive degraded: repair jobs for the workers
    server = serve(home, env={"EVIDENCE_DATABASE_URL": fresh_postgres}, args=("--no-worker",))
    workers = Workers(home, env, tmp_path / "workers.log")
    stop_killing = threading.Event()
    mid_job: list[str] = []

    def killer() -> None:
        """Kill a worker in the middle of a job when one runs (its lease names its pid), else now and then."""
        from sqlalchemy import create_engine

        engine = create_engine(fresh_postgres.replace("postgresql://", "postgresql+psycopg2://"))
        last = time.monotonic()
        try:
            while not stop_killing.wait(0.02):
                with engine.connect() as conn:
                    running = conn.execute(text("SELECT kind, lease_owner FROM jobs WHERE state = 'running'")).all()
                owners = {int(str(owner).split(":")[1]): kind for kind, owner in running if owner}
                target = next((pid for pid in owners if pid in workers.pids()), None)
                if target is not None and time.monotonic() - last > 0.3:
                    workers.kill_one(rng, target)
                    mid_job.append(owners[target])
                    last = time.monotonic()
                elif time.monotonic() - last > 1.5:
                    workers.kill_one(rng)
                    last = time.monotonic()
        finally:
            engine.dispose()

    killing = threading.Thread(target=killer, daemon=True)
    try:
        killing.start()
        done = 0
        lock = threading.Lock()

        def one(n: int) -> Sent:
            nonlocal done
            sent = upload(server.url, token, files[n][0])
            with lock:
                done += 1
                if done == FILES // 3:
                    bring_back(home, "site-b")
            return sent

        with ThreadPoolExecutor(4) as pool:
            sent = list(pool.map(one, range(FILES)))
        time.sleep(3)  # the repairs race a few more kills
        stop_killing.set()
        killing.join(30)
        # Then the workers are left alone to finish what the kills interrupted.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = Counter(i["status"] for i in Cli(home).json("list"))
            if states == Counter({"preserved": FILES}):
                break
            time.sleep(1)
    finally:
        stop_killing.set()
        workers.stop()
        server.stop()
    assert workers.kills >= 5, f"only {workers.kills} kills"
    assert mid_job, "no worker was ever killed in the middle of a job"
    print(f"{workers.kills} kills, {len(mid_job)} in the middle of a job: {Counter(mid_job)}")

    vkey = receipt_vkey(home)
    listed = {i["sha256"]: i for i in Cli(home).json("list")}
    assert len(listed) == FILES
    item_ids = []
    for one_sent, (_, data) in zip(sent, files, strict=True):
        digest = hashlib.sha256(data).hexdigest()
        fields = check_receipt(one_sent.receipt, vkey, upload_id=one_sent.upload_id, sha256=digest, size=len(data))
        assert listed[digest]["id"] == fields["item"]
        assert listed[digest]["status"] == "preserved", listed[digest]
        item_ids.append(fields["item"])

    counts = {t: _query(home, f"SELECT count(*) FROM {t}")[0][0] for t in ("items", "provenance")}  # noqa: S608
    assert counts == {"items": FILES, "provenance": FILES}
    # One live copy of each original and each manifest on each site, and no other row.
    replicas = _query(home, "SELECT item_id, backend, role, state FROM replicas")
    assert Counter(r[3] for r in replicas) == Counter({"verified": FILES * 4}), Counter(r[3] for r in replicas)
    assert set(Counter((r[0], r[1], r[2]) for r in replicas).values()) == {1}
    # Events: one ingestion per item, one successful event per copy made (failed attempts may repeat), none twice.
    events = _query(home, "SELECT seq, event_type, item_id, objects, outcome, details FROM events ORDER BY seq")
    assert [e[0] for e in events] == list(range(len(events))), "the log has a gap"
    per_item = Counter((e[1], e[2]) for e in events if e[2])
    for item in item_ids:
        assert per_item[("ingestion", item)] == 1, item
        assert per_item[("message digest calculation", item)] == 1, item
    copies = [e for e in events if e[4] == "success" and e[1] in ("replication", "information package creation")]
    twice = {k: v for k, v in Counter(tuple(e[3]) for e in copies).items() if v > 1}
    assert not twice, f"copies recorded twice: {twice}"
    made = Counter((e[2], (e[5] or {}).get("backend"), (e[5] or {}).get("role")) for e in copies)
    expected = {(item, site, role) for item in item_ids for site in ("site-a", "site-b")
                for role in ("original", "manifest")}
    assert set(made) == expected, sorted(set(made) ^ expected)[:10]
    assert set(made.values()) == {1}, {k: v for k, v in made.items() if v != 1}
    jobs = _query(home, "SELECT kind, state, count(*) FROM jobs GROUP BY kind, state")
    assert not [j for j in jobs if j[1] not in ("done",) and j[0] == "repair"], jobs
    Cli(home)("log", "verify")
    # Not a duplicate in the catalog, but worth knowing: objects a killed repair wrote and never committed.
    on_disk = {str(p.relative_to(home / "storage" / "site-b")) for p in (home / "storage" / "site-b" / "o").rglob("*")
               if p.is_file()}
    named = {r[0] for r in _query(home, "SELECT object_name FROM replicas WHERE backend = 'site-b'")}
    print(f"site-b: {len(on_disk)} objects, {len(on_disk - named)} not in the catalog")
