"""WebDAV under /dav/ with real `rclone` (unchanged, vendor "other") against a real server subprocess.

What a field app relies on: a folder copied with `rclone copy` ends up
ingested, rclone's own checks pass (it reads each file's size back after the
PUT), a second copy is a harmless no-op; and what the archive promises: a
listing shows only this token's last hour, a wrong token is 401, nothing but
OPTIONS/PROPFIND/MKCOL/PUT is served (no GET, DELETE, MOVE), names are
harmless labels, and no plaintext of a file in flight reaches the disk.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_support import Server, make_home, run_cli, serve, token_for
from tests.plaintext_scan import Shingles

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed")]

DAV = "{DAV:}"


def basic(token: str, user: str = "field") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


class Rclone:
    """rclone with a remote `ev` configured through environment variables only (no config file of the user's)."""

    def __init__(self, tmp: Path, url: str, token: str) -> None:
        obscured = subprocess.run(["rclone", "obscure", token], capture_output=True, text=True, check=True,
                                  timeout=30).stdout.strip()
        config = tmp / f"rclone-{hashlib.sha256(token.encode()).hexdigest()[:8]}.conf"
        config.write_text("")
        self.env = {**os.environ, "RCLONE_CONFIG": str(config), "RCLONE_CONFIG_EV_TYPE": "webdav",
                    "RCLONE_CONFIG_EV_URL": f"{url}/dav/", "RCLONE_CONFIG_EV_VENDOR": "other",
                    "RCLONE_CONFIG_EV_USER": "field", "RCLONE_CONFIG_EV_PASS": obscured}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["rclone", "--low-level-retries", "1", "--retries", "1", *args], capture_output=True,
                              text=True, env=self.env, timeout=180)
        if check:
            assert done.returncode == 0, f"rclone {' '.join(args)}: exit {done.returncode}\n{done.stderr}"
        return done


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def archive_hashes(home: Path) -> set[str]:
    return {item["sha256"] for item in json.loads(run_cli(home, "list", "--json"))}


def propfind(url: str, token: str, path: str, depth: str = "1") -> httpx.Response:
    return httpx.request("PROPFIND", f"{url}/dav/{path}", headers={**basic(token), "Depth": depth}, timeout=30)


def listed(response: httpx.Response) -> dict[str, dict[str, str | None]]:
    """href → {displayname, getcontentlength, collection} of a 207 multistatus."""
    assert response.status_code == 207, response.text
    found: dict[str, dict[str, str | None]] = {}
    for node in ET.fromstring(response.content).iter(f"{DAV}response"):
        prop = node.find(f"{DAV}propstat/{DAV}prop")
        assert prop is not None
        found[node.findtext(f"{DAV}href") or ""] = {
            "name": prop.findtext(f"{DAV}displayname"),
            "size": prop.findtext(f"{DAV}getcontentlength"),
            "collection": "yes" if prop.find(f"{DAV}resourcetype/{DAV}collection") is not None else None,
            "modified": prop.findtext(f"{DAV}getlastmodified"),
        }
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Iterator[dict[str, Any]]:
    """One server for the module; a folder of corpus files already copied in by rclone as contributor A."""
    tmp = tmp_path_factory.mktemp("dav")
    home = make_home(tmp / "home")
    tokens = {name: token_for(home, name, "contributor") for name in ("amina", "bassel", "chadi")}
    folder = tmp / "field"
    folder.mkdir()
    picks = sorted(p for p in (corpus / "media" / "jpg").iterdir() if p.is_file() and p.stat().st_size < 300_000)[:3]
    for path in picks[:-1]:
        shutil.copy(path, folder / path.name)
    shutil.copy(picks[-1], folder / "صورة من حلب #1.jpg")  # a name to escape: Arabic, spaces, a '#'
    server_tmp = tmp / "server-tmp"
    server_tmp.mkdir()
    server = serve(home, env={"TMPDIR": str(server_tmp)})
    try:
        rclone = Rclone(tmp, server.url, tokens["amina"])
        copied = rclone("copy", str(folder), "ev:incoming", "-v")
        yield {"home": home, "tokens": tokens, "folder": folder, "server": server, "rclone": rclone, "tmp": tmp,
               "copied": copied, "server_tmp": server_tmp}
    finally:
        server.stop()


def test_rclone_copy_ingests_every_file_and_its_checks_pass(site: dict[str, Any]) -> None:
    folder: Path = site["folder"]
    files = sorted(folder.iterdir())
    assert "Copied (new)" in site["copied"].stderr
    assert {sha256(p) for p in files} <= archive_hashes(site["home"])
    entries = json.loads(site["rclone"]("lsjson", "ev:incoming").stdout)
    assert {(e["Name"], e["Size"]) for e in entries} == {(p.name, p.stat().st_size) for p in files}
    site["rclone"]("check", str(folder), "ev:incoming", "--size-only")
    again = site["rclone"]("copy", str(folder), "ev:incoming", "-v")  # a second run: nothing to send
    assert "Copied (new)" not in again.stderr
    assert len(json.loads(run_cli(site["home"], "list", "--json"))) == len(files)


def test_listing_shows_only_this_tokens_uploads(site: dict[str, Any]) -> None:
    url, tokens = site["server"].url, site["tokens"]
    mine = listed(propfind(url, tokens["amina"], "incoming/"))
    names = {v["name"] for k, v in mine.items() if not v["collection"]}
    assert names == {p.name for p in site["folder"].iterdir()}
    assert listed(propfind(url, tokens["amina"], ""))["/dav/incoming/"]["collection"] == "yes"
    # another contributor: an empty folder, at the same path and at the root
    theirs = listed(propfind(url, tokens["bassel"], "incoming/"))
    assert list(theirs) == ["/dav/incoming/"]
    assert list(listed(propfind(url, tokens["bassel"], ""))) == ["/dav/"]
    first = sorted(p.name for p in site["folder"].iterdir())[0]
    assert propfind(url, tokens["bassel"], f"incoming/{first}", depth="0").status_code == 404
    other = Rclone(site["tmp"], url, tokens["bassel"])
    assert json.loads(other("lsjson", "ev:", "-R").stdout) == []
    # a second token of the same person sees nothing of the first's either
    fresh = token_for(site["home"], "amina", "contributor")
    assert list(listed(propfind(url, fresh, "incoming/"))) == ["/dav/incoming/"]


def test_wrong_token_is_401_and_only_four_methods_are_served(site: dict[str, Any]) -> None:
    url, token = site["server"].url, site["tokens"]["amina"]
    wrong = httpx.request("PROPFIND", f"{url}/dav/", headers={**basic("0" * 64), "Depth": "1"}, timeout=30)
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert httpx.request("PROPFIND", f"{url}/dav/", timeout=30).status_code == 401
    bad = Rclone(site["tmp"], url, "f" * 64)("lsjson", "ev:", check=False)
    assert bad.returncode != 0 and "401" in bad.stderr
    options = httpx.options(f"{url}/dav/", headers=basic(token), timeout=30)
    assert options.status_code == 200 and options.headers["DAV"] == "1"
    assert {m.strip() for m in options.headers["Allow"].split(",")} == {"OPTIONS", "PROPFIND", "MKCOL", "PUT"}
    assert httpx.request("MKCOL", f"{url}/dav/new-folder/", headers=basic(token), timeout=30).status_code == 201
    name = sorted(p.name for p in site["folder"].iterdir())[0]
    for method in ("GET", "HEAD", "DELETE", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK", "POST", "PATCH", "TRACE"):
        answer = httpx.request(method, f"{url}/dav/incoming/{name}", timeout=30,
                               headers={**basic(token), "Destination": f"{url}/dav/elsewhere/{name}"})
        assert answer.status_code == 405, (method, answer.status_code)
    before = archive_hashes(site["home"])
    assert site["rclone"]("deletefile", f"ev:incoming/{name}", check=False).returncode != 0
    assert site["rclone"]("moveto", f"ev:incoming/{name}", f"ev:moved/{name}", check=False).returncode != 0
    assert archive_hashes(site["home"]) == before
    assert name in {v["name"] for v in listed(propfind(url, token, "incoming/")).values()}


def test_names_are_harmless_labels(site: dict[str, Any]) -> None:
    url, token = site["server"].url, site["tokens"]["chadi"]

    def put(raw_path: str, body: bytes) -> httpx.Response:
        request = httpx.Request("PUT", f"{url}/dav/x", headers=basic(token), content=body)
        request.url = request.url.copy_with(raw_path=raw_path.encode())
        with httpx.Client(timeout=60) as client:
            return client.send(request)

    up = put("/dav/a/%2E%2E/%2E%2E/%2E%2E/etc/passwd", b"not a passwd file " + os.urandom(64))
    assert up.status_code == 201, up.text
    assert not (site["home"] / "etc").exists()
    control = put("/dav/bad%01name%09%1B%5B31m.jpg", b"control characters " + os.urandom(64))
    assert control.status_code == 201, control.text
    assert put("/dav/new%0Aline.jpg", b"a newline").status_code == 404  # no route matches: refused, not stored
    long_name = "n" * 1000 + ".jpg"
    assert put(f"/dav/{long_name}", b"a long name " + os.urandom(64)).status_code == 201
    assert put("/dav/" + "m" * 1100, b"a longer name " + os.urandom(64)).status_code == 201  # a label, kept
    assert put("/dav/" + "m" * 4097, b"too long").status_code == 414  # beyond any real path (PATH_MAX)
    empty = put("/dav/empty.jpg", b"")  # nothing to keep: refused, with a reason a WebDAV app can show
    assert 400 <= empty.status_code < 500 and empty.headers["content-type"].startswith("text/plain")
    assert empty.text.startswith("refused: ") and "empty" in empty.text.lower()
    everything = listed(propfind(url, token, ""))  # parses as XML: control characters escaped
    assert "/dav/etc/" in everything
    files = listed(propfind(url, token, "etc/"))
    assert files["/dav/etc/passwd"]["name"] == "passwd"
    assert everything["/dav/bad%01name%09%1B%5B31m.jpg"]["name"] == "bad\ufffdname\t\ufffd[31m.jpg"
    assert f"/dav/{long_name}" in everything


def test_no_plaintext_on_disk_while_a_put_is_in_flight(site: dict[str, Any], tmp_path: Path) -> None:
    url, token = site["server"].url, site["tokens"]["chadi"]
    data = os.urandom(12 << 20)
    half = threading.Event()
    resume = threading.Event()

    def body() -> Iterator[bytes]:
        for offset in range(0, len(data), 1 << 20):
            if offset >= len(data) // 2 and not half.is_set():
                half.set()
                resume.wait(60)
            yield data[offset:offset + (1 << 20)]

    answer: dict[str, httpx.Response] = {}

    def send() -> None:
        answer["put"] = httpx.put(f"{url}/dav/in-flight/video.mp4", headers=basic(token), content=body(), timeout=120)

    thread = threading.Thread(target=send)
    thread.start()
    try:
        assert half.wait(60)
        time.sleep(0.5)  # the server has consumed what was sent so far
        shingles = Shingles({"video": data[: len(data) // 2]})
        assert shingles.scan_bytes(data[1000:9000], Path("control"))  # the scan would see plaintext
        findings, files, scanned = shingles.scan([site["home"], site["server_tmp"]])
        stored = sum(p.stat().st_size for p in (site["home"] / "uploads").rglob("*") if p.is_file())
        assert stored >= 4 << 20  # what arrived so far is on disk (sealed segments of 4 MiB), not only in memory
        assert findings == [], "\n".join(map(str, findings[:5]))
    finally:
        resume.set()
        thread.join(120)
    assert answer["put"].status_code == 201, answer["put"].text
    assert hashlib.sha256(data).hexdigest() in archive_hashes(site["home"])


def test_the_server_restarted_still_lists_the_last_hour(site: dict[str, Any]) -> None:
    server: Server = site["server"]
    server.restart()
    names = {v["name"] for v in listed(propfind(server.url, site["tokens"]["amina"], "incoming/")).values()}
    assert {p.name for p in site["folder"].iterdir()} <= names


def test_the_server_log_names_no_file_and_holds_no_token(site: dict[str, Any]) -> None:
    log = site["server"].log_text()
    assert "PROPFIND" in log or "PUT" in log  # the access log is there, and was written
    for path in site["folder"].iterdir():
        assert path.name not in log and path.stem not in log
    for token in site["tokens"].values():
        assert token not in log
    assert "passwd" not in log and "in-flight" not in log


def test_an_oversize_put_is_refused_with_413_declared_or_not(tmp_path: Path) -> None:
    from tests.api_support import client

    home = make_home(tmp_path / "home")
    with open(home / "config.toml", "a", encoding="utf-8") as config:
        config.write("\n[api]\nmax_upload_bytes = 4096\n")
    token = token_for(home, "dalia", "contributor")
    with client(home) as http:
        declared = http.put("/dav/big.bin", headers=basic(token), content=os.urandom(8192))
        assert declared.status_code == 413 and declared.text.startswith("refused: ")

        def chunked() -> Iterator[bytes]:  # no Content-Length: found out while streaming
            for _ in range(4):
                yield os.urandom(2048)

        streamed = http.put("/dav/big2.bin", headers=basic(token), content=chunked())
        assert streamed.status_code == 413 and streamed.text.startswith("refused: ")
        fits = http.put("/dav/small.bin", headers=basic(token), content=os.urandom(1024))
        assert fits.status_code == 201, fits.text
        assert list(listed(http.request("PROPFIND", "/dav/", headers={**basic(token), "Depth": "1"}))) == [
            "/dav/", "/dav/small.bin"]
