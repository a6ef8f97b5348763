"""The issue's outage test: one S3 site stops in the middle of a batch ingest.

Every file is acknowledged or refused with a reason; nothing acknowledged is
lost; the items written while the site was down are `degraded`; when the site
comes back, the worker brings every item to `preserved` with no one asking.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.s3_fixtures import site_a, site_b, weed_sites  # noqa: F401 - fixtures
from tests.servers import WeedServer
from tests.test_worker import configure

pytestmark = pytest.mark.slow


def _s3_home(cli: Cli, sites: list[WeedServer], monkeypatch: pytest.MonkeyPatch) -> None:
    from archive.config import Policy, StorageSpec, load_settings
    from storage.s3_common import env_prefix

    settings = load_settings(cli.home)
    settings.storage = []
    for label, server in zip(("s3-a", "s3-b"), sites, strict=True):
        monkeypatch.setenv(env_prefix(label) + "ACCESS_KEY", server.access_key)
        monkeypatch.setenv(env_prefix(label) + "SECRET_KEY", server.secret_key)
        bucket = server.make_bucket(versioned=True)
        settings.storage.append(StorageSpec(label, "s3", {
            "endpoint": server.endpoint, "bucket": bucket, "connect_timeout": 1, "read_timeout": 10,
            "max_attempts": 1,
        }))
    settings.policy = Policy(copies=2, minimum=1, backends=[])
    settings.save()
    configure(cli.home, worker={"backoff_base_seconds": 0.1, "backoff_cap_seconds": 0.5},
              fixity={"interval_seconds": 0})


def test_one_site_stops_mid_batch_and_the_worker_restores_every_item(
    cli: Cli, site_a: WeedServer, site_b: WeedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path  # noqa: F811
) -> None:
    from archive.context import Archive
    from archive.services.ingest import ingest_file

    _s3_home(cli, [site_a, site_b], monkeypatch)
    batch = tmp_path / "batch"
    batch.mkdir()
    files = []
    for n in range(12):
        path = batch / f"clip-{n:02}.bin"
        path.write_bytes(os.urandom(256 * 1024 * (1 + n % 4)))
        files.append(path)

    archive = Archive.open(cli.home)
    reports: list[Any] = []
    stopper: threading.Thread | None = None
    try:
        for n, path in enumerate(files):
            if n == 3:  # the site goes down while the batch is running
                stopper = threading.Thread(target=site_b.stop)
                stopper.start()
            reports.append(ingest_file(archive, path))
    finally:
        archive.close()
        if stopper is not None:
            stopper.join()

    for report in reports:
        assert report.status in ("preserved", "degraded", "refused")
        if report.status == "refused":
            assert report.error  # refused clearly, never silently
    acknowledged = [r for r in reports if r.status != "refused"]
    degraded = [r for r in acknowledged if r.status == "degraded"]
    assert len(acknowledged) >= 9 and reports[0].status == "preserved"
    assert degraded and reports[-1].status == "degraded"
    status = cli.json("status")
    assert status["items"]["degraded"] == len(degraded)
    assert not next(b for b in status["backends"] if b["name"] == "s3-b")["answers"]

    # While the site is down the worker keeps the jobs, with backoff.
    import cProfile, pstats
    from archive.services.repair import repair_item
    a = Archive.open(cli.home)
    pr = cProfile.Profile(); pr.enable()
    t = time.monotonic(); print(repair_item(a, degraded[0].id)); print("one repair", time.monotonic() - t)
    pr.disable(); pstats.Stats(pr).sort_stats("cumulative").print_stats(25)
    a.close()
    _, out, _ = cli("worker", "--once")
    assert "retry" in out and cli.json("status")["items"]["degraded"] == len(degraded)

    site_b.start()
    time.sleep(0.6)  # past the capped backoff
    cli("worker", "--once")
    status = cli.json("status")
    assert status["items"] == {"preserved": len(acknowledged), "degraded": 0}
    assert all(b["answers"] for b in status["backends"])
    assert cli.json("fixity", "--all")["found_problems"] is False

    # Nothing acknowledged is lost: every one decrypts, from either site, to the bytes sent.
    for report in acknowledged:
        shown = cli.json("show", report.id)
        assert {r["backend"] for r in shown["replicas"] if r["state"] == "verified"} == {"s3-a", "s3-b"}
        out_file = tmp_path / "out.bin"
        cli("get", report.id, "-o", str(out_file))
        assert out_file.read_bytes() == Path(report.path).read_bytes()
