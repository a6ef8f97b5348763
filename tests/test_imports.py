"""A command imports only what it needs: looking at the catalog never loads media libraries or cloud SDKs.

Why: every `evidence` command is a fresh process, and importing Pillow, NumPy,
PyAV, boto3 or the sandbox costs tenths of a second each that `list` or
`status` never use; they also widen what a read-only command exposes. The check
is on which modules load (`python -X importtime`), not on timings, so it fails
on a regression and never on a slow or busy machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Cli

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("boto3", "botocore", "minio", "PIL", "numpy", "av", "scipy", "c2pa", "imagehash", "exifread",
         "pymediainfo", "pillow_heif", "ingest.sandbox", "ingest.pipeline", "ingest.media", "alembic")
_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \| ( *)(\S+)$")


def imported(*args: str) -> set[str]:
    """Every module `python -m api.cli ARGS` imports, from its -X importtime report."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "api.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return {m.group(2) for line in done.stderr.splitlines() if (m := _LINE.match(line))}


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.fixture()
def home_with_item(cli: Cli, corpus: Path) -> tuple[Path, str]:
    (report,) = cli.json_lines("ingest", str(corpus / "media/jpg/Canon_40D.jpg"))
    return cli.home, str(report["id"])


def test_help_imports_nothing_heavy() -> None:
    modules = imported("--help")
    assert heavy_in(modules) == []
    assert not any(m == "sqlalchemy" or m.startswith("sqlalchemy.") for m in modules)  # no catalog to ask


@pytest.mark.parametrize("command", ["list", "show", "status"])
def test_looking_at_the_catalog_imports_no_media_library_nor_cloud_sdk(
    home_with_item: tuple[Path, str], command: str
) -> None:
    home, item = home_with_item
    args = ["--home", str(home), command] + ([item] if command == "show" else [])
    modules = imported(*args)
    assert "api.cli.main" in modules  # the report was read
    assert heavy_in(modules) == []


def test_list_does_not_load_the_orm_layers(home_with_item: tuple[Path, str]) -> None:
    """`list` reads one query's rows: SQLAlchemy Core, without SQLModel, pydantic or the table classes."""
    home, _ = home_with_item
    modules = imported("--home", str(home), "list")
    assert not {"sqlmodel", "pydantic", "archive.catalog"} & modules
