"""The custody log on every storage site: tlog-tiles objects, written once, read back and verified."""

# ruff: noqa: F811 - pytest fixtures are imported by name and then requested as arguments
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archive.custody.mirror import (
    CHECKPOINTS,
    MirrorError,
    checkpoint_name,
    index_path,
    mirror_log,
    read_mirrored_log,
    tile_name,
)
from storage.base import MARKER_NAME
from tests.conftest import Cli
from tests.s3_fixtures import make_backend, site_a, weed_sites  # noqa: F401 - fixtures
from tests.servers import WeedServer

GPS_FILE = "media/jpg/gps/DSCN0010.jpg"


def test_tile_index_paths_follow_tlog_tiles() -> None:
    assert index_path(5) == "005"
    assert index_path(1000) == "x001/000"
    assert index_path(1234067) == "x001/x234/067"
    assert tile_name(0, 1234067) == "log/tile/0/x001/x234/067"
    assert tile_name("entries", 3, 17) == "log/tile/entries/003.p/17"


@pytest.fixture()
def archive(cli: Cli) -> Iterator[Any]:
    from archive.context import Archive

    opened = Archive.open(cli.home)
    try:
        yield opened
    finally:
        opened.close()


def _grow(archive: Any, events: int) -> dict[str, Any]:
    """Append `events` real custody events and sign a checkpoint over them."""
    from archive.custody.log import FIXITY_CHECK, append_event
    from archive.custody.service import checkpoint
    from archive.db import transaction

    with transaction(archive.engine) as session:
        for i in range(events):
            append_event(session, FIXITY_CHECK, actor=archive.actor, item_id=f"item{i:06d}",
                         objects=[f"site-a:o/{i:06d}"], details={"result": "ok", "n": i})
    return checkpoint(archive)


def _catalog_entries(archive: Any) -> list[bytes]:
    from sqlmodel import Session, col, select

    from archive.catalog.events import Event
    from archive.custody.entry import encode
    from archive.custody.log import event_entry

    with Session(archive.engine) as session:
        return [encode(event_entry(e)) for e in session.exec(select(Event).order_by(col(Event.seq))).all()]


def _verifier(archive: Any) -> Any:
    from archive.custody.service import verifier_key

    return verifier_key(archive)


def _objects(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in (root / "log").rglob("*") if p.is_file()}


def test_every_site_keeps_the_log_and_a_reader_verifies_it(archive: Any) -> None:
    first = _grow(archive, 600)  # two full tiles of entries and a partial third
    size = first["tree_size"]
    sites = {name: archive.home / "storage" / name for name in archive.backends}
    for root in sites.values():  # the checkpoint path already mirrored it
        assert (root / checkpoint_name(size)).read_text() == first["note"]
        assert (root / tile_name("entries", 0)).is_file() and (root / tile_name(0, 1)).is_file()
        assert (root / tile_name(0, 2, size % 256)).is_file() and (root / tile_name(1, 0, size // 256)).is_file()
    for backend in archive.backends.values():
        mirrored = read_mirrored_log(backend, _verifier(archive))
        assert mirrored.entries == _catalog_entries(archive) and mirrored.tree_size == size
        assert mirrored.checkpoints[size] == first["note"] and mirrored.vkey == _verifier(archive).encode()
        assert mirrored.events()[-1]["details"] == {"n": 599, "result": "ok"}

    # Idempotent: nothing new, nothing written; even with the cursors gone nothing is rewritten.
    again = mirror_log(archive.engine, archive.backends.values())
    assert all(r.written == 0 and r.error is None for r in again.values())
    before = {name: _objects(root) for name, root in sites.items()}
    _drop_cursors(archive)
    again = mirror_log(archive.engine, archive.backends.values())
    assert all(r.written == 0 and r.present > 0 and r.error is None for r in again.values())
    assert {name: _objects(root) for name, root in sites.items()} == before

    # The log grows: new objects only; old partial tiles stay; both checkpoints verify.
    second = _grow(archive, 10)
    for name, root in sites.items():
        assert set(before[name]) < set(_objects(root))
        assert all(_objects(root)[key] == data for key, data in before[name].items())  # never overwritten
    mirrored = read_mirrored_log(archive.backends["site-b"], _verifier(archive))
    assert set(mirrored.checkpoints) >= {size, second["tree_size"]}
    assert mirrored.entries == _catalog_entries(archive)


def _drop_cursors(archive: Any) -> None:
    from sqlmodel import col, select

    from archive.catalog.jobs import Cursor
    from archive.db import transaction

    with transaction(archive.engine) as session:
        for cursor in session.exec(select(Cursor).where(col(Cursor.name).startswith("log-mirror:"))).all():
            session.delete(cursor)


def test_a_changed_object_is_a_conflict_and_a_tampered_site_does_not_verify(archive: Any) -> None:
    size = _grow(archive, 300)["tree_size"]
    root = archive.home / "storage" / "site-a"
    partial = root / tile_name(0, 1, size % 256)
    original = partial.read_bytes()
    partial.write_bytes(bytes(32) + original[32:])
    with pytest.raises(MirrorError, match="does not match"):
        read_mirrored_log(archive.backends["site-a"], _verifier(archive))
    _drop_cursors(archive)
    results = mirror_log(archive.engine, archive.backends.values())
    assert "holds other bytes" in (results["site-a"].error or "") and results["site-b"].error is None
    assert partial.read_bytes() == bytes(32) + original[32:]  # reported, never "fixed" by overwriting

    bundle = root / tile_name("entries", 0)
    data = bytearray(bundle.read_bytes())
    data[100] ^= 0x01
    partial.write_bytes(original)
    bundle.write_bytes(bytes(data))
    with pytest.raises(MirrorError, match="root hash"):
        read_mirrored_log(archive.backends["site-a"], _verifier(archive))
    read_mirrored_log(archive.backends["site-b"], _verifier(archive))  # the other site is intact


def test_an_unavailable_site_gets_nothing_and_catches_up_later(archive: Any) -> None:
    root = archive.home / "storage" / "site-b"
    marker = (root / MARKER_NAME).read_bytes()
    (root / MARKER_NAME).unlink()
    size = _grow(archive, 20)["tree_size"]
    results = mirror_log(archive.engine, archive.backends.values())
    assert "marker" in (results["site-b"].error or "") and results["site-a"].error is None
    assert not (root / checkpoint_name(size)).exists()
    (root / MARKER_NAME).write_bytes(marker)
    results = mirror_log(archive.engine, archive.backends.values())
    assert results["site-b"].error is None and results["site-b"].written > 0
    assert read_mirrored_log(archive.backends["site-b"], _verifier(archive)).tree_size == size


def test_a_checkpoint_signed_by_another_key_does_not_verify(archive: Any) -> None:
    from archive.custody.checkpoint import Signer

    _grow(archive, 5)
    backend = archive.backends["site-a"]
    with pytest.raises(MirrorError, match="signature"):
        read_mirrored_log(backend, Signer.generate(_verifier(archive).name).verifier)
    assert os.listdir(archive.home / "storage" / "site-a" / CHECKPOINTS)


@pytest.mark.slow
def test_the_log_on_a_bucket(archive: Any, make_backend: Any, site_a: WeedServer) -> None:
    size = _grow(archive, 270)["tree_size"]
    bucket = make_backend(site_a)
    results = mirror_log(archive.engine, [bucket], vkey=_verifier(archive).encode())
    assert results[bucket.name].error is None and results[bucket.name].written > 0
    mirrored = read_mirrored_log(bucket, _verifier(archive))
    assert mirrored.tree_size == size and mirrored.entries == _catalog_entries(archive)
    assert mirror_log(archive.engine, [bucket])[bucket.name].written == 0


def _copy_sqlite(source: Path, target: Path) -> None:
    import sqlite3

    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def test_a_rolled_back_catalog_is_a_loud_conflict_and_the_sites_copy_stays(
    cli: Cli, corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The database is restored from an older backup and grows again: its log signs other roots for the sizes
    the sites hold. The sites' copies are not touched, and `log checkpoint`, the worker and `status` say so."""
    import logging

    from archive.context import Archive
    from archive.services.worker import _checkpoint

    jpg = corpus / "media" / "jpg"
    cli("ingest", str(jpg / "Canon_40D.jpg"))
    saved = tmp_path / "saved.db"
    _copy_sqlite(cli.home / "catalog.db", saved)
    cli("ingest", str(jpg / "Nikon_D70.jpg"))  # signed and mirrored to every site
    sites = {name: cli.home / "storage" / name for name in ("site-a", "site-b")}
    before = {name: _objects(root) for name, root in sites.items()}
    _copy_sqlite(saved, cli.home / "catalog.db")  # rolled back: events, checkpoints, tiles, cursors
    cli("ingest", str(corpus / GPS_FILE))
    _, out, err = cli("log", "checkpoint", expect=1)
    for name in sites:
        assert f"the log on site {name} disagrees with this catalog's log: rolled back?" in err
    assert {name: _objects(root) for name, root in sites.items()} == before  # never overwritten, nothing added
    opened = Archive.open(cli.home)
    try:
        for backend in opened.backends.values():  # each site's copy still verifies, as the old log
            assert read_mirrored_log(backend, _verifier(opened)).tree_size == max(
                int(p.name) for p in (sites[backend.name] / CHECKPOINTS).iterdir())
        with caplog.at_level(logging.ERROR):
            _checkpoint(opened)
        assert "the log on site site-a disagrees" in caplog.text
    finally:
        opened.close()
    status = cli.json("status")
    assert all("not a checkpoint this catalog" in (b["log_conflict"] or "") or "holds a checkpoint of" in
               (b["log_conflict"] or "") for b in status["backends"])
    _, out, _ = cli("status")
    assert "LOG CONFLICT: the log on site site-a disagrees" in out
    assert cli.json("log", "checkpoint", expect=1)["conflicts"].keys() == {"site-a", "site-b"}


def test_huge_numbers_are_usage_errors(cli: Cli) -> None:
    huge = "99999999999999999999999"
    for args in (("log", "prove", huge), ("log", "consistency", "21", huge), ("fixity", "--sample", huge),
                 ("log", "prove", "0", "--checkpoint", huge)):
        _, _, err = cli(*args, expect=2)
        assert "is not in the range" in err and "internal error" not in err
