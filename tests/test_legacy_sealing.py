"""An archive made before the catalog was sealed: its first unlocked open seals it and leaves no plaintext behind.

The old archive is made by the code of the last commit before sealing (run
from a `git archive` of it), so its catalog is exactly what such a home
holds. The search first finds the secrets in the old file (so it can find
them), then, after one command of today's code, nowhere: sealed rows,
dropped legacy tables, a compacted file. Old custody events stay as they
were (the log is append-only): they never held hashes, sources or names, but
they do hold sizes and operator names, which is why sizes and the operator
are not searched for here (see the README's threat model).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Cli

PRE_SEALING = "2a34daa49ad0a5978de8763bb3ddf685c676d09d"
REPO = Path(__file__).resolve().parents[1]
SOURCE = "Old-Informant-Channel-3390"
NOTE = "Received from Samir Khalil before sealing"
NAME = "testimony_Nadia_Rahimi_7781.bin"


def _old_code(tmp_path: Path) -> Path:
    target = tmp_path / "old-code"
    target.mkdir()
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", PRE_SEALING], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the pre-sealing commit is not available here: {exc}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def _old(code: Path, home: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run([sys.executable, "-m", "api.cli", "--home", str(home), *args], cwd=code, env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _dump(catalog_url: str) -> bytes:
    if catalog_url.startswith("sqlite"):
        db = Path(catalog_url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
    return subprocess.run(["pg_dump", "--dbname", catalog_url], check=True, capture_output=True).stdout


def test_an_old_catalog_is_sealed_at_its_first_unlocked_open(
    tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    code = _old_code(tmp_path)
    home = tmp_path / "home"
    _old(code, home, "init", "--operator", "oldtimer")
    evidence = tmp_path / NAME
    evidence.write_bytes(os.urandom(300_000))
    other = tmp_path / "other.bin"
    other.write_bytes(os.urandom(50_000))
    _old(code, home, "ingest", "--source", SOURCE, "--note", NOTE, str(evidence), str(other))
    _old(code, home, "ingest", "--source", "second", str(evidence))  # a duplicate: two arrivals
    digest = hashlib.sha256(evidence.read_bytes()).hexdigest()
    secrets = [SOURCE.encode(), NOTE.encode(), NAME.encode(), digest.encode(), bytes.fromhex(digest)]
    before = _dump(catalog_url)
    assert [s for s in secrets[:4] if s in before] == secrets[:4], "the old catalog holds them in clear"

    # Today's code, unlocked (the embedded default's keys/ holds a catalog key once `init` made one).
    cli = Cli(home)
    from archive.keys.catalog import CATALOG_KEY_NAME, CatalogKeys

    key_file = home / "keys" / CATALOG_KEY_NAME
    if not key_file.exists():  # a home from before the catalog key: the custodian adds one
        key_file.write_text(CatalogKeys.generate().encode(), encoding="ascii")
    listed = cli.json("list")
    assert {i["sha256"] for i in listed} == {digest, hashlib.sha256(other.read_bytes()).hexdigest()}

    after = _dump(catalog_url)
    assert [s for s in secrets if s in after] == [], "plaintext survived the sealing"
    assert b"legacy_items" not in after and b"legacy_provenance" not in after
    item_id = next(i["id"] for i in listed if i["sha256"] == digest)
    shown = cli.json("show", item_id)
    assert [p["source"] for p in shown["provenance"]] == [SOURCE, "second"]
    assert [p["original_name"] for p in shown["provenance"]] == [NAME, NAME]
    assert {p["actor_name"] for p in shown["provenance"]} == {"oldtimer"}
    assert all(p["actor"].startswith("u-") for p in shown["provenance"])

    # Each old item got its commitment (a new event, saying why), so reads verify against the log.
    from sqlalchemy import text

    from archive.db import make_engine

    engine = make_engine(catalog_url)
    with engine.connect() as conn:
        notes = [str(d) for (d,) in conn.execute(text(
            "SELECT details FROM events WHERE event_type = 'message digest calculation'")).all()]
    engine.dispose()
    assert sum("commitment added for an item ingested before commitments" in n for n in notes) == 2
    cli("get", item_id, "-o", str(tmp_path / "out.bin"))
    assert (tmp_path / "out.bin").read_bytes() == evidence.read_bytes()
    # Deduplication by keyed hash finds the old item.
    [again] = cli.json_lines("ingest", str(evidence))
    assert again["duplicate"] is True and again["id"] == item_id
    cli("fixity", "--all")  # copies made before hashes were logged get their baseline (the log index rules)
    cli("log", "verify")
