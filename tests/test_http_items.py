"""Items over HTTP, attacked as a client would: the verified original, locked servers, bad copies mid-stream,
the auditor's view, compartments, and a file compared with /v1/similar that leaves nothing behind."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api_support import bearer, client, make_home, serve, token_record
from tests.conftest import Cli

SOURCE = "Courier-Nightjar-5520"
NOTE = "handed over at the Bab al-Hawa crossing"


class Home:
    """An archive home with a photo and a larger file ingested, a token (and user id) per role."""

    def __init__(self, root: Path, corpus: Path, big: int = 600_000) -> None:
        self.home = make_home(root / "home")
        self.cli = Cli(self.home)
        self.photo = corpus / "media/jpg/gps/DSCN0010.jpg"
        self.blob = root / "statement_Leila_Osman_6604.bin"
        self.blob.write_bytes(os.urandom(big))
        reports = self.cli.json_lines("ingest", str(self.photo), str(self.blob), "--source", SOURCE, "--note", NOTE)
        assert all(r["status"] == "preserved" for r in reports), reports
        self.ids = {Path(r["path"]).name: r["id"] for r in reports}
        self.tokens: dict[str, str] = {}
        self.users: dict[str, str] = {}
        for role in ("custodian", "investigator", "contributor", "auditor"):
            made = token_record(self.home, f"{role}-user", role)
            self.tokens[role], self.users[role] = made["token"], made["user"]

    def headers(self, role: str) -> dict[str, str]:
        return bearer(self.tokens[role])

    def events(self, item_id: str, event_type: str) -> list[Any]:
        from sqlmodel import Session, col, select

        from archive.catalog.events import Event
        from archive.context import Archive

        archive = Archive.open(self.home)
        try:
            with Session(archive.engine) as session:
                return list(session.exec(select(Event).where(Event.item_id == item_id, Event.event_type == event_type)
                                         .order_by(col(Event.seq))).all())
        finally:
            archive.close()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Home:
    return Home(tmp_path_factory.mktemp("items"), corpus)


@pytest.fixture()
def http(home: Home) -> Iterator[Any]:
    with client(home.home) as test_client:
        yield test_client


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("streamed", [False, True], ids=["verified-whole", "streamed"])
def test_the_original_is_the_file_ingested_and_its_download_an_access_event(
        home: Home, http: Any, monkeypatch: pytest.MonkeyPatch, streamed: bool) -> None:
    from api.http.routes import items

    if streamed:
        monkeypatch.setattr(items, "VERIFY_IN_MEMORY", 64 * 1024)  # the 600 KB file goes the streaming way
    item = home.ids[home.blob.name]
    before = len(home.events(item, "access"))
    answer = http.get(f"/v1/items/{item}/original", headers=home.headers("investigator"))
    assert answer.status_code == 200, answer.text
    assert _sha(answer.content) == _sha(home.blob.read_bytes())
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["cache-control"] == "no-store"
    assert home.blob.name not in answer.headers.get("content-disposition", "")  # the id, never the original name
    assert answer.headers["content-length"] == str(home.blob.stat().st_size)
    import base64

    digest = base64.b64encode(hashlib.sha256(answer.content).digest()).decode()
    assert answer.headers["repr-digest"] == f"sha-256=:{digest}:"
    events = home.events(item, "access")
    assert len(events) == before + 1
    assert events[-1].actor == home.users["investigator"] and events[-1].outcome == "success"
    assert events[-1].details["action"] == "download original (http)"
    assert home.users["investigator"] and "investigator-user" not in str(events[-1].details)


def test_who_may_download_and_what_is_not_there(home: Home, http: Any) -> None:
    item = home.ids[home.photo.name]
    for role in ("auditor", "contributor"):
        refused = http.get(f"/v1/items/{item}/original", headers=home.headers(role))
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        assert refused.content[:3] != b"\xff\xd8\xff"
    assert http.get("/v1/items", headers=home.headers("contributor")).status_code == 403
    assert http.get(f"/v1/items/{item}", headers=home.headers("contributor")).status_code == 403
    for path in ("/v1/items/0123456789abcdef", "/v1/items/0123456789abcdef/original",
                 "/v1/items/0123456789abcdef/similar"):
        missing = http.get(path, headers=home.headers("investigator"))
        assert missing.status_code == 404 and missing.json()["error"] == "not_found", (path, missing.text)
    assert http.get("/v1/items/abc", headers=home.headers("investigator")).status_code == 400  # too short a prefix
    too_far = http.get(f"/v1/items/{item}/similar?max_distance=65", headers=home.headers("investigator"))
    assert too_far.status_code == 422


def test_an_arrival_gets_its_channel_and_source_record(home: Home, http: Any) -> None:
    investigator = home.headers("investigator")
    made = http.post("/v1/sources", headers=investigator, json={"ref": "SRC-FILMER", "kind": "filmer"})
    assert made.status_code == 201, made.text
    item = home.ids[home.blob.name]
    done = http.patch(f"/v1/items/{item}/provenance", headers=investigator,
                      json={"channel": "messaging", "source": "SRC-FILMER", "reason": "the filmer sent it"})
    assert done.status_code == 200, done.text
    assert done.json()["changed"] is True and done.json()["source_ref"] == "SRC-FILMER"
    arrival = http.get(f"/v1/items/{item}", headers=investigator).json()["provenance"][0]
    assert (arrival["channel"], arrival["source_ref"]) == ("messaging", "SRC-FILMER")
    assert http.patch(f"/v1/items/{item}/provenance", headers=investigator,
                      json={"channel": "pigeon"}).status_code == 422
    assert http.patch(f"/v1/items/{item}/provenance", headers=investigator,
                      json={"source": "SRC-NOBODY"}).status_code == 404
    assert http.patch("/v1/items/0123456789abcdef/provenance", headers=investigator,
                      json={"channel": "email"}).status_code == 404
    assert http.patch(f"/v1/items/{item}/provenance", headers=home.headers("auditor"),
                      json={"channel": "email"}).status_code == 403


def test_an_auditor_gets_no_names_no_hashes_no_provenance(home: Home, http: Any) -> None:
    listed = http.get("/v1/items", headers=home.headers("auditor"))
    shown = http.get(f"/v1/items/{home.ids[home.photo.name]}", headers=home.headers("auditor"))
    assert listed.status_code == 200 and shown.status_code == 200, (listed.text, shown.text)
    assert {i["id"] for i in listed.json()["data"]} == set(home.ids.values())
    secrets = [_sha(home.photo.read_bytes()), _sha(home.blob.read_bytes()), home.photo.name, home.blob.name,
               "Leila", SOURCE, NOTE, "custodian-user", "tester", "NIKON", "latitude"]
    for answer in (listed, shown):
        for secret in secrets:
            assert secret.lower() not in answer.text.lower(), (secret, answer.text[:300])
    # The custodian's view of the same item does hold them (so the test can fail).
    full = http.get(f"/v1/items/{home.ids[home.photo.name]}", headers=home.headers("custodian")).text
    assert _sha(home.photo.read_bytes()) in full and SOURCE in full


def test_an_item_of_a_restricted_case_is_not_found_by_an_investigator_outside_it(home: Home, http: Any) -> None:
    custodian, investigator = home.headers("custodian"), home.headers("investigator")
    made = http.post("/v1/incidents", headers=custodian, json={
        "ref": "INC-SEALED", "type": "killing", "started_at": "2023-12-09", "governorate": "idlib",
        "attribution": "syrian_regime"})
    assert made.status_code == 201, made.text
    item = home.ids[home.photo.name]
    assert http.post("/v1/links", headers=custodian, json={"a": item, "b": "INC-SEALED"}).status_code == 201
    home.cli("cases", "add", "sealed-case")
    home.cli("cases", "incident", "sealed-case", "INC-SEALED")
    unknown = http.get("/v1/items/0123456789abcdef", headers=investigator).json()
    for path in (f"/v1/items/{item}", f"/v1/items/{item}/original", f"/v1/items/{item}/similar"):
        hidden = http.get(path, headers=investigator)
        assert hidden.status_code == 404, (path, hidden.text)
        assert hidden.json()["detail"] == unknown["detail"].replace("0123456789abcdef", item)
    assert item not in http.get("/v1/items", headers=investigator).text
    assert item in http.get("/v1/items", headers=custodian).text
    assert http.get(f"/v1/items/{item}/original", headers=custodian).status_code == 200
    home.cli("cases", "incident", "sealed-case", "INC-SEALED", "--remove")
    assert http.get(f"/v1/items/{item}", headers=investigator).status_code == 200


def _tree(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file under the roots with its size and mtime (the catalog's own files left out: reads touch them)."""
    out = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.name.startswith("catalog.db"):
                stat = path.stat()
                out[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return out


def test_a_file_compared_by_similar_is_kept_nowhere(home: Home, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image, ImageOps

    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))
    monkeypatch.setattr(tempfile, "tempdir", None)
    query = tmp_path / "query" / "reposted.png"
    query.parent.mkdir()
    with Image.open(home.photo) as im:
        ImageOps.mirror(im.resize((320, 240))).save(query)
    data = query.read_bytes()
    with client(home.home) as http:
        http.get("/v1/items", headers=home.headers("investigator"))  # warm: the index built, the token seen
        log_size = len(http.get("/v1/items", headers=home.headers("custodian")).json()["data"])
        events_before = len(home.events(home.ids[home.photo.name], "access"))
        before = _tree(home.home, spool)
        found = http.post("/v1/similar", headers=home.headers("investigator"),
                          files={"file": ("reposted.png", data, "image/png")})
        assert found.status_code == 200, found.text
        assert [m["id"] for m in found.json()] == [home.ids[home.photo.name]]
        assert 0 <= found.json()[0]["distance"] <= 11
        assert _tree(home.home, spool) == before  # nothing written: no spool, no item, no staging file
        assert len(http.get("/v1/items", headers=home.headers("custodian")).json()["data"]) == log_size
        assert len(home.events(home.ids[home.photo.name], "access")) == events_before
        # By item, the stored one: the mirrored re-post is not held, so nothing but what was ingested.
        by_item = http.get(f"/v1/items/{home.ids[home.photo.name]}/similar", headers=home.headers("investigator"))
        assert by_item.status_code == 200 and all(m["id"] in home.ids.values() for m in by_item.json())
        # Refusals: too large (413), not multipart, no file field, bytes that are no picture, a wrong role.
        from api.http.routes import items

        monkeypatch.setattr(items, "MAX_SIMILAR_BYTES", 1000)
        assert http.post("/v1/similar", headers=home.headers("investigator"),
                         files={"file": ("big.png", data, "image/png")}).status_code == 413
        monkeypatch.undo()
        monkeypatch.setenv("TMPDIR", str(spool))
        monkeypatch.setattr(tempfile, "tempdir", None)
        assert http.post("/v1/similar", headers=home.headers("investigator"), content=data,
                         params={}).status_code == 422
        assert http.post("/v1/similar", headers=home.headers("investigator"),
                         files={"other": ("a.png", data, "image/png")}).status_code == 422
        noise = http.post("/v1/similar", headers=home.headers("investigator"),
                          files={"file": ("noise.png", os.urandom(5000), "image/png")})
        assert noise.status_code == 400 and "fingerprint" in noise.json()["detail"]
        assert http.post("/v1/similar", headers=home.headers("auditor"),
                         files={"file": ("a.png", data, "image/png")}).status_code == 403
        assert _tree(home.home, spool) == before


def test_a_locked_server_refuses_a_download_with_503(tmp_path: Path, corpus: Path) -> None:
    locked = Home(tmp_path, corpus, big=1000)
    vault = tmp_path / "vault"
    vault.mkdir()
    for name in ("access.key", "custodian.key"):  # the catalog key stays: the item is found, not read
        (locked.home / "keys" / name).rename(vault / name)
    with client(locked.home) as http:
        answer = http.get(f"/v1/items/{locked.ids[locked.photo.name]}/original", headers=locked.headers("custodian"))
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "locked" and "access identity" in answer.json()["detail"]
        assert b"\xff\xd8\xff" not in answer.content


def _corrupt_copies(home: Home, item: str, at: int) -> None:
    """Flip one byte of every stored copy of the item's original, `at` bytes from the end."""
    shown = home.cli.json("show", item)
    for replica in shown["replicas"]:
        name = Path(replica["object"]).name
        found = [p for p in (home.home / "storage").rglob("*") if p.is_file() and p.name == name]
        assert len(found) == 1, replica
        path = found[0]
        path.chmod(0o600)
        data = bytearray(path.read_bytes())
        data[-at] ^= 0xFF
        path.write_bytes(bytes(data))


def test_a_bad_copy_is_never_handed_out_whole(tmp_path: Path, corpus: Path) -> None:
    """Small: every copy verified before a byte is sent, each bad one recorded, 409. Large (past the in-memory
    limit, over a real server): the transfer is cut before its last chunk, and the failure recorded."""
    import httpx

    from api.http.routes.items import VERIFY_IN_MEMORY

    bad = Home(tmp_path, corpus, big=VERIFY_IN_MEMORY + 3 * 65536)
    small, large = bad.ids[bad.photo.name], bad.ids[bad.blob.name]
    sound = tmp_path / "sound.bin"
    sound.write_bytes(os.urandom(VERIFY_IN_MEMORY + 3 * 65536))
    good = bad.cli.json_lines("ingest", str(sound))[0]["id"]
    _corrupt_copies(bad, small, 10)
    _corrupt_copies(bad, large, 10)
    with client(bad.home) as http:
        refused = http.get(f"/v1/items/{small}/original", headers=bad.headers("investigator"))
        assert refused.status_code == 409 and refused.json()["error"] == "check_failed", refused.text
        assert b"\xff\xd8\xff" not in refused.content
    assert {r["state"] for r in bad.cli.json("show", small)["replicas"]} == {"corrupt"}
    assert bad.events(small, "access")[-1].outcome == "failure"

    server = serve(bad.home)
    try:
        received = 0
        with pytest.raises(httpx.HTTPError):  # a truncated body: the client cannot take it for the file
            with httpx.stream("GET", f"{server.url}/v1/items/{large}/original", headers=bad.headers("investigator"),
                              timeout=60) as answer:
                assert answer.status_code == 200
                assert int(answer.headers["content-length"]) == bad.blob.stat().st_size
                for chunk in answer.iter_bytes():
                    received += len(chunk)
        assert 0 < received < bad.blob.stat().st_size
        # A sound copy whose download the client breaks off: the plaintext it had is an access all the same.
        with httpx.stream("GET", f"{server.url}/v1/items/{good}/original", headers=bad.headers("investigator"),
                          timeout=60) as answer:
            assert answer.status_code == 200
            for _chunk in answer.iter_bytes():
                break
        deadline = time.monotonic() + 20
        while not bad.events(good, "access") and time.monotonic() < deadline:
            time.sleep(0.1)
        broken = bad.events(good, "access")
        assert [(e.outcome, e.actor) for e in broken] == [("warning", bad.users["investigator"])]
        assert broken[0].details["verified"].startswith("no")
    finally:
        server.stop()
    assert bad.events(large, "access")[-1].outcome == "failure"
    assert "corrupt" in {r["state"] for r in bad.cli.json("show", large)["replicas"]}
