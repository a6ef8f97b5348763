"""Several processes appending and checkpointing at once still give one gapless sequence and one tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text
from test_custody_rfc import ref_mth, ref_open_checkpoint

from archive.config import Settings
from archive.context import Runtime
from archive.custody import service
from archive.db import transaction

WORKER = """
import sys
from archive.context import Archive
from archive.custody import service
from archive.custody.log import ACCESS, append_event
from archive.db import transaction

home, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
archive = Archive.open(home, as_name=name)
for i in range(count):
    with transaction(archive.engine) as session:
        append_event(session, ACCESS, actor=name, objects=[f"{name}:{i}"], details={"i": i})
    if i % 7 == 0:
        service.maybe_checkpoint(archive, max_age_seconds=0)
archive.close()
"""

WORKERS, EACH = 4, 50


def test_concurrent_appends_and_checkpoints(tmp_path: Path, catalog_url: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    settings = Settings(home=home, database_url=catalog_url)
    settings.save()
    archive = Runtime(settings).archive("parent")
    archive.engine  # noqa: B018 - migrate once, before the workers race
    service.log_signer(archive)
    env = {k: v for k, v in os.environ.items() if k != "EVIDENCE_DATABASE_URL"}
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(home), f"w{n}", str(EACH)], env=env)
        for n in range(WORKERS)
    ]
    while any(w.poll() is None for w in workers):  # verifying while others append must not cry wolf
        report = service.verify_log(archive)
        assert report.ok, report.to_json()
    assert [w.wait(timeout=240) for w in workers] == [0] * WORKERS

    with transaction(archive.engine) as session:
        rows = session.execute(text("SELECT seq, actor, details, leaf_hash FROM events ORDER BY seq")).all()
        head = session.execute(text("SELECT size FROM log_head")).scalar_one()
        sizes = list(session.execute(text("SELECT tree_size FROM checkpoints ORDER BY tree_size")).scalars())
    total = WORKERS * EACH
    assert [r[0] for r in rows] == list(range(total)) and head == total
    for n in range(WORKERS):  # each worker's events in its own order, none lost
        details = [r[2] for r in rows if r[1] == f"w{n}"]
        assert [d if isinstance(d, dict) else json.loads(d) for d in details] == [
            {"i": i} for i in range(EACH)
        ]
    assert len(sizes) >= 2

    final = service.checkpoint(archive)
    leaves = [bytes.fromhex(r[3]) for r in rows]
    vkey = (home / "keys" / "log.vkey").read_text().strip()
    assert ref_open_checkpoint(final["note"], vkey)[1:] == (total, ref_mth(leaves))
    report = service.verify_log(archive)
    assert report.ok, report.to_json()
    assert (report.checked_size, report.uncovered, report.checkpoints) == (total, 0, len(set(sizes) | {total}))
    archive.close()
