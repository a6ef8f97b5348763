"""Hostile requests against the tus routes: each is refused clearly, and none changes what is kept.

In-process (FastAPI's TestClient over the real app) for the route-by-route
checks; a real `evidence serve` for the ones about connections: a client that
trickles its body and then stalls, and one PATCH of 100 MB (memory must stay
bounded while bytes stream in).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_support import bearer, client, make_home, serve, token_record
from tests.conftest import Cli, row_counts
from tests.test_worker import configure

pytestmark = pytest.mark.timeout(240)

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}
UPLOAD_TABLES = ("items", "provenance", "replicas")


def b64(value: str | bytes) -> str:
    return base64.b64encode(value.encode("utf-8") if isinstance(value, str) else value).decode("ascii")


def metadata(**values: str | bytes) -> str:
    return ",".join(f"{key} {b64(value)}" for key, value in values.items())


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path / "home")


@pytest.fixture()
def tokens(home: Path) -> dict[str, dict[str, Any]]:
    """One token per role, plus a second contributor."""
    made = {role: token_record(home, f"user-{role}", role) for role in ("contributor", "investigator", "custodian",
                                                                        "auditor")}
    made["other"] = token_record(home, "user-other", "contributor")
    return made


@pytest.fixture()
def api(home: Path, tokens: dict[str, dict[str, Any]]) -> Iterator[Any]:
    with client(home) as test_client:
        yield test_client


def auth(tokens: dict[str, dict[str, Any]], who: str = "contributor") -> dict[str, str]:
    return {**TUS, **bearer(str(tokens[who]["token"]))}


def create(api: Any, headers: dict[str, str], length: int, meta: str | None = None, body: bytes = b"") -> Any:
    extra = {"Upload-Length": str(length)}
    if meta is not None:
        extra["Upload-Metadata"] = meta
    if body:
        extra.update(OCTETS)
    return api.post("/v1/uploads", headers={**headers, **extra}, content=body)


def location(response: Any) -> str:
    assert response.status_code == 201, f"{response.status_code}: {response.text}"
    return str(httpx.URL(str(response.headers["location"])).path)


def patch(api: Any, headers: dict[str, str], path: str, offset: int, body: bytes, **extra: str) -> Any:
    return api.patch(path, headers={**headers, **OCTETS, "Upload-Offset": str(offset), **extra}, content=body)


def offset_of(api: Any, headers: dict[str, str], path: str) -> int:
    head = api.head(path, headers=headers)
    assert head.status_code in (200, 204), head.status_code
    return int(head.headers["upload-offset"])


def assert_json_error(response: Any, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text[:300]}"
    body = response.json()
    assert set(body) >= {"error", "detail"}, body
    for word in words:
        assert word.lower() in json.dumps(body).lower(), f"{word!r} not in {body}"
    return dict(body)


def sha256_meta(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- offsets and sizes ----------------------------------------------------------------------------------


def test_a_patch_at_the_wrong_offset_is_409_and_changes_nothing(api: Any, tokens: dict[str, Any]) -> None:
    headers = auth(tokens)
    data = os.urandom(1000)
    path = location(create(api, headers, len(data), metadata(filename="a.bin", sha256=sha256_meta(data))))
    assert patch(api, headers, path, 0, data[:400]).status_code == 204
    for wrong in (0, 399, 401, 1000):  # a replay, off by one either way, past the end
        answer = patch(api, headers, path, wrong, data[wrong:wrong + 100] or b"x")
        assert_json_error(answer, 409, "offset")
        assert offset_of(api, headers, path) == 400
    assert patch(api, headers, path, 400, data[400:], **{"Content-Type": "text/plain"}).status_code == 415
    missing = api.patch(path, headers={**headers, **OCTETS}, content=data[400:])
    assert missing.status_code == 400 and offset_of(api, headers, path) == 400
    done = patch(api, headers, path, 400, data[400:])
    assert done.status_code == 204 and done.headers.get("upload-receipt")


def test_upload_length_over_the_maximum_is_413_and_nothing_is_made(home: Path, tokens: dict[str, Any]) -> None:
    configure(home, api={"max_upload_bytes": 1_000_000})
    with client(home) as api:
        headers = auth(tokens)
        before = row_counts(home, ("uploads",))
        assert_json_error(create(api, headers, 1_000_001), 413)
        assert_json_error(create(api, headers, 2**63), 413)
        assert row_counts(home, ("uploads",)) == before
        options = api.options("/v1/uploads", headers=TUS)
        assert options.headers.get("tus-max-size") == "1000000"
        assert create(api, headers, 1_000_000).status_code == 201
        for bad in ("-1", "1e6", "ten", ""):
            answer = api.post("/v1/uploads", headers={**headers, "Upload-Length": bad})
            assert 400 <= answer.status_code < 500 and answer.status_code != 413, (bad, answer.status_code)


def test_a_body_past_the_declared_length_is_413_and_none_of_it_is_kept(api: Any, tokens: dict[str, Any]) -> None:
    headers = auth(tokens)
    data = os.urandom(300)
    path = location(create(api, headers, 100, metadata(filename="short.bin")))
    assert_json_error(patch(api, headers, path, 0, data), 413)
    assert offset_of(api, headers, path) == 0
    path2 = location(create(api, headers, 100, metadata(filename="short2.bin")))
    assert patch(api, headers, path2, 0, data[:60]).status_code == 204
    assert_json_error(patch(api, headers, path2, 60, data[60:160]), 413)
    assert offset_of(api, headers, path2) == 60
    # Creation-with-upload with a body longer than Upload-Length: refused, no upload left open.
    assert_json_error(create(api, headers, 10, metadata(filename="c.bin"), body=data), 413)
    assert row_counts(api.app.state.runtime.home, ("items",))["items"] == 0


# -- metadata and names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("meta", [
    "filename !!!not-base64!!!",
    "filename " + b64("x")[:-1],             # truncated padding
    "filename " + b64("a.jpg") + " extra",   # three parts
    "filename,note @@@@",                    # a bad value beside a key without one
    "file name " + b64("a"),                 # a key with a space
    "filename " + b64("a") + ",filename " + b64("b"),  # a key twice
])
def test_bad_upload_metadata_is_a_clear_400(api: Any, tokens: dict[str, Any], meta: str) -> None:
    before = row_counts(api.app.state.runtime.home, ("uploads",))
    answer = create(api, auth(tokens), 10, meta)
    assert_json_error(answer, 400, "metadata")
    assert row_counts(api.app.state.runtime.home, ("uploads",)) == before


def test_a_malformed_sha256_in_metadata_is_refused_at_creation(api: Any, tokens: dict[str, Any]) -> None:
    for bad in ("abc", "A" * 64, "g" * 64, hashlib.sha256(b"x").hexdigest() + "00"):
        answer = create(api, auth(tokens), 10, metadata(filename="a", sha256=bad))
        assert 400 <= answer.status_code < 500, (bad, answer.status_code)
        assert "sha256" in answer.text.lower()


HOSTILE_NAMES = [
    "../../../../etc/passwd",
    "..\\..\\windows\\system32\\evil.dll",
    "/absolute/path/x.jpg",
    "a/b/../../../c.jpg",
    "evil\x00name\r\nX-Injected: 1\x1b[31m.jpg",
    "\u202egpj.exe",                          # right-to-left override
    "n" * 10_000 + ".jpg",                    # 10 kB
]


def test_path_tricks_and_control_characters_in_names_stay_harmless_labels(
    home: Path, api: Any, tokens: dict[str, Any]
) -> None:
    headers = auth(tokens)
    made: list[tuple[str, str]] = []
    for n, name in enumerate(HOSTILE_NAMES):
        data = os.urandom(1000 + n)
        created = create(api, headers, len(data), metadata(filename=name, sha256=sha256_meta(data)))
        if len(name) > 1024 and created.status_code != 201:
            # A name too long to keep may be refused up front, clearly, before any byte is sent.
            assert_json_error(created, created.status_code, "filename")
            assert 400 <= created.status_code < 500
            continue
        path = location(created)
        done = patch(api, headers, path, 0, data)
        assert done.status_code == 204, f"{name[:40]!r}: {done.status_code} {done.text[:200]}"
        receipt = base64.b64decode(done.headers["upload-receipt"]).decode()
        item = next(line.split(" ", 1)[1] for line in receipt.splitlines() if line.startswith("item "))
        made.append((name, item))
    cli = Cli(home)
    for name, item in made:
        labels = [p["original_name"] for p in cli.json("show", item)["provenance"]]
        assert len(labels) == 1
        label = labels[0] or ""
        assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in label), repr(label[:80])
        assert "../" not in label and "..\\" not in label, repr(label[:80])
        assert len(label) <= 1024, f"a {len(label)}-character label kept for a {len(name)}-character name"
    # Never used as a path: nothing of any name exists anywhere on the server's side.
    planted = [p for p in home.parent.rglob("*") if p.name in ("passwd", "evil.dll", "x.jpg", "c.jpg")
               or p.name.startswith("nnnnnnnn") or "Injected" in p.name]
    assert planted == [], planted


def test_a_wrong_client_sha256_is_refused_and_nothing_is_kept(home: Path, api: Any, tokens: dict[str, Any]) -> None:
    headers = auth(tokens)
    data = os.urandom(5000)
    before = row_counts(home, (*UPLOAD_TABLES, "events"))
    path = location(create(api, headers, len(data), metadata(filename="w.bin", sha256=sha256_meta(b"other bytes"))))
    assert patch(api, headers, path, 0, data[:2000]).status_code == 204
    done = patch(api, headers, path, 2000, data[2000:])
    assert 400 <= done.status_code < 500, f"a wrong sha256 was accepted: {done.status_code}"
    assert "sha256" in done.text.lower()
    assert not done.headers.get("upload-receipt")
    after = row_counts(home, (*UPLOAD_TABLES, "events"))
    assert {t: after[t] for t in UPLOAD_TABLES} == {t: before[t] for t in UPLOAD_TABLES}, "an item was recorded"
    assert Cli(home).json("list") == []
    receipt = api.get(f"/v1/receipts/{path.split('/')[3]}", headers=bearer(tokens["contributor"]["token"]))
    assert receipt.status_code in (404, 409, 410), receipt.status_code
    # The same bytes with the right hash then go in as one new item.
    again = location(create(api, headers, len(data), metadata(filename="w.bin", sha256=sha256_meta(data))))
    assert patch(api, headers, again, 0, data).status_code == 204
    assert len(Cli(home).json("list")) == 1


# -- checksums ------------------------------------------------------------------------------------------


def test_a_checksum_mismatch_is_460_and_the_chunk_is_discarded(api: Any, tokens: dict[str, Any]) -> None:
    headers = auth(tokens)
    data = os.urandom(3000)
    path = location(create(api, headers, len(data), metadata(filename="c.bin", sha256=sha256_meta(data))))

    def checksum(algorithm: str, chunk: bytes) -> str:
        return f"{algorithm} {b64(hashlib.new(algorithm, chunk).digest())}"

    wrong = patch(api, headers, path, 0, data[:1000], **{"Upload-Checksum": checksum("sha256", data[1:1001])})
    assert wrong.status_code == 460, wrong.status_code
    assert offset_of(api, headers, path) == 0
    wrong1 = patch(api, headers, path, 0, data[:1000], **{"Upload-Checksum": checksum("sha1", b"nope")})
    assert wrong1.status_code == 460 and offset_of(api, headers, path) == 0
    for bad in ("md5 " + b64(hashlib.md5(data[:1000]).digest()), "sha256 !!!", "sha256", "crc32 AAAA"):
        answer = patch(api, headers, path, 0, data[:1000], **{"Upload-Checksum": bad})
        assert answer.status_code == 400, (bad, answer.status_code)
        assert offset_of(api, headers, path) == 0
    assert patch(api, headers, path, 0, data[:1000], **{"Upload-Checksum": checksum("sha1", data[:1000])}) \
        .status_code == 204
    done = patch(api, headers, path, 1000, data[1000:], **{"Upload-Checksum": checksum("sha256", data[1000:])})
    assert done.status_code == 204 and done.headers.get("upload-receipt")
    options = api.options("/v1/uploads", headers=TUS)
    assert {"sha1", "sha256"} <= set(options.headers["tus-checksum-algorithm"].split(","))
    assert {"creation", "creation-with-upload", "checksum", "termination", "expiration"} <= {
        e.strip() for e in options.headers["tus-extension"].split(",")}


# -- who may ----------------------------------------------------------------------------------------------


def test_an_auditor_may_not_upload(api: Any, tokens: dict[str, Any]) -> None:
    assert_json_error(create(api, auth(tokens, "auditor"), 10), 403, "auditor")
    for role in ("investigator", "custodian"):
        assert create(api, auth(tokens, role), 10).status_code == 201


def test_a_revoked_token_is_401_even_mid_upload(home: Path, api: Any, tokens: dict[str, Any]) -> None:
    headers = auth(tokens)
    path = location(create(api, headers, 100))
    assert patch(api, headers, path, 0, b"x" * 40).status_code == 204
    Cli(home)("tokens", "revoke", str(tokens["contributor"]["id"]))
    for answer in (patch(api, headers, path, 40, b"y" * 60), api.head(path, headers=headers),
                   create(api, headers, 10)):
        assert answer.status_code == 401
        assert answer.headers.get("www-authenticate", "").lower().startswith("bearer")
    assert "revoked" in patch(api, headers, path, 40, b"y").json()["detail"].lower()


def test_basic_auth_is_refused_outside_dav(api: Any, tokens: dict[str, Any]) -> None:
    token = str(tokens["contributor"]["token"])
    basic = {**TUS, "Authorization": "Basic " + b64(f"anyone:{token}")}
    answer = create(api, basic, 10)
    assert_json_error(answer, 401, "basic")
    assert answer.headers["www-authenticate"].lower().startswith("bearer")
    path = location(create(api, auth(tokens), 10))
    assert api.head(path, headers=basic).status_code == 401
    assert patch(api, basic, path, 0, b"x").status_code == 401
    assert offset_of(api, auth(tokens), path) == 0


def test_another_contributors_upload_is_not_found_even_with_its_url(api: Any, tokens: dict[str, Any]) -> None:
    mine, theirs = auth(tokens), auth(tokens, "other")
    data = os.urandom(100)
    path = location(create(api, mine, len(data)))
    assert patch(api, mine, path, 0, data[:50]).status_code == 204
    upload_id, secret = path.split("/")[3:5]
    wrong_secret = f"/v1/uploads/{upload_id}/{secret[:-2]}{'AA' if not secret.endswith('AA') else 'BB'}"
    other_id = upload_id[:-1] + ("1" if upload_id[-1] != "1" else "2")
    unknown = api.head(f"/v1/uploads/{other_id}/{secret}", headers=theirs)
    for answer in (api.head(path, headers=theirs), patch(api, theirs, path, 50, data[50:]),
                   api.delete(path, headers=theirs), api.head(wrong_secret, headers=mine),
                   patch(api, mine, wrong_secret, 50, data[50:])):
        assert answer.status_code == unknown.status_code == 404, answer.status_code
        assert secret not in answer.text and secret not in str(answer.headers)
    assert offset_of(api, mine, path) == 50
    assert api.get(f"/v1/receipts/{upload_id}", headers=bearer(tokens["other"]["token"])).status_code == 404


def test_termination_never_touches_a_completed_upload(home: Path, api: Any, tokens: dict[str, Any]) -> None:
    headers = auth(tokens)
    data = os.urandom(500)
    path = location(create(api, headers, len(data), metadata(filename="t.bin", sha256=sha256_meta(data))))
    assert patch(api, headers, path, 0, data).status_code == 204
    answer = api.delete(path, headers=headers)
    assert answer.status_code in (204, 403, 409, 410), answer.status_code
    listed = Cli(home).json("list")
    assert [(i["sha256"], i["status"]) for i in listed] == [(sha256_meta(data), "preserved")]
    # An open upload is terminated: gone, its bytes unreadable.
    open_path = location(create(api, headers, 100))
    assert patch(api, headers, open_path, 0, b"z" * 10).status_code == 204
    assert api.delete(open_path, headers=headers).status_code == 204
    assert api.head(open_path, headers=headers).status_code in (404, 410)


# -- connections (a real server) --------------------------------------------------------------------------


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_a_very_slow_client_holds_one_connection_and_is_cut_off_when_it_stalls(home: Path, tmp_path: Path) -> None:
    configure(home, api={"body_idle_seconds": 2})
    token = str(token_record(home, "trickle", "contributor")["token"])
    server = serve(home, env={"TMPDIR": str(tmp_path)})
    try:
        headers = {**TUS, **bearer(token)}
        created = httpx.post(f"{server.url}/v1/uploads", headers={**headers, "Upload-Length": "1000000"})
        path = str(httpx.URL(created.headers["location"]).path)
        assert server.proc is not None
        other = os.urandom(20000)

        def quick_upload() -> None:
            made = httpx.post(f"{server.url}/v1/uploads", content=other,
                              headers={**headers, **OCTETS, "Upload-Length": str(len(other)),
                                       "Upload-Metadata": metadata(filename="quick.bin")}, timeout=10)
            assert made.status_code == 201 and made.headers["upload-offset"] == str(len(other))

        quick_upload()  # warm: the ingest's imports are loaded before memory is measured
        rss_before = _rss_kib(server.proc.pid)
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        sock.sendall((f"PATCH {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
                      "Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                      "Content-Length: 1000000\r\n\r\n").encode())
        body = os.urandom(1000)
        sent = 0
        slowest = 0.0
        for tick in range(12):  # 6 s at 8 bytes every half second
            sock.sendall(body[sent:sent + 8])
            sent += 8
            started = time.monotonic()
            if tick % 3 == 0:  # meanwhile the server answers others at once, a whole upload included
                assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
                quick_upload()
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.5)
        assert slowest < 3.0, f"the server took {slowest:.1f} s to answer beside a trickling client"
        grew = (_rss_kib(server.proc.pid) - rss_before) / 1024  # the server itself (sandbox children come and go)
        assert grew < 32, f"the server grew by {grew:.0f} MiB beside one trickling client"
        # Then it stalls: within the idle limit (and some slack) the server lets the connection go.
        stalled = time.monotonic()
        sock.settimeout(15)
        try:
            answer = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            answer = b"" if time.monotonic() - stalled < 15 else b"TIMEOUT"
        assert answer != b"TIMEOUT", "a stalled body was never cut off"
        waited = time.monotonic() - stalled
        assert 1.5 <= waited < 12, f"cut off after {waited:.1f} s (idle limit 2 s)"
        sock.close()
        # What arrived is kept for resume.
        head = httpx.head(f"{server.url}{path}", headers=headers)
        kept = int(head.headers["upload-offset"])
        assert kept == sent, (kept, sent, answer[:300], server.log_text()[-3000:])
        assert "/v1/uploads" in server.log_text()
    finally:
        server.stop()


def test_a_100_mb_patch_streams_in_bounded_memory(home: Path, tmp_path: Path) -> None:
    token = str(token_record(home, "bulk", "contributor")["token"])
    server = serve(home, env={"TMPDIR": str(tmp_path)})
    try:
        headers = {**TUS, **bearer(token)}
        size = 100 * 1024 * 1024
        created = httpx.post(f"{server.url}/v1/uploads", headers={**headers, "Upload-Length": str(2 * size)})
        path = str(httpx.URL(created.headers["location"]).path)
        assert server.proc is not None
        pid = server.proc.pid
        before = _rss_kib(pid)
        peak = [before]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _rss_kib(pid))
                time.sleep(0.05)

        block = os.urandom(1024 * 1024)

        def body() -> Iterator[bytes]:
            for _ in range(size // len(block)):
                yield block

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        answer = httpx.patch(f"{server.url}{path}", content=body(), timeout=120,
                             headers={**headers, **OCTETS, "Upload-Offset": "0", "Content-Length": str(size)})
        stop.set()
        sampler.join()
        assert answer.status_code == 204 and answer.headers["upload-offset"] == str(size)
        grew = (peak[0] - before) / 1024
        assert grew < 64, f"the server's RSS grew by {grew:.0f} MiB while a 100 MiB body streamed in"
    finally:
        server.stop()
