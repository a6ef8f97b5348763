"""The export page: the review says what is withheld and why, the download is the bundle POST /v1/exports
streams (a valid bag that `verify_bundle` accepts, the same two custody events), and what the service refuses
(an investigator's ad-hoc key, a bad key, an unknown incident) is said beside its field with nothing recorded.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archive.age import Identity, decrypt_stream
from tests.conftest import Cli
from tests.test_http_exports import events_of
from tests.test_links import add_incident, add_victim, ingest
from tests.web_support import csrf_of, signed_in, web_client, web_home


class Site:
    """One documented home (two photos of IDL-7, its victim consented to courts only) and a web client."""

    def __init__(self, home: Path, ids: dict[str, str]) -> None:
        self.home = home
        self.ids = ids
        self.manager = web_client(home)
        self.client = self.manager.__enter__()
        self.csrf = ""

    def sign_in(self, role: str) -> Any:
        self.client.cookies.clear()
        caller = signed_in(self.client, role)
        self.csrf = caller.csrf
        return caller

    def post(self, path: str, data: dict[str, Any], htmx: bool = False, headers: dict[str, str] | None = None,
             **kwargs: Any) -> Any:
        sent = {**({"HX-Request": "true"} if htmx else {}), **(headers or {})}
        return self.client.post(path, data={"csrf": self.csrf, **data}, headers=sent, **kwargs)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Iterator[Site]:
    home = web_home(tmp_path_factory.mktemp("web-export"))
    cli = Cli(home)
    jpg = corpus / "media" / "jpg"
    ids = ingest(cli, jpg / "Canon_40D.jpg", jpg / "Nikon_D70.jpg")
    add_incident(home, "IDL-7")
    add_incident(home, "HMS-2", governorate="homs")
    add_victim(home, "V-1", "IDL-7")
    cli("victim", "consent", "V-1", "yes", "--scope", "courts", "--date", "2023-12-20", "--recorded-by", "field")
    for item in ids.values():
        cli("link", item, "--incident", "IDL-7")
        cli("link", item, "--victim", "V-1")
    cli("recipients", "add", "Tribunal", "--age", str(Identity.generate().recipient), "--kind", "court")
    site = Site(home, ids)
    try:
        yield site
    finally:
        site.manager.__exit__(None, None, None)


def field_error(html: str, field: str) -> str:
    found = re.search(rf'<p class="field-error" id="export-{field}-error" dir="auto">(.*?)</p>', html, re.S)
    assert found, f"no message beside {field}"
    return found.group(1)


def test_the_form_offers_the_visible_incidents_and_the_recipients(site: Site) -> None:
    site.sign_in("investigator")
    page = site.client.get("/export")
    assert page.status_code == 200, page.text
    assert csrf_of(page.text) == site.csrf
    assert '<option value="IDL-7">' in page.text and '<option value="HMS-2">' in page.text
    assert '<option value="Tribunal">Tribunal (Court)</option>' in page.text  # the kind by its label, not `court`
    options = re.findall(r'<option value="(?:IDL-7|HMS-2)"[^>]*>([^<]+)</option>', page.text)
    assert any(o.endswith("· Homs") for o in options) and "· homs<" not in page.text, options
    assert options and all(" · " in o and not re.search(r"· [a-z_]+$", o) for o in options), options
    assert 'id="export-key"' not in page.text  # an investigator exports to registered recipients only
    for control in ("export-incidents", "export-items", "export-purpose", "export-to", "export-format"):
        assert f'<label for="{control}">' in page.text, control
    assert 'hx-post="/export/plan"' in page.text and 'action="/export/bundle"' in page.text
    for key in ("/v1/log/vkey", "/v1/exports/key"):  # the keys the page links to open with the cookie alone
        assert f'href="{key}"' in page.text and site.client.get(key).status_code == 200
    site.sign_in("custodian")
    assert 'id="export-key"' in site.client.get("/export").text


def test_the_review_lists_withheld_victims_and_why(site: Site) -> None:
    site.sign_in("investigator")
    un = site.post("/export/plan", {"incidents": ["IDL-7"], "purpose": "un", "to": ""}, htmx=True)
    assert un.status_code == 200
    assert "<html" not in un.text and 'id="export-area"' in un.text  # the fragment htmx swaps in
    withheld = re.findall(r'<tr data-reason="([^"]+)">\s*<th scope="row" dir="auto">([^<]+)</th>\s*<td>(\d+)</td>'
                          r'\s*<td><span class="why"[^>]*>([^<]+)</span>', un.text)
    reasons = {reason: (what, int(count), why) for reason, what, count, why in withheld}
    assert reasons["no_consent_un_bodies"] == (
        "Victims", 1, "The family has not consented, or no longer consents, to sharing with United Nations bodies."
    ), reasons
    visible = re.sub(r"<[^>]+>", " ", un.text)  # the words a reader sees (attributes left out)
    assert "no_consent_un_bodies" not in visible and "linked_to_withheld_victim" not in visible
    assert "(now)" not in visible
    assert visible.count("What the bundle will carry") == 1  # one heading, not a heading and a caption
    assert reasons["linked_to_withheld_victim"][:2] == ("Items", 2)  # its photos go with it
    assert re.search(r'<tr data-count="victims"><th scope="row">Victims</th><td>0</td>', un.text)
    assert "V-1" not in un.text  # counts and reasons, never who
    court = site.post("/export/plan", {"incidents": ["IDL-7"], "purpose": "court", "to": "Tribunal"})
    assert court.status_code == 200 and "<html" in court.text  # without htmx: the whole page
    assert re.search(r'<tr data-count="victims"><th scope="row">Victims</th><td>1</td>', court.text)
    assert re.search(r'<tr data-count="items"><th scope="row">Items</th><td>2</td>', court.text)
    assert not any(r.startswith("no_consent_") for r in re.findall(r'data-reason="([^"]+)"', court.text))
    assert 'value="IDL-7" selected' in court.text  # the form keeps what was chosen


def _bundle_bag(content: bytes, identity: Identity, where: Path) -> Path:
    plain = b"".join(decrypt_stream(io.BytesIO(content), [identity]))
    with zipfile.ZipFile(io.BytesIO(plain)) as bundle:
        bundle.extractall(where)
        [top] = {name.split("/", 1)[0] for name in bundle.namelist()}
    (where / "bundle.zip").write_bytes(plain)
    return where / top


def test_a_custodian_downloads_a_bundle_that_verifies(site: Site, tmp_path: Path) -> None:
    from archive.exports.verify_bundle import verify_bundle

    site.sign_in("custodian")
    identity = Identity.generate()
    started, transfers = len(events_of(site.home, "dissemination")), len(events_of(site.home, "transfer"))
    answer = site.post("/export/bundle", {"incidents": ["IDL-7"], "purpose": "court",
                                          "key": str(identity.recipient), "format": "zip"})
    assert answer.status_code == 200, answer.text[:2000]
    assert answer.headers["content-disposition"] == 'attachment; filename="evidence-bundle.zip.age"'
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.content.startswith(b"age-encryption.org/v1\n")
    bag = _bundle_bag(answer.content, identity, tmp_path)
    report = verify_bundle(tmp_path / "bundle.zip")
    assert report.ok, report.failures
    checked = subprocess.run([sys.executable, "-m", "bagit", "--validate", str(bag)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert sorted(p.stem for p in (bag / "data" / "originals").iterdir()) == sorted(site.ids.values())
    # the same two custody events as POST /v1/exports: export started (to this key), then the transfer
    dissemination = events_of(site.home, "dissemination")
    transfer = events_of(site.home, "transfer")
    assert len(dissemination) == started + 1 and len(transfer) == transfers + 1
    from archive.exports.formats import fingerprint

    assert dissemination[-1].details["recipients"] == [fingerprint(str(identity.recipient))]
    assert dissemination[-1].details["purpose"] == "court"
    assert transfer[-1].outcome == "success"
    import hashlib

    assert transfer[-1].details["files"][0]["sha256"] == hashlib.sha256(answer.content).hexdigest()


def test_an_investigator_exports_to_a_registered_recipient_not_to_a_key(site: Site) -> None:
    site.sign_in("investigator")
    started = len(events_of(site.home, "dissemination"))
    adhoc = site.post("/export/bundle", {"incidents": ["IDL-7"], "purpose": "court",
                                         "key": str(Identity.generate().recipient)})
    assert adhoc.status_code == 422 and "<html" in adhoc.text
    assert "ad-hoc recipients" in field_error(adhoc.text, "key")  # the export service's own refusal
    review = site.post("/export/plan", {"incidents": ["IDL-7"], "purpose": "court",
                                        "key": str(Identity.generate().recipient)})
    assert review.status_code == 422 and "Only a custodian" in field_error(review.text, "key")
    assert len(events_of(site.home, "dissemination")) == started  # nothing exported, nothing recorded
    wrong_kind = site.post("/export/bundle", {"incidents": ["IDL-7"], "purpose": "un", "to": "Tribunal"})
    assert wrong_kind.status_code == 422 and "for the purpose court only" in field_error(wrong_kind.text, "to")
    good = site.post("/export/bundle", {"incidents": ["IDL-7"], "purpose": "court", "to": "Tribunal",
                                        "format": "tar"})
    assert good.status_code == 200 and good.content.startswith(b"age-encryption.org/v1\n")
    assert good.headers["content-disposition"] == 'attachment; filename="evidence-bundle.tar.age"'
    assert events_of(site.home, "dissemination")[-1].details["to"] == "Tribunal"


@pytest.mark.parametrize("data, field, says", [
    ({"incidents": ["NOPE-1"], "purpose": "court", "to": "Tribunal"}, "incidents", "Unknown incident: NOPE-1"),
    ({"incidents": ["IDL-7"], "purpose": "court", "key": "age1notakey"}, "key", "not an age public key"),
    ({"incidents": ["IDL-7"], "purpose": "", "to": "Tribunal"}, "purpose", "Choose the purpose"),
    ({"purpose": "court", "to": "Tribunal"}, "items", "Choose incidents or items"),
    ({"items": "itm-doesnotexist", "purpose": "court", "to": "Tribunal"}, "items", "itm-doesnotexist"),
])
def test_refusals_are_said_beside_their_field(site: Site, data: dict[str, Any], field: str, says: str) -> None:
    site.sign_in("custodian")
    started = len(events_of(site.home, "dissemination"))
    for path in ("/export/plan", "/export/bundle"):
        answer = site.post(path, data)
        assert answer.status_code == 422, (path, answer.text[:500])
        assert says in field_error(answer.text, field)
        assert 'aria-invalid="true"' in answer.text
    within = site.post("/export/plan", data, htmx=True)
    assert within.status_code == 200 and says in field_error(within.text, field)  # htmx swaps no 422
    assert len(events_of(site.home, "dissemination")) == started


def test_the_download_needs_a_recipient_the_review_does_not(site: Site) -> None:
    site.sign_in("custodian")
    data = {"incidents": ["IDL-7"], "purpose": "court"}
    assert site.post("/export/plan", data).status_code == 200
    refused = site.post("/export/bundle", data)
    assert refused.status_code == 422 and "Choose who can open the bundle" in field_error(refused.text, "to")


def test_a_form_without_its_token_is_refused(site: Site) -> None:
    site.sign_in("custodian")
    started = len(events_of(site.home, "dissemination"))
    data = {"incidents": ["IDL-7"], "purpose": "court", "to": "Tribunal"}
    assert site.client.post("/export/bundle", data=data).status_code == 403
    assert site.client.post("/export/bundle", data={**data, "csrf": site.csrf},
                            headers={"Origin": "http://evil.example"}).status_code == 403
    assert len(events_of(site.home, "dissemination")) == started


@pytest.mark.parametrize("role", ["contributor", "auditor"])
def test_no_export_for_contributors_and_auditors(site: Site, role: str) -> None:
    site.sign_in(role)
    assert site.client.get("/export").status_code == 403
    started = len(events_of(site.home, "dissemination"))
    data = {"incidents": ["IDL-7"], "purpose": "court", "to": "Tribunal"}
    for path in ("/export/plan", "/export/bundle"):
        answer = site.post(path, data)
        assert answer.status_code == 403 and "Tribunal" not in answer.text and "IDL-7" not in answer.text
    assert len(events_of(site.home, "dissemination")) == started


def test_the_arabic_page(site: Site) -> None:
    site.sign_in("investigator")
    page = site.client.get("/export", headers={"Accept-Language": "ar"})
    assert page.status_code == 200
    assert '<html lang="ar" dir="rtl">' in page.text and "تصدير حزمة" in page.text
    review = site.post("/export/plan", {"incidents": ["IDL-7"], "purpose": "un", "to": ""},
                       headers={"Accept-Language": "ar"})
    assert review.status_code == 200 and '<html lang="ar" dir="rtl">' in review.text
    assert "ما يُحجب، ولماذا" in review.text and "What is withheld" not in review.text
    assert re.search(r'<tr data-reason="no_consent_un_bodies">\s*<th scope="row" dir="auto">الضحايا</th>', review.text)
    assert "لم توافق العائلة" in review.text and "consented to sharing" not in review.text
