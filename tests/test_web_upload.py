"""The upload page and the API it drives: a signed-in browser uploads with tus by its session cookie and the
`X-CSRF-Token` header alone (a real tus client, against a real server), resumes, and gets a receipt that
verifies; the same cookie without the header, or from another site's page, is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tusclient.client import TusClient

from tests.api_support import serve
from tests.tus_uploads import RecordingUploader, check_receipt, receipt_vkey, split_upload_url
from tests.web_support import csrf_of, signed_in, web_client, web_home

COOKIE = "evidence_session"


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    return web_home(tmp_path)


@pytest.fixture()
def photo(corpus: Path) -> Path:
    return corpus / "media" / "jpg" / "Canon_40D.jpg"


def tus_headers(cookie: str, csrf: str | None) -> dict[str, str]:
    headers = {"Cookie": f"{COOKIE}={cookie}"}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    return headers


def test_the_page_for_a_contributor(home: Path) -> None:
    with web_client(home) as client:
        caller = signed_in(client, "contributor")
        page = client.get("/upload")
        assert page.status_code == 200, page.text
        html = page.text
        assert csrf_of(html) == caller.csrf and caller.csrf
        scripts = re.findall(r"<script([^>]*)>", html)
        assert all("src=" in attrs or 'type="application/json"' in attrs for attrs in scripts), scripts
        assert '<script src="/static/vendor/tus.min.js" defer>' in html and '<script src="/static/upload.js"' in html
        config = json.loads(re.search(r'<script type="application/json" id="upload-config">(.*?)</script>', html,
                                      re.S).group(1))  # type: ignore[union-attr]
        assert config["endpoint"] == "/v1/uploads" and len(config["retryDelays"]) >= 3
        assert '<input type="file" id="upload-files" name="files" multiple' in html
        for control in ("upload-files", "upload-source", "upload-incident", "upload-note"):
            assert f'<label for="{control}">' in html, control
        assert receipt_vkey(home).strip() in html  # the key to check receipts with, shown to keep
        # an unknown incident ref is dropped without a word (checking would reveal which exist): the page says so
        hint = re.search(r'<p id="upload-incident-help"[^>]*>(.*?)</p>', html, re.S)
        assert hint and "is ignored without a message" in hint.group(1) and "links the files later" in hint.group(1)
        assert 'aria-describedby="upload-incident-help"' in html
        assert "evidence receipt verify" in html and 'href="/v1/receipts/key"' in html
        assert 'href="/items"' not in html and 'href="/export"' not in html  # a contributor's navigation
        script = client.get("/static/upload.js").text
        assert "storeFingerprintForResuming: false" in script and "removeFingerprintOnSuccess: true" in script
        code = "\n".join(line for line in script.splitlines() if not line.strip().startswith("//"))
        assert "localStorage" not in code and "sessionStorage" not in code  # upload URLs carry their secret
        assert '"X-CSRF-Token": window.evidenceCsrf()' in script and "Upload-Receipt" in script
        assert '<pre", { dir: "ltr" }' not in script and 'element("pre", { dir: "ltr" }' in script


def test_the_arabic_page(home: Path) -> None:
    with web_client(home) as client:
        signed_in(client, "investigator")
        page = client.get("/upload", headers={"Accept-Language": "ar-SY,ar;q=0.9,en;q=0.5"})
        assert page.status_code == 200
        assert '<html lang="ar" dir="rtl">' in page.text and "رفع الملفات" in page.text
        block = re.search(r'id="upload-config">(.*?)</script>', page.text, re.S)
        assert block and json.loads(block.group(1))["texts"]["progress"] == "تقدّم رفع %(name)s"  # the script's
        assert "يُتجاهَل دون أي رسالة" in page.text and "is ignored without a message" not in page.text


def test_an_auditor_has_no_upload_page_and_a_stranger_signs_in(home: Path) -> None:
    with web_client(home) as client:
        assert client.get("/upload", follow_redirects=False).status_code == 303
        signed_in(client, "auditor")
        page = client.get("/upload")
        assert page.status_code == 403 and "upload-config" not in page.text


def _create(client: Any, headers: dict[str, str], length: int = 5) -> Any:
    return client.post("/v1/uploads", headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(length),
                                               **headers})


def test_the_cookie_needs_the_csrf_header_and_our_origin(home: Path) -> None:
    with web_client(home) as client:
        caller = signed_in(client, "contributor")
        refused = _create(client, {})
        assert refused.status_code == 403 and refused.headers["Tus-Resumable"] == "1.0.0"
        assert "X-CSRF-Token" in refused.text
        assert _create(client, {"X-CSRF-Token": "not-the-token"}).status_code == 403
        foreign = _create(client, {"X-CSRF-Token": caller.csrf, "Origin": "http://evil.example"})
        assert foreign.status_code == 403
        made = _create(client, {"X-CSRF-Token": caller.csrf, "Origin": "http://testserver"})
        assert made.status_code == 201, made.text
        location = made.headers["Location"]
        body = {"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
        assert client.patch(location, headers=body, content=b"he").status_code == 403  # no header: nothing kept
        assert client.head(location, headers={"Tus-Resumable": "1.0.0"}).headers["Upload-Offset"] == "0"
        foreign_patch = client.patch(location, headers={**body, "X-CSRF-Token": caller.csrf,
                                                        "Origin": "https://evil.example"}, content=b"he")
        assert foreign_patch.status_code == 403
        sent = client.patch(location, headers={**body, "X-CSRF-Token": caller.csrf}, content=b"he")
        assert sent.status_code == 204 and sent.headers["Upload-Offset"] == "2"
        assert client.delete(location, headers={"Tus-Resumable": "1.0.0"}).status_code == 403
        assert client.get("/v1/receipts/key").status_code == 200  # a public key: the cookie is enough
        client.cookies.clear()
        assert _create(client, {"X-CSRF-Token": caller.csrf}).status_code == 401


def test_another_session_token_does_not_open_this_session(home: Path) -> None:
    with web_client(home) as client:
        signed_in(client, "contributor")
        with web_client(home) as other:
            stranger = signed_in(other, "contributor")
            assert _create(client, {"X-CSRF-Token": stranger.csrf}).status_code == 403


@pytest.fixture()
def browser_session(home: Path) -> Iterator[tuple[str, Any, str]]:
    """A contributor's session cookie and caller, and a real `evidence serve` over the home (its base URL)."""
    with web_client(home) as client:
        caller = signed_in(client, "contributor")
        cookie = client.cookies.get(COOKIE)
        assert csrf_of(client.get("/upload").text) == caller.csrf
    server = serve(home)
    try:
        yield cookie, caller, server.url
    finally:
        server.stop()


def test_a_real_tus_client_uploads_with_the_cookie_resumes_and_gets_a_receipt(
        home: Path, photo: Path, browser_session: tuple[str, Any, str]) -> None:
    cookie, caller, base = browser_session
    data = photo.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    tus = TusClient(f"{base}/v1/uploads", headers=tus_headers(cookie, caller.csrf))
    metadata = {"filename": photo.name, "sha256": digest, "source": "field team 3"}
    first = RecordingUploader(str(photo), client=tus, metadata=metadata, chunk_size=4096)
    first.upload_chunk()  # one piece, then the "connection drops": a new uploader resumes from the URL in memory
    assert first.url and first.offset == 4096
    resumed = RecordingUploader(str(photo), client=tus, metadata=metadata, chunk_size=64 * 1024, url=first.url)
    resumed.upload()
    assert resumed.resumed_at and resumed.resumed_at[0] == 4096
    upload_id, _secret = split_upload_url(str(resumed.url))
    header = resumed.request.response_headers.get("upload-receipt")
    assert header, "the completing PATCH carries the receipt"
    receipt = base64.b64decode(header).decode("utf-8")
    fields = check_receipt(receipt, receipt_vkey(home), upload_id=upload_id, sha256=digest, size=len(data))
    # the same receipt from the receipts route, by the cookie alone (a GET needs no CSRF header)
    again = httpx.get(f"{base}/v1/receipts/{upload_id}", headers={"Cookie": f"{COOKIE}={cookie}"}, timeout=30)
    assert again.status_code == 200 and again.text == receipt
    assert httpx.get(f"{base}/v1/receipts/{upload_id}", timeout=30).status_code == 401
    from sqlmodel import Session, select

    from archive.catalog.events import Event
    from archive.context import Archive

    archive = Archive.open(home)
    try:
        with Session(archive.engine) as session:
            event = session.exec(select(Event).where(Event.seq == int(fields["event"]))).one()
    finally:
        archive.close()
    assert event.item_id == fields["item"] and event.actor == caller.user_id  # the signed-in user, no token


def test_a_real_tus_client_without_the_csrf_header_is_refused(
        photo: Path, browser_session: tuple[str, Any, str]) -> None:
    from tusclient.exceptions import TusCommunicationError

    cookie, _caller, base = browser_session
    tus = TusClient(f"{base}/v1/uploads", headers=tus_headers(cookie, None))
    up = RecordingUploader(str(photo), client=tus, metadata={"filename": photo.name}, chunk_size=4096)
    with pytest.raises(TusCommunicationError) as refused:
        up.upload()
    assert refused.value.status_code == 403
