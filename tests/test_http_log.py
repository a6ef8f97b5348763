"""The custody log over HTTP: tlog-tiles byte for byte as on the storage sites, proofs that verify offline.

The tiles and entry bundles the API serves must be exactly the objects
`archive.custody.mirror` writes to every site (one reader, two places);
a checkpoint, a tlog-proof and a consistency proof fetched from the API
verify with the archive's own offline verifier; and a client holding only
the checkpoint and the tiles recomputes an inclusion proof and the root.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archive.custody.mirror import tile_name
from tests.api_support import bearer, client, make_home, token_for

EVENTS = 600  # two full tiles of leaves and entries, a partial third, a partial level-1 tile


def _grow(home: Path, events: int) -> dict[str, Any]:
    from archive.context import Archive
    from archive.custody.log import FIXITY_CHECK, append_event
    from archive.custody.service import checkpoint
    from archive.db import transaction

    archive = Archive.open(home)
    try:
        with transaction(archive.engine) as session:
            for i in range(events):
                append_event(session, FIXITY_CHECK, actor=archive.actor, item_id=f"item{i:06d}",
                             objects=[f"site-a:o/{i:06d}"], details={"result": "ok", "n": i})
        return checkpoint(archive)
    finally:
        archive.close()


class Log:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.auditor = token_for(home, "log-auditor", "auditor")  # first: making tokens adds events too
        self.contributor = token_for(home, "log-contributor", "contributor")
        self.first = _grow(home, EVENTS)
        self.second = _grow(home, 7)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    return Log(make_home(tmp_path_factory.mktemp("log") / "home"))


@pytest.fixture(scope="module")
def api(log: Log) -> Iterator[Any]:
    with client(log.home) as test_client:
        test_client.headers.update(bearer(log.auditor))
        yield test_client


def _site_objects(home: Path) -> dict[str, bytes]:
    root = home / "storage" / "site-a" / "log" / "tile"
    assert root.is_dir(), "the checkpoint did not mirror the log to site-a"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_tiles_are_the_sites_objects_byte_for_byte(api: Any, log: Log) -> None:
    objects = _site_objects(log.home)
    size = log.second["tree_size"]
    expected = {tile_name(0, 0), tile_name(0, 1), tile_name(0, 2, size % 256), tile_name("entries", 0),
                tile_name("entries", 2, size % 256), tile_name(1, 0, size // 256),
                tile_name(0, 2, log.first["tree_size"] % 256)}  # the first checkpoint's partial tile too
    assert {name.removeprefix("log/tile/") for name in expected} <= set(objects)
    for path, data in objects.items():
        response = api.get(f"/v1/log/tile/{path}")
        assert response.status_code == 200, (path, response.text)
        assert response.content == data, path
        assert response.headers["content-type"] == "application/octet-stream"
        if ".p/" in path:
            assert "immutable" not in response.headers["cache-control"]
        else:
            assert "immutable" in response.headers["cache-control"], path


def test_tiles_beyond_the_signed_tree_or_off_the_encoding_are_404(api: Any, log: Log) -> None:
    size = log.second["tree_size"]
    for path in ["0/003", f"0/002.p/{size % 256 + 1}", "entries/003", "1/000", "2/000.p/1",
                 "0/2", "0/0002", "0/x000/002", "0/002.p/256", "0/002.p/0", "0/002.p/007", "01/000",
                 "9/000", "entries/x/000", "0/000.p/", "../../../etc/passwd", "0/000/..", "0/00a"]:
        response = api.get(f"/v1/log/tile/{path}")
        assert response.status_code == 404, (path, response.status_code)
        assert response.json()["error"] == "not_found"


def test_checkpoint_and_proofs_verify_offline(api: Any, log: Log) -> None:
    from archive.custody.proof_format import verify_tlog_proof
    from archive.custody.verify import Verifier, open_note, parse_checkpoint, verify_consistency

    note = api.get("/v1/log/checkpoint")
    assert note.status_code == 200 and note.headers["content-type"].startswith("text/plain")
    assert note.text == log.second["note"]
    vkey = api.get("/v1/log/vkey").text.strip()
    body = parse_checkpoint(open_note(note.text, Verifier.decode(vkey)))
    assert body.tree_size == log.second["tree_size"]

    proof = api.get("/v1/log/proof/300")
    assert proof.status_code == 200 and proof.text.startswith("c2sp.org/tlog-proof@v1\n")
    bundle = api.get("/v1/log/tile/entries/001").content
    entry = _bundle_entries(bundle)[300 - 256]
    checked = verify_tlog_proof(proof.text, entry, vkey)
    assert checked.index == 300 and checked.tree_size == body.tree_size

    old, new = log.first["tree_size"], log.second["tree_size"]
    consistency = api.get(f"/v1/log/consistency?old={old}&new={new}")
    assert consistency.status_code == 200, consistency.text
    document = consistency.json()
    verify_consistency(old, new, bytes.fromhex(log.first["root_hash"]), body.root_hash,
                       [bytes.fromhex(h) for h in document["consistency_proof"]])

    assert api.get(f"/v1/log/proof/{new + 5}").status_code == 404
    assert api.get(f"/v1/log/consistency?old={old + 1}&new={new}").status_code == 404
    assert api.get(f"/v1/log/consistency?old={new}&new={old}").status_code == 400


def _bundle_entries(data: bytes) -> list[bytes]:
    from archive.custody.mirror import unpack_bundle

    return unpack_bundle(data, "bundle")


class HttpTiles:
    """A tlog-tiles client's view: subtree hashes computed from tiles fetched over HTTP, nothing else."""

    def __init__(self, api: Any, size: int) -> None:
        self.api, self.size, self.fetched = api, size, 0
        self._cache: dict[tuple[int, int], bytes] = {}

    def tile(self, level: int, index: int) -> bytes:
        from archive.custody.mirror import index_path

        if (level, index) not in self._cache:
            width = min(256, (self.size >> (8 * level)) - index * 256)
            path = f"{level}/{index_path(index)}" + ("" if width == 256 else f".p/{width}")
            response = self.api.get(f"/v1/log/tile/{path}")
            assert response.status_code == 200, (path, response.text)
            self.fetched += 1
            self._cache[(level, index)] = response.content
        return self._cache[(level, index)]

    def subtree(self, level: int, index: int) -> bytes:
        from archive.custody.merkle import subtree_root

        tile_level, height = divmod(level, 8)
        first = index << height
        row = self.tile(tile_level, first // 256)[(first % 256) * 32:][: (1 << height) * 32]
        assert len(row) == (1 << height) * 32
        return subtree_root(row)


def test_a_proof_from_tiles_alone_recomputes_the_root(log: Log) -> None:
    from archive.custody.entry import leaf_hash
    from archive.custody.merkle import inclusion_proof, tree_root
    from archive.custody.verify import parse_checkpoint, verify_inclusion

    with client(log.home) as api:
        api.headers.update(bearer(log.auditor))
        note = api.get("/v1/log/checkpoint").text
        body = parse_checkpoint(note.split("\n\n", 1)[0] + "\n")
        tiles = HttpTiles(api, body.tree_size)
        assert tree_root(tiles, body.tree_size) == body.root_hash
        for seq in (0, 255, 256, 511, 599, body.tree_size - 1):
            bundle = tiles.api.get(_bundle_path(seq, body.tree_size)).content
            leaf = leaf_hash(_bundle_entries(bundle)[seq % 256])
            assert tiles.subtree(0, seq) == leaf  # the leaf tile holds the entry's leaf hash
            verify_inclusion(leaf, seq, body.tree_size, inclusion_proof(tiles, seq, body.tree_size), body.root_hash)
        assert tiles.fetched <= 5


def _bundle_path(seq: int, size: int) -> str:
    from archive.custody.mirror import index_path

    index = seq // 256
    width = min(256, size - index * 256)
    return f"/v1/log/tile/entries/{index_path(index)}" + ("" if width == 256 else f".p/{width}")


def test_only_auditors_and_custodians_read_the_log_but_everyone_gets_the_keys(log: Log) -> None:
    """The log names restricted items, incidents, victims and members by id: not for investigators.

    Its public key is for everyone with a token: a contributor verifies its own tlog-proof with it.
    """
    investigator = token_for(log.home, "log-investigator", "investigator")
    with client(log.home) as api:
        for token in (log.contributor, investigator):
            for path in ("/v1/log/checkpoint", "/v1/log/tile/0/000", "/v1/log/tile/entries/000",
                         "/v1/log/proof/0", "/v1/log/consistency?old=1&new=2"):
                response = api.get(path, headers=bearer(token))
                assert response.status_code == 403, (path, response.text)
            for path in ("/v1/log/vkey", "/v1/receipts/key"):
                response = api.get(path, headers=bearer(token))
                assert response.status_code == 200 and "+" in response.text, (path, response.text)
        assert api.get("/v1/log/proof/0", headers=bearer(log.auditor)).status_code == 200


def test_no_checkpoint_yet_is_a_clear_404_and_an_uncovered_event_a_409(tmp_path: Path) -> None:
    from archive.context import Archive
    from archive.custody.log import FIXITY_CHECK, append_event
    from archive.db import transaction

    home = make_home(tmp_path / "home")
    token = token_for(home, "aud", "auditor")
    with client(home) as api:
        api.headers.update(bearer(token))
        assert api.get("/v1/log/checkpoint").status_code == 200  # init signs the first one
        archive = Archive.open(home)
        try:
            with transaction(archive.engine) as session:
                seq = append_event(session, FIXITY_CHECK, actor="archive", item_id="x", details={"n": 1}).seq
        finally:
            archive.close()
        response = api.get(f"/v1/log/proof/{seq}")
        assert response.status_code == 409, response.text
        assert response.json()["error"] == "not_covered" and response.headers["retry-after"]
