"""Connecting to the catalog (SQLite by default, PostgreSQL at scale) and migrating it.

Only SQLAlchemy Core at import: SQLModel (and pydantic with it) loads when a session is opened.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from sqlmodel import Session

MIGRATIONS = Path(__file__).parent / "migrations"


class Garbled(str):
    """A JSON column's stored text that is not JSON: handed to the reader, which says the row was altered
    (a custody event, say: `archive.custody.log.event_entry`), rather than failing in the database driver."""


def _lenient_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return Garbled(text)


def make_engine(url: str) -> Engine:
    """An engine whose transactions take the write lock up front on SQLite.

    SQLite's default deferred transactions fail with "database is locked" when
    two writers upgrade at once; BEGIN IMMEDIATE makes them queue instead.
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, json_deserializer=_lenient_json)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False},
                           json_deserializer=_lenient_json)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        reader = conn.get_execution_options().get("evidence_read_only", False)
        conn.exec_driver_sql("BEGIN" if reader else "BEGIN IMMEDIATE")

    return engine


def read_only(engine: Engine) -> Engine:
    """The same engine for sessions that only read: on SQLite they take no write lock.

    In WAL mode readers never block the writer, so lookups (deduplication,
    show, list, similarity) do not queue behind ingests in other processes.
    A session on it must not write: SQLite would refuse the lock upgrade.
    """
    return engine.execution_options(evidence_read_only=True)


def _heads() -> set[str]:
    """The newest revisions, read from the migration files without loading Alembic."""
    import re

    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision = re.search(r'^revision\s*=\s*"([^"]+)"', text, re.M)
        down = re.search(r"^down_revision\s*=\s*(.+)$", text, re.M)
        if revision:
            revisions.add(revision.group(1))
        if down:
            parents.update(re.findall(r'"([^"]+)"', down.group(1)))
    return revisions - parents


def _current(engine: Engine) -> set[str]:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    try:
        with read_only(engine).connect() as conn:
            return {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
    except DBAPIError:
        return set()


def migrate(engine: Engine) -> None:
    """Bring the catalog's schema to the newest revision (Alembic).

    Loading Alembic costs a tenth of a second, so when the catalog already
    stands at every head (the usual case) it is not loaded at all.
    """
    if _current(engine) == _heads():
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: everything inside commits together or not at all.

    Callables in `session.info["after_commit"]` run once the commit succeeded
    (tidying files whose content the transaction made obsolete).
    """
    from sqlmodel import Session  # here: a command that only reads need not load the ORM and pydantic

    with Session(engine, expire_on_commit=False) as session:
        with session.begin():
            yield session
        for hook in session.info.pop("after_commit", []):
            hook()
