"""Catalog key rotation: killed mid-way by SIGKILL (a real process), resumed, every row readable under one version.

The rotation runs as `evidence keys rotate-catalog` in a subprocess with one
row per batch and a pause after each (the test hook of `archive.services.rotate`),
is killed once some rows of some tables are re-sealed, and is run again.
Afterwards: one key version in the key file, every row of every sealed table
under it and opening, `show` unchanged, deduplication (the keyed lookups)
and the near-duplicate search still working, and the custody events naming
no secret.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import Cli

ROOT = Path(__file__).resolve().parents[1]


def _key_versions(home: Path) -> list[int]:
    from archive.keys.catalog import CatalogKeys

    return CatalogKeys.parse((home / "keys" / "catalog.key").read_text(encoding="ascii")).versions


def _versions(engine: sa.Engine) -> dict[str, dict[int, int]]:
    """Per sealed table: key version -> rows."""
    from archive.catalog.sealing import registered

    out: dict[str, dict[int, int]] = {}
    with engine.connect() as conn:
        for table in registered():
            rows = conn.execute(sa.text(f"SELECT key_version, count(*) FROM {table.name} GROUP BY key_version"))  # noqa: S608
            out[table.name] = {int(v): int(n) for v, n in rows if v is not None}
    return out


def _comparable(shown: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in shown.items() if k not in ("replicas", "manifests", "arrivals")}


def _every_row_opens(home: Path) -> int:
    """Open every sealed row of every registered table with the key file as it is now; how many."""
    from archive.catalog.sealing import registered
    from archive.context import Archive

    archive = Archive.open(home)
    opened = 0
    try:
        keys = archive.runtime.keys.catalog()
        with archive.engine.connect() as conn:
            for table in registered():
                query = f"SELECT {table.key}, key_version, sealed FROM {table.name}"  # noqa: S608
                for row_id, version, blob in conn.execute(sa.text(query)):
                    keys.open(table.name, row_id, version, bytes(blob))
                    opened += 1
    finally:
        archive.close()
    return opened


def test_rotation_killed_by_sigkill_and_resumed(
    tmp_path: Path, corpus: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    home = tmp_path / "home"
    cli = Cli(home)
    cli("init", "--operator", "tester")
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("jpg/gps/DSCN0010.jpg", "jpg/gps/DSCN0012.jpg", "exiftool/GPS.jpg"):
        shutil.copy(corpus / "media" / name, folder / Path(name).name)
    (folder / "statement.txt").write_text("a witness statement\n")
    reports = cli.json_lines("ingest", *sorted(str(p) for p in folder.iterdir()))
    ids = [r["id"] for r in reports]
    before = {item_id: _comparable(cli.json("show", item_id)) for item_id in ids}
    similar_before = cli.json("similar", ids[0])
    assert _key_versions(home) == [1]

    from archive.db import make_engine

    engine = make_engine(catalog_url)
    try:
        total = sum(sum(v.values()) for v in _versions(engine).values())
        assert total >= 12
        env = {**os.environ, "EVIDENCE_TEST_ROTATE_PAUSE": "0.4", "EVIDENCE_DATABASE_URL": catalog_url}
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "--home", str(home), "keys", "rotate-catalog", "--batch", "1"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while True:
            moved = sum(v.get(2, 0) for v in _versions(engine).values())
            if moved >= 3 or proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the rotation ended before it could be killed: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        mid = _versions(engine)
        moved = sum(v.get(2, 0) for v in mid.values())
        assert 3 <= moved < total, mid  # killed half-way: rows under both versions
        assert _key_versions(home) == [1, 2]
        # Half-way, everything reads: rows of either version open.
        assert _every_row_opens(home) == total
        assert {item_id: _comparable(cli.json("show", item_id)) for item_id in ids} == before

        report = cli.json("keys", "rotate-catalog", "--batch", "2")
        assert report["resumed"] is True and report["current"] == 2 and report["dropped"] == [1]
        assert sum(report["resealed"].values()) == total - moved
        after = _versions(engine)
        assert all(set(v) <= {2} for v in after.values()), after
        assert sum(sum(v.values()) for v in after.values()) == total
    finally:
        engine.dispose()
    assert _key_versions(home) == [2]
    assert _every_row_opens(home) == total
    assert {item_id: _comparable(cli.json("show", item_id)) for item_id in ids} == before
    assert cli.json("similar", ids[0]) == similar_before
    (again,) = cli.json_lines("ingest", str(folder / "statement.txt"))  # the keyed lookup was recomputed
    assert again["duplicate"] is True and again["id"] == ids[-1]

    events = _rotation_events(catalog_url)
    assert [d["phase"] for d in events] == ["started", "started", "finished"]
    key_text = (home / "keys" / "catalog.key").read_text()
    assert all(part not in json.dumps(events) for part in key_text.split() if len(part) == 64)


def _rotation_events(catalog_url: str) -> list[dict[str, Any]]:
    from archive.db import make_engine

    engine = make_engine(catalog_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT details FROM events WHERE event_type = 'catalog key rotation' ORDER BY seq")).all()
    finally:
        engine.dispose()
    return [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in rows]


def test_a_fresh_rotation_starts_from_one_version(cli: Cli) -> None:
    (cli.home / "a.txt").write_text("one\n")
    cli.json_lines("ingest", str(cli.home / "a.txt"))
    report = cli.json("keys", "rotate-catalog")
    assert report["resumed"] is False and report["previous"] == [1] and report["current"] == 2
    assert report["dropped"] == [1] and _key_versions(cli.home) == [2]
    assert _every_row_opens(cli.home) >= 3
    report = cli.json("keys", "rotate-catalog")
    assert report["previous"] == [2] and report["current"] == 3 and _key_versions(cli.home) == [3]
