"""Evidence bundles over HTTP: the streamed bundle is the bundle `evidence export` writes (a valid bag, the
transfer event holding the SHA-256 of exactly the bytes sent), encrypted to a registered recipient, refused
with a clear JSON error before a byte when the request is wrong, and stopped when the client goes away.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archive.age import Identity, decrypt_stream
from tests.api_support import bearer, client, make_home, token_for
from tests.conftest import Cli
from tests.test_links import add_incident, add_victim, ingest


class Api:
    """One documented home, a token per role, an in-process client with its lifespan running."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.tokens = {role: token_for(home, f"{role}-user", role)
                       for role in ("custodian", "investigator", "contributor", "auditor")}
        self.manager = client(home)
        self.client = self.manager.__enter__()

    def __call__(self, method: str, path: str, role: str = "investigator", **kwargs: Any) -> Any:
        return self.client.request(method, path, headers=bearer(self.tokens[role]), **kwargs)

    def close(self) -> None:
        self.manager.__exit__(None, None, None)


def events_of(home: Path, event_type: str) -> list[Any]:
    from sqlmodel import Session, col, select

    from archive.catalog.events import Event
    from archive.context import Archive

    archive = Archive.open(home)
    try:
        with Session(archive.engine) as session:
            return list(session.exec(select(Event).where(Event.event_type == event_type).order_by(col(Event.seq))))
    finally:
        archive.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Iterator[Api]:
    """Two photos linked to an incident with one victim whose family consented to courts, not to the UN."""
    home = make_home(tmp_path_factory.mktemp("exports") / "home")
    cli = Cli(home)
    jpg = corpus / "media" / "jpg"
    ids = ingest(cli, jpg / "Canon_40D.jpg", jpg / "Nikon_D70.jpg")
    add_incident(home, "IDL-7")
    add_victim(home, "V-1", "IDL-7")
    cli("victim", "consent", "V-1", "yes", "--scope", "courts", "--date", "2023-12-20", "--recorded-by", "field")
    for item in ids.values():
        cli("link", item, "--incident", "IDL-7")
        cli("link", item, "--victim", "V-1")
    api = Api(home)
    api.ids = ids  # type: ignore[attr-defined]
    api.identity = Identity.generate()  # type: ignore[attr-defined]
    try:
        yield api
    finally:
        api.close()


def test_the_bundle_key_for_every_role(api: Api) -> None:
    from archive.context import Archive
    from archive.custody.bundle_key import bundle_vkey

    archive = Archive.open(api.home)
    try:
        vkey = bundle_vkey(archive)
    finally:
        archive.close()
    for role in api.tokens:
        answer = api("GET", "/v1/exports/key", role)
        assert answer.status_code == 200 and answer.text == vkey + "\n"


def test_recipients_over_http(api: Api) -> None:
    key = str(Identity.generate().recipient)
    made = api("POST", "/v1/recipients", "custodian", json={"name": "Tribunal", "age": key, "kind": "court"})
    assert made.status_code == 201, made.text
    assert made.json()["kind"] == "court"
    assert api("POST", "/v1/recipients", "investigator", json={"name": "T2", "age": key, "kind": "court"}
               ).status_code == 403
    assert "Tribunal" in [r["name"] for r in api("GET", "/v1/recipients").json()]
    bad = api("POST", "/v1/recipients", "custodian", json={"name": "B", "age": "age1nope", "kind": "court"})
    assert bad.status_code == 422 and "age recipient" in bad.json()["detail"]
    assert api("DELETE", "/v1/recipients/Tribunal", "investigator").status_code == 403
    assert api("DELETE", "/v1/recipients/Tribunal", "custodian").status_code == 200
    assert api("DELETE", "/v1/recipients/Tribunal", "custodian").status_code == 404
    assert "Tribunal" not in [r["name"] for r in api("GET", "/v1/recipients").json()]


def test_a_streamed_plaintext_bundle_is_the_bundle_and_its_transfer_hash(api: Api, tmp_path: Path) -> None:
    import subprocess
    import sys

    answer = api("POST", "/v1/exports", json={"incidents": ["IDL-7"], "purpose": "court", "plaintext": True})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/octet-stream"
    assert "attachment" in answer.headers["content-disposition"]
    body = answer.content
    transfer = events_of(api.home, "transfer")[-1]
    assert transfer.outcome == "success"
    assert transfer.details["files"] == [{"part": 1, "of": 1, "sha256": hashlib.sha256(body).hexdigest()}]
    with zipfile.ZipFile(io.BytesIO(body)) as bundle:
        names = bundle.namelist()
        bundle.extractall(tmp_path)
    [top] = {n.split("/", 1)[0] for n in names}
    assert top == "evidence-bundle-" + transfer.details["export"]
    checked = subprocess.run([sys.executable, "-m", "bagit", "--validate", str(tmp_path / top)],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    originals = sorted(p.stem for p in (tmp_path / top / "data" / "originals").iterdir())
    assert originals == sorted(api.ids.values())  # type: ignore[attr-defined]


def test_a_bundle_for_a_registered_recipient_opens_with_its_identity_only(api: Api) -> None:
    identity = api.identity  # type: ignore[attr-defined]
    assert api("POST", "/v1/recipients", "custodian", json={
        "name": "Court B", "age": str(identity.recipient), "kind": "court"}).status_code == 201
    answer = api("POST", "/v1/exports", json={"items": list(api.ids.values()), "purpose": "court",  # type: ignore
                                              "to": "Court B", "format": "tar"})
    assert answer.status_code == 200, answer.text
    assert answer.content.startswith(b"age-encryption.org/v1\n")
    plain = b"".join(decrypt_stream(io.BytesIO(answer.content), [identity]))
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(plain)) as bag:
        assert any(n.endswith("/bagit.txt") for n in bag.getnames())
    started = events_of(api.home, "dissemination")[-1]
    from archive.exports.formats import fingerprint

    assert started.details["recipients"] == [fingerprint(str(identity.recipient))]
    assert started.details["to"] == "Court B" and started.details["encrypted"] is True


@pytest.mark.parametrize("body, status, says", [
    ({"incidents": ["IDL-7"], "purpose": "court", "plaintext": True, "split_size": "1M"}, 400, "split"),
    ({"purpose": "court", "plaintext": True}, 422, "choose what"),
    ({"incidents": ["IDL-7"], "purpose": "court"}, 422, "encrypted"),
    ({"incidents": ["IDL-7"], "purpose": "nope", "plaintext": True}, 422, "purpose"),
    ({"incidents": ["NO-SUCH"], "purpose": "court", "plaintext": True}, 404, ""),
    ({"incidents": ["IDL-7"], "purpose": "court", "to": "Nobody"}, 404, "no registered recipient"),
    ({"query": {"colour": "red"}, "purpose": "court", "plaintext": True}, 422, "colour"),
    ({"incidents": ["IDL-7"], "purpose": "court", "recipients": ["age1abc"]}, 403, "custodian"),
    ({"incidents": ["IDL-7"], "purpose": "court", "plaintext": True, "format": "rar"}, 422, ""),
])
def test_refusals_are_json_errors_before_a_byte(api: Api, body: dict[str, Any], status: int, says: str) -> None:
    before = len(events_of(api.home, "dissemination"))
    answer = api("POST", "/v1/exports", json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert says.lower() in answer.text.lower()
    assert len(events_of(api.home, "dissemination")) == before  # nothing recorded


def test_the_plan_gives_counts_and_reasons_never_names(api: Api) -> None:
    answer = api("POST", "/v1/exports/plan", json={"incidents": ["IDL-7"], "purpose": "un"})
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert plan["purpose"] == "un" and plan["counts"]["items"] == 0  # no UN consent: the items go too
    assert plan["withheld"] and all({"what", "reason", "count"} <= set(w) for w in plan["withheld"])
    court = api("POST", "/v1/exports/plan", json={"incidents": ["IDL-7"], "purpose": "court"}).json()
    assert court["counts"]["items"] == 2
    assert api("POST", "/v1/exports/plan", "auditor", json={"incidents": ["IDL-7"], "purpose": "court"}
               ).status_code == 403


# --- streaming: bounded memory, a client that goes away stops the export --------------------------------------

def test_the_pipe_is_bounded_and_stops_a_writer_once_the_client_is_gone() -> None:
    from api.http.routes.exports import CHUNK, QUEUE_CHUNKS, ClientGone, Pipe

    pipe = Pipe()
    written: list[int] = []
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(1000):
                pipe.write(b"x" * (CHUNK // 2))
                written.append(1)
        except BaseException as exc:  # noqa: BLE001 - what the test looks at
            failure.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(1.0)
    assert pipe.queue.qsize() == QUEUE_CHUNKS  # nobody reads: the writer waits, memory bounded
    assert len(written) <= 2 * (QUEUE_CHUNKS + 1)
    assert pipe.next() == b"x" * CHUNK
    pipe.gone.set()
    thread.join(5)
    assert not thread.is_alive() and isinstance(failure[0], ClientGone)


def test_a_client_that_disconnects_stops_the_export(tmp_path: Path) -> None:
    """A real server: the client reads the first MiB of a bundle of 48 MiB and hangs up; the export ends as a
    failed transfer instead of running to the end."""
    import http.client

    from tests.api_support import serve

    home = make_home(tmp_path / "home")
    cli = Cli(home)
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        for _ in range(48):
            out.write(os.urandom(1 << 20))
    [item] = ingest(cli, big).values()
    token = token_for(home, "investigator-user", "investigator")
    server = serve(home)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        connection.request("POST", "/v1/exports", body=json.dumps(
            {"items": [item], "purpose": "internal", "plaintext": True}),
            headers={**bearer(token), "Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200
        assert len(response.read(1 << 20)) == 1 << 20
        connection.sock.close()  # type: ignore[union-attr]
        connection.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not events_of(home, "transfer"):
            time.sleep(0.25)
        [transfer] = events_of(home, "transfer")
        assert transfer.outcome == "failure"
    finally:
        server.stop()


def test_flush_waits_until_the_response_took_every_chunk() -> None:
    from api.http.routes.exports import ClientGone, Pipe

    pipe = Pipe()
    pipe.write(b"tail")
    done = threading.Event()

    def flush() -> None:
        pipe.flush()
        done.set()

    threading.Thread(target=flush).start()
    time.sleep(0.5)
    assert not done.is_set()  # the chunk is still waiting for the client
    assert pipe.next() == b"tail"
    assert done.wait(5)
    gone = Pipe()
    gone.write(b"tail")
    gone.gone.set()
    with pytest.raises(ClientGone):
        gone.flush()
