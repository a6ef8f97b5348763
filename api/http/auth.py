"""Who is calling: one app-level dependency that checks every route against the matrix.

Deny by default: a route the matrix does not know is refused to everyone
(403), so a route added without a row can never be reached. `PUBLIC` rows need
no credential. Everywhere else the credential is `Authorization: Bearer
TOKEN`, except under `/dav/`, where WebDAV clients send HTTP Basic (the
password is the token, the user name ignored); Basic is refused anywhere else
so a token typed into a WebDAV app cannot be replayed against the rest of the
API from a browser's credential cache. A token is never logged, echoed, nor
put in an error message.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from fastapi import Request

from api.http import matrix, metrics
from archive.services.errors import Forbidden, ServiceError, Unauthenticated

if TYPE_CHECKING:
    from archive.context import Archive, Runtime
    from archive.services.accounts import Caller


class Unavailable(ServiceError):
    """Authentication cannot be checked now (HTTP 503)."""

    status_code = 503
    code = "unavailable"


def _template(request: Request) -> str | None:
    route = request.scope.get("route")
    return getattr(route, "path", None)


def _credential(request: Request, basic: bool) -> str:
    """The token the request carries in the one scheme its path accepts."""
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated("this route needs a token: send `Authorization: "
                              + ("Basic` (the token as password)`" if basic else "Bearer TOKEN`"), "missing")
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
    except ImportError:  # the accounts service is not in this build yet
        raise Unavailable("accounts are not available in this build: no token can be checked") from None
    return authenticate(runtime, token)


def authorize(request: Request) -> None:
    """The app-level dependency: refuse, or put the `Caller` on `request.state.caller` (None on PUBLIC routes)."""
    request.state.caller = None
    template = _template(request)
    method = request.method.upper()
    roles = matrix.allowed(method, template) if template is not None else None
    if roles is None:
        metrics.refuse("unrouted")
        raise Forbidden("this route is not open to anyone")
    if not roles:
        return  # PUBLIC
    basic = template is not None and template.startswith(matrix.BASIC_PREFIX)
    try:
        token = _credential(request, basic)
        caller = _authenticate(request.app.state.runtime, token)
    except Unauthenticated as exc:
        metrics.refuse(exc.reason)
        raise
    if caller.role not in roles:
        metrics.refuse("role")
        allowed = ", ".join(sorted(str(role) for role in roles))
        raise Forbidden(f"the {caller.role} role may not call this route (it is open to: {allowed})")
    request.state.caller = caller


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
