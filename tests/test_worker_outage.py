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

from tests.conftest import Cli, replace_sites
from tests.s3_fixtures import site_a, site_b, weed_sites  # noqa: F401 - fixtures
from tests.servers import WeedServer
from tests.test_worker import configure

pytestmark = pytest.mark.slow


def _s3_home(cli: Cli, sites: list[WeedServer], monkeypatch: pytest.MonkeyPatch) -> None:
    from archive.config import StorageSpec
    from storage.s3_common import env_prefix

    specs = []
    for label, server in zip(("s3-a", "s3-b"), sites, strict=True):
        monkeypatch.setenv(env_prefix(label) + "ACCESS_KEY", server.access_key)
        monkeypatch.setenv(env_prefix(label) + "SECRET_KEY", server.secret_key)
        bucket = server.make_bucket(versioned=True)
        specs.append(StorageSpec(label, "s3", {
            "endpoint": server.endpoint, "bucket": bucket, "connect_timeout": 1, "read_timeout": 10,
            "max_attempts": 1,
        }))
    replace_sites(cli.home, specs)
    configure(cli.home, worker={"backoff_base_seconds": 0.1, "backoff_cap_seconds": 0.5},
              fixity={"interval_seconds": 0})


def test_one_site_stops_mid_batch_and_the_worker_restores_every_item(
    cli: Cli, site_a: WeedServer, site_b: WeedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path  # noqa: F811
) -> None:
    from archive.context import Archive

    _s3_home(cli, [site_a, site_b], monkeypatch)
    batch = tmp_path / "batch"
    batch.mkdir()
    files = []
    for n in range(8):
        path = batch / f"clip-{n:02}.bin"
        path.write_bytes(os.urandom(256 * 1024 * (1 + n % 3)))
        files.append(path)

    # One archive (one set of S3 clients) for the whole test: building a boto3 client costs a second.
    archive = Archive.open(cli.home)
    try:
        _batch_with_an_outage(archive, cli, files, site_b, tmp_path)
    finally:
        archive.close()


def _batch_with_an_outage(archive: Any, cli: Cli, files: list[Path], down: WeedServer, tmp_path: Path) -> None:
    from archive.services.ingest import ingest_file
    from archive.services.items import get_item, show_item
    from archive.services.status import archive_status
    from archive.services.worker import Worker

    reports: list[Any] = []
    stopper: threading.Thread | None = None
    try:
        for n, path in enumerate(files):
            if n == 2:  # the site goes down while the batch is running
                stopper = threading.Thread(target=down.stop)
                stopper.start()
            reports.append(ingest_file(archive, path))
    finally:
        if stopper is not None:
            stopper.join()

    for report in reports:
        assert report.status in ("preserved", "degraded", "refused")
        if report.status == "refused":
            assert report.error  # refused clearly, never silently
    acknowledged = [r for r in reports if r.status != "refused"]
    degraded = [r for r in acknowledged if r.status == "degraded"]
    assert len(acknowledged) >= 6 and reports[0].status == "preserved"
    assert degraded and reports[-1].status == "degraded"
    status = archive_status(archive).as_dict()
    assert status["items"]["degraded"] == len(degraded)
    assert not next(b for b in status["backends"] if b["name"] == "s3-b")["answers"]

    # While the site is down the worker keeps the jobs, retried with backoff.
    worker = Worker(archive)
    worker.run(once=True)
    assert {outcome for _, _, outcome in worker.ran} == {"retry"}
    assert archive_status(archive).as_dict()["items"]["degraded"] == len(degraded)

    down.start()
    time.sleep(0.6)  # past the capped backoff
    Worker(archive).run(once=True)
    status = archive_status(archive).as_dict()
    assert status["items"] == {"preserved": len(acknowledged), "degraded": 0}
    assert all(b["answers"] for b in status["backends"])
    assert cli.json("fixity", "--all")["found_problems"] is False  # and through the CLI, in a new process state

    # Nothing acknowledged is lost: every one decrypts to the bytes sent.
    for report in acknowledged:
        shown = show_item(archive, report.id)
        assert {r.backend for r in shown.replicas if r.state == "verified"} == {"s3-a", "s3-b"}
        out_file = tmp_path / "out.bin"
        get_item(archive, report.id, out_file, overwrite=True)
        assert out_file.read_bytes() == Path(report.path).read_bytes()
