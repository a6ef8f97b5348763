"""Forms of the pages: the CSRF check every unsafe page request passes.

A signed-in browser's form (or htmx request) must carry the session's CSRF
token, as the `X-CSRF-Token` header (htmx sends it from `hx-headers` on the
body) or as a `csrf` form field (plain forms); SameSite=Strict already keeps
other sites' requests from carrying the cookie, the token is the second lock.
A caller with a Bearer token (a tool, not a browser) needs none.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from api.http.auth import same_origin
from archive.services.errors import Forbidden

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class StaleForm(Forbidden):
    code = "csrf"


async def csrf_ok(request: Request) -> None:
    """Refuse an unsafe page request from a signed-in browser without its session's CSRF token."""
    if request.method not in UNSAFE:
        return
    caller = getattr(request.state, "caller", None)
    expected = getattr(caller, "csrf", None)
    if caller is None or not expected:
        return  # public routes check their own (sign-in); Bearer callers are not browsers
    if not same_origin(request.headers):
        raise StaleForm("this form was sent from another site's page")
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        field = form.get("csrf")
        sent = field if isinstance(field, str) else None
    if not sent or not hmac.compare_digest(sent, expected):
        raise StaleForm("the form's security token is missing or out of date: reload the page and try again")


LOOPBACK = ("127.0.0.1", "::1")


def from_proxy(request: Request) -> bool:
    """Whether the request came through a trusted proxy: `[web] proxies` (default: this machine's loopback, where
    deploy/Caddyfile and nginx.conf run), the only clients whose forwarded headers are believed."""
    settings = request.app.state.runtime.settings.section("web") or {}
    proxies = settings.get("proxies", LOOPBACK) or ()
    client = request.client.host if request.client else None
    return client is not None and client in [str(proxy) for proxy in proxies]


def is_https(request: Request) -> bool:
    """Whether the browser reached us over TLS: directly, through a trusted proxy saying `X-Forwarded-Proto:
    https`, or as `[web] https = true` declares; cookies are then marked Secure.

    `evidence serve` does not trust forwarded headers in general (client addresses are never logged from them).
    """
    if request.url.scheme == "https":
        return True
    if (request.app.state.runtime.settings.section("web") or {}).get("https"):
        return True
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
    return from_proxy(request) and forwarded == "https"
