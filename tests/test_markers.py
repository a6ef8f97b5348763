"""Storage-site markers: an unmounted disk, a foreign disk or a wrong bucket is unavailable, never empty."""

# ruff: noqa: F811 - pytest fixtures are imported by name and then requested as arguments
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from storage.base import MARKER_NAME, Marker, MarkerExists, SiteUnavailable, StorageError
from storage.local import LocalBackend
from storage.markers import ForeignMarker, ensure_marker
from tests.conftest import Cli
from tests.s3_fixtures import site_a, weed_sites  # noqa: F401 - fixtures
from tests.servers import WeedServer
from tests.test_worker import rows

GPS = "media/jpg/gps"


def test_a_marker_is_written_once_and_read_back(tmp_path: Path) -> None:
    backend = LocalBackend("site-a", tmp_path)
    assert backend.read_marker() is None
    marker = Marker("archive-1", "site-a", "2026-01-01T00:00:00.000000Z")
    backend.write_marker(marker)
    assert backend.read_marker() == marker
    assert json.loads((tmp_path / MARKER_NAME).read_text())["archive_id"] == "archive-1"
    with pytest.raises(MarkerExists):
        backend.write_marker(Marker("archive-2", "site-a", "2026-01-02T00:00:00.000000Z"))
    assert backend.read_marker() == marker  # never overwritten
    assert list(backend.list()) == []  # the marker is the site's, not an object
    assert not list((tmp_path / ".staging").iterdir())  # nothing left behind by the staged write


def test_a_garbled_marker_is_an_error_not_an_absence(tmp_path: Path) -> None:
    (tmp_path / MARKER_NAME).write_bytes(b"\x00not json")
    backend = LocalBackend("site-a", tmp_path, expected_archive_id="archive-1")
    with pytest.raises(StorageError, match="garbled"):
        backend.read_marker()
    assert "garbled" in (backend.health() or "")
    (tmp_path / MARKER_NAME).write_text(json.dumps({"archive_id": "", "backend": "x", "created_at": "y"}))
    with pytest.raises(StorageError, match="garbled"):
        backend.read_marker()


def test_ensure_marker_claims_a_site_once_and_refuses_a_foreign_one(tmp_path: Path) -> None:
    backend = LocalBackend("site-a", tmp_path)
    first = ensure_marker(backend, "archive-1")
    assert first.archive_id == "archive-1" and first.backend == "site-a" and first.created_at.endswith("Z")
    assert backend.expected_archive_id == "archive-1"
    assert ensure_marker(LocalBackend("site-a", tmp_path), "archive-1") == first  # idempotent
    with pytest.raises(ForeignMarker, match="archive-1"):
        ensure_marker(LocalBackend("other", tmp_path), "archive-2")
    assert backend.read_marker() == first


def test_a_missing_or_foreign_marker_makes_the_site_unavailable(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    backend = LocalBackend("site-a", root, expected_archive_id="archive-1")
    assert backend.health() == f"unavailable: marker {MARKER_NAME} missing \u2014 is the disk mounted?"
    assert backend.check_marker() == backend.health()
    with pytest.raises(SiteUnavailable, match="is the disk mounted"):
        backend.put_bytes("o/aa/one", b"evidence")
    assert not any(files for _, _, files in os.walk(root))  # nothing written onto the bare mount point
    assert LocalBackend("tool", root).health() is None  # without an expected archive the rule is off

    LocalBackend("site-a", root).write_marker(Marker("archive-2", "site-a", "2026-01-01T00:00:00.000000Z"))
    assert backend.health() == "unavailable: marker belongs to archive archive-2"
    with pytest.raises(SiteUnavailable, match="archive-2"):
        backend.put_bytes("o/aa/one", b"evidence")

    (root / MARKER_NAME).unlink()
    ensure_marker(LocalBackend("site-a", root), "archive-1")
    assert backend.health() is None
    assert backend.put_bytes("o/aa/one", b"evidence").size == 8


# -- the archive around it: fixity and repair ---------------------------------------------------


def _states(home: Path) -> dict[int, tuple[str, str, str]]:
    from archive.catalog.items import Replica

    return {r.id: (r.backend, r.object_name, r.state) for r in rows(home, Replica)}


def _unmount(home: Path, name: str) -> Path:
    """What an unmounted drive looks like: the mount point is there, empty and writable."""
    root = home / "storage" / name
    away = root.with_name(name + ".mounted")
    root.rename(away)
    root.mkdir()
    return away


def _mount(home: Path, name: str, away: Path) -> None:
    root = home / "storage" / name
    shutil.rmtree(root)
    away.rename(root)


def _checks(report: dict[str, Any], backend: str) -> set[str]:
    return {p["result"] for p in report["problems"] if p["backend"] == backend}


def test_an_unmounted_disk_is_unavailable_never_empty(cli: Cli, corpus: Path) -> None:
    from sqlmodel import Session, select

    from archive.catalog.items import Replica
    from archive.context import Archive

    reports = cli.json_lines("ingest", str(corpus / GPS))
    target = reports[0]["id"]
    assert cli.json("fixity", "--all")["found_problems"] is False
    before = _states(cli.home)

    away = _unmount(cli.home, "site-b")
    report = cli.json("fixity", "--all", expect=1)
    assert report["missing"] == 0 and report["corrupt"] == 0
    assert report["unavailable"] == report["copies"] // 2 and _checks(report, "site-b") == {"unavailable"}
    assert all("is the disk mounted?" in p["detail"] for p in report["problems"])
    assert _states(cli.home) == before  # no replica changed state because of it
    assert cli.json("status")["items"].get("preserved") == len(reports)

    # Even where the catalog already believes a copy on that site lost, repair writes nothing onto
    # the bare mount point and retires nothing: the repair stays incomplete, to be retried.
    archive = Archive.open(cli.home)
    try:
        with Session(archive.engine) as session:
            lost = session.exec(select(Replica).where(Replica.item_id == target, Replica.backend == "site-b"))
            for row in lost.all():
                row.state = "missing"
                session.add(row)
            session.commit()
    finally:
        archive.close()
    before = _states(cli.home)
    repaired = cli.json("fixity", "--item", target, "--repair", expect=1)["repaired"]
    assert repaired and repaired[0]["written"] == [] and repaired[0]["complete"] is False
    assert any("marker" in why for why in repaired[0]["failures"].values())
    assert not any(files for _, _, files in os.walk(cli.home / "storage" / "site-b"))
    assert _states(cli.home) == before

    # Mounted again: the copies are found where they always were, and nothing was replaced.
    _mount(cli.home, "site-b", away)
    report = cli.json("fixity", "--all", "--repair")
    assert report["found_problems"] is False and report["ok"] == report["copies"]
    after = _states(cli.home)
    assert set(after) == set(before) and {state for _, _, state in after.values()} == {"verified"}
    assert cli.json("show", target)["status"] == "preserved"


def test_a_foreign_disk_is_unavailable_and_the_right_one_works_again(cli: Cli, corpus: Path) -> None:
    cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))
    marker_path = cli.home / "storage" / "site-a" / MARKER_NAME
    ours = marker_path.read_bytes()
    before = _states(cli.home)
    foreign = json.loads(ours)
    foreign["archive_id"] = "0123456789abcdef0123456789abcdef"
    marker_path.write_text(json.dumps(foreign))

    report = cli.json("fixity", "--all", "--repair", expect=1)
    assert _checks(report, "site-a") == {"unavailable"} and report["missing"] == 0
    assert all("belongs to archive 0123456789abcdef" in p["detail"] for p in report["problems"])
    assert all(r["written"] == [] for r in report["repaired"])
    assert _states(cli.home) == before

    marker_path.write_bytes(ours)
    report = cli.json("fixity", "--all")
    assert report["found_problems"] is False and report["ok"] == report["copies"] == 4


@pytest.mark.slow
def test_a_bucket_without_its_marker_is_unavailable(
    cli: Cli, site_a: WeedServer, monkeypatch: pytest.MonkeyPatch, corpus: Path
) -> None:
    from storage.s3_common import env_prefix

    monkeypatch.setenv(env_prefix("vault") + "ACCESS_KEY", site_a.access_key)
    monkeypatch.setenv(env_prefix("vault") + "SECRET_KEY", site_a.secret_key)
    bucket = site_a.make_bucket(versioned=True)
    cli("storage", "add", "vault", "--kind", "s3", "--endpoint", site_a.endpoint, "--bucket", bucket)
    cli("policy", "set", "--copies", "3", "--minimum", "2")
    cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))
    assert cli.json("fixity", "--all")["ok"] == 6
    client: Any = site_a.client()
    ours = client.get_object(Bucket=bucket, Key=MARKER_NAME)["Body"].read()
    before = _states(cli.home)

    client.delete_object(Bucket=bucket, Key=MARKER_NAME)
    report = cli.json("fixity", "--all", "--repair", expect=1)
    assert _checks(report, "vault") == {"unavailable"} and report["missing"] == 0
    assert all(f"marker {MARKER_NAME} missing" in p["detail"] for p in report["problems"])
    assert _states(cli.home) == before

    client.put_object(Bucket=bucket, Key=MARKER_NAME, Body=ours)
    report = cli.json("fixity", "--all")
    assert report["found_problems"] is False and report["ok"] == 6
