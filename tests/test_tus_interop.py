"""The tus API against the real tuspy client and a real `evidence serve` on loopback.

What a field contributor relies on: an upload whose connection keeps breaking
resumes from where the server stood (not from zero) and ends with the right
bytes kept and a receipt that verifies offline; so does one whose server is
SIGKILLed and restarted, even in the middle of the completing request; 50 at
once all end acknowledged and preserved; and while uploads are half done,
nothing of them is readable at rest nor any upload secret in the server's log.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_support import Server, bearer, make_home, serve, token_for
from tests.conftest import Cli, row_counts
from tests.flaky_proxy import FlakyProxy
from tests.plaintext_scan import Shingles
from tests.test_worker import configure
from tests.tus_uploads import (
    Sent,
    check_receipt,
    metadata_for,
    receipt_vkey,
    split_upload_url,
    upload,
    uploader,
)

pytestmark = pytest.mark.timeout(300)

MB = 1_000_000
BIG = 50 * MB


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path / "home")


@pytest.fixture()
def server_tmp(tmp_path: Path) -> Path:
    """The server's TMPDIR: scanned with the home for plaintext."""
    path = tmp_path / "server-tmp"
    path.mkdir()
    return path


@pytest.fixture()
def server(home: Path, server_tmp: Path) -> Iterator[Server]:
    running = serve(home, env={"TMPDIR": str(server_tmp)})
    try:
        yield running
    finally:
        running.stop()


def random_file(directory: Path, name: str, size: int, seed: int | None = None) -> tuple[Path, bytes]:
    """`size` incompressible bytes (seeded: the same test makes the same file), written outside the archive."""
    directory.mkdir(parents=True, exist_ok=True)
    data = random.Random(seed).randbytes(size) if seed is not None else os.urandom(size)
    path = directory / name
    path.write_bytes(data)
    return path, data


def items_by_sha(home: Path) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for item in Cli(home).json("list"):
        found.setdefault(item["sha256"], []).append(item)
    return found


def ingestion_events(home: Path, item_id: str) -> int:
    from sqlalchemy import text

    from archive.context import Archive

    archive = Archive.open(home)
    try:
        with archive.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM events WHERE item_id = :i AND event_type = 'ingestion'"),
                                    {"i": item_id}).scalar_one())
    finally:
        archive.close()


def assert_kept(home: Path, sent: Sent, data: bytes, vkey: str, tmp: Path, *, fetch: bool = False) -> None:
    """The receipt verifies and names the one item holding exactly these bytes, preserved, ingested once."""
    digest = hashlib.sha256(data).hexdigest()
    fields = check_receipt(sent.receipt, vkey, upload_id=sent.upload_id, sha256=digest, size=len(data))
    held = items_by_sha(home).get(digest, [])
    assert [i["id"] for i in held] == [fields["item"]], f"items with this hash: {held}"
    assert held[0]["status"] == "preserved" and held[0]["size"] == len(data)
    assert ingestion_events(home, fields["item"]) == 1
    if fetch:  # decrypt the stored original and compare it with what was sent
        out = tmp / f"fetched-{sent.upload_id}"
        Cli(home)("get", fields["item"], "-o", str(out))
        assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
        out.unlink()


def test_a_50_mb_upload_cut_three_times_resumes_from_the_servers_offset(
    home: Path, server: Server, tmp_path: Path
) -> None:
    token = token_for(home, "field-1", "contributor")
    path, data = random_file(tmp_path / "client", "clip.bin", BIG, seed=11)
    # Cuts in the middle of the body (tuspy's default: the whole rest of the file in one PATCH).
    proxy = FlakyProxy(server.port, cuts=[BIG // 4 + 4321, BIG // 2 + 987, 3 * BIG // 4 + 55])
    try:
        sent = upload(proxy.url, token, path, retries=8, retry_delay=1, receipt_base=server.url)
    finally:
        proxy.close()
    assert proxy.cut_count == 3
    # Each resume started from the server's offset, past the previous one, never from zero.
    assert len(sent.resumed_at) >= 3, sent.resumed_at
    assert sent.resumed_at[0] > 0 and sent.resumed_at == sorted(sent.resumed_at), sent.resumed_at
    assert proxy.sent < 1.25 * BIG, f"the client sent {proxy.sent} bytes for a {BIG}-byte file"
    assert_kept(home, sent, data, receipt_vkey(home), tmp_path, fetch=True)
    # The receipt checks offline with the command a contributor would use, against the key the API serves.
    assert sent.receipt is not None
    (tmp_path / "receipt.txt").write_text(sent.receipt, encoding="utf-8")
    served_key = httpx.get(f"{server.url}/v1/receipts/key", headers=bearer(token), timeout=30)
    assert served_key.status_code == 200 and served_key.text.strip() == receipt_vkey(home).strip()
    (tmp_path / "receipt.vkey").write_text(served_key.text, encoding="utf-8")
    Cli(home)("receipt", "verify", str(tmp_path / "receipt.txt"), "--vkey", str(tmp_path / "receipt.vkey"))


def test_tuspy_checksummed_chunks_cut_mid_body_resume_from_a_chunk_boundary(
    home: Path, server: Server, tmp_path: Path
) -> None:
    """tuspy's own `Upload-Checksum` (sha1): a cut body cannot be checked, so none of it is kept; the client
    resumes from the last whole chunk, and sends each cut chunk once more."""
    token = token_for(home, "field-7", "contributor")
    size, chunk = 20 * MB, 4 * 1024 * 1024
    path, data = random_file(tmp_path / "client", "summed.bin", size, seed=17)
    proxy = FlakyProxy(server.port, cuts=[size // 4 + 1234, size // 2 + 4321, 3 * size // 4 + 77])
    try:
        sent = upload(proxy.url, token, path, chunk_size=chunk, checksum=True, retries=8, retry_delay=1,
                      receipt_base=server.url)
    finally:
        proxy.close()
    assert proxy.cut_count == 3
    assert sent.resumed_at and all(offset % chunk == 0 for offset in sent.resumed_at), sent.resumed_at
    assert max(sent.resumed_at) > 0
    assert proxy.sent < size + 3 * chunk + 100_000, proxy.sent
    assert_kept(home, sent, data, receipt_vkey(home), tmp_path)


def test_a_connection_that_dies_silently_frees_the_upload_after_the_idle_limit(
    home: Path, server_tmp: Path, tmp_path: Path
) -> None:
    """No RST reaches the server (a network that drops everything): it cuts the silent body itself, keeps what
    arrived, and the client's retries (409 busy meanwhile) resume from there."""
    configure(home, api={"body_idle_seconds": 2})
    token = token_for(home, "field-5", "contributor")
    size = 20 * MB
    path, data = random_file(tmp_path / "client", "quiet.bin", size, seed=15)
    running = serve(home, env={"TMPDIR": str(server_tmp)})
    proxy = FlakyProxy(running.port, cuts=[2 * size // 5], black_hole=True)
    try:
        started = time.monotonic()
        sent = upload(proxy.url, token, path, retries=15, retry_delay=1, receipt_base=running.url)
        took = time.monotonic() - started
    finally:
        proxy.close()
        running.stop()
    assert proxy.cut_count == 1
    # What arrived before the network went quiet was kept (every byte but the request's headers), and resumed from.
    assert max(sent.resumed_at) >= 2 * size // 5 - 2000, sent.resumed_at
    # While the server still waits on the silent body, a retry is answered 409 busy; that answer closes the
    # connection, so tuspy stops sending its whole rest each time (it sent 2x the file before that was so).
    assert proxy.sent < 1.8 * size, f"the client sent {proxy.sent} bytes for a {size}-byte file"
    assert took < 60
    assert_kept(home, sent, data, receipt_vkey(home), tmp_path)


def test_a_server_sigkilled_mid_upload_and_restarted_resumes(home: Path, server: Server, tmp_path: Path) -> None:
    token = token_for(home, "field-2", "contributor")
    path, data = random_file(tmp_path / "client", "clip.bin", BIG, seed=12)
    proxy = FlakyProxy(server.port)
    restarted = threading.Event()

    def crash() -> None:
        server.kill()
        time.sleep(0.5)
        server.start()
        restarted.set()

    proxy.at(2 * BIG // 5, crash)
    try:
        sent = upload(proxy.url, token, path, chunk_size=8 * 1024 * 1024, retries=40, retry_delay=1,
                      receipt_base=server.url)
    finally:
        proxy.close()
    assert restarted.wait(60), "the server was never restarted"
    after = [offset for offset in sent.resumed_at if offset > 0]
    assert after, f"tuspy never resumed from a non-zero offset: {sent.resumed_at}"
    assert proxy.sent < 1.5 * BIG, f"the client sent {proxy.sent} bytes for a {BIG}-byte file"
    assert_kept(home, sent, data, receipt_vkey(home), tmp_path, fetch=True)


def test_a_server_killed_while_completing_finishes_or_refuses_when_asked_again(
    home: Path, server: Server, tmp_path: Path
) -> None:
    """SIGKILL just as the last bytes arrive (the ingest runs inside that request): asking again ends it."""
    token = token_for(home, "field-3", "contributor")
    size = 20 * MB
    path, data = random_file(tmp_path / "client", "late.bin", size, seed=13)
    proxy = FlakyProxy(server.port)
    restarted = threading.Event()

    def crash() -> None:
        time.sleep(0.15)  # into the completing request's ingest, most runs
        server.kill()
        server.start()
        restarted.set()

    # The body's last byte passes once `sent` reaches the size plus both requests' headers (a few hundred bytes).
    proxy.at(size + 200, crash)
    try:
        sent = upload(proxy.url, token, path, chunk_size=4 * 1024 * 1024, retries=40, retry_delay=1,
                      receipt_base=server.url)
    finally:
        proxy.close()
    assert restarted.wait(60)
    if sent.receipt is None:  # a client that found its upload complete asks for its receipt, perhaps more than once
        deadline = time.monotonic() + 30
        while sent.receipt is None and time.monotonic() < deadline:
            head = httpx.head(sent.url, headers={**bearer(token), "Tus-Resumable": "1.0.0"}, timeout=30)
            assert head.status_code in (200, 204), head.status_code
            answer = httpx.get(f"{server.url}/v1/receipts/{sent.upload_id}", headers=bearer(token), timeout=30)
            if answer.status_code == 200:
                sent.receipt = answer.text
            time.sleep(0.5)
    assert_kept(home, sent, data, receipt_vkey(home), tmp_path)


@pytest.mark.parametrize("point", ["before-commit", "after-commit"])
def test_a_server_dying_on_either_side_of_the_items_commit_ends_with_one_item(
    home: Path, server_tmp: Path, tmp_path: Path, point: str
) -> None:
    """The same crash made exact: the server exits just before, or just after, the item's commit in the
    completing request; restarted, tuspy's retry (HEAD, an empty PATCH) ends with the one item and its receipt."""
    from archive.services.uploads import FAULT_ENV

    token = token_for(home, "field-6", "contributor")
    size = 5 * MB
    path, data = random_file(tmp_path / "client", f"{point}.bin", size)
    running = serve(home, env={"TMPDIR": str(server_tmp), FAULT_ENV: f"{point}:exit"})
    restarted = threading.Event()

    def restart_when_dead() -> None:
        assert running.proc is not None
        running.proc.wait(120)
        running.env.pop(FAULT_ENV, None)
        running.start()
        restarted.set()

    watcher = threading.Thread(target=restart_when_dead, daemon=True)
    watcher.start()
    try:
        sent = upload(running.url, token, path, retries=40, retry_delay=1)
        assert restarted.wait(60), "the server never died at the fault point"
        assert_kept(home, sent, data, receipt_vkey(home), tmp_path)
    finally:
        running.stop()


def test_50_concurrent_1_mb_uploads_are_all_acknowledged_and_preserved(
    home: Path, server: Server, tmp_path: Path
) -> None:
    tokens = [token_for(home, f"contributor-{n}", "contributor") for n in range(10)]
    files = [random_file(tmp_path / "client", f"f{n:02d}.bin", MB) for n in range(50)]

    def one(n: int) -> Sent:
        path, _ = files[n]
        return upload(server.url, tokens[n % len(tokens)], path)

    started = time.monotonic()
    with ThreadPoolExecutor(50) as pool:
        sent = list(pool.map(one, range(50)))
    elapsed = time.monotonic() - started
    vkey = receipt_vkey(home)
    held = items_by_sha(home)
    assert sum(len(v) for v in held.values()) == 50
    item_ids = set()
    for one_sent, (_, data) in zip(sent, files, strict=True):
        digest = hashlib.sha256(data).hexdigest()
        fields = check_receipt(one_sent.receipt, vkey, upload_id=one_sent.upload_id, sha256=digest, size=MB)
        assert [i["id"] for i in held[digest]] == [fields["item"]]
        assert held[digest][0]["status"] == "preserved"
        item_ids.add(fields["item"])
    assert len(item_ids) == 50 and len({s.upload_id for s in sent}) == 50
    assert row_counts(home, ("items",))["items"] == 50
    print(f"50 concurrent 1 MB uploads in {elapsed:.1f} s")


def _half_open_patch(server: Server, token: str, length: int, first: bytes) -> tuple[socket.socket, str]:
    """Create an upload and leave a PATCH in flight with `first` of its body sent: bytes mid-request."""
    created = httpx.post(f"{server.url}/v1/uploads", headers={**bearer(token), "Tus-Resumable": "1.0.0",
                                                             "Upload-Length": str(length)}, timeout=30)
    assert created.status_code == 201, created.text
    location = str(created.headers["location"])
    path = httpx.URL(server.url).join(location).raw_path.decode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    head = (f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {token}\r\n"
            f"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {length}\r\n\r\n")
    sock.sendall(head.encode() + first)
    return sock, location


def _new_temp_files(since: float, exclude: Path) -> list[Path]:
    """Files under the system temp dir written during the test (by code that ignores TMPDIR), outside
    `exclude` (pytest's own folders, where this test keeps the client's files and other runs theirs)."""
    found: list[Path] = []
    root = Path(tempfile.gettempdir())
    for dirpath, dirs, names in os.walk(root):
        if Path(dirpath).is_relative_to(exclude):
            dirs[:] = []
            continue
        for name in names:
            path = Path(dirpath) / name
            try:
                stat = path.lstat()
            except OSError:
                continue
            if path.is_file() and not path.is_symlink() and stat.st_mtime >= since and stat.st_size <= 256 * MB \
                    and stat.st_uid == os.getuid():
                found.append(path)
    return found


def test_half_done_uploads_leave_no_plaintext_at_rest_and_no_secret_in_the_log(
    home: Path, server_tmp: Path, tmp_path: Path, corpus: Path
) -> None:
    started = time.time()
    server = serve(home, env={"TMPDIR": str(server_tmp)}, args=("--verbose",))  # every logger at INFO
    try:
        _half_done(home, server, server_tmp, tmp_path, corpus, started)
    finally:
        server.stop()


def _half_done(home: Path, server: Server, server_tmp: Path, tmp_path: Path, corpus: Path, started: float) -> None:
    token = token_for(home, "field-4", "contributor")
    client_dir = tmp_path / "client"
    sources: dict[str, bytes] = {}
    secrets: list[str] = []
    # Five random files and a real photo and video, each stopped half way (tuspy, 256 KiB PATCHes).
    paths = [random_file(client_dir, f"half{n}.bin", 3 * MB + n * 7919)[0] for n in range(5)]
    for name in ("media/jpg/Canon_40D.jpg", "media/video/other_sierpinski.webm"):
        paths.append(corpus / name)
    for path in paths:
        data = path.read_bytes()
        up = uploader(server.url, token, path, chunk_size=256 * 1024, metadata=metadata_for(path, data))
        up.upload(stop_at=len(data) // 2)
        assert up.offset == len(data) // 2
        upload_id, secret = split_upload_url(str(up.url))
        secrets.append(secret)
        sources[f"{path.name} (half of upload {upload_id})"] = data[: len(data) // 2]
    # One upload finished (it went through the whole streamed ingest) and one with its PATCH still in flight.
    done_path, done_data = random_file(client_dir, "done.bin", 2 * MB)
    done = upload(server.url, token, done_path)
    secrets.append(done.secret)
    sources["done.bin (completed)"] = done_data
    flight = os.urandom(4 * MB)
    sock, location = _half_open_patch(server, token, len(flight), flight[: 2 * MB])
    secrets.append(location.rstrip("/").rsplit("/", 1)[-1])
    sources["in-flight PATCH body"] = flight[: 2 * MB]
    try:
        time.sleep(1.0)  # the in-flight bytes reach the server and whatever it stores them in
        shingles = Shingles(sources, random_windows=64, seed=4)
        pytest_root = next((p for p in tmp_path.parents if p.name.startswith("pytest-of-")), tmp_path)
        roots = [home, server_tmp, *_new_temp_files(started, pytest_root)]
        findings, files, scanned = shingles.scan(roots)
        assert files > 0 and scanned > 0
        assert not findings, "plaintext at rest:\n" + "\n".join(str(f) for f in findings[:20])
        # Direct searches too, independent of the shingle index: random windows anywhere in any file.
        rng = random.Random(5)
        windows = []
        for data in sources.values():
            picked = 0
            while picked < 4:
                at = rng.randrange(0, len(data) - 64)
                if len(set(data[at : at + 64])) >= 16:  # not padding
                    windows.append(data[at : at + 64])
                    picked += 1
        for root in roots:
            for path in ([root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]):
                try:
                    blob = path.read_bytes()
                except OSError:
                    continue
                assert not any(w in blob for w in windows), f"plaintext of an upload in {path}"
                # The server keeps only a hash of each upload secret.
                assert not any(s.encode() in blob for s in secrets), f"an upload secret stored in {path}"
    finally:
        sock.close()
    time.sleep(0.5)
    log = server.log_text()
    assert "/v1/uploads" in log, "the server logged no request at all: nothing to check"
    leaked = [s for s in secrets if s in log]
    assert not leaked, f"{len(leaked)} upload secrets in the server's log"
    assert token not in log
