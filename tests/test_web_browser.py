"""The web pages in a real browser: headless Chromium against a real `evidence serve` (issue 13).

One browser and one server (over one archive) serve every flow, in order: the
sign-in with a password and a TOTP code, an upload that survives a cut
connection, finding and opening the item, linking it to an incident,
confirming a near-duplicate, the statistics changing, an export checked by
`verify-bundle`; then the same in Arabic (right to left, names isolated,
pictures not mirrored), the roles' limits, a phone's width, axe-core on every
main page in both languages, and screenshots (`$EVIDENCE_SCREENSHOTS` or
`build/screenshots/`). Every page must log no console error (a CSP violation
is one) and no request may leave 127.0.0.1.

Later flows use what earlier ones made (`Journey`); each says what it needs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import (
    INCIDENT,
    VICTIM_NAME,
    Site,
    Watch,
    assert_accessible,
    browser_fixture,  # noqa: F401 - the module's fixtures
    horizontal_overflow,
    mirrored_images,
    new_context,
    run_evidence,
    screenshot,
    site_fixture,  # noqa: F401
)

PHOTO = "media/jpg/gps/DSCN0010.jpg"
OTHER_PHOTO = "media/jpg/gps/DSCN0012.jpg"
CONTRIBUTED = "media/jpg/exif-org/canon-ixus.jpg"
ITEM_ID = re.compile(r"/items/([0-9a-f][0-9a-f-]{15,63})(?:$|[/?#])")


@dataclass
class Journey:
    """What the flows made, for the flows after them."""

    files: dict[str, Path] = field(default_factory=dict)
    items: dict[str, str] = field(default_factory=dict)  # key of `files` -> item id
    investigator_state: Any = None  # the cookies of the investigator who signed in through the pages
    watches: list[Watch] = field(default_factory=list)

    def need_item(self, name: str) -> str:
        if name not in self.items:
            pytest.fail(f"needs {name} uploaded by the upload flow (it failed or did not run)")
        return self.items[name]


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Iterator[Journey]:
    from PIL import Image

    work = tmp_path_factory.mktemp("files")
    made = Journey()
    photo = work / "Aleppo-market-حلب.jpg"
    photo.write_bytes((corpus / PHOTO).read_bytes())
    resized = work / "reposted-small.jpg"
    with Image.open(corpus / PHOTO) as im:
        im.resize((im.width // 2, im.height // 2)).save(resized, quality=85)
    arabic = work / "صورة-الحي.jpg"
    arabic.write_bytes((corpus / OTHER_PHOTO).read_bytes())
    contributed = work / "شاهد-witness-video-still.jpg"
    contributed.write_bytes((corpus / CONTRIBUTED).read_bytes())
    made.files = {"photo": photo, "resized": resized, "arabic": arabic, "contributed": contributed}
    yield made
    outside = [url for watch in made.watches for url in watch.outside]
    assert not outside, f"requests that would have left 127.0.0.1: {outside}"


@pytest.fixture()
def open_context(browser: Any, site: Site, journey: Journey) -> Iterator[Any]:
    """`open_context(lang=…, role=…)`: a fresh context, closed after the test, checked for leaks."""
    opened: list[Any] = []

    def make(**options: Any) -> tuple[Any, Watch]:
        context, watch = new_context(browser, site, **options)
        opened.append(context)
        journey.watches.append(watch)
        return context, watch

    yield make
    for context in opened:
        context.close()
    for watch in journey.watches:
        assert not watch.outside, f"requests that would have left 127.0.0.1: {watch.outside}"


def visit(page: Any, watch: Watch, path: str, *, status: int = 200) -> Any:
    """Go to `path`, expect `status` (after redirects), and no console error on the way."""
    answer = page.goto(path)
    assert answer is not None and answer.status == status, (path, answer and answer.status, page.url)
    page.wait_for_load_state("load")
    watch.assert_clean(*(["status of 403", "status of 404"] if status >= 400 else []))
    return answer


def text_of(page: Any) -> str:
    return str(page.locator("main").inner_text())


# -- the foundation: redirects, error pages, the language switch, static files ------------------------------


def test_foundation_error_pages_static_files_and_language_switch(open_context: Any, site: Site) -> None:
    from playwright.sync_api import Error as BrowserError

    context, watch = open_context()
    page = context.new_page()
    css = page.request.get("/static/app.css")
    assert css.status == 200 and "text/css" in css.headers["content-type"]
    assert page.request.get("/static/vendor/../../../pyproject.toml").status == 404
    with pytest.raises(BrowserError):  # the harness itself: a request for another host is stopped and seen
        page.goto("http://192.0.2.1/beacon")
    assert watch.outside == ["http://192.0.2.1/beacon"]
    watch.outside.clear()
    watch.take_console()

    signed, watch = open_context(role="investigator")
    page = signed.new_page()
    answer = visit(page, watch, "/no-such-page", status=404)
    policy = answer.headers.get("content-security-policy", "")
    assert "default-src 'self'" in policy and "'unsafe-inline'" not in policy, policy  # violations reach the console
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").count() >= 1
    page.get_by_role("link", name="العربية").click()
    page.wait_for_load_state("load")
    assert page.locator("html").get_attribute("lang") == "ar" and page.locator("html").get_attribute("dir") == "rtl"
    assert page.url.endswith("/no-such-page")
    page.get_by_role("link", name="English").click()
    page.wait_for_load_state("load")
    assert page.locator("html").get_attribute("dir") == "ltr"
    watch.assert_clean("status of 404")


# -- helpers of the flows -----------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def signed_in_as_investigator(open_context: Any, journey: Journey, **options: Any) -> tuple[Any, Watch]:
    """The investigator who signed in through the pages (or, if that flow failed, a session made directly)."""
    if journey.investigator_state is not None:
        return open_context(storage_state=journey.investigator_state, **options)
    return open_context(role="investigator", **options)


def submit(page: Any, form: str = "main form") -> None:
    """Press the submit button of the (first) form matching `form`, and wait for the page it leads to."""
    with page.expect_navigation():
        page.locator(form).first.locator("button[type=submit]").first.click()
    page.wait_for_load_state("load")


def find_item(page: Any, watch: Watch, sha256: str, *, timeout: float = 90.0) -> str:
    """Search /items by SHA-256 through the form until the upload is there (the worker ingests it); its id."""
    deadline = time.monotonic() + timeout
    visit(page, watch, "/items")
    while True:
        page.locator("#f-sha256").fill(sha256)
        page.locator("#f-sha256").press("Enter")
        page.wait_for_load_state("load")
        links = page.locator("main table a[href^='/items/']")
        if links.count():
            assert links.count() == 1, f"a SHA-256 search found {links.count()} items"
            found = ITEM_ID.search(str(links.first.get_attribute("href")))
            assert found, links.first.get_attribute("href")
            watch.assert_clean()
            return found.group(1)
        if time.monotonic() > deadline:
            pytest.fail(f"/items?sha256={sha256[:12]}… found nothing within {timeout} s: {text_of(page)[:500]}")
        time.sleep(1.0)


def isolation_of(page: Any, text: str) -> list[dict[str, Any]]:
    """Each innermost element visibly showing `text`, with whether it is isolated (in a <bdi> or a dir=auto element)."""
    return list(page.evaluate("""(text) => {
        const out = [];
        const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        while (walker.nextNode()) {
            const node = walker.currentNode;
            if (!node.textContent.includes(text)) continue;
            const el = node.parentElement;
            const box = el.getBoundingClientRect();
            if (!el.checkVisibility() || box.width <= 1 || box.height <= 1) continue;  // not shown: no reading order
            const iso = el.closest('bdi, [dir=auto], input, textarea');
            out.push({tag: el.tagName, isolated: !!iso && iso.textContent.length <= text.length + 80,
                      html: el.outerHTML.slice(0, 160)});
        }
        return out;
    }""", text))


def assert_isolated(page: Any, text: str) -> None:
    shown = isolation_of(page, text)
    assert shown, f"{text!r} is not on {page.url}"
    bad = [s for s in shown if not s["isolated"]]
    assert not bad, f"{text!r} not in a <bdi> or dir=auto element on {page.url}: {bad}"


def assert_rtl(page: Any) -> None:
    assert page.locator("html").get_attribute("lang") == "ar", page.url
    assert page.locator("html").get_attribute("dir") == "rtl", page.url
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl", page.url
    assert not mirrored_images(page), f"mirrored pictures on {page.url}: {mirrored_images(page)}"
    assert re.search("[\u0600-\u06ff]", page.locator("h1").first.inner_text()), f"{page.url}: the title is not Arabic"
    brand = page.locator("header .brand").bounding_box()
    width = page.evaluate("window.innerWidth")
    assert brand and brand["x"] + brand["width"] > width * 0.75, f"{page.url}: the header does not start on the right"


def preview_shown(page: Any) -> bool:
    """Whether the item page shows its picture (a loaded `<img class=preview>` or a video's poster)."""
    img = page.locator("main img.preview")
    if img.count():
        img.first.wait_for(state="visible")
        return bool(page.evaluate("(el) => el.complete && el.naturalWidth > 0", img.first.element_handle()))
    return page.locator("main video[poster]").count() > 0


# -- the main flow, in English ------------------------------------------------------------------------------


def test_sign_in_with_a_setup_code_then_a_password_and_a_totp_code(open_context: Any, site: Site,
                                                                    journey: Journey) -> None:
    import pyotp

    from archive.context import Archive
    from archive.services.web_signin import setup_account

    name, password = "web-layla", "a long pass phrase, 2026"
    user_id = site.add_user(name, "investigator").user_id
    archive = Archive.open(site.home)
    try:
        setup_code = setup_account(archive, name)
    finally:
        archive.close()
    context, watch = open_context()
    page = context.new_page()
    visit(page, watch, "/items?linked=yes")  # signed out: the sign-in page, coming back here after
    assert page.url.startswith(f"{site.url}/signin?next="), page.url
    page.locator("main [name=name]").fill(name)
    page.locator("main [name=password]").fill(setup_code)
    submit(page)
    assert "/enrol" in page.url, (page.url, text_of(page)[:500])
    watch.assert_clean()
    assert page.locator("main svg").count() >= 1, "no QR code (inline SVG) on the enrolment page"
    secrets_shown = re.findall(r"\b[A-Z2-7]{4}(?: ?[A-Z2-7]{4}){7}\b", text_of(page))
    assert secrets_shown, "the enrolment page shows no TOTP key to type in"
    totp = pyotp.TOTP(secrets_shown[0].replace(" ", ""))
    screenshot(page, "enrol-en")
    page.locator("main [name=password]").fill(password)
    page.locator("main [name=repeat]").fill(password)
    enrolled_at = totp.timecode(time.time())
    page.locator("main [name=code]").fill(totp.now())
    submit(page)
    assert page.url.endswith("/items?linked=yes"), (page.url, text_of(page)[:500])
    watch.assert_clean()
    cookie = next(c for c in context.cookies() if c["name"] == "evidence_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state("load")
    assert "/signin" in page.url and not any(c["name"] == "evidence_session" for c in context.cookies())
    visit(page, watch, "/signin")
    page.locator("main [name=name]").fill(name)
    page.locator("main [name=password]").fill(password)
    submit(page)
    assert "/signin/code" in page.url, (page.url, text_of(page)[:500])
    wrong = f"{(int(totp.now()) + 1) % 10**6:06d}"
    page.locator("main [name=code]").fill(wrong)
    submit(page)
    assert "/signin" in page.url and not any(c["name"] == "evidence_session" for c in context.cookies())
    assert page.locator("main [role=alert], main .field-error, main .notice").count() >= 1, text_of(page)[:500]
    watch.take_console()  # the refused code answers 4xx: the console says so
    if "/signin/code" not in page.url:  # a wrong code may send back to the first step
        page.locator("main [name=name]").fill(name)
        page.locator("main [name=password]").fill(password)
        submit(page)
    # a code is taken once: the next one must be of a later time step than the one enrolment used
    later = time.time() + 30 if totp.timecode(time.time()) <= enrolled_at else time.time()
    page.locator("main [name=code]").fill(totp.at(later))
    submit(page)
    assert urlpath(page.url) == "/", (page.url, text_of(page)[:500])
    assert page.get_by_role("button", name="Sign out").count() == 1
    watch.assert_clean()
    journey.investigator_state = context.storage_state()
    mine = [e for e in site.events("web ") if user_id in e["objects"] or e["details"].get("user") == user_id]
    kinds = [e["type"] for e in mine]
    for expected in ("web enrolled", "web sign-out", "web sign-in failed"):
        assert expected in kinds, kinds
    assert kinds.count("web sign-in") >= 2, kinds  # at enrolment, and with the password and the code
    assert name not in json_text(site.events("web ")), "a sign-in event names the user (ids only)"


def urlpath(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path


def test_upload_survives_a_cut_connection_and_shows_the_signed_receipt(open_context: Any, site: Site, journey: Journey,
                                                                       tmp_path: Path) -> None:
    context, watch = signed_in_as_investigator(open_context, journey)
    page = context.new_page()
    cut: list[str] = []

    def drop_first_patch(route: Any) -> None:
        if route.request.method == "PATCH" and not cut:
            cut.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.fallback()

    page.route("**/v1/uploads/**", drop_first_patch)
    visit(page, watch, "/upload")
    files = [journey.files["photo"], journey.files["resized"]]
    page.set_input_files("#upload-files", [str(f) for f in files])
    page.locator("#upload-start").click()
    receipts = page.locator("#upload-list .receipt pre")
    deadline = time.monotonic() + 90
    while receipts.count() < 2:
        if time.monotonic() > deadline:
            pytest.fail(f"no two receipts within 90 s: {page.locator('#upload-list').inner_text()}")
        page.wait_for_timeout(250)
    assert cut, "the upload sent no PATCH (nothing was cut)"
    patches = [r for r in watch.requests if r.startswith("PATCH ")]
    assert len(patches) >= 3, patches  # the cut one, its retry, the second file
    assert page.locator("#upload-list .status.bad").count() == 0
    upload_url = cut[0]
    assert f"HEAD {upload_url}" in watch.requests, "after the cut the client did not ask the server for its offset"
    assert watch.requests.count(f"PATCH {upload_url}") == 2, "the cut file was not resumed at its own URL"
    # each receipt, downloaded from the page, checks offline under the verifier key the page shows
    vkey = tmp_path / "receipt.vkey"
    vkey.write_text(page.locator("#receipt-vkey").inner_text().strip() + "\n")
    for n in range(2):
        with page.expect_download() as info:
            page.locator("#upload-list .receipt a[download]").nth(n).click()
        saved = tmp_path / f"receipt-{n}.txt"
        info.value.save_as(str(saved))
        done = run_evidence(site.home, "receipt", "verify", str(saved), "--vkey", str(vkey), "--json")
        checked = json.loads(done.stdout)
        assert checked["ok"] is True, checked
        assert sha256_of(files[n]) in json.dumps(checked), (files[n].name, checked)
    shown = page.locator("#upload-list").inner_text()
    assert journey.files["photo"].name in shown
    assert_isolated(page, journey.files["photo"].name)
    screenshot(page, "upload-en")
    watch.assert_clean("ERR_CONNECTION_RESET", "net::ERR_FAILED")


def test_find_the_upload_open_it_link_it_and_confirm_the_near_duplicate(open_context: Any, site: Site,
                                                                         journey: Journey) -> None:
    context, watch = signed_in_as_investigator(open_context, journey)
    page = context.new_page()
    photo = journey.items["photo"] = find_item(page, watch, sha256_of(journey.files["photo"]))
    resized = journey.items["resized"] = find_item(page, watch, sha256_of(journey.files["resized"]))
    screenshot(page, "items-en")
    visit(page, watch, "/")
    assert int(page.locator(".figure.state-preserved").inner_text()) >= 2, text_of(page)[:500]
    visit(page, watch, f"/items/{photo}")
    assert photo in page.locator("h1").inner_text()
    assert preview_shown(page), "the item page shows no picture of a photo"
    assert_isolated(page, journey.files["photo"].name)  # the original name, mixed Latin and Arabic
    # the near-duplicate is suggested when the second copy's fingerprint is made: wait for it
    deadline = time.monotonic() + 60
    while page.locator(f"#candidates a[href='/items/{resized}']").count() == 0:
        if time.monotonic() > deadline:
            pytest.fail(f"/items/{photo}: the resized copy {resized} is not shown as a near-duplicate: "
                        f"{page.locator('#candidates').inner_text()}")
        page.wait_for_timeout(1000)
        page.reload()
    screenshot(page, "item-en")

    page.locator("#link-incident").fill(INCIDENT)
    page.locator("#link-note").fill("the market, seen from the east")
    submit(page, "form.link-form")
    assert urlpath(page.url) == f"/items/{photo}", page.url
    assert INCIDENT in page.locator("#links").inner_text()
    watch.assert_clean()
    links = site.evidence_json("links", photo)
    assert INCIDENT in json_text(links)

    decision = page.locator(f"#decision-{resized}")
    decision.get_by_role("button", name="Same footage").click()
    page.locator(f"#decision-{resized} .cand-confirmed").wait_for()
    watch.assert_clean()
    confirmed = site.evidence_json("candidates", "list", "--state", "confirmed")
    assert {photo, resized} <= set(re.findall(r"[0-9a-f][0-9a-f-]{15,63}", json_text(confirmed))), confirmed

    site.evidence("log", "checkpoint")  # the item's events in a signed checkpoint: their proofs can be checked
    page.reload()
    button = page.locator("button.check-proof").first
    button.click()
    result = page.locator(f"#{button.get_attribute('aria-describedby')}")
    page.wait_for_function("(el) => el.textContent && !el.textContent.includes('…')", arg=result.element_handle())
    assert result.inner_text().strip() == "verified", result.inner_text()
    assert page.locator("#vkey-line").inner_text().strip() == "checkpoint signature verified"
    watch.assert_clean()

    def tampered(route: Any) -> None:  # one hash of the audit path changed on the way: the browser must notice
        answer = route.fetch()
        proof = answer.json()
        raw = bytearray(base64.b64decode(proof["audit_path"][0]))
        raw[0] ^= 1
        proof["audit_path"][0] = base64.b64encode(bytes(raw)).decode()
        route.fulfill(response=answer, json=proof)

    page.route("**/events/*/proof", tampered)
    page.reload()
    button = page.locator("button.check-proof").first
    button.click()
    result = page.locator(f"#{button.get_attribute('aria-describedby')}")
    page.wait_for_function("(el) => el.textContent && !el.textContent.includes('…')", arg=result.element_handle())
    assert result.inner_text().strip() == "FAILED", result.inner_text()
    watch.assert_clean()


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def test_statistics_change_when_a_victim_is_recorded(open_context: Any, site: Site, journey: Journey) -> None:
    context, watch = signed_in_as_investigator(open_context, journey)
    page = context.new_page()
    visit(page, watch, "/stats")
    cell = "#table-governorate tr[data-key='aleppo'] td[data-column='civilians']"
    before = int(page.locator(cell).inner_text())
    total = "#table-governorate tr[data-total] td[data-column='civilians']"
    assert int(page.locator(total).inner_text()) == before
    site.evidence("victim", "add", "V-2", "--incident", INCIDENT, "--sex", "female", "--civilian", "true",
                  "--date-documented", "2024-03-07", "--date-of-death", "2024-03-05", "--governorate-of-death",
                  "aleppo")
    visit(page, watch, "/stats")
    assert int(page.locator(cell).inner_text()) == before + 1
    assert int(page.locator("#table-month td[data-column='women']").first.inner_text()) >= 1
    drawn = page.evaluate("""() => [...document.querySelectorAll('canvas[data-chart]')].map(c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true;
        return false; })""")
    assert drawn and all(drawn), f"charts not drawn: {drawn}"
    screenshot(page, "stats-en")
    watch.assert_clean()


def test_export_a_bundle_and_verify_it(open_context: Any, site: Site, journey: Journey,
                                       tmp_path: Path) -> None:
    from archive.age import Identity

    journey.need_item("photo")  # linked to the incident by the items flow: the bundle carries it
    identity = Identity.generate()
    identity_file = tmp_path / "recipient.key"
    identity_file.write_text(f"{identity}\n")
    vkey = tmp_path / "log.vkey"
    vkey.write_text(site.evidence("log", "key").stdout)
    context, watch = open_context(role="custodian")
    page = context.new_page()
    visit(page, watch, "/export")
    page.locator("#export-incidents").select_option([INCIDENT])
    page.locator("#export-purpose").select_option("court")
    page.locator("#export-key").fill(str(identity.recipient))
    page.get_by_role("button", name="Review").click()
    page.locator("#export-plan").wait_for()
    assert int(page.locator("#plan-counts tr[data-count='incidents'] td").inner_text()) == 1
    assert page.locator("#plan-withheld tbody tr").count() >= 1, "court: victims without consent are withheld"
    assert VICTIM_NAME not in text_of(page)
    screenshot(page, "export-en")
    watch.assert_clean()
    with page.expect_download(timeout=120_000) as info:
        page.get_by_role("button", name="Download bundle").click()
    bundle = tmp_path / (info.value.suggested_filename or "bundle.zip.age")
    info.value.save_as(str(bundle))
    planned = int(page.locator("#plan-counts tr[data-count='items'] td").inner_text())
    done = subprocess.run([sys.executable, "-c", "from api.cli.main import main; main()", "verify-bundle",
                           str(bundle), "--identity", str(identity_file), "--vkey", str(vkey), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"verify-bundle: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["authenticity_established"] is True and not report["failures"], report
    assert report["checked"].get("item commitments", 0) == planned >= 1, (planned, report["checked"])
    watch.assert_clean()


def test_the_first_custodian_signs_in_with_an_api_token(open_context: Any, site: Site) -> None:
    made = site.evidence_json("tokens", "create", site.accounts["custodian"].name)
    context, watch = open_context()
    page = context.new_page()
    visit(page, watch, "/export")
    assert "/signin" in page.url
    page.locator("details.token summary").click()
    page.locator("#token").fill("evk_" + "0" * 40)  # not a token of this archive: refused beside the field
    submit(page, "details.token form")
    assert page.locator("#token-error").is_visible(), text_of(page)[:500]
    assert not any(c["name"] == "evidence_session" for c in context.cookies())
    watch.take_console()
    page.locator("#token").fill(str(made["token"]))
    submit(page, "details.token form")
    assert urlpath(page.url) == "/export", (page.url, text_of(page)[:500])
    assert page.locator("#export-key").count() == 1  # a custodian's form: an ad-hoc age key may be given
    watch.assert_clean()


def test_records_forms_validate_beside_the_fields_and_a_witness_identity_needs_a_confirmation(
        open_context: Any, site: Site) -> None:
    context, watch = open_context(role="custodian")
    page = context.new_page()
    visit(page, watch, "/incidents/new")
    page.locator("#incident-ref").fill("IDL-WEB-1")
    page.locator("#incident-started_at").fill("2024-13-45")
    page.locator("#incident-governorate").select_option("idlib")
    page.locator("#incident-type").select_option("killing")
    page.locator("#incident-attribution-syrian_regime").check()
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.locator("form.record-form button[type=submit]").click()
    page.wait_for_load_state("load")
    assert posted.value.status == 422
    assert page.locator("#err-incident-started_at").is_visible(), text_of(page)[:800]
    assert page.locator("#incident-started_at").get_attribute("aria-invalid") == "true"
    assert page.locator("#incident-ref").input_value() == "IDL-WEB-1"  # what was typed is kept
    watch.take_console()  # the 422 is logged by the browser
    page.locator("#incident-started_at").fill("2024-04-01")
    page.locator("#incident-place").fill("معرة النعمان Maarat")
    submit(page, "form.record-form")
    assert "IDL-WEB-1" in page.locator("h1").inner_text(), (page.url, text_of(page)[:800])
    watch.assert_clean()

    visit(page, watch, "/victims/new")
    page.locator("#victim-ref").fill("V-WEB-1")
    page.locator("#victim-incident_ref").fill("IDL-WEB-1")
    page.locator("#victim-name").fill("Sara سارة")
    page.locator("#victim-sex").select_option("female")
    page.locator("#victim-civilian").select_option("true")
    page.locator("#victim-date_documented").fill("2024-04-02")
    submit(page, "form.record-form")
    assert "V-WEB-1" in text_of(page), (page.url, text_of(page)[:800])
    assert_isolated(page, "Sara سارة")
    visit(page, watch, "/incidents/IDL-WEB-1")
    assert_isolated(page, "Sara سارة")

    secret = "Omar Real-Name عمر 0999 000 000"
    visit(page, watch, "/sources/new")
    page.locator("#source-ref").fill("SRC-WEB-1")
    page.locator("#source-kind").select_option("eyewitness")
    page.locator("#source-alias").fill("Abu Omar")
    page.locator("#source-identity").fill(secret)
    submit(page, "form.record-form")
    assert "SRC-WEB-1" in text_of(page) and secret not in page.content(), text_of(page)[:800]
    source_url = page.url
    page.get_by_role("button", name="Show real identity").click()  # not confirmed: refused beside the box
    page.wait_for_load_state("load")
    assert page.locator("#err-reveal-confirm").is_visible() and secret not in page.content()
    watch.take_console()
    page.locator("#reveal-confirm").check()
    page.get_by_role("button", name="Show real identity").click()
    page.wait_for_load_state("load")
    assert secret in text_of(page)
    assert_isolated(page, secret)
    screenshot(page, "source-identity-en")
    watch.assert_clean()

    investigator, watch = open_context(role="investigator")
    page = investigator.new_page()
    visit(page, watch, urlpath(source_url))
    assert "SRC-WEB-1" in text_of(page) and secret not in page.content()
    assert page.get_by_role("button", name="Show real identity").count() == 0


# -- the same, in Arabic ------------------------------------------------------------------------------------


def test_the_main_flow_in_arabic_reads_right_to_left(open_context: Any, site: Site, journey: Journey) -> None:
    context, watch = signed_in_as_investigator(open_context, journey, lang="ar")
    page = context.new_page()
    visit(page, watch, "/")
    assert_rtl(page)
    visit(page, watch, "/upload")
    assert_rtl(page)
    page.set_input_files("#upload-files", str(journey.files["arabic"]))
    page.locator("#upload-start").click()
    page.locator("#upload-list .receipt pre").wait_for(timeout=90_000)
    assert_isolated(page, journey.files["arabic"].name)
    screenshot(page, "upload-ar")
    item = journey.items["arabic"] = find_item(page, watch, sha256_of(journey.files["arabic"]))
    assert_rtl(page)
    visit(page, watch, f"/items/{item}")
    assert_rtl(page)
    assert preview_shown(page), "the item page shows no picture of a photo"
    page.locator("#link-incident").fill(INCIDENT)
    submit(page, "form.link-form")
    assert INCIDENT in page.locator("#links").inner_text()
    assert_rtl(page)
    screenshot(page, "item-ar")
    visit(page, watch, f"/incidents/{INCIDENT}")
    assert_rtl(page)
    assert_isolated(page, VICTIM_NAME)
    assert page.locator(f"main a[href='/items/{item}']").count() >= 1, "the incident page lists its linked item"
    screenshot(page, "incident-ar")
    visit(page, watch, "/stats")
    assert_rtl(page)
    watch.assert_clean()


# -- roles --------------------------------------------------------------------------------------------------


def test_a_contributor_cannot_open_an_item_and_an_auditor_sees_no_media(open_context: Any, journey: Journey) -> None:
    item = journey.need_item("photo")
    context, watch = open_context(role="contributor")
    page = context.new_page()
    for path in (f"/items/{item}", "/items", f"/items/{item}/original"):
        visit(page, watch, path, status=403)
        assert page.locator("h1").count() == 1 and item[:12] not in page.locator("main").inner_text(), path
    screenshot(page, "forbidden-en")
    # what a contributor may do: upload, and see its own uploads (only them) on its dashboard
    visit(page, watch, "/upload")
    page.set_input_files("#upload-files", str(journey.files["contributed"]))
    page.locator("#upload-start").click()
    page.locator("#upload-list .receipt pre").wait_for(timeout=90_000)
    visit(page, watch, "/")
    assert_isolated(page, journey.files["contributed"].name)
    assert journey.files["photo"].name not in page.content()  # the investigator's upload is not its business
    assert page.locator("#states-title").count() == 0 and page.locator("a[href^='/items']").count() == 0
    screenshot(page, "dashboard-contributor-en")

    context, watch = open_context(role="auditor")
    page = context.new_page()
    visit(page, watch, f"/items/{item}")
    assert item in page.locator("h1").inner_text()
    media = page.locator("img, video, audio, source, picture, object, embed")
    assert media.count() == 0, [media.nth(i).evaluate("e => e.outerHTML.slice(0, 120)") for i in range(media.count())]
    assert not [r for r in watch.requests if "/preview" in r or "/original" in r], watch.requests
    assert page.locator("#link-incident").count() == 0, "an auditor is offered a link form"
    assert journey.files["photo"].name not in page.content(), "an auditor sees the original's file name"
    visit(page, watch, "/items")
    assert page.locator("img").count() == 0
    visit(page, watch, f"/items/{item}/original", status=403)
    screenshot(page, "item-auditor-en")


# -- every main page: accessibility, console, screenshots, a phone's width -----------------------------------


def main_pages(journey: Journey) -> list[str]:
    pages = ["/", "/items", "/incidents", f"/incidents/{INCIDENT}", "/victims", "/sources", "/stats", "/upload",
             "/export"]
    if "photo" in journey.items:
        pages.insert(2, f"/items/{journey.items['photo']}")
    return pages


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_main_pages_pass_axe_log_no_error_and_are_photographed(open_context: Any, site: Site, journey: Journey,
                                                               lang: str) -> None:
    context, watch = signed_in_as_investigator(open_context, journey, lang=lang)
    page = context.new_page()
    problems: list[str] = []
    for path in main_pages(journey):
        answer = page.goto(path)
        page.wait_for_load_state("load")
        status = answer.status if answer else None
        if status != 200:
            problems.append(f"{path}: HTTP {status}")
            watch.take_console()
            continue
        if page.locator("header a[hreflang]").count() != 1:
            problems.append(f"{path}: no language switch")
        name = "item" if path.startswith("/items/") else (path.strip("/").replace("/", "-") or "dashboard")
        screenshot(page, f"{name}-{lang}")
        try:
            assert_accessible(page, f"{path} ({lang})")
        except AssertionError as exc:
            problems.append(str(exc))
        if lang == "ar":
            try:
                assert_rtl(page)
            except AssertionError as exc:
                problems.append(f"{path}: {exc}")
        errors = watch.take_console()
        if errors:
            problems.append(f"{path}: console errors {errors}")
    page.goto("/items")  # from the keyboard: the first Tab reaches the skip link, Enter moves to the content
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('skip')"), "the first Tab is not the skip link"
    assert page.locator("a.skip").bounding_box(), "the focused skip link is not visible"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main" or page.url.endswith("#main")
    signed_out, watch = open_context(lang=lang)
    page = signed_out.new_page()
    visit(page, watch, "/signin")
    screenshot(page, f"signin-{lang}")
    assert_accessible(page, f"/signin ({lang})")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_pages_fit_a_phone_360_px_wide(open_context: Any, journey: Journey, lang: str) -> None:
    context, watch = signed_in_as_investigator(open_context, journey, viewport={"width": 360, "height": 740},
                                               is_mobile=True, has_touch=True, lang=lang)
    page = context.new_page()
    wide: list[str] = []
    for path in main_pages(journey):
        answer = page.goto(path)
        page.wait_for_load_state("load")
        if answer is None or answer.status != 200:
            wide.append(f"{path}: HTTP {answer and answer.status}")
            continue
        over = horizontal_overflow(page)
        if over > 1:
            wide.append(f"{path}: {over} px wider than the 360 px screen")
    page.goto("/items")
    screenshot(page, f"items-phone-{lang}", full_page=True)
    page.goto(main_pages(journey)[2])
    screenshot(page, f"item-phone-{lang}", full_page=True)
    watch.take_console()
    assert not wide, "\n".join(wide)
