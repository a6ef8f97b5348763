"""The catalog on both databases: migrations, ingest, duplicates, custody sequence."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from archive.catalog.events import Event
from archive.catalog.items import Item, Provenance
from tests.conftest import Cli


@pytest.fixture()
def db_cli(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    runner = Cli(tmp_path / "home")
    runner("init", "--operator", "tester")
    return runner


def test_ingest_on_each_database(db_cli: Cli, corpus: Path, catalog_url: str) -> None:
    from archive.db import make_engine, migrate

    gps = corpus / "media" / "jpg" / "gps"
    reports = db_cli.json_lines("ingest", str(gps), str(gps / "DSCN0010.jpg"))
    assert [r["duplicate"] for r in reports] == [False] * 4 + [True]
    engine = make_engine(catalog_url)
    migrate(engine)  # idempotent: a second run changes nothing
    with Session(engine) as session:
        assert len(session.exec(select(Item)).all()) == 4
        assert len(session.exec(select(Provenance)).all()) == 5
        seqs = [e.seq for e in session.exec(select(Event).order_by(col(Event.seq))).all()]
    engine.dispose()
    assert seqs == list(range(len(seqs)))
    assert db_cli.json("show", reports[0]["id"][:8])["sha256"] == reports[0]["sha256"]
