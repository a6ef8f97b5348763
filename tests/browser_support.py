"""Fixtures of the browser tests: one headless Chromium, one real `evidence serve`, contexts per flow.

Why a real server and a real browser: what the pages promise (the upload resumes
after the connection drops, the Content-Security-Policy lets our own scripts run
and nothing else, Arabic reads right to left, nothing leaves the machine) only
shows when Chromium runs the pages' JavaScript against the real application.

The browser is Debian's `/usr/bin/chromium`, driven by Playwright's Python API
(never `playwright install`: the machines have no internet). It starts once per
module; each flow gets a fresh context (its own cookies and language). A
`Watch` on each context records console errors (CSP violations show there),
page errors and every request, and aborts any request that would leave
127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.api_support import REPO, Server, make_home, serve

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(os.environ.get("EVIDENCE_SCREENSHOTS") or REPO / "build" / "screenshots")
AXE = "/static/vendor/axe.min.js"
ROLES = ("custodian", "investigator", "auditor", "contributor")
LOOPBACK = "127.0.0.1"


def require_browser() -> None:
    """Chromium and Playwright, or a skip on a developer's machine without them (a failure under CI)."""
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (apt-get install chromium; scripts/setup.sh)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[test]')")
    if not (REPO / "api/web/frontend/node_modules/axe-core/axe.min.js").is_file():
        missing.append("the front-end libraries (scripts/setup.sh runs npm ci in api/web/frontend)")
    if missing:
        message = "browser tests need " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def run_evidence(home: Path, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`evidence --home H ARGS…` as a subprocess (as an operator types it)."""
    done = subprocess.run([sys.executable, "-c", "from api.cli.main import main; main()", "--home", str(home), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)
    if check:
        assert done.returncode == 0, f"evidence {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@dataclass
class Account:
    """A user the site was set up with, and (for roles signed in by cookie) its id."""

    name: str
    role: str
    user_id: str


@dataclass
class Site:
    """The server under test, over its own archive home, with one user of each role."""

    home: Path
    server: Server
    accounts: dict[str, Account] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def add_user(self, name: str, role: str) -> Account:
        """A user made through the accounts service (as `evidence users add` does)."""
        from archive.context import Archive
        from archive.services.accounts import add_user

        archive = Archive.open(self.home)
        try:
            return Account(name, role, str(add_user(archive, name, role)["id"]))
        finally:
            archive.close()

    def session_cookie(self, account: Account) -> str:
        """A fresh session for `account`, made by the sessions service (flows that test not the sign-in)."""
        from archive.context import Archive
        from archive.services.web_sessions import start_session

        archive = Archive.open(self.home)
        try:
            return start_session(archive, account.user_id)[0]
        finally:
            archive.close()

    def events(self, prefix: str) -> list[dict[str, Any]]:
        """The custody events whose type starts with `prefix`, in log order."""
        from sqlmodel import Session, col, select

        from archive.catalog.events import Event
        from archive.context import Archive

        archive = Archive.open(self.home)
        try:
            with Session(archive.runtime.engine) as session:
                rows = session.exec(select(Event).order_by(col(Event.seq))).all()
                return [{"type": e.event_type, "actor": e.actor, "objects": list(e.objects), "outcome": e.outcome,
                         "details": dict(e.details)} for e in rows if e.event_type.startswith(prefix)]
        finally:
            archive.close()

    def evidence(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_evidence(self.home, *args, check=check)

    def evidence_json(self, *args: str) -> Any:
        return json.loads(self.evidence(*args, "--json").stdout)


@dataclass
class Watch:
    """What one browser context did: console errors, uncaught page errors, requests, blocked ones."""

    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def attach_page(self, page: Any) -> None:
        page.on("console", lambda msg: self.console.append(f"{page.url}: {msg.text}") if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.page_errors.append(f"{page.url}: {exc}"))

    def take_console(self) -> list[str]:
        """The console and page errors since the last call (and forget them)."""
        out = [*self.console, *self.page_errors]
        self.console.clear()
        self.page_errors.clear()
        return out

    def assert_clean(self, *allowed: str) -> None:
        """No console error (a CSP violation, a failed script) but those containing one of `allowed`."""
        errors = [e for e in self.take_console() if not any(a in e for a in allowed)]
        assert not errors, "console errors:\n" + "\n".join(errors)


def _is_outside(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return False
    return parts.hostname != LOOPBACK


def new_context(browser: Any, site: Site, *, lang: str = "en", role: str | None = None,
                viewport: dict[str, int] | None = None, **options: Any) -> tuple[Any, Watch]:
    """A fresh context (own cookies) in `lang` (Accept-Language), signed in as `role` when given."""
    context = browser.new_context(
        base_url=site.url, locale="ar" if lang == "ar" else "en-GB",
        extra_http_headers={"Accept-Language": "ar,en;q=0.5" if lang == "ar" else "en-GB,en;q=0.9"},
        viewport=viewport or {"width": 1280, "height": 900}, accept_downloads=True, **options)
    context.set_default_timeout(15_000)
    watch = Watch()

    def record(request: Any) -> None:
        watch.requests.append(f"{request.method} {request.url}")

    def block(route: Any) -> None:
        watch.outside.append(route.request.url)
        route.abort("blockedbyclient")

    context.on("request", record)
    context.on("page", watch.attach_page)
    context.route(_is_outside, block)
    if role is not None:
        from archive.services.web_sessions import COOKIE

        cookie = site.session_cookie(site.accounts[role])
        context.add_cookies([{"name": COOKIE, "value": cookie, "url": site.url, "httpOnly": True,
                              "sameSite": "Strict"}])
    return context, watch


def run_axe(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the page as shown (axe served by our own static route: CSP allows it)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(url=AXE)
    result = page.evaluate("async () => { const r = await axe.run(document, {resultTypes: ['violations']});"
                           " return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
                           " nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))})); }")
    return list(result)


def assert_accessible(page: Any, label: str) -> list[dict[str, Any]]:
    """No serious or critical axe violation on the page; the lesser ones printed (pytest -s shows them)."""
    violations = run_axe(page)
    grave = [v for v in violations if v["impact"] in ("serious", "critical")]
    for v in violations:
        if v not in grave:
            print(f"axe [{label}] {v['impact']}: {v['id']} ({v['help']}) at {v['nodes']}")
    assert not grave, f"axe on {label}: " + json.dumps(grave, ensure_ascii=False, indent=1)
    return violations


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot under `$EVIDENCE_SCREENSHOTS` (or build/screenshots/), never committed."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def horizontal_overflow(page: Any) -> int:
    """How many CSS pixels the page is wider than its viewport (0 when nothing overflows)."""
    return int(page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth"))


def mirrored_images(page: Any) -> list[str]:
    """The `<img>`, `<video>` and `<canvas>` elements whose computed transform flips them horizontally."""
    return list(page.evaluate("""() => {
        const out = [];
        for (const el of document.querySelectorAll('img, video, canvas, svg')) {
            let node = el;
            while (node && node.nodeType === 1) {
                const t = getComputedStyle(node).transform;
                if (t && t !== 'none') {
                    const m = new DOMMatrixReadOnly(t);
                    if (m.a < 0) { out.push(el.outerHTML.slice(0, 120)); break; }
                }
                node = node.parentElement;
            }
        }
        return out;
    }"""))


INCIDENT = "ALP-1"
VICTIM_NAME = "Ahmad أحمد"  # a name mixing Latin and Arabic letters: it reads right only when isolated


def seed(home: Path) -> None:
    """What the flows start from, made by the CLI before the server starts: an incident with one victim."""
    run_evidence(home, "incident", "add", INCIDENT, "--type", "killing", "--started-at", "2024-03-05",
                 "--governorate", "aleppo", "--place", "حلب Aleppo", "--attribution", "syrian_regime")
    run_evidence(home, "victim", "add", "V-1", "--incident", INCIDENT, "--name", VICTIM_NAME, "--sex", "male",
                 "--civilian", "true", "--date-documented", "2024-03-06", "--date-of-death", "2024-03-05",
                 "--governorate-of-death", "aleppo")


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Any]:
    """One headless Chromium for the whole module (contexts are cheap; a browser is not)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module", name="site")
def site_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """`evidence serve` on loopback over a fresh archive (its embedded worker ingests), one user per role."""
    require_browser()
    home = make_home(tmp_path_factory.mktemp("web") / "home")
    seed(home)
    server = serve(home)
    made = Site(home=home, server=server)
    try:
        for role in ROLES:
            made.accounts[role] = made.add_user(f"web-{role}", role)
        yield made
    finally:
        code = server.stop()
        log = server.log_text()
        if code not in (0, None):
            print(log[-5000:])
        shutil.rmtree(home.parent / "downloads", ignore_errors=True)
