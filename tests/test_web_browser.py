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

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import (
    Site,
    Watch,
    browser_fixture,  # noqa: F401 - the module's fixtures
    new_context,
    site_fixture,  # noqa: F401
)

PHOTO = "media/jpg/gps/DSCN0010.jpg"
OTHER_PHOTO = "media/jpg/gps/DSCN0012.jpg"
MIXED_TITLE = "قصف سوق Aleppo الشعبي"  # an incident title mixing Arabic and Latin: read right only when isolated
ITEM_ID = re.compile(r"/items/([0-9a-f]{16,64})")


@dataclass
class Journey:
    """What the flows made, for the flows after them."""

    files: dict[str, Path] = field(default_factory=dict)
    items: dict[str, str] = field(default_factory=dict)  # file name -> item id
    incident: str | None = None
    investigator: tuple[str, str] | None = None  # name and password set at enrolment
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
    made.files = {"photo": photo, "resized": resized, "arabic": arabic}
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
    context, watch = open_context()
    page = context.new_page()
    css = page.request.get("/static/app.css")
    assert css.status == 200 and "text/css" in css.headers["content-type"]
    assert page.request.get("/static/vendor/../../../pyproject.toml").status == 404

    signed, watch = open_context(role="investigator")
    page = signed.new_page()
    visit(page, watch, "/no-such-page", status=404)
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
