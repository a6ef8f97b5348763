"""The item pages and the dashboard over HTTP, as each role's browser gets them.

What is attacked: what each role sees and must not see (an auditor: no media,
previews or personal fields; a contributor: refused; an investigator outside a
restricted case: hidden items 404 and missing from lists and near-duplicates),
one access custody event per page view that shows previews, a preview without
its view token refused, the proof JSON checked by an independent RFC 9162 and
signed-note re-implementation (and another item's event refused), near-
duplicate decisions and incident links written, and the Arabic page.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageOps

from tests.conftest import Cli
from tests.web_support import csrf_of, signed_in, web_client, web_home

NOTE = "handed over by Rami Haddad at the crossing"
ITEM_JS = Path(__file__).resolve().parents[1] / "api" / "web" / "static" / "item.js"
NODE_RUNNER = """
const fs = require("fs");
globalThis.window = globalThis;
globalThis.document = { querySelectorAll: () => [], getElementById: () => null, addEventListener: () => {} };
(0, eval)(fs.readFileSync(process.argv[2], "utf8"));
const cases = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
(async () => {
  const out = { proofs: [], notes: [] };
  for (const proof of cases.proofs) { out.proofs.push(await window.evidenceProof.proofOk(proof)); }
  for (const note of cases.notes) { out.notes.push(await window.evidenceProof.signatureOk(note, cases.vkey)); }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


class Home:
    """An archive with a photo, its mirrored re-post (a near-duplicate candidate) and an unrelated photo."""

    def __init__(self, tmp_path: Path, corpus: Path) -> None:
        self.home = web_home(tmp_path)
        self.corpus = corpus
        self.cli = Cli(self.home)
        photo = corpus / "media/jpg/gps/DSCN0010.jpg"
        mirrored = tmp_path / "reposted.png"
        with Image.open(photo) as im:
            ImageOps.mirror(im.resize((320, 240))).save(mirrored)
        reports = self.cli.json_lines("ingest", str(photo), str(corpus / "media/jpg/gps/DSCN0012.jpg"),
                                      str(mirrored), str(corpus / "media/video/phone_gradients.mp4"), "--note", NOTE)
        self.ids = {Path(r["path"]).name: r["id"] for r in reports}
        self.video = self.ids["phone_gradients.mp4"]
        self.photo, self.other, self.repost = (self.ids["DSCN0010.jpg"], self.ids["DSCN0012.jpg"],
                                               self.ids["reposted.png"])
        self.cli("log", "checkpoint")

    def copy(self, where: Path) -> Home:
        """This archive, copied whole (catalog, keys, storage) to `where`: each test writes to its own."""
        import copy
        import shutil

        twin = copy.copy(self)
        twin.home = where / "home"
        shutil.copytree(self.home, twin.home, symlinks=True)
        twin.cli = Cli(twin.home)
        return twin

    def events(self, event_type: str) -> list[Any]:
        from sqlmodel import Session, col, select

        from archive.catalog.events import Event
        from archive.context import Archive

        archive = Archive.open(self.home)
        try:
            with Session(archive.engine) as session:
                return list(session.exec(select(Event).where(Event.event_type == event_type)
                                         .order_by(col(Event.seq))).all())
        finally:
            archive.close()


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Home:
    return Home(tmp_path_factory.mktemp("web-items"), corpus)


@pytest.fixture()
def home(made: Home, tmp_path: Path) -> Home:
    """A fresh copy of the archive for each test (ingesting once keeps the file fast)."""
    return made.copy(tmp_path)


@pytest.fixture()
def browser(home: Home) -> Iterator[Any]:
    with web_client(home.home) as test_client:
        yield test_client


def _hide_photo_in_a_case(home: Home, browser: Any) -> None:
    """Link the photo to an incident of a restricted case nobody is a member of (an investigator's view)."""
    home.cli("incident", "add", "INC-SEALED", "--type", "killing", "--started-at", "2023-12-09",
             "--governorate", "idlib", "--attribution", "syrian_regime")
    home.cli("link", home.photo, "--incident", "INC-SEALED")
    home.cli("cases", "add", "sealed-case")
    home.cli("cases", "incident", "sealed-case", "INC-SEALED")


# --- roles ---------------------------------------------------------------------------------------------------------

def test_an_investigator_sees_the_item_with_its_metadata_place_provenance_copies_and_timeline(
        home: Home, browser: Any) -> None:
    signed_in(browser, "investigator")
    page = browser.get(f"/items/{home.photo}")
    assert page.status_code == 200, page.text
    html = page.text
    assert NOTE in html  # provenance
    assert "NIKON" in html.upper()  # extracted metadata: the camera
    turned = re.search(r'<dt>Orientation</dt><dd dir="auto">([^<]*)</dd>', html)
    assert turned and re.fullmatch(r"(upright|(mirrored, )?turned [^(]+|mirrored) \([1-8]\)", turned.group(1))
    assert re.search(r'<bdi dir="ltr" class="coord">4[0-9]\.[0-9]{6}</bdi>', html)  # the capture place, isolated
    assert 'id="item-map"' not in html and "leaflet" not in html  # no tiles configured: no map at all
    assert f'href="/items/{home.photo}/original"' in html
    assert "check-proof" in html and f"/items/{home.photo}/events/" in html
    assert f"/items/{home.repost}" in html  # the near-duplicate, with its decision buttons
    assert f'hx-post="/items/{home.photo}/candidates/{home.repost}/confirm"' in html
    assert 'name="csrf"' in html and "<script>" not in html and 'style="' not in html


def test_the_map_is_drawn_only_when_tiles_are_configured(home: Home) -> None:
    config = home.home / "config.toml"
    if not config.exists():
        pytest.skip("no config.toml in the home to add [web] tiles to")
    config.write_text(config.read_text() + '\n[web]\ntiles = "http://tiles.local/{z}/{x}/{y}.png"\n')
    with web_client(home.home) as test_client:
        signed_in(test_client, "custodian")
        page = test_client.get(f"/items/{home.photo}")
    assert page.status_code == 200, page.text
    assert 'id="item-map"' in page.text and "/static/vendor/leaflet.js" in page.text
    assert "http://tiles.local" in page.headers["content-security-policy"]


def test_an_auditor_gets_no_media_previews_or_personal_fields(home: Home, browser: Any) -> None:
    signed_in(browser, "auditor")
    page = browser.get(f"/items/{home.photo}")
    assert page.status_code == 200, page.text
    html = page.text
    for absent in (NOTE, "NIKON", "<video", "<img", "/original", "/preview", 'class="coord"', "candidates/",
                   "DSCN0010"):
        assert absent not in html.upper() if absent == "NIKON" else absent not in html, absent
    assert "check-proof" in html  # the auditor checks the log
    listing = browser.get("/items")
    assert listing.status_code == 200 and home.photo[:12] in listing.text and "<img" not in listing.text
    assert browser.get(f"/items/{home.photo}/original").status_code == 403
    assert browser.get(f"/items/{home.photo}/preview?v=x&t=y").status_code == 403
    assert browser.post(f"/items/{home.photo}/links", data={"incident": "X", "csrf": csrf_of(html)}).status_code == 403


def test_a_contributor_is_refused_every_item_page_and_sees_only_its_own_uploads_on_the_dashboard(
        home: Home, browser: Any) -> None:
    signed_in(browser, "contributor")
    for path in ("/items", f"/items/{home.photo}", f"/items/{home.photo}/original",
                 f"/items/{home.photo}/events/0/proof"):
        answer = browser.get(path)
        assert answer.status_code == 403, path
        assert home.photo not in answer.text.partition("<main")[2]  # (the language switch links back to the path)
    dash = browser.get("/")
    assert dash.status_code == 200
    assert home.photo[:12] not in dash.text and "preserved" not in dash.text and "Storage sites" not in dash.text
    assert "Your recent uploads" in dash.text


def test_the_dashboard_shows_states_sites_checkpoint_and_fixity_problems(home: Home, browser: Any) -> None:
    signed_in(browser, "auditor")
    dash = browser.get("/")
    assert dash.status_code == 200, dash.text
    html = dash.text
    assert re.search(r'<span class="figure state-preserved">4</span>', html)
    assert "Storage sites" in html and '<span class="ok">reachable</span>' in html
    assert "Latest checkpoint" in html and "No checkpoint has been signed yet" not in html
    assert NOTE not in html and "DSCN" not in html  # counts and health, no names
    waiting = re.search(r"(\d+) (event waits|events wait) for the next checkpoint", html)
    assert waiting and (waiting.group(2) == "event waits") == (waiting.group(1) == "1")  # (the sign-in's events)


# --- previews and the access events -------------------------------------------------------------------------------

def test_one_access_event_per_page_view_and_previews_need_the_pages_token(home: Home, browser: Any) -> None:
    signed_in(browser, "investigator")
    before = len(home.events("access"))
    listing = browser.get("/items")
    assert listing.status_code == 200
    sources = re.findall(r'<img class="thumb" src="([^"]+)"', listing.text)
    assert len(sources) >= 2, listing.text
    after = home.events("access")
    assert len(after) == before + 1  # N thumbnails, one event
    for src in sources:
        image = browser.get(src.replace("&amp;", "&"))
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        assert image.headers["cache-control"] == "no-store"  # never left in the browser's disk cache
        assert "sandbox" in image.headers["content-security-policy"]
    assert len(home.events("access")) == before + 1  # the images themselves write no event
    item = re.search(r"/items/([0-9a-f-]+)/preview", sources[0])
    assert item
    assert browser.get(f"/items/{item.group(1)}/preview").status_code == 404
    token = re.search(r"t=([^&\"]+)", sources[0].replace("&amp;", "&"))
    assert token
    other = home.other if item.group(1) != home.other else home.photo
    assert browser.get(f"/items/{other}/preview?v=abc&t={token.group(1)}").status_code == 404


def test_a_video_gets_a_player_that_loads_the_original_only_when_played(home: Home, browser: Any) -> None:
    signed_in(browser, "investigator")
    before = len(home.events("access"))
    html = browser.get(f"/items/{home.video}").text
    player = re.search(r"<video [^>]*>", html)
    assert player and "controls" in player.group(0) and 'preload="none"' in player.group(0)
    assert f'<source src="/items/{home.video}/original" type="video/mp4">' in html
    assert len(home.events("access")) <= before + 1  # the page view's preview event at most, never the original
    played = browser.get(f"/items/{home.video}/original")
    assert played.status_code == 200 and played.headers["content-type"] == "video/mp4"
    assert played.content[4:8] == b"ftyp"


def test_a_fixity_problem_is_on_the_dashboard_but_not_for_an_investigator_its_item_is_hidden_from(
        home: Home, browser: Any) -> None:
    shown = home.cli.json("show", home.photo)
    replica = next(r for r in shown["replicas"] if r["backend"] == "site-a")
    stored = home.home / "storage" / "site-a" / replica["object"]
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    home.cli("fixity", "--item", home.photo, expect=1)
    signed_in(browser, "auditor")
    html = browser.get("/").text
    assert f'href="/items/{home.photo}"' in html and "No fixity problem recorded" not in html
    _hide_photo_in_a_case(home, browser)
    signed_in(browser, "investigator")
    html = browser.get("/").text
    assert home.photo not in html and "No fixity problem recorded" in html


def _site_originals(html: str) -> dict[str, int]:
    """Each storage site's row on the dashboard: its name and its originals."""
    found = re.findall(r'<tr><th scope="row"><bdi dir="auto">([^<]+)</bdi>.*?</td>\s*<td>(\d+)</td>', html, re.S)
    return {name: int(count) for name, count in found}


def test_the_dashboard_counts_leave_out_what_a_restricted_case_hides_from_the_caller(
        home: Home, browser: Any) -> None:
    signed_in(browser, "investigator")
    before = browser.get("/").text
    assert '<span class="figure state-preserved">4</span>' in before
    sites_before = _site_originals(before)
    assert sites_before and all(n == 4 for n in sites_before.values()), sites_before
    _hide_photo_in_a_case(home, browser)
    signed_in(browser, "investigator")  # a new non-member: the numbers of an archive without the photo
    hidden = browser.get("/").text
    assert '<span class="figure state-preserved">3</span>' in hidden
    assert _site_originals(hidden) == {name: 3 for name in sites_before}
    signed_in(browser, "custodian")  # a custodian sees everything, still
    whole = browser.get("/").text
    assert '<span class="figure state-preserved">4</span>' in whole and _site_originals(whole) == sites_before
    signed_in(browser, "auditor")
    assert '<span class="figure state-preserved">4</span>' in browser.get("/").text


def test_the_original_is_the_file_and_its_opening_one_access_event(home: Home, browser: Any, corpus: Path) -> None:
    signed_in(browser, "custodian")
    before = len(home.events("access"))
    answer = browser.get(f"/items/{home.photo}/original")
    assert answer.status_code == 200
    assert answer.content == (corpus / "media/jpg/gps/DSCN0010.jpg").read_bytes()
    assert answer.headers["content-type"].startswith("image/jpeg")
    assert answer.headers["content-disposition"] == f'inline; filename="{home.photo}.jpg"'  # "Save as" opens
    assert len(home.events("access")) == before + 1
    video = browser.get(f"/items/{home.video}/original")
    assert video.headers["content-disposition"] == f'inline; filename="{home.video}.mp4"'


# --- proofs ------------------------------------------------------------------------------------------------------

def _root_from(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes:
    """RFC 9162 2.1.3.2, written here independently of archive.custody."""
    assert index < size
    fn, sn, r = index, size - 1, leaf
    for p in path:
        assert sn != 0
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0
    return r


def _check_note(note: str, vkey: str) -> tuple[int, bytes]:
    """The (tree size, root) of a C2SP signed checkpoint whose Ed25519 signature by `vkey` verifies."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    name, key_id, key = vkey.strip().split("+", 2)
    raw = base64.b64decode(key)
    assert raw[0] == 1
    text, _, signatures = note.partition("\n\n")
    signed = (text + "\n").encode()
    for line in signatures.splitlines():
        if line.startswith(f"\u2014 {name} "):
            sig = base64.b64decode(line.split(" ")[2])
            assert sig[:4].hex() == key_id
            Ed25519PublicKey.from_public_bytes(raw[1:]).verify(sig[4:], signed)
            lines = text.split("\n")
            assert lines[0] == name
            return int(lines[1]), base64.b64decode(lines[2])
    raise AssertionError("no signature by the log's key")


def test_each_events_proof_is_accepted_by_an_independent_check_and_another_items_event_is_refused(
        home: Home, browser: Any) -> None:
    signed_in(browser, "investigator")
    html = browser.get(f"/items/{home.photo}").text
    seqs = [int(s) for s in re.findall(rf"/items/{home.photo}/events/(\d+)/proof", html)]
    assert seqs
    vkey = browser.get("/v1/log/vkey").text
    for seq in seqs:
        answer = browser.get(f"/items/{home.photo}/events/{seq}/proof")
        assert answer.status_code == 200, answer.text
        proof = answer.json()
        entry = base64.b64decode(proof["entry"])
        assert json.loads(entry)["item"] == home.photo and json.loads(entry)["seq"] == seq
        size, root = _check_note(proof["checkpoint"], vkey)
        assert size == proof["tree_size"] and proof["leaf_index"] == seq
        leaf = hashlib.sha256(b"\x00" + entry).digest()
        assert _root_from(leaf, seq, size, [base64.b64decode(p) for p in proof["audit_path"]]) == root
        tampered = entry.replace(b"\"seq\"", b"\"seQ\"")
        with pytest.raises(AssertionError):
            assert _root_from(hashlib.sha256(b"\x00" + tampered).digest(), seq, size,
                              [base64.b64decode(p) for p in proof["audit_path"]]) == root
    other_html = browser.get(f"/items/{home.other}").text
    other_seq = int(re.findall(rf"/items/{home.other}/events/(\d+)/proof", other_html)[0])
    assert browser.get(f"/items/{home.photo}/events/{other_seq}/proof").status_code == 404
    assert browser.get(f"/items/{home.photo}/events/999999/proof").status_code == 404


# --- decisions ---------------------------------------------------------------------------------------------------

def test_confirm_and_reject_write_the_candidate_state(home: Home, browser: Any) -> None:
    from archive.context import Archive
    from archive.roles import Role
    from archive.services.links import list_candidates

    signed_in(browser, "investigator")
    csrf = csrf_of(browser.get(f"/items/{home.photo}").text)
    refused = browser.post(f"/items/{home.photo}/candidates/{home.repost}/confirm", headers={"HX-Request": "true"})
    assert refused.status_code == 403  # no CSRF token
    swapped = browser.post(f"/items/{home.photo}/candidates/{home.repost}/confirm",
                           headers={"HX-Request": "true", "X-CSRF-Token": csrf})
    assert swapped.status_code == 200, swapped.text
    assert f'id="decision-{home.repost}"' in swapped.text and "confirmed" in swapped.text
    assert "<html" not in swapped.text
    archive = Archive.open(home.home)
    try:
        assert [c["state"] for c in list_candidates(archive, role=Role.CUSTODIAN)] == ["confirmed"]
        rejected = browser.post(f"/items/{home.photo}/candidates/{home.repost}/reject",
                                headers={"HX-Request": "true", "X-CSRF-Token": csrf})
        assert rejected.status_code == 200 and "rejected" in rejected.text
        assert [c["state"] for c in list_candidates(archive, role=Role.CUSTODIAN)] == ["rejected"]
    finally:
        archive.close()
    assert browser.post(f"/items/{home.photo}/candidates/{home.repost}/merge",
                        headers={"X-CSRF-Token": csrf}).status_code == 422


def test_linking_to_an_incident_from_the_item_page(home: Home, browser: Any) -> None:
    home.cli("incident", "add", "INC-LINK-1", "--type", "killing", "--started-at", "2023-12-09",
             "--governorate", "idlib", "--attribution", "syrian_regime")
    signed_in(browser, "investigator")
    csrf = csrf_of(browser.get(f"/items/{home.photo}").text)
    bad = browser.post(f"/items/{home.photo}/links", data={"incident": "INC-NOPE", "csrf": csrf})
    assert bad.status_code == 422 and 'class="field-error"' in bad.text and 'value="INC-NOPE"' in bad.text
    assert "No incident has this reference" in bad.text and "Nothing was linked." in bad.text
    # answered at the POST address: the page says where it is, and item.js puts that address back in the bar
    assert f'<a id="link-back" href="/items/{home.photo}#links">' in bad.text
    assert 'getElementById("link-back")' in ITEM_JS.read_text() and "replaceState" in ITEM_JS.read_text()
    browser.headers["Accept-Language"] = "ar"
    bad_ar = browser.post(f"/items/{home.photo}/links", data={"incident": "INC-NOPE", "csrf": csrf})
    assert bad_ar.status_code == 422 and "لا توجد حادثة بهذا المرجع" in bad_ar.text and "INC-NOPE'" not in bad_ar.text
    del browser.headers["Accept-Language"]
    made = browser.post(f"/items/{home.photo}/links", data={"incident": "INC-LINK-1", "certainty": "probable",
                                                             "csrf": csrf}, follow_redirects=False)
    assert made.status_code == 303, made.text
    page = browser.get(f"/items/{home.photo}").text
    assert 'href="/incidents/INC-LINK-1"' in page
    assert "INC-LINK-1" in browser.get("/items?linked=yes").text
    assert home.photo[:12] not in browser.get("/items?linked=no").text


def test_the_link_form_suggests_only_the_incidents_the_caller_can_see(home: Home, browser: Any) -> None:
    home.cli("incident", "add", "INC-OPEN-1", "--type", "killing", "--started-at", "2024-01-02",
             "--governorate", "aleppo", "--attribution", "syrian_regime")
    home.cli("incident", "add", "INC-SEALED", "--type", "killing", "--started-at", "2023-12-09",
             "--governorate", "idlib", "--attribution", "syrian_regime")
    home.cli("cases", "add", "sealed-case")
    home.cli("cases", "incident", "sealed-case", "INC-SEALED")
    signed_in(browser, "investigator")
    html = browser.get(f"/items/{home.photo}").text
    assert 'list="link-incidents"' in html
    datalist = re.search(r'<datalist id="link-incidents">(.*?)</datalist>', html, re.S)
    assert datalist and re.findall(r'<option value="([^"]+)">', datalist.group(1)) == ["INC-OPEN-1"]
    assert "INC-SEALED" not in html
    signed_in(browser, "custodian")
    listed = re.search(r'<datalist id="link-incidents">(.*?)</datalist>', browser.get(f"/items/{home.photo}").text)
    assert listed and re.findall(r'<option value="([^"]+)">', listed.group(1)) == ["INC-OPEN-1", "INC-SEALED"]


# --- the custody timeline ------------------------------------------------------------------------------------------

def test_the_timeline_shows_who_acted_and_why_for_deletions_accesses_and_changes(home: Home, browser: Any) -> None:
    from archive.context import Archive
    from archive.custody.log import DELETION, append_event
    from archive.db import transaction

    reason = "a later arrival's copy, never published: the archive already holds these bytes"
    home.cli("incident", "add", "INC-WHY", "--type", "killing", "--started-at", "2023-12-09",
             "--governorate", "idlib", "--attribution", "syrian_regime")
    home.cli("link", home.photo, "--incident", "INC-WHY")  # a metadata modification of the item
    archive = Archive.open(home.home)
    try:  # what the arrival step writes when a second upload of the same bytes is discarded
        with transaction(archive.engine) as session:
            append_event(session, DELETION, actor="u-0123456789abcdef", item_id=home.photo,
                         details={"backend": "site-a", "staged": True, "reason": reason})
    finally:
        archive.close()
    investigator = signed_in(browser, "investigator")
    assert browser.get(f"/items/{home.photo}/original").status_code == 200  # an access event by this caller
    html = browser.get(f"/items/{home.photo}").text
    rows = re.findall(r"<tr><th scope=\"row\">(\d+)</th>(.*?)</tr>", html.partition('id="timeline-title"')[2], re.S)
    by_seq = {int(seq): row for seq, row in rows}
    events = {e.seq: e for e in home.events("deletion") + home.events("access") + home.events("metadata modification")
              + home.events("ingestion") if e.item_id == home.photo}
    assert events and set(events) <= set(by_seq)
    for seq, event in events.items():
        assert f"<code>{event.actor}</code>" in by_seq[seq], seq  # who acted, on every row
    deletion = next(by_seq[e.seq] for e in events.values() if e.event_type == "deletion")
    assert reason.replace("'", "&#39;") in deletion and "<code>u-0123456789abcdef</code>" in deletion
    access = next(by_seq[e.seq] for e in events.values()
                  if e.event_type == "access" and e.actor == investigator.user_id)
    assert "download original" in access
    change = next(by_seq[e.seq] for e in events.values() if e.event_type == "metadata modification")
    assert "Linked" in change
    ingestion = next(by_seq[e.seq] for e in events.values() if e.event_type == "ingestion")
    assert "event-why" not in ingestion  # only deletions, accesses and modifications carry a reason
    assert "<th scope=\"col\">By</th>" in html.partition('id="timeline-title"')[2]


# --- locked previews, vocabulary filters, layout ------------------------------------------------------------------

def test_locked_previews_are_called_locked_not_absent_and_no_view_is_recorded(
        home: Home, browser: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from archive.services.errors import Locked

    signed_in(browser, "investigator")
    unlocked = browser.get(f"/items/{home.photo}").text
    assert '<img class="preview"' in unlocked and "Previews are locked" not in unlocked
    keys = browser.app.state.runtime.keys

    def locked() -> Any:
        raise Locked("the preview identity is locked in this process")

    monkeypatch.setattr(keys, "preview_identities", locked)
    before = len(home.events("access"))
    page = browser.get(f"/items/{home.photo}")
    assert page.status_code == 200
    assert "Previews are locked: a custodian must unlock the archive." in page.text
    assert "No preview of this item" not in page.text and "<img" not in page.text
    listing = browser.get("/items").text
    assert "Previews are locked" in listing and "<img" not in listing
    assert len(home.events("access")) == before  # nothing was shown: no view to record
    browser.headers["Accept-Language"] = "ar"
    assert "المعاينات مقفلة" in browser.get(f"/items/{home.photo}").text


def test_the_vocabulary_filters_are_lists_of_translated_labels_and_filter_by_key(home: Home, browser: Any) -> None:
    home.cli("incident", "add", "INC-IDLIB", "--type", "killing", "--started-at", "2023-12-09",
             "--governorate", "idlib", "--attribution", "russian_forces")
    home.cli("link", home.photo, "--incident", "INC-IDLIB")
    signed_in(browser, "investigator")
    browser.headers["Accept-Language"] = "ar"
    html = browser.get("/items").text
    for name in ("governorate", "party", "type", "source_kind"):
        assert f'<select id="f-{name}" name="{name}">' in html and f'<input id="f-{name}"' not in html, name
    assert '<option value="idlib">إدلب</option>' in html and '<option value="aleppo">حلب</option>' in html
    assert '<option value="russian_forces">القوات الروسية</option>' in html
    assert '<option value="killing">قتل</option>' in html
    chosen = browser.get("/items?governorate=idlib&party=russian_forces&type=killing")
    assert chosen.status_code == 200, chosen.text
    assert '<option value="idlib" selected>إدلب</option>' in chosen.text
    assert '<option value="russian_forces" selected>' in chosen.text
    shown = set(re.findall(r'href="/items/([0-9a-f-]{36})"', chosen.text))
    assert shown == {home.photo}
    incidents = chosen.text.partition('id="incidents-title"')[2]
    assert "INC-IDLIB" in incidents and "<td>إدلب</td>" in incidents and ">idlib<" not in incidents
    odd = browser.get("/items?governorate=Atlantis")  # typed into the address: kept, and refused by the service
    assert odd.status_code == 422 and '<option value="Atlantis" selected>Atlantis</option>' in odd.text


def test_metadata_values_sit_beside_their_labels_in_right_to_left(home: Home, browser: Any) -> None:
    css = (ITEM_JS.parent / "items.css").read_text()
    rules = re.search(r"dl\.facts\s*\{([^}]*)\}", css)
    assert rules and "justify-items: start" in rules.group(1)  # app.css's grid would push LTR values far away
    assert re.search(r"dl\.facts dd\s*\{[^}]*justify-self: start", css)
    assert not re.search(r"\b(left|right)\b", css)  # logical properties only
    signed_in(browser, "investigator")
    browser.headers["Accept-Language"] = "ar"
    page = browser.get(f"/items/{home.photo}").text
    assert '<link rel="stylesheet" href="/static/items.css">' in page and '<dl class="facts">' in page


# --- compartments, paging, language -----------------------------------------------------------------------------

def test_an_investigator_outside_a_restricted_case_never_sees_its_items(home: Home, browser: Any) -> None:
    _hide_photo_in_a_case(home, browser)
    signed_in(browser, "investigator")
    for path in (f"/items/{home.photo}", f"/items/{home.photo}/original", f"/items/{home.photo}/events/0/proof"):
        assert browser.get(path).status_code == 404, path
    assert home.photo[:12] not in browser.get("/items").text
    repost = browser.get(f"/items/{home.repost}")
    assert repost.status_code == 200 and home.photo not in repost.text  # not among its near-duplicates
    assert home.photo not in browser.get("/").text
    signed_in(browser, "custodian")
    assert browser.get(f"/items/{home.photo}").status_code == 200


def test_results_are_paged(home: Home, browser: Any) -> None:
    signed_in(browser, "custodian")
    first = browser.get("/items?limit=2")
    assert first.status_code == 200
    shown = set(re.findall(r'href="/items/([0-9a-f-]{36})"', first.text))
    assert len(shown) == 2
    following = re.search(r'href="(/items\?[^"]*after=[^"]+)" rel="next"', first.text)
    assert following
    second = browser.get(following.group(1).replace("&amp;", "&"))
    rest = set(re.findall(r'href="/items/([0-9a-f-]{36})"', second.text))
    assert len(rest) == 2 and not rest & shown and 'rel="next"' not in second.text
    assert browser.get("/items?after=nonsense").status_code == 422


def test_the_arabic_pages_are_right_to_left_and_translated(home: Home, browser: Any) -> None:
    signed_in(browser, "investigator")
    browser.headers["Accept-Language"] = "ar"
    for path in ("/", "/items", f"/items/{home.photo}"):
        page = browser.get(path)
        assert page.status_code == 200, path
        assert '<html lang="ar" dir="rtl">' in page.text
    item = browser.get(f"/items/{home.photo}").text
    assert "Custody timeline" not in item and "سلسلة الحيازة" in item
    assert "Check proof" not in item
    assert "Storage sites" not in browser.get("/").text
    assert "، خط الطول" in item  # an Arabic comma between the coordinates, each isolated left to right
    assert re.search(r'<bdi dir="ltr" class="coord">-?[0-9]+\.[0-9]{6}</bdi>', item)


def test_the_provenance_names_the_channel_by_its_translated_label(home: Home, browser: Any, corpus: Path) -> None:
    sent = home.cli.json_lines("ingest", str(corpus / "media/jpg/gps/DSCN0021.jpg"), "--channel", "messaging")
    signed_in(browser, "investigator")
    page = browser.get(f"/items/{sent[0]['id']}").text
    assert "<td>messaging app</td>" in page and "<td>messaging</td>" not in page
    browser.headers["Accept-Language"] = "ar"
    assert "<td>تطبيق مراسلة</td>" in browser.get(f"/items/{sent[0]['id']}").text


def test_the_pages_own_script_accepts_the_proofs_and_refuses_tampered_ones(
        home: Home, browser: Any, tmp_path: Path) -> None:
    """item.js's RFC 9162 and signed-note checks, run in Node (the same WebCrypto the browser has)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the browser tests run item.js in Chromium)")
    signed_in(browser, "auditor")
    html = browser.get(f"/items/{home.photo}").text
    proofs = [browser.get(f"/items/{home.photo}/events/{seq}/proof").json()
              for seq in re.findall(rf"/items/{home.photo}/events/(\d+)/proof", html)]
    assert proofs
    good = proofs[-1]
    entry = base64.b64decode(good["entry"])
    altered_entry = {**good, "entry": base64.b64encode(entry.replace(b'"outcome":"', b'"outcome":"x')).decode()}
    altered_path = {**good, "audit_path": list(reversed(good["audit_path"]))} if len(good["audit_path"]) > 1 else \
        {**good, "audit_path": [*good["audit_path"], good["audit_path"][0] if good["audit_path"] else good["entry"]]}
    wrong_seq = {**good, "seq": good["seq"] + 1}
    lines = good["checkpoint"].split("\n")
    forged_root = base64.b64encode(hashlib.sha256(b"forged").digest()).decode()
    forged_note = "\n".join([lines[0], lines[1], forged_root, *lines[3:]])
    cases = {"proofs": [*proofs, altered_entry, altered_path, wrong_seq],
             "notes": [good["checkpoint"], forged_note], "vkey": browser.get("/v1/log/vkey").text}
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    (tmp_path / "run.js").write_text(NODE_RUNNER)
    done = subprocess.run([node, str(tmp_path / "run.js"), str(ITEM_JS), str(tmp_path / "cases.json")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["proofs"] == [True] * len(proofs) + [False, False, False]
    assert out["notes"] == [True, False]
