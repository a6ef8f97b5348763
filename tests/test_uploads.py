"""Uploads: tus over the real app (in-process), and the service's promises attacked directly.

A partial upload is unreadable at rest; a wrong secret reads and writes nothing;
altered stored bytes are refused, never kept as altered evidence; offsets and
checksums hold; a duplicate is answered like a new file; a completion cut off
by a crash is finished by the next request, with exactly one arrival.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api_support import client, make_home

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


# --- fixtures and helpers -------------------------------------------------------------------------

class Home:
    """A fresh archive home with contributor tokens, and its in-process app."""

    def __init__(self, path: Path, api: dict[str, Any] | None = None) -> None:
        self.path = make_home(path)
        if api:
            with open(self.path / "config.toml", "a", encoding="utf-8") as config:
                config.write("\n[api]\n" + "".join(f"{k} = {v}\n" for k, v in api.items()))
        from archive.context import Archive
        from archive.services.accounts import add_user, create_token

        archive = Archive.open(self.path)
        self.tokens: dict[str, str] = {}
        for name in ("alice", "bob"):
            add_user(archive, name, "contributor")
            self.tokens[name] = create_token(archive, name)["token"]
        archive.close()

    def headers(self, who: str = "alice", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}", **TUS, **extra}

    def caller(self, who: str = "alice") -> Any:
        from archive.context import Runtime
        from archive.services.accounts import authenticate

        return authenticate(Runtime.open(self.path), self.tokens[who])

    def archive(self, who: str = "alice") -> Any:
        from archive.context import Runtime

        return Runtime.open(self.path).archive(self.caller(who).user_id)

    def count(self, sql: str, *args: Any) -> int:
        import sqlite3

        with sqlite3.connect(self.path / "catalog.db") as db:
            return int(db.execute(sql, args).fetchone()[0])


@pytest.fixture()
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


@pytest.fixture()
def app(home: Home) -> Iterator[Any]:
    with client(home.path) as test_client:
        yield test_client


def meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def create(app: Any, home: Home, data: bytes, who: str = "alice", **metadata: str) -> str:
    answer = app.post("/v1/uploads", headers=home.headers(who, **{"Upload-Length": str(len(data)),
                                                                "Upload-Metadata": meta(**metadata)}))
    assert answer.status_code == 201, answer.text
    assert answer.headers["Tus-Resumable"] == "1.0.0" and answer.headers["Upload-Expires"]
    return str(answer.headers["Location"])


def patch(app: Any, home: Home, url: str, offset: int, body: bytes, who: str = "alice", **extra: str) -> Any:
    return app.patch(url, content=body, headers=home.headers(who, **{"Upload-Offset": str(offset),
                                                                     "Content-Type": OCTETS, **extra}))


def receipt_of(answer: Any) -> str:
    return base64.b64decode(answer.headers["Upload-Receipt"]).decode()


def photo(corpus: Path) -> bytes:
    return (corpus / "media" / "jpg" / "Canon_40D.jpg").read_bytes()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- tus over HTTP ---------------------------------------------------------------------------------

def test_a_resumed_upload_completes_with_a_valid_receipt(app: Any, home: Home, corpus: Path) -> None:
    from archive.context import Archive
    from archive.custody.receipts import receipt_vkey, verify_receipt

    data = photo(corpus)
    url = create(app, home, data, filename="../../etc/Canon 40D.jpg", sha256=sha(data), filetype="image/jpeg")
    assert patch(app, home, url, 0, data[:3000]).headers["Upload-Offset"] == "3000"
    head = app.head(url, headers=home.headers())
    assert (head.status_code, head.headers["Upload-Offset"], head.headers["Upload-Length"]) == (
        200, "3000", str(len(data)))
    assert head.headers["Cache-Control"] == "no-store"
    from api.http.routes.uploads import parse_metadata

    assert parse_metadata(head.headers["Upload-Metadata"]) == {
        "filename": "../../etc/Canon 40D.jpg", "sha256": sha(data), "filetype": "image/jpeg"}
    done = patch(app, home, url, 3000, data[3000:])
    assert done.status_code == 204 and done.headers["Upload-Offset"] == str(len(data))
    fields = verify_receipt(receipt_of(done), receipt_vkey(Archive.open(home.path)))
    assert fields["sha256"] == sha(data) and int(fields["size"]) == len(data)
    assert fields["upload"] == url.split("/")[3]
    again = app.head(url, headers=home.headers())  # asked again: the same receipt, nothing more
    assert again.status_code == 200 and receipt_of(again) == receipt_of(done)
    assert home.count("SELECT count(*) FROM provenance WHERE item_id = ?", fields["item"]) == 1
    assert not (home.path / "uploads" / fields["upload"]).exists()


def test_creation_with_upload_in_one_request(app: Any, home: Home, corpus: Path) -> None:
    data = photo(corpus)
    checksum = "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()
    answer = app.post("/v1/uploads", content=data, headers=home.headers(**{
        "Upload-Length": str(len(data)), "Content-Type": OCTETS, "Upload-Checksum": checksum}))
    assert answer.status_code == 201 and answer.headers["Location"].startswith("/v1/uploads/up-")
    assert "sha256 " + sha(data) in receipt_of(answer)


def test_protocol_errors(app: Any, home: Home, corpus: Path) -> None:
    data = photo(corpus)
    url = create(app, home, data)
    wrong_version = app.head(url, headers={**home.headers(), "Tus-Resumable": "0.2.2"})
    assert wrong_version.status_code == 412 and wrong_version.headers["Tus-Version"] == "1.0.0"
    assert patch(app, home, url, 10, data[:10]).status_code == 409  # not where the upload stands
    wrong_type = app.patch(url, content=data[:10], headers=home.headers(**{"Upload-Offset": "0",
                                                                           "Content-Type": "text/plain"}))
    assert wrong_type.status_code == 415
    past = patch(app, home, url, 0, data + b"more")
    assert past.status_code == 413
    no_length = app.post("/v1/uploads", headers=home.headers())
    assert no_length.status_code == 400
    bad_meta = app.post("/v1/uploads", headers=home.headers(**{"Upload-Length": "5",
                                                               "Upload-Metadata": "filename @@@"}))
    assert bad_meta.status_code == 400
    bad_sum = patch(app, home, url, 0, data[:10], **{"Upload-Checksum": "md5 AAAA"})
    assert bad_sum.status_code == 400
    for answer in (wrong_version, past, no_length, bad_meta, bad_sum, wrong_type):
        assert answer.headers["Tus-Resumable"] == "1.0.0"
    assert app.head(url, headers=home.headers()).headers["Upload-Offset"] == "0"  # nothing of the refusals kept
    options = app.options("/v1/uploads", headers=TUS)
    assert options.status_code == 204
    assert set(options.headers["Tus-Extension"].split(",")) >= {"creation", "creation-with-upload", "checksum",
                                                                 "termination", "expiration"}
    assert options.headers["Tus-Checksum-Algorithm"] == "sha1,sha256"


def test_a_checksum_mismatch_is_460_and_the_chunk_is_discarded(app: Any, home: Home, corpus: Path) -> None:
    data = photo(corpus)
    url = create(app, home, data)
    good = "sha1 " + base64.b64encode(hashlib.sha1(data[:4000]).digest()).decode()
    bad = "sha1 " + base64.b64encode(hashlib.sha1(b"other bytes").digest()).decode()
    assert patch(app, home, url, 0, data[:4000], **{"Upload-Checksum": bad}).status_code == 460
    assert app.head(url, headers=home.headers()).headers["Upload-Offset"] == "0"
    folder = home.path / "uploads" / url.split("/")[3]
    assert [p.name for p in folder.iterdir() if p.name.endswith(".seg")] == []
    assert patch(app, home, url, 0, data[:4000], **{"Upload-Checksum": good}).headers["Upload-Offset"] == "4000"
    done = patch(app, home, url, 4000, data[4000:])
    assert "sha256 " + sha(data) in receipt_of(done)


def test_unknown_foreign_and_wrong_secret_are_one_answer(app: Any, home: Home, corpus: Path) -> None:
    data = photo(corpus)
    url = create(app, home, data)
    patch(app, home, url, 0, data[:100])
    _, _, _, upload_id, secret = url.split("/")
    cases = {
        "unknown": f"/v1/uploads/up-{'0' * 32}/{secret}",
        "wrong secret": f"/v1/uploads/{upload_id}/{'A' * len(secret)}",
    }
    answers = {name: patch(app, home, where, 100, data[100:200]) for name, where in cases.items()}
    answers["foreign"] = patch(app, home, url, 100, data[100:200], who="bob")
    answers["foreign head"] = app.head(url, headers=home.headers("bob"))
    answers["foreign delete"] = app.delete(url, headers=home.headers("bob"))
    for name, answer in answers.items():
        assert answer.status_code == 404, name
    bodies = {answers[n].text for n in ("unknown", "wrong secret", "foreign", "foreign delete")}
    assert len(bodies) == 1 and secret not in bodies.pop()
    assert app.head(url, headers=home.headers()).headers["Upload-Offset"] == "100"  # nothing appended


def test_a_duplicate_is_answered_like_a_new_file(app: Any, home: Home, corpus: Path) -> None:
    first, other = photo(corpus), (corpus / "media" / "jpg" / "Nikon_D70.jpg").read_bytes()
    answers = []
    for who, data in (("alice", first), ("bob", first), ("bob", other)):
        url = create(app, home, data, who, filename="x.jpg", sha256=sha(data))
        answers.append(patch(app, home, url, 0, data, who=who))
    shapes = {(a.status_code, tuple(sorted(k for k in a.headers if k != "content-length"))) for a in answers}
    assert len(shapes) == 1
    lines = [[line.split(" ")[0] for line in receipt_of(a).splitlines()] for a in answers]
    assert lines[0] == lines[1] == lines[2]
    assert all("duplicate" not in receipt_of(a) for a in answers)
    assert home.count("SELECT count(*) FROM items") == 2 and home.count("SELECT count(*) FROM provenance") == 3


def test_a_duplicate_is_analysed_like_a_new_file_and_nothing_kept_of_it(
    home: Home, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same work, same timing class: the duplicate's analysis runs too (its results are thrown away)."""
    from archive.services import uploads
    from ingest.steps.metadata import ExtractMetadata

    runs: list[str] = []
    original = ExtractMetadata.run

    def counted(self: ExtractMetadata, ingestion: Any, archive: Any) -> None:
        runs.append(str(ingestion.sha256))
        original(self, ingestion, archive)

    monkeypatch.setattr(ExtractMetadata, "run", counted)
    data = photo(corpus)
    for who in ("alice", "bob"):
        archive, caller = home.archive(who), home.caller(who)
        upload_id, secret, _ = uploads.create_upload(archive, caller, len(data), {})
        uploads.append(archive, caller, upload_id, secret, 0, iter([data]))
        uploads.complete(archive, caller, upload_id, secret)
    assert runs == [sha(data), sha(data)]
    assert home.count("SELECT count(*) FROM item_metadata") == 1


def test_termination_and_expiry_never_touch_a_completed_upload(tmp_path: Path, corpus: Path) -> None:
    import time

    from archive.services.uploads import expire_uploads

    home = Home(tmp_path / "home", {"upload_expiry_hours": 0.0003})  # about one second
    data = photo(corpus)
    with client(home.path) as app:
        done_url = create(app, home, data)
        assert patch(app, home, done_url, 0, data).status_code == 204
        assert app.delete(done_url, headers=home.headers()).status_code == 409
        gone_url = create(app, home, data)
        patch(app, home, gone_url, 0, data[:500])
        assert app.delete(gone_url, headers=home.headers()).status_code == 204
        ended = app.head(gone_url, headers=home.headers())  # its sender is told it ended, not a bare 404
        assert ended.status_code == 410 and ended.headers["Upload-Refused"] == "terminated"
        assert app.head(gone_url, headers=home.headers("bob")).status_code == 404  # anyone else: unknown
        assert not (home.path / "uploads" / gone_url.split("/")[3]).exists()
        idle_url = create(app, home, data)
        patch(app, home, idle_url, 0, data[:500])
        time.sleep(1.5)
        assert expire_uploads(home.archive()) == 1
        expired = app.head(idle_url, headers=home.headers())
        assert expired.status_code == 410 and expired.headers["Upload-Refused"] == "expired"
        assert not (home.path / "uploads" / idle_url.split("/")[3]).exists()
        kept = app.head(done_url, headers=home.headers())
        assert kept.status_code == 200 and kept.headers["Upload-Receipt"]
    assert home.count("SELECT count(*) FROM items") == 1


def test_limits(tmp_path: Path, corpus: Path) -> None:
    home = Home(tmp_path / "home", {"max_upload_bytes": 10_000, "max_open_uploads": 2,
                                    "upload_requests_per_minute": 6})
    with client(home.path) as app:
        big = app.post("/v1/uploads", headers=home.headers(**{"Upload-Length": "10001"}))
        assert big.status_code == 413
        for _ in range(2):
            assert app.post("/v1/uploads", headers=home.headers(**{"Upload-Length": "10"})).status_code == 201
        third = app.post("/v1/uploads", headers=home.headers(**{"Upload-Length": "10"}))
        assert third.status_code == 429 and third.headers["Retry-After"]
        assert app.post("/v1/uploads", headers=home.headers("bob", **{"Upload-Length": "10"})).status_code == 201
        answers = [app.post("/v1/uploads", headers=home.headers(**{"Upload-Length": "10"})) for _ in range(3)]
        assert answers[-1].status_code == 429 and "per token" in answers[-1].json()["detail"]
        assert 0 < int(answers[-1].headers["Retry-After"]) <= 60


def test_the_declared_sha256_is_checked_before_anything_is_kept(app: Any, home: Home, corpus: Path) -> None:
    data = photo(corpus)
    url = create(app, home, data, sha256=sha(b"another file"))
    refused = patch(app, home, url, 0, data)
    assert refused.status_code == 422 and "SHA-256" in refused.json()["detail"]
    assert "Upload-Receipt" not in refused.headers
    assert home.count("SELECT count(*) FROM items") == 0
    assert home.count("SELECT count(*) FROM provenance") == 0
    head = app.head(url, headers=home.headers())
    assert head.status_code == 422 and head.headers["Upload-Refused"] == "sha256-mismatch"
    assert not list((home.path / "uploads").iterdir())
    assert app.delete(url, headers=home.headers()).status_code == 204  # a refused upload may be ended (no 500)
    assert app.head(url, headers=home.headers()).status_code == 410
    bad_digest = app.post("/v1/uploads", headers=home.headers(**{"Upload-Length": "5",
                                                                  "Upload-Metadata": meta(sha256="not hex")}))
    assert bad_digest.status_code == 422


# --- the service's promises, attacked -------------------------------------------------------------

def _plaintext_runs(data: bytes, roots: list[Path]) -> list[str]:
    """Files under `roots` holding any 64-byte run of `data` (every such run holds an aligned 32-byte block)."""
    blocks = {data[at:at + 32] for at in range(0, len(data) - 31, 32)}
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file():
                continue
            content = path.read_bytes()
            if any(content[at:at + 32] in blocks for at in range(len(content) - 31)):
                found.append(str(path))
    return found


def test_a_half_done_upload_is_unreadable_at_rest(home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from archive.services import uploads

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    data = os.urandom(600_000)
    archive, caller = home.archive(), home.caller()
    upload_id, secret, _ = uploads.create_upload(archive, caller, len(data), {"filename": "half.bin"})
    uploads.append(archive, caller, upload_id, secret, 0, iter([data[:300_000]]))
    control = temp / "control"  # the detector itself finds a 64-byte run at an odd place
    control.write_bytes(b"?" * 7 + data[1001:1065] + b"?" * 7)
    assert _plaintext_runs(data[:300_000], [temp]) == [str(control)]
    control.unlink()
    assert _plaintext_runs(data[:300_000], [home.path, temp]) == []
    for path in home.path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_a_wrong_secret_can_neither_read_nor_append(home: Home) -> None:
    from archive.services import uploads
    from ingest.upload_store import SegmentReader, Segments, StoreDamaged, segment_key

    archive, caller = home.archive(), home.caller()
    upload_id, secret, _ = uploads.create_upload(archive, caller, 1000, {})
    uploads.append(archive, caller, upload_id, secret, 0, iter([b"a" * 400]))
    guess = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for call in (lambda: uploads.append(archive, caller, upload_id, guess, 400, iter([b"b" * 10])),
                 lambda: uploads.status(archive, caller, upload_id, guess),
                 lambda: uploads.complete(archive, caller, upload_id, guess),
                 lambda: uploads.terminate(archive, caller, upload_id, guess)):
        with pytest.raises(uploads.UploadNotFound):
            call()
    with pytest.raises(StoreDamaged):
        SegmentReader(Segments(home.path, upload_id, segment_key(guess, upload_id)), 400).read()
    assert uploads.status(archive, caller, upload_id, secret).offset == 400


def test_a_cut_off_body_keeps_what_arrived_unless_a_checksum_was_promised(home: Home) -> None:
    from archive.services import uploads

    archive, caller = home.archive(), home.caller()
    upload_id, secret, _ = uploads.create_upload(archive, caller, 10_000, {})

    def cut(n: int) -> Iterator[bytes]:
        yield b"x" * n
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        uploads.append(archive, caller, upload_id, secret, 0, cut(3000))
    assert uploads.status(archive, caller, upload_id, secret).offset == 3000
    with pytest.raises(ConnectionResetError):
        uploads.append(archive, caller, upload_id, secret, 3000, cut(2000), ("sha256", b"\0" * 32))
    assert uploads.status(archive, caller, upload_id, secret).offset == 3000


def test_a_flipped_byte_in_a_stored_segment_is_refused_not_kept(home: Home, corpus: Path) -> None:
    from archive.services import uploads

    data = photo(corpus)
    archive, caller = home.archive(), home.caller()
    upload_id, secret, _ = uploads.create_upload(archive, caller, len(data), {"filename": "p.jpg"})
    uploads.append(archive, caller, upload_id, secret, 0, iter([data[:-1]]))
    segment = next((home.path / "uploads" / upload_id).glob("*.seg"))
    blob = bytearray(segment.read_bytes())
    blob[100] ^= 0x20
    segment.write_bytes(bytes(blob))
    with pytest.raises(uploads.UploadRefused) as refused:
        uploads.append(archive, caller, upload_id, secret, len(data) - 1, iter([data[-1:]]))
        uploads.complete(archive, caller, upload_id, secret)
    assert refused.value.reason == "damaged"
    assert home.count("SELECT count(*) FROM items") == 0
    assert home.count("SELECT count(*) FROM provenance") == 0
    with pytest.raises(uploads.UploadRefused):  # asked again: the same refusal, nothing ingested
        uploads.complete(archive, caller, upload_id, secret)
    assert home.count("SELECT count(*) FROM items") == 0


@pytest.mark.parametrize("point", ["before-commit", "after-commit"])
def test_a_completion_cut_off_by_a_crash_ends_with_exactly_one_arrival(
    home: Home, corpus: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    from archive.services import uploads

    data = photo(corpus)
    archive, caller = home.archive(), home.caller()
    upload_id, secret, _ = uploads.create_upload(archive, caller, len(data), {"sha256": sha(data)})
    uploads.append(archive, caller, upload_id, secret, 0, iter([data]))
    monkeypatch.setenv(uploads.FAULT_ENV, point)
    with pytest.raises(uploads.SimulatedCrash):
        uploads.complete(archive, caller, upload_id, secret)
    monkeypatch.delenv(uploads.FAULT_ENV)
    found = uploads.status(archive, caller, upload_id, secret)  # what a client's HEAD sees
    assert (found.completed is not None) == (point == "after-commit")
    assert found.offset == len(data)
    with client(home.path) as app:  # the client asks again, over HTTP
        again = app.head(f"/v1/uploads/{upload_id}/{secret}", headers=home.headers())
        assert again.status_code == 200
        retried = patch(app, home, f"/v1/uploads/{upload_id}/{secret}", len(data), b"")
        assert retried.status_code == 204 and receipt_of(retried) == receipt_of(again)
    assert home.count("SELECT count(*) FROM items") == 1
    assert home.count("SELECT count(*) FROM provenance") == 1
    assert home.count("SELECT count(*) FROM events WHERE event_type = 'ingestion' AND outcome = 'success'") == 1
    assert not (home.path / "uploads" / upload_id).exists()


def test_the_incident_named_is_linked_and_a_bad_one_never_refuses(home: Home, corpus: Path) -> None:
    from archive.context import Archive
    from archive.roles import Role
    from archive.services import uploads
    from archive.services.incidents import add_incident
    from archive.services.links import links_of

    custodian = Archive.open(home.path, "tester")
    add_incident(custodian, {"ref": "INC-1", "type": "killing", "started_at": "2023-12-09", "governorate": "idlib",
                             "attribution": "syrian_regime"}, role=Role.CUSTODIAN)
    archive, caller = home.archive(), home.caller()
    results = []
    for data, ref in ((photo(corpus), "INC-1"),
                      ((corpus / "media" / "jpg" / "Nikon_D70.jpg").read_bytes(), "NO-SUCH")):
        upload_id, secret, _ = uploads.create_upload(archive, caller, len(data), {"incident": ref})
        uploads.append(archive, caller, upload_id, secret, 0, iter([data]))
        results.append(uploads.complete(archive, caller, upload_id, secret))
    assert [r.status for r in results] == ["preserved", "preserved"]
    linked = links_of(custodian, results[0].item_id, role=Role.CUSTODIAN, type_="item")["links"]
    assert [(link["kind"], link["b"]["name"], link["created_by"]) for link in linked] == [
        ("item_incident", "INC-1", caller.user_id)]  # credited to the uploader (tests/test_upload_leaks.py)
    assert links_of(custodian, results[1].item_id, role=Role.CUSTODIAN, type_="item")["links"] == []
    assert home.count("SELECT count(*) FROM events WHERE event_type = 'validation' AND outcome = 'failure' "
                      "AND item_id = ?", results[1].item_id) == 1


def test_a_large_stream_is_analysed_by_a_job_committed_with_it(
    home: Home, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archive.services import uploads
    from ingest.steps import receive

    monkeypatch.setattr(receive, "IN_MEMORY_LIMIT", 4096)
    monkeypatch.setattr(receive, "SMALL_FILE", 4096)
    data = photo(corpus)
    archive, caller = home.archive(), home.caller()
    upload_id, secret, _ = uploads.create_upload(archive, caller, len(data), {})
    uploads.append(archive, caller, upload_id, secret, 0, iter([data]))
    done = uploads.complete(archive, caller, upload_id, secret)
    assert home.count("SELECT count(*) FROM jobs WHERE kind = 'analysis' AND item_id = ?", done.item_id) == 1
    assert home.count("SELECT count(*) FROM item_metadata WHERE item_id = ?", done.item_id) == 0
    assert home.count("SELECT count(*) FROM items WHERE id = ? AND media_type = 'image/jpeg'", done.item_id) == 1


def test_webdav_streams_are_ingested_and_their_receipt_stored(home: Home, corpus: Path) -> None:
    from archive.catalog.uploads import stored_receipt
    from archive.services import uploads

    data = photo(corpus)
    archive, caller = home.archive(), home.caller()
    done = uploads.ingest_stream(archive, caller, iter([data[:1000], data[1000:]]), filename="dav.jpg",
                                 sha256=sha(data))
    assert done.sha256 == sha(data) and done.size == len(data)
    row = uploads.upload_row(archive, done.upload_id)
    assert row is not None and row.state == "done" and row.item_id == done.item_id
    assert row.length is None and row.offset is None  # no size in clear once ended
    assert stored_receipt(archive, done.upload_id) == (caller.user_id, done.receipt)
    from archive.services.recent_uploads import recent_uploads

    assert [u.label for u in recent_uploads(archive, caller)] == ["dav.jpg"]
    assert not (home.path / "uploads" / done.upload_id).exists()
    with pytest.raises(uploads.UploadRefused):
        uploads.ingest_stream(archive, caller, iter([data]), filename="bad.jpg", sha256=sha(b"x"))


def test_a_locked_server_keeps_uploads_and_their_receipts_settle_on_unlock(
    home: Home, corpus: Path, tmp_path: Path
) -> None:
    """A server without the catalog key still acknowledges uploads; the stored receipt opens after unlock."""
    import shutil

    from archive.catalog.uploads import stored_receipt
    from archive.services import uploads
    from archive.services.errors import Locked
    from archive.services.settle import settle

    vault = tmp_path / "vault"
    vault.mkdir()
    keys = ("catalog.key", "access.key", "custodian.key")
    for name in keys:
        shutil.move(home.path / "keys" / name, vault / name)
    data = photo(corpus)
    archive, caller = home.archive(), home.caller()
    upload_id, secret, _ = uploads.create_upload(archive, caller, len(data), {"filename": "locked.jpg"})
    uploads.append(archive, caller, upload_id, secret, 0, iter([data]))
    done = uploads.complete(archive, caller, upload_id, secret)
    assert done.sha256 == sha(data) and done.status == "preserved"
    assert uploads.complete(archive, caller, upload_id, secret) == done  # the client's secret opens the outcome
    with pytest.raises(Locked):
        stored_receipt(archive, upload_id)
    for name in keys:
        shutil.move(vault / name, home.path / "keys" / name)
    unlocked = home.archive()
    settle(unlocked)
    assert stored_receipt(unlocked, upload_id) == (caller.user_id, done.receipt)


def test_an_upload_whose_stored_bytes_vanished_is_refused_not_a_crash(home: Home) -> None:
    import shutil

    from archive.services import uploads

    archive, caller = home.archive(), home.caller()
    upload_id, secret, _ = uploads.create_upload(archive, caller, 1000, {})
    uploads.append(archive, caller, upload_id, secret, 0, iter([b"a" * 500]))
    shutil.rmtree(home.path / "uploads" / upload_id)
    with pytest.raises(uploads.UploadRefused) as refused:
        uploads.append(archive, caller, upload_id, secret, 500, iter([b"b" * 500]))
    assert refused.value.reason == "damaged" and "again" in str(refused.value)
    assert home.count("SELECT count(*) FROM items") == 0


def test_one_request_at_a_time_per_upload_and_no_completion_before_the_last_byte(home: Home) -> None:
    from archive.services import uploads
    from ingest.upload_store import Segments

    archive, caller = home.archive(), home.caller()
    upload_id, secret, _ = uploads.create_upload(archive, caller, 1000, {})
    with Segments(home.path, upload_id).lock():  # another request is writing it
        with pytest.raises(uploads.UploadBusy):
            uploads.append(archive, caller, upload_id, secret, 0, iter([b"a" * 10]))
    with pytest.raises(uploads.Incomplete):
        uploads.complete(archive, caller, upload_id, secret)
    assert uploads.append(archive, caller, upload_id, secret, 0, iter([b"a" * 10])) == 10


# --- limits that must not lock anyone out or exhaust the server (issue 11 review) -----------------

def test_completions_at_once_are_bounded_and_the_rest_wait_their_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    from archive.services import uploads

    home = Home(tmp_path / "home", {"max_completions": 2, "max_open_uploads": 8})
    running, peak, lock = [0], [0], threading.Lock()
    real = uploads._complete_locked

    def counted(*args: Any, **kwargs: Any) -> Any:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(0.3)  # long enough that every client is waiting at once
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(uploads, "_complete_locked", counted)
    files = [os.urandom(3000) for _ in range(6)]
    answers: list[Any] = [None] * len(files)
    with client(home.path) as app:
        urls = [create(app, home, data) for data in files]

        def finish(i: int) -> None:
            answers[i] = patch(app, home, urls[i], 0, files[i])

        threads = [threading.Thread(target=finish, args=(i,)) for i in range(len(files))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        for data, answer in zip(files, answers, strict=True):  # all answered, none failed for waiting
            assert answer is not None and answer.status_code == 204, answer and answer.text
            assert "sha256 " + sha(data) in receipt_of(answer)
        # WebDAV's one-shot arrivals go through the same gate (the service's, beside the route's).
        threads = [threading.Thread(target=lambda d=data: uploads.ingest_stream(
            home.archive(), home.caller(), iter([d]), filename="f.bin")) for data in
            [os.urandom(3000) for _ in range(4)]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert peak[0] == 2, f"{peak[0]} completions ran at once (limit 2)"
    assert home.count("SELECT count(*) FROM items") == 10


def test_open_uploads_are_counted_per_token_and_the_429_says_when_and_how_a_slot_frees(tmp_path: Path) -> None:
    import sqlite3
    import time
    from email.utils import parsedate_to_datetime

    from archive.context import Archive
    from archive.services.accounts import create_token

    home = Home(tmp_path / "home", {"max_open_uploads": 2})
    with client(home.path) as app:
        first = app.post("/v1/uploads", headers=home.headers(**{"Upload-Length": "100"}))
        empty_expires = parsedate_to_datetime(first.headers["Upload-Expires"]).timestamp() - time.time()
        assert 3500 < empty_expires <= 3600  # no byte yet: an hour, not a day
        patch(app, home, first.headers["Location"], 0, b"x" * 10)
        moved = parsedate_to_datetime(app.head(first.headers["Location"], headers=home.headers())
                                      .headers["Upload-Expires"]).timestamp() - time.time()
        assert moved > 23 * 3600  # a day after its last byte
        second = app.post("/v1/uploads", headers=home.headers(**{"Upload-Length": "100"}))
        assert second.status_code == 201
        full = app.post("/v1/uploads", headers=home.headers(**{"Upload-Length": "100"}))
        assert full.status_code == 429
        assert 3500 < int(full.headers["Retry-After"]) <= 3601  # the empty one, the oldest to expire, frees it
        detail = full.json()["detail"]
        assert "per token" in detail and "DELETE" in detail and "upload URL" in detail
        # Another token of the same contributor (a reinstalled app) is not locked out.
        archive = Archive.open(home.path)
        home.tokens["alice2"] = create_token(archive, "alice")["token"]
        archive.close()
        assert app.post("/v1/uploads", headers=home.headers("alice2", **{"Upload-Length": "100"})).status_code == 201
        # One being ingested frees its slot soon: a short retry.
        with sqlite3.connect(home.path / "catalog.db") as db:
            db.execute("UPDATE uploads SET state = 'completing' WHERE id = ?", (second.headers["Location"]
                                                                              .split("/")[3],))
        soon = app.post("/v1/uploads", headers=home.headers(**{"Upload-Length": "100"}))
        assert soon.status_code == 429 and int(soon.headers["Retry-After"]) <= 30
        # DELETE on an upload URL frees a slot at once.
        assert app.delete(first.headers["Location"], headers=home.headers()).status_code == 204
        assert app.post("/v1/uploads", headers=home.headers(**{"Upload-Length": "100"})).status_code == 201


def test_a_10_kb_file_name_is_kept_as_a_bounded_harmless_label(app: Any, home: Home, corpus: Path) -> None:
    data = photo(corpus)
    name = "../" * 20 + "\x1b[31m" + "n" * 10_000 + "\n.jpg"
    answer = app.post("/v1/uploads", content=data, headers=home.headers(**{
        "Upload-Length": str(len(data)), "Content-Type": OCTETS, "Upload-Metadata": meta(filename=name)}))
    assert answer.status_code == 201 and "sha256 " + sha(data) in receipt_of(answer)
    kept = base64.b64decode(app.head(answer.headers["Location"], headers=home.headers())
                            .headers["Upload-Metadata"].split(" ")[1]).decode()
    assert len(kept) <= 255 and "/" not in kept and kept.isprintable() and kept.startswith("[31mnnn")
    assert kept.endswith("n.jpg")  # its extension kept
    # WebDAV: a long path (within what a URL carries) is a label too, not a refusal.
    long_path = "/dav/" + "folder/" * 100 + "m" * 1500 + ".jpg"
    put = app.put(long_path, content=data, headers={"Authorization": "Basic " + base64.b64encode(
        f"alice:{home.tokens['alice']}".encode()).decode()})
    assert put.status_code == 201, put.text
    assert home.count("SELECT count(*) FROM items") == 1


def test_a_patch_for_a_busy_upload_is_answered_at_once_and_the_connection_closed(tmp_path: Path) -> None:
    import socket

    import httpx

    from ingest.upload_store import Segments
    from tests.api_support import serve

    home = Home(tmp_path / "home")
    server = serve(home.path, env={"TMPDIR": str(tmp_path)})
    try:
        made = httpx.post(f"{server.url}/v1/uploads", headers=home.headers(**{"Upload-Length": "10000000"}))
        path = str(httpx.URL(made.headers["location"]).path)
        upload_id = path.split("/")[3]
        request = (f"PATCH {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {home.tokens['alice']}\r\n"
                   "Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                   "Content-Length: 10000000\r\n\r\n").encode() + b"y" * 65536
        with Segments(home.path, upload_id).lock():  # an older request (its client perhaps dead) holds it
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer:
                part = sock.recv(65536)
                assert part, answer
                answer += part
            head = answer.split(b"\r\n\r\n")[0].lower()
            assert head.startswith(b"http/1.1 409") and b"connection: close" in head, answer
            try:  # and the server lets the connection go: the client stops sending its 10 MB
                while sock.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            sock.close()
        found = httpx.head(f"{server.url}{path}", headers=home.headers())
        assert found.headers["upload-offset"] == "0"  # nothing of the refused body kept
        sent = httpx.patch(f"{server.url}{path}", content=b"z" * 1000,
                           headers=home.headers(**{"Upload-Offset": "0", "Content-Type": OCTETS}))
        assert sent.status_code == 204 and sent.headers["upload-offset"] == "1000"
    finally:
        server.stop()


def test_a_body_cut_off_by_any_interruption_keeps_what_arrived(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from archive.services import uploads

    archive, caller = home.archive(), home.caller()
    upload_id, secret, _ = uploads.create_upload(archive, caller, 10_000, {})

    def cancelled(n: int) -> Iterator[bytes]:
        yield b"x" * n
        raise asyncio.CancelledError()  # a BaseException: a cancelled request, not a read error

    with pytest.raises(asyncio.CancelledError):
        uploads.append(archive, caller, upload_id, secret, 0, cancelled(96))
    assert uploads.status(archive, caller, upload_id, secret).offset == 96

    def failing(*_: Any) -> None:
        raise RuntimeError("catalog unavailable")

    monkeypatch.setattr(uploads, "_advance", failing)  # keeping fails: the cause is still what is raised
    with pytest.raises(ConnectionResetError) as raised:
        def cut() -> Iterator[bytes]:
            yield b"y" * 10
            raise ConnectionResetError("the client went away")

        uploads.append(archive, caller, upload_id, secret, 96, cut())
    assert "could not be kept" in " ".join(getattr(raised.value, "__notes__", []))


def test_edge_answers_never_pretend_success(app: Any, home: Home, corpus: Path) -> None:
    data = photo(corpus)
    url = create(app, home, data, filename="a.jpg")
    assert patch(app, home, url, 0, data).status_code == 204
    more = patch(app, home, url, len(data), b"more")  # past the end of a completed upload
    assert more.status_code == 413 and more.headers["Connection"] == "close"
    again = patch(app, home, url, len(data), b"")
    assert again.status_code == 204 and again.headers["Upload-Receipt"]
    twice = app.post("/v1/uploads", headers=[("Authorization", f"Bearer {home.tokens['alice']}"),
                                             ("Tus-Resumable", "1.0.0"), ("Upload-Length", "10"),
                                             ("Upload-Length", "20")])
    assert twice.status_code == 400 and "more than once" in twice.json()["detail"]
    assert home.count("SELECT count(*) FROM uploads") == 1


def test_a_head_that_finishes_a_completion_carries_the_metadata_too(
    home: Home, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archive.services import uploads

    data = photo(corpus)
    archive, caller = home.archive(), home.caller()
    upload_id, secret, _ = uploads.create_upload(archive, caller, len(data), {"filename": "cut.jpg"})
    uploads.append(archive, caller, upload_id, secret, 0, iter([data]))
    monkeypatch.setenv(uploads.FAULT_ENV, "before-commit")
    with pytest.raises(uploads.SimulatedCrash):
        uploads.complete(archive, caller, upload_id, secret)
    monkeypatch.delenv(uploads.FAULT_ENV)
    with client(home.path) as app:
        first = app.head(f"/v1/uploads/{upload_id}/{secret}", headers=home.headers())
        second = app.head(f"/v1/uploads/{upload_id}/{secret}", headers=home.headers())
    assert first.status_code == second.status_code == 200
    assert first.headers["Upload-Metadata"] == second.headers["Upload-Metadata"] == meta(filename="cut.jpg")


def _raw_patch(port: int, path: str, token: str, offset: int, length: int) -> Any:
    import socket

    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.sendall((f"PATCH {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
                  f"Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
                  f"Content-Length: {length}\r\n\r\n").encode())
    return sock


def _answer(sock: Any) -> bytes:
    answer = b""
    while b"\r\n\r\n" not in answer:
        part = sock.recv(65536)
        if not part:
            break
        answer += part
    return answer


def _trickle(sock: Any, steps: int) -> tuple[bytes, int]:
    """Send 10 bytes every 0.1 s (100 bytes a second) until the server answers: (its answer, bytes sent)."""
    sent = 0
    answer = b""
    sock.settimeout(0.2)
    for _ in range(steps):
        try:
            sock.sendall(b"d" * 10)
            sent += 10
        except OSError:
            break
        try:
            answer = sock.recv(65536)
            break
        except TimeoutError:
            pass
    sock.close()
    return answer, sent


def test_slow_bodies_cannot_starve_other_uploads(tmp_path: Path) -> None:
    import threading
    import time

    import httpx

    from tests.api_support import serve

    home = Home(tmp_path / "home", {"bodies_per_token": 1, "min_body_bytes_per_second": 1000,
                                    "body_rate_window_seconds": 1})
    server = serve(home.path, env={"TMPDIR": str(tmp_path)})
    try:
        def new(who: str) -> str:
            made = httpx.post(f"{server.url}/v1/uploads", headers=home.headers(who, **{"Upload-Length": "100000"}))
            return str(httpx.URL(made.headers["location"]).path)

        held, waiting, others = new("alice"), new("alice"), new("bob")
        # One token's bodies are read one at a time (here): its second waits, another token's goes at once.
        sock = _raw_patch(server.port, held, home.tokens["alice"], 0, 2000)
        sock.sendall(b"a" * 1000)
        time.sleep(0.3)
        answers: dict[str, Any] = {}

        def second() -> None:
            answers["alice"] = httpx.patch(f"{server.url}{waiting}", content=b"b" * 500, timeout=30,
                                           headers=home.headers(**{"Upload-Offset": "0", "Content-Type": OCTETS}))

        thread = threading.Thread(target=second)
        thread.start()
        started = time.monotonic()
        bob = httpx.patch(f"{server.url}{others}", content=b"c" * 500, timeout=30,
                          headers=home.headers("bob", **{"Upload-Offset": "0", "Content-Type": OCTETS}))
        assert bob.status_code == 204 and time.monotonic() - started < 2
        time.sleep(0.3)
        assert "alice" not in answers  # waits its turn (holding no thread)
        sock.sendall(b"a" * 1000)
        assert _answer(sock).startswith(b"HTTP/1.1 204")
        sock.close()
        thread.join(30)
        assert answers["alice"].status_code == 204 and answers["alice"].headers["upload-offset"] == "500"
        # A trickle below the minimum rate is cut off with a reason; what arrived is kept for resume.
        sock = _raw_patch(server.port, held, home.tokens["alice"], 2000, 50000)
        answer, sent = _trickle(sock, 40)
        assert answer.startswith(b"HTTP/1.1 408") and b"connection: close" in answer.lower(), answer
        assert b"too_slow" in answer or b"slower than" in answer
        kept = int(httpx.head(f"{server.url}{held}", headers=home.headers()).headers["upload-offset"])
        assert 2000 < kept <= 2000 + sent
    finally:
        server.stop()


def test_a_trickling_webdav_put_is_cut_off_like_a_tus_body(tmp_path: Path) -> None:
    """WebDAV PUTs share the tus bodies' limits (R4): a PUT below the minimum rate is refused, never held forever,
    and another token's request goes through meanwhile."""
    import base64
    import socket
    import time

    import httpx

    from tests.api_support import serve

    home = Home(tmp_path / "home", {"min_body_bytes_per_second": 1000, "body_rate_window_seconds": 1})
    server = serve(home.path, env={"TMPDIR": str(tmp_path)})
    try:
        basic = base64.b64encode(f"x:{home.tokens['alice']}".encode()).decode()
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        sock.sendall((f"PUT /dav/slow.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {basic}\r\n"
                      "Content-Length: 50000\r\n\r\n").encode())
        started = time.monotonic()
        answer, _ = _trickle(sock, 60)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - started < 6
        bob = httpx.put(f"{server.url}/dav/quick.bin", content=os.urandom(2000), auth=("x", home.tokens["bob"]),
                        timeout=30)
        assert bob.status_code == 201
    finally:
        server.stop()


def test_an_upload_with_every_byte_in_is_not_expired_as_idle(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from archive.services import uploads

    home = Home(tmp_path / "home", {"upload_expiry_hours": 0.0003})  # about one second
    data = photo(corpus)
    archive, caller = home.archive(), home.caller()
    cut_id, cut_secret, _ = uploads.create_upload(archive, caller, len(data), {})
    uploads.append(archive, caller, cut_id, cut_secret, 0, iter([data]))
    monkeypatch.setenv(uploads.FAULT_ENV, "before-commit")
    with pytest.raises(uploads.SimulatedCrash):  # its completion cut off: the row stays `completing`
        uploads.complete(archive, caller, cut_id, cut_secret)
    monkeypatch.delenv(uploads.FAULT_ENV)
    never_id, never_secret, _ = uploads.create_upload(archive, caller, len(data), {})
    uploads.append(archive, caller, never_id, never_secret, 0, iter([data]))  # every byte, no completion yet
    idle_id, idle_secret, _ = uploads.create_upload(archive, caller, len(data), {})
    uploads.append(archive, caller, idle_id, idle_secret, 0, iter([data[:100]]))
    time.sleep(1.5)
    assert uploads.expire_uploads(archive) == 1  # only the idle one
    with pytest.raises(uploads.UploadGone):
        uploads.status(archive, caller, idle_id, idle_secret)
    with client(home.path) as app:  # the clients come back late: both are completed, not dropped
        for upload_id, secret in ((cut_id, cut_secret), (never_id, never_secret)):
            late = app.head(f"/v1/uploads/{upload_id}/{secret}", headers=home.headers())
            assert late.status_code == 200 and late.headers["Upload-Receipt"], late.text
    assert home.count("SELECT count(*) FROM items") == 1  # the same file twice: one item, two receipts
