"""Who is calling: every route checked against the matrix, before its body is read.

Deny by default: a route the matrix does not know is refused to everyone
(403), so a route added without a row can never be reached. `PUBLIC` rows need
no credential. Everywhere else the credential is `Authorization: Bearer
TOKEN`, except under `/dav/`, where WebDAV clients send HTTP Basic (the
password is the token, the user name ignored); Basic is refused anywhere else
so a token typed into a WebDAV app cannot be replayed against the rest of the
API from a browser's credential cache. A token is never logged, echoed, nor
put in an error message.

The check runs twice over: `AuthorizeMiddleware` matches the route and
refuses before anything of the request body is read (FastAPI reads and
parses JSON and multipart bodies before dependencies run: an anonymous
client must not make the server parse, buffer or spool anything), and the
app-level dependency `authorize` makes sure no route is ever served
unchecked (it does the check itself if the middleware is missing).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from fastapi import Request
from starlette.datastructures import Headers

from api.http import matrix, metrics
from archive.services.errors import Forbidden, ServiceError, Unauthenticated

if TYPE_CHECKING:
    from archive.context import Archive, Runtime
    from archive.services.accounts import Caller

CHECKED = "evidence.authorized"  # scope key: the template the check ran for


class Unavailable(ServiceError):
    """Authentication cannot be checked now (HTTP 503)."""

    status_code = 503
    code = "unavailable"


class RoleForbidden(Forbidden):
    """The caller's role (or nobody) may call this route: the matrix's refusal, as opposed to a service's."""

    code = "forbidden"


def _credential(headers: Headers, basic: bool) -> str:
    """The token the request carries in the one scheme its path accepts."""
    header = headers.get("authorization")
    if not header:
        raise Unauthenticated("this route needs a token: send `Authorization: "
                              + ("Basic` (the token as password)" if basic else "Bearer TOKEN`"), "missing")
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer":
        if basic:
            raise Unauthenticated("under /dav/ send the token as the password of HTTP Basic authentication",
                                  "scheme")
        if not value:
            raise Unauthenticated("empty bearer token", "missing")
        return value
    if scheme == "basic":
        if not basic:
            raise Unauthenticated("Basic authentication is accepted only under /dav/; send `Authorization: "
                                  "Bearer TOKEN`", "scheme")
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise Unauthenticated("malformed Basic credentials", "scheme") from None
        _, sep, password = decoded.partition(":")
        if not sep or not password:
            raise Unauthenticated("Basic credentials without a password (the password is the token)", "missing")
        return password
    raise Unauthenticated("unsupported authorization scheme; send `Authorization: "
                          + ("Basic`" if basic else "Bearer TOKEN`"), "scheme")


def _authenticate(runtime: Runtime, token: str) -> Caller:
    try:
        from archive.services.accounts import authenticate
    except ImportError:  # the accounts service is not in this build
        raise Unavailable("accounts are not available in this build: no token can be checked") from None
    return authenticate(runtime, token)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_cookie(headers: Headers) -> str | None:
    """The web session cookie a request carries, if any."""
    from starlette.requests import cookie_parser

    from archive.services.web_sessions import COOKIE

    raw = headers.get("cookie")
    return cookie_parser(raw).get(COOKIE) if raw else None


def same_origin(headers: Headers) -> bool:
    """Whether a browser request comes from our own pages: its Origin (when sent) names the host it went to."""
    origin = headers.get("origin")
    if origin is None:
        return True  # not sent by same-origin GETs and some older browsers; SameSite=Strict still holds
    host = headers.get("host", "")
    return origin.partition("://")[2].rstrip("/") == host


def _by_cookie(runtime: Runtime, method: str, template: str, headers: Headers) -> Caller:
    """A signed-in browser's caller on a web page or a cookie-enabled API route."""
    from archive.services.web_sessions import authenticate_session

    cookie = session_cookie(headers)
    if not cookie:
        raise Unauthenticated("not signed in: sign in at /signin, or send `Authorization: Bearer TOKEN`",
                              "missing")
    caller = authenticate_session(runtime, cookie)
    if method not in SAFE_METHODS:
        if not same_origin(headers):
            raise RoleForbidden("this request came from another site's page")
        if not matrix.is_web(template):  # pages check the form's token themselves (`api.web.forms`)
            sent = headers.get("x-csrf-token", "")
            if not sent or not hmac.compare_digest(sent, caller.csrf):
                raise RoleForbidden("missing or wrong X-CSRF-Token for a signed-in browser's request")
    return caller


def check(runtime: Runtime, method: str, template: str | None, headers: Headers) -> Caller | None:
    """The caller of (method, template), None on a public route; raises `Unauthenticated` or `Forbidden`.

    Blocking (one indexed catalog query): call it from a worker thread.
    """
    roles = matrix.allowed(method, template) if template is not None else None
    if roles is None:
        metrics.refuse("unrouted")
        raise RoleForbidden("this route is not open to anyone")
    if not roles:
        return None  # PUBLIC
    assert template is not None
    basic = template.startswith(matrix.BASIC_PREFIX)
    cookie = not headers.get("authorization") and (
        matrix.is_web(template) or (method.upper(), template) in matrix.COOKIE_API)
    try:
        if cookie:
            caller = _by_cookie(runtime, method.upper(), template, headers)
        else:
            caller = _authenticate(runtime, _credential(headers, basic))
    except Unauthenticated as exc:
        metrics.refuse(exc.reason)
        raise
    if caller.role not in roles:
        metrics.refuse("role")
        allowed = ", ".join(sorted(str(role) for role in roles))
        raise RoleForbidden(f"the {caller.role} role may not call this route (it is open to: {allowed})")
    return caller


def app_routes(app: Any) -> list[tuple[str, frozenset[str]]]:
    """(path template, methods) of every route `app` serves, in the order its router tries them."""
    try:
        from fastapi.routing import iter_route_contexts

        contexts: list[Any] = list(iter_route_contexts(app.routes))
    except ImportError:  # an older FastAPI: included routes are flat already
        contexts = list(app.routes)
    return [(str(ctx.path), frozenset(ctx.methods or ())) for ctx in contexts
            if getattr(ctx, "path", None) and getattr(ctx, "methods", None)]


class RouteTable:
    """The app's routes compiled once, to find the template a request will be routed to before it is."""

    def __init__(self, app: Any) -> None:
        from starlette.routing import compile_path

        self._routes = [(compile_path(path)[0], path, methods) for path, methods in app_routes(app)]

    def template(self, path: str, method: str) -> str | None:
        """The template of the first route matching path and method (None: the router answers 404 or 405)."""
        for regex, template, methods in self._routes:
            if method in methods and regex.match(path):
                return template
        return None


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class AuthorizeMiddleware:
    """The check, before the application (and so before any body is read): a refusal is answered at once."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], fastapi: Any) -> None:
        self.app = app
        self.fastapi = fastapi
        self._table: RouteTable | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._table is None:
            self._table = RouteTable(self.fastapi)  # at the first request: every router is included by then
        template = self._table.template(scope["path"], scope["method"])
        if template is None:
            await self.app(scope, receive, send)  # no such route or method: the router answers 404 / 405
            return
        import anyio.to_thread

        from api.http.errors import service_error_response

        headers = Headers(scope=scope)
        try:
            caller = await anyio.to_thread.run_sync(check, self.fastapi.state.runtime, scope["method"],
                                                    template, headers)
        except ServiceError as exc:
            if matrix.is_web(template):
                from api.web.errors import refusal_page

                response = refusal_page(Request(scope), exc)
            else:
                response = service_error_response(Request(scope), exc)
            if template.startswith("/v1/uploads"):  # tus clients expect the header on every answer
                response.headers["Tus-Resumable"] = "1.0.0"
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        scope[CHECKED] = template
        await self.app(scope, receive, send)


async def authorize(request: Request) -> None:
    """The app-level dependency: the check, unless the middleware made it for this request.

    Async, so a checked request costs no thread hop; the fallback check itself runs in a worker thread.
    """
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    checked = request.scope.get(CHECKED)
    if checked is not None:
        if checked != template:  # the router chose another route than the check assumed: refuse, never guess
            metrics.refuse("unrouted")
            raise RoleForbidden("this route is not open to anyone")
        return
    import anyio.to_thread

    request.state.caller = await anyio.to_thread.run_sync(
        check, request.app.state.runtime, request.method.upper(), template, request.headers)
    request.scope[CHECKED] = template


def current_caller(request: Request) -> Caller:
    """The authenticated caller of a non-public route (for routes: `caller = current_caller(request)`)."""
    caller = getattr(request.state, "caller", None)
    if caller is None:
        raise Unauthenticated("this route needs a token", "missing")
    return caller  # type: ignore[no-any-return]


def archive_for(request: Request) -> Archive:
    """The `Archive` for this request, acting as the caller (the system `archive` on a public route)."""
    runtime: Runtime = request.app.state.runtime
    caller: Any = getattr(request.state, "caller", None)
    return runtime.archive(caller.user_id if caller is not None else "archive")
