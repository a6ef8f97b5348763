"""`evidence push` against a real server: receipts verified, resume after a server crash, the offline queue.

Every push here is the real command in its own process (as a contributor runs
it), against `evidence serve` on loopback (tests/api_support.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_support import REPO, Server, bearer, free_port, make_home, run_cli, serve, token_for

pytestmark = pytest.mark.timeout(300)

EXIT_QUEUED = 75


class Push:
    """`evidence push` as a subprocess with one queue and one token."""

    def __init__(self, queue: Path, token: str) -> None:
        self.queue = queue
        self.token = token

    def command(self, server: str, *args: str) -> list[str]:
        return [sys.executable, "-c", "from api.cli.main import main; main()", "push", "--server", server,
                "--queue", str(self.queue), "--json", *args]

    def env(self) -> dict[str, str]:
        return {**os.environ, "EVIDENCE_PUSH_TOKEN": self.token}

    def __call__(self, server: str, *args: str, timeout: float = 240) -> tuple[int, list[dict[str, Any]], str]:
        done = subprocess.run(self.command(server, *args), capture_output=True, text=True, env=self.env(), cwd=REPO,
                              timeout=timeout)
        outcomes = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        return done.returncode, outcomes, done.stderr

    def popen(self, server: str, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.command(server, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env(), cwd=REPO)

    def entries(self) -> list[dict[str, Any]]:
        """The queue's entries in the order it drains them."""
        return sorted((json.loads(p.read_text()) for p in self.queue.glob("*.json")), key=lambda e: e["seq"])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def corpus_files(corpus: Path, count: int) -> list[Path]:
    files = sorted(p for p in (corpus / "media" / "jpg").iterdir() if p.is_file() and 1000 < p.stat().st_size < 400_000)
    assert len(files) >= count
    return files[:count]


def archive_hashes(home: Path) -> set[str]:
    return {item["sha256"] for item in json.loads(run_cli(home, "list", "--json"))}


@pytest.fixture()
def setup(tmp_path: Path) -> Any:
    home = make_home(tmp_path / "home")
    token = token_for(home, "amina", "contributor")
    return home, Push(tmp_path / "queue", token)


def verify_outcome(outcome: dict[str, Any], path: Path, vkey: str) -> None:
    from archive.custody.receipts import verify_receipt

    assert outcome["status"] == "sent", outcome
    assert outcome["sha256"] == sha256(path)
    fields = verify_receipt(outcome["receipt"], vkey)
    assert fields["sha256"] == sha256(path) and fields["size"] == path.stat().st_size
    assert fields["item"] == outcome["item"] and fields["upload"] == outcome["upload"]
    assert str(fields["event"]) == outcome["event"]


def test_push_sends_files_with_verified_receipts_and_a_private_queue(setup: Any, corpus: Path, tmp_path: Path) -> None:
    home, push = setup
    files = corpus_files(corpus, 3)
    folder = tmp_path / "field"
    folder.mkdir()
    for path in files:
        shutil.copy(path, folder / path.name)
    with serve(home) as server:
        code, outcomes, err = push(server.url, str(folder), "--source", "a neighbour", "--chunk-size", "4K")
        assert code == 0, err
        vkey = run_cli(home, "receipt", "key").strip()
    assert [o["path"] for o in outcomes] == [str((folder / p.name).resolve()) for p in files]  # queued order
    for outcome, path in zip(outcomes, files, strict=True):
        verify_outcome(outcome, path, vkey)
    assert {sha256(p) for p in files} <= archive_hashes(home)
    assert push.entries() == []
    assert stat.S_IMODE(push.queue.stat().st_mode) == 0o700
    pinned = list((push.queue / "keys").glob("*.vkey"))
    assert len(pinned) == 1 and pinned[0].read_text().strip() == vkey
    assert stat.S_IMODE(pinned[0].stat().st_mode) == 0o600


def _wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_push_resumes_from_the_servers_offset_after_a_server_crash(setup: Any, tmp_path: Path) -> None:
    home, push = setup
    big = tmp_path / "long-video.bin"
    big.write_bytes(os.urandom(16 << 20))
    port = free_port()
    server = Server(home, port).start()
    try:
        runner = push.popen(server.url, str(big), "--chunk-size", "128K", "--retries", "2")

        def upload_url() -> str | None:
            entries = push.entries()
            return entries[0]["upload_url"] if entries and entries[0].get("upload_url") else None

        url = _wait_for(upload_url, 60, "the upload to be created")

        def offset() -> int:
            try:
                answer = httpx.head(url, headers={**bearer(push.token), "Tus-Resumable": "1.0.0"}, timeout=5)
            except httpx.HTTPError:
                return 0
            return int(answer.headers.get("Upload-Offset", 0))

        _wait_for(lambda: offset() >= (4 << 20), 120, "a quarter of the file on the server")
        server.kill()  # SIGKILL, mid-upload
        out, err = runner.communicate(timeout=120)
        assert runner.returncode == EXIT_QUEUED, (out, err)
        first = [json.loads(line) for line in out.splitlines() if line.strip()]
        assert first[0]["status"] == "queued" and first[0]["offline"]
        assert len(push.entries()) == 1 and push.entries()[0]["upload_url"] == url  # kept, secret and all

        server.start()
        held = offset()
        assert 0 < held < big.stat().st_size
        code, outcomes, err = push(server.url, "--chunk-size", "128K")  # no paths: the queue drains
        assert code == 0, err
        vkey = run_cli(home, "receipt", "key").strip()
    finally:
        server.stop()
    (outcome,) = outcomes
    verify_outcome(outcome, big, vkey)
    assert outcome["resumed_from"] == held
    assert outcome["sent"] == big.stat().st_size - held < big.stat().st_size  # resumed, not restarted
    assert sha256(big) in archive_hashes(home)
    assert push.entries() == []


def test_offline_files_stay_queued_and_drain_later_in_order(setup: Any, corpus: Path) -> None:
    home, push = setup
    files = corpus_files(corpus, 3)
    port = free_port()
    offline = f"http://127.0.0.1:{port}"
    code, outcomes, err = push(offline, *map(str, files), "--retries", "1")
    assert code == EXIT_QUEUED, err
    assert [o["status"] for o in outcomes] == ["queued"] * 3
    queued = push.entries()
    assert [e["path"] for e in queued] == [str(p.resolve()) for p in files]
    assert all(e["upload_url"] is None for e in queued)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in push.queue.glob("*.json"))

    with Server(home, port).start() as server:
        code, outcomes, err = push(server.url)
        assert code == 0, err
        vkey = run_cli(home, "receipt", "key").strip()
    assert [o["path"] for o in outcomes] == [str(p.resolve()) for p in files]
    for outcome, path in zip(outcomes, files, strict=True):
        verify_outcome(outcome, path, vkey)
    assert push.entries() == []



def test_files_queued_for_another_server_are_said_and_moved_only_when_asked(setup: Any, corpus: Path) -> None:
    home, push = setup
    files = corpus_files(corpus, 2)
    elsewhere = f"http://127.0.0.1:{free_port()}"
    assert push(elsewhere, str(files[0]), "--retries", "1")[0] == EXIT_QUEUED
    with serve(home) as server:
        code, outcomes, err = push(server.url)  # nothing of its own to send: not a silent success
        assert code == EXIT_QUEUED, err
        assert [(o["status"], o["path"]) for o in outcomes] == [("queued", str(files[0].resolve()))]
        assert elsewhere in outcomes[0]["reason"] and "--move-queued" in outcomes[0]["reason"]
        assert [e["server"] for e in push.entries()] == [elsewhere]
        code, outcomes, err = push(server.url, str(files[1]), "--move-queued")
        assert code == 0, err
        assert {o["path"] for o in outcomes if o["status"] == "sent"} == {str(f.resolve()) for f in files}
        assert f"from {elsewhere} to {server.url}, from the start" in err
    assert push.entries() == []


def test_a_moved_upload_resumes_only_on_the_same_archive(tmp_path: Path) -> None:
    """The upload URL holds the secret: it goes to the new address only if that server has the old one's key."""
    from api.push.drain import move_entries
    from api.push.queue import Queue

    queue = Queue.open(tmp_path / "q")
    old, new = "http://abcdef.onion", "https://archive.example.org"
    queue.pin_key(old, "origin/receipts+01020304+AAAA")
    entries = [queue.new_entry(path=f"/f{i}", size=1, mtime_ns=0, sha256="0" * 64, server=old,
                               upload_url=f"{old}/v1/uploads/up-{i}/secret{i}") for i in range(2)]
    moved = move_entries(queue, entries[:1], new, "origin/receipts+01020304+AAAA")
    assert [(e.upload_url, resumed) for e, _, resumed in moved] == [(f"{new}/v1/uploads/up-0/secret0", True)]
    moved = move_entries(queue, entries[1:], new, "another/receipts+05060708+BBBB")
    assert [(e.upload_url, resumed) for e, _, resumed in moved] == [(None, False)]
    assert {e.server for e in queue.entries()} == {new}
    assert "secret1" not in "".join(p.read_text() for p in queue.dir.glob("*.json"))


def test_a_refused_token_keeps_the_file_queued_and_forget_wipes_the_queue(setup: Any, corpus: Path) -> None:
    home, push = setup
    files = corpus_files(corpus, 2)
    with serve(home) as server:
        assert push(server.url, str(files[0]))[0] == 0  # pins the key
        stranger = Push(push.queue, "0" * 64)
        code, outcomes, err = stranger(server.url, str(files[1]))
        assert code == 2 and "does not accept this token" in err and "0" * 64 not in err
    assert [e["path"] for e in push.entries()] == [str(files[1].resolve())]
    assert list((push.queue / "keys").iterdir())
    done = subprocess.run([sys.executable, "-c", "from api.cli.main import main; main()", "push", "--forget",
                           "--queue", str(push.queue)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "forgot 1" in done.stdout
    assert [p.name for p in push.queue.iterdir() if p.name != ".lock"] == ["keys"]
    assert list((push.queue / "keys").iterdir()) == []


def test_a_changed_receipt_key_is_refused_and_nothing_is_sent(setup: Any, corpus: Path) -> None:
    from archive.custody.checkpoint import Signer

    home, push = setup
    files = corpus_files(corpus, 2)
    with serve(home) as server:
        code, _, err = push(server.url, str(files[0]))
        assert code == 0, err
        (pinned,) = (push.queue / "keys").glob("*.vkey")
        genuine = pinned.read_text().strip()
        name = genuine.split("+", 1)[0]
        pinned.write_text(Signer.generate(name).verifier.encode() + "\n")  # same name, another key
        before = archive_hashes(home)
        code, outcomes, err = push(server.url, str(files[1]))
        assert code == 2, err
        assert "pinned" in err and outcomes == []
        assert archive_hashes(home) == before  # nothing sent to a server whose key changed
        assert len(push.entries()) == 1  # still queued, for when the key is settled

        other = pinned.parent.parent.parent / "other.vkey"
        other.write_text(Signer.generate(name).verifier.encode() + "\n")
        code, outcomes, err = push(server.url, "--vkey", str(other))
        assert code == 1, err
        assert outcomes[0]["status"] == "unverified" and "does not verify" in outcomes[0]["reason"]


class FlakyTus:
    """An in-memory tus server for the client's own logic: damages a chunk once, drops a connection once."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.length = 0
        self.damaged: set[int] = set()
        self.dropped = False
        self.patches: list[tuple[int, int, int]] = []  # (offset, size, status)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        import base64

        if request.method == "POST":
            self.length = int(request.headers["Upload-Length"])
            return httpx.Response(201, headers={"Location": "/v1/uploads/up-1/s3cret"})
        if request.method == "HEAD":
            return httpx.Response(200, headers={"Upload-Offset": str(len(self.data))})
        offset, body = int(request.headers["Upload-Offset"]), request.content
        algorithm, _, digest = request.headers["Upload-Checksum"].partition(" ")
        assert algorithm == "sha256" and base64.b64decode(digest) == hashlib.sha256(body).digest()
        if offset == 2 * 4096 and offset not in self.damaged:  # the chunk "arrived" damaged: 460, discarded
            self.damaged.add(offset)
            self.patches.append((offset, len(body), 460))
            return httpx.Response(460)
        if offset == 4 * 4096 and not self.dropped:  # half of it kept, then the connection died
            self.dropped = True
            self.data += body[:1000]
            self.patches.append((offset, len(body), 0))
            raise httpx.ReadError("connection reset")
        assert offset == len(self.data)
        self.data += body
        self.patches.append((offset, len(body), 204))
        headers = {"Upload-Offset": str(len(self.data))}
        if len(self.data) == self.length:
            headers["Upload-Receipt"] = base64.b64encode(b"the receipt\n").decode()
        return httpx.Response(204, headers=headers)


def test_tus_client_resends_a_damaged_chunk_and_resumes_where_the_server_stands(tmp_path: Path) -> None:
    from api.push.tus import TusClient

    data = os.urandom(7 * 4096 + 123)
    server = FlakyTus()
    with TusClient("http://archive.test", "t", retries=3, transport=httpx.MockTransport(server),
                   sleep=lambda s: None) as client:
        url = client.create(len(data), {"filename": "a.jpg"})
        assert url == "http://archive.test/v1/uploads/up-1/s3cret"
        with open(tmp_path / "f", "wb") as out:
            out.write(data)
        with open(tmp_path / "f", "rb") as handle:
            resumed, finished = client.upload(url, handle, len(data), chunk_size=4096)
    assert bytes(server.data) == data and resumed == 0 and finished.receipt == "the receipt\n"
    assert (2 * 4096, 4096, 460) in server.patches and server.patches.count((2 * 4096, 4096, 204)) == 1
    assert (4 * 4096 + 1000, 4096, 204) in server.patches  # after the drop: from the server's offset, not its own
