"""Error pages: what a browser is shown instead of the API's JSON.

A page asked for without a session sends the browser to the sign-in page
(and back after it); a refusal, a missing thing, a locked archive or a
failure get a page in the browser's language that says what happened and
what to do, never a traceback, never the value that caused it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.http import matrix
from api.web.i18n import N_
from archive.services.errors import Locked, ServiceError, Unauthenticated

log = logging.getLogger("api.web")

API_PREFIXES = ("/v1/", "/dav/", "/healthz", "/readyz", "/metrics", "/openapi.json")

TITLES = {
    401: N_("Please sign in"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    405: N_("This address is opened by a form"),
    409: N_("Conflict"),
    413: N_("Too large"),
    422: N_("Please check what you entered"),
    429: N_("Too many attempts"),
    503: N_("Not available now"),
    500: N_("Something went wrong"),
}
EXPLANATIONS = {
    401: N_("You are not signed in, or your session ended. Sign in again to go on."),
    403: N_("Your role does not allow this page or action. Ask a custodian if you need it."),
    404: N_("There is nothing here, or it is not visible to you."),
    405: N_("This address is reached by sending a form on a page, not by opening it. Go back to the page and use "
            "its form."),
    409: N_("This conflicts with what the archive holds now. Reload the page and try again."),
    413: N_("What you sent is larger than the archive accepts here."),
    422: N_("Something you entered could not be accepted."),
    429: N_("Too many attempts. Wait a little and try again."),
    503: N_("The archive cannot answer this now. Try again shortly."),
    500: N_("The archive could not complete this. Nothing you had kept was changed; the server's log has details."),
}
STALE_TITLE = N_("This form has expired")
STALE_TEXT = N_("The form was sent without its security token, or from another site, or after you signed in again. "
                "Nothing was changed. Reload the page and send the form again.")
LOCKED_TITLE = N_("The archive is locked")
LOCKED_TEXT = N_("The archive's keys have not been unlocked on this server, so it cannot open names, records or "
                 "pictures. A custodian must run `evidence unlock` on the server.")


def is_page(request: Request) -> bool:
    """Whether a request should be answered with a page: a web route, or a browser asking for one elsewhere."""
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    if template is not None:
        return matrix.is_web(template)
    if request.url.path.startswith(API_PREFIXES):
        return False
    return "text/html" in request.headers.get("accept", "")


def error_page(request: Request, status: int, detail: str | None = None, *, locked: bool = False,
               stale: bool = False) -> Response:
    from api.web.render import language_of, render

    lang = language_of(request)
    status_key = status if status in TITLES else (500 if status >= 500 else 422)
    title = lang.gettext(LOCKED_TITLE if locked else STALE_TITLE if stale else TITLES[status_key])
    text = lang.gettext(LOCKED_TEXT if locked else STALE_TEXT if stale else EXPLANATIONS[status_key])
    shown = detail if status < 500 and status != 403 and not locked else None  # a refusal needs no role list
    return render(request, "error.html", status_code=status, title=title, text=text, detail=shown, status=status)


def refusal_page(request: Request, exc: ServiceError) -> Response:
    """The page for a refusal by the authorization check (before the route ran)."""
    if isinstance(exc, Unauthenticated):
        if request.method in ("GET", "HEAD"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/signin?next=" + quote(target, safe=""), status_code=303)
        return error_page(request, 401)
    return service_error_page(request, exc)


def service_error_page(request: Request, exc: ServiceError) -> Response:
    from api.web.forms import StaleForm

    if isinstance(exc, Locked):
        return error_page(request, 503, locked=True)
    if isinstance(exc, StaleForm):
        return error_page(request, 403, stale=True)
    if isinstance(exc, Unauthenticated):
        return refusal_page(request, exc)
    from api.http.errors import status_of

    status = int(getattr(exc, "status_code", status_of(exc)[0]))
    return error_page(request, status, str(exc) if status < 500 else None)


Handler = Callable[[Request, Any], Awaitable[Response] | Response]


def install(app: FastAPI) -> None:
    """Answer errors of page requests with pages; the API's JSON handlers keep every other request."""
    api_handlers: dict[Any, Handler] = dict(app.exception_handlers)

    def pages_first(kind: Any) -> Handler:
        json_handler = api_handlers.get(kind)

        async def handle(request: Request, exc: Any) -> Response:
            if is_page(request):
                if isinstance(exc, ServiceError):
                    return service_error_page(request, exc)
                if isinstance(exc, StarletteHTTPException):
                    return error_page(request, exc.status_code)
                if isinstance(exc, RequestValidationError):
                    return error_page(request, 422)
                log.exception("a page failed", exc_info=exc)
                return error_page(request, 500)
            assert json_handler is not None
            answer = json_handler(request, exc)
            return await answer if isinstance(answer, Awaitable) else answer

        return handle

    for kind in list(api_handlers):
        if kind in (ServiceError, StarletteHTTPException, RequestValidationError, Exception) or (
                isinstance(kind, type) and issubclass(kind, Exception)):
            app.add_exception_handler(kind, pages_first(kind))
