"""Rendering a page: one Jinja2 environment, and what every template can count on finding.

Every page gets the request's language (`lang`, `dir`, `_`, `gettext`,
`ngettext`), who is signed in (`caller`, None on the sign-in pages), the
session's CSRF token (`csrf`), the navigation the caller's role may follow
(`nav`) and the current path. Autoescaping is on for everything: a value typed
by a user (a narrative, a name) is never markup. Answers carry a
Content-Security-Policy that admits only this server's scripts and styles
(and the configured map tile source's images), so injected markup could run
nothing even if it got through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.web.i18n import LANG_COOKIE, N_, Language, choose
from archive.roles import Role

TEMPLATES = Path(__file__).parent / "templates"

_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(default=True, default_for_string=True),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)

C, INV, A, K = Role.CUSTODIAN, Role.INVESTIGATOR, Role.AUDITOR, Role.CONTRIBUTOR
# (path, label, roles): the navigation, in the order shown
NAV: tuple[tuple[str, str, frozenset[Role]], ...] = (
    ("/", N_("Dashboard"), frozenset({C, INV, A, K})),
    ("/items", N_("Items"), frozenset({C, INV, A})),
    ("/incidents", N_("Incidents"), frozenset({C, INV})),
    ("/victims", N_("Victims"), frozenset({C, INV})),
    ("/sources", N_("Sources"), frozenset({C, INV})),
    ("/stats", N_("Statistics"), frozenset({C, INV})),
    ("/upload", N_("Upload"), frozenset({C, INV, K})),
    ("/export", N_("Export"), frozenset({C, INV})),
)


def environment() -> Environment:
    return _env


def language_of(request: Request) -> Language:
    """The request's language, worked out once per request."""
    held = getattr(request.state, "language", None)
    if held is None:
        held = choose(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
        request.state.language = held
    return held  # type: ignore[no-any-return]


def tile_source(request: Request) -> str | None:
    """The configured offline map tile URL template (`[web] tiles`), or None: then no map is drawn."""
    runtime = request.app.state.runtime
    tiles = (runtime.settings.section("web") or {}).get("tiles")
    return str(tiles) if tiles else None


def _unlocked(request: Request) -> bool:
    """Whether this server holds the keys that open records and pictures (a few `stat`s: checked per page)."""
    try:
        return bool(request.app.state.runtime.keys.unlocked())
    except Exception:  # noqa: BLE001 - a key file that cannot be read is as good as locked, for the banner
        return False


def content_security_policy(request: Request) -> str:
    images = "'self' data: blob:"
    tiles = tile_source(request)
    if tiles:
        scheme, _, rest = tiles.partition("://")
        host = rest.split("/", 1)[0]
        if scheme in ("http", "https") and host and "{" not in host:
            images += f" {scheme}://{host}"
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src " + images + "; media-src 'self' "
            "blob:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'self'")


def context(request: Request, **extra: Any) -> dict[str, Any]:
    """What every template gets, plus `extra`."""
    lang = language_of(request)
    caller = getattr(request.state, "caller", None)
    role = getattr(caller, "role", None)
    nav = [(path, lang.gettext(label)) for path, label, roles in NAV if role in roles]
    return {
        "request": request,
        "lang": lang.code,
        "dir": lang.dir,
        "language": lang,
        "_": lang.gettext,
        "gettext": lang.gettext,
        "ngettext": lang.ngettext,
        "caller": caller,
        "role": str(role) if role is not None else None,
        "csrf": getattr(caller, "csrf", "") or getattr(request.state, "csrf", ""),
        "nav": nav,
        "path": request.url.path,
        "tiles": tile_source(request),
        "locked": role in (C, INV, A) and not _unlocked(request),
        **extra,
    }


def render(request: Request, template: str, status_code: int = 200, headers: dict[str, str] | None = None,
           *, fragment: str | None = None, **extra: Any) -> HTMLResponse:
    """A page (or, with `fragment`, one block of it for htmx) rendered for the request's caller and language."""
    page = _env.get_template(template)
    values = context(request, **extra)
    if fragment is not None:
        body = "".join(page.blocks[fragment](page.new_context(values)))
    else:
        body = page.render(values)
    response = HTMLResponse(body, status_code=status_code, headers=headers)
    response.headers["Content-Security-Policy"] = content_security_policy(request)
    response.headers["Content-Language"] = values["lang"]
    response.headers.setdefault("Vary", "Cookie, Accept-Language")
    return response
