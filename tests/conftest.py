"""Shared fixtures: the corpus, a fresh archive home, and PostgreSQL when it answers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared test corpus (`../shared/corpus` beside the checkout)."""
    if not CORPUS.is_dir():
        pytest.fail(f"test corpus not found at {CORPUS}: clone the project next to shared/")
    return CORPUS


def _postgres_url() -> str | None:
    """The PostgreSQL URL to test against, or None (skip) on a machine without one."""
    url = os.environ.get("EVIDENCE_TEST_POSTGRES_URL", PG_DEFAULT)
    try:
        import psycopg2

        psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"), connect_timeout=3).close()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available here"
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {url} does not answer under CI: {exc}")
        return None
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = _postgres_url()
    if url is None:
        pytest.skip(
            "PostgreSQL not reachable: start one on 127.0.0.1:5432 (trust auth, database `test`) "
            "or set EVIDENCE_TEST_POSTGRES_URL to enable these tests"
        )
    return url


@pytest.fixture()
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    """An empty catalog on PostgreSQL: every table dropped before and after."""
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg2://"))

    def wipe() -> None:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))

    wipe()
    yield postgres_url
    wipe()
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a catalog test on both databases."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return str(request.getfixturevalue("fresh_postgres"))


class Cli:
    """Runs `evidence` in-process (click's runner) against one archive home."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def __call__(self, *args: str, expect: int | None = 0) -> tuple[int, str, str]:
        from click.testing import CliRunner

        from api.cli.main import cli

        result = CliRunner().invoke(cli, ["--home", str(self.home), *args], catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, f"exit {result.exit_code}: {result.stdout}\n{result.stderr}"
        return result.exit_code, result.stdout, result.stderr

    def json(self, *args: str, expect: int | None = 0) -> Any:
        import json

        _, out, _ = self(*args, "--json", expect=expect)
        return json.loads(out)

    def json_lines(self, *args: str, expect: int | None = 0) -> list[Any]:
        import json

        _, out, _ = self(*args, "--json", expect=expect)
        return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture()
def cli(tmp_path: Path) -> Cli:
    """A freshly initialised archive home, driven through the CLI."""
    runner = Cli(tmp_path / "home")
    runner("init", "--operator", "tester")
    return runner


def drop_recipient(home: Path, recipient: str) -> None:
    """Test set-up: new originals no longer encrypted to `recipient`, as in an archive made before the access
    identity existed (`evidence encrypt-to remove` refuses to drop the access recipient)."""
    from archive.catalog.settings import RECIPIENTS, put_setting
    from archive.context import Archive
    from archive.db import transaction

    archive = Archive.open(home)
    try:
        with transaction(archive.engine) as session:
            put_setting(session, RECIPIENTS, [r for r in archive.config.recipients if r != recipient])
    finally:
        archive.close()


def replace_sites(home: Path, specs: list[Any], copies: int = 2, minimum: int = 1) -> None:
    """Test set-up: make `specs` the archive's only storage sites (marked) under a policy covering them all.

    Quicker than `storage add` and `storage remove` one by one, for tests about what comes after.
    """
    from sqlmodel import select

    from archive.catalog.settings import POLICY, StorageSite, add_site, put_setting
    from archive.config import Policy
    from archive.context import Archive
    from archive.db import transaction
    from archive.services.storage_admin import mark_site

    archive = Archive.open(home)
    try:
        for spec in specs:
            mark_site(archive, archive.runtime.pool.get(spec, archive.config.archive_id))
        with transaction(archive.engine) as session:
            for row in session.exec(select(StorageSite)).all():
                session.delete(row)
            session.flush()
            for spec in specs:
                add_site(session, spec)
            put_setting(session, POLICY, Policy(copies=copies, minimum=minimum, backends=[]).as_dict())
    finally:
        archive.close()


def stored_hashes(home: Path, item_id: str) -> list[tuple[str, str, int, int]]:
    """An item's fingerprints as (kind, variant, offset_ms, unsigned value), opened from its sealed row."""
    from sqlmodel import Session

    from archive.context import Archive
    from archive.similarity import item_hashes

    archive = Archive.open(home)
    try:
        with Session(archive.engine) as session:
            found = item_hashes(session, archive.runtime.keys.catalog(), item_id)
    finally:
        archive.close()
    return sorted((h.kind, h.variant, h.offset_ms, h.value) for h in found)


def row_counts(home: Path, tables: tuple[str, ...]) -> dict[str, int]:
    """How many rows each table holds: what a refused request must leave exactly as it was."""
    from sqlalchemy import text

    from archive.context import Archive

    archive = Archive.open(home)
    try:
        with archive.engine.connect() as conn:
            return {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in tables}  # noqa: S608
    finally:
        archive.close()
