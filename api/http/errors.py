"""Exceptions as JSON answers: the archive's errors with their statuses, anything else a bare 500.

Every error body is `{"error": code, "detail": message}`. A service's message
is written for the caller (it never holds a token or an upload secret); an
unexpected exception's is not, so a 500 says only that something failed and
the traceback goes to the server's log.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.http import metrics
from archive.config import ConfigError
from archive.services.errors import (
    Ambiguous,
    CheckFailed,
    Forbidden,
    Invalid,
    Locked,
    NotFound,
    ServiceError,
    Unauthenticated,
)
from storage.base import StorageError

log = logging.getLogger("api.http")


class ErrorBody(BaseModel):
    """Every error answer: a stable code and a message for people."""

    error: str
    detail: str


def _described(text: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": text}


# Declared on every route (the app's `responses`), so the OpenAPI document says what each may answer.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _described("Refused: the detail says why"),
    401: _described("No token, or one the archive does not accept (unknown, expired, revoked, wrong scheme)"),
    403: _described("The caller's role may not call this route"),
    404: _described("No such thing (or one the caller may not see)"),
    409: _described("Conflicts with the archive's state"),
    422: _described("Invalid input; nothing was written"),
    503: _described("Not available now (keys locked, catalog or storage unreachable)"),
    500: _described("Internal error (the server's log has the details)"),
}

# Most specific first: the first class an exception is an instance of decides.
STATUSES: list[tuple[type[Exception], int, str]] = [
    (Unauthenticated, 401, "unauthenticated"),
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (Ambiguous, 409, "ambiguous"),
    (CheckFailed, 409, "check_failed"),
    (Invalid, 422, "invalid"),
    (Locked, 503, "locked"),
    (ServiceError, 400, "refused"),
]

HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 411: "length_required", 413: "too_large",
              415: "unsupported_media_type", 422: "invalid", 429: "too_many_requests", 460: "checksum_mismatch",
              503: "unavailable"}


def error_body(code: str, detail: str) -> dict[str, str]:
    return {"error": code, "detail": detail}


def status_of(exc: Exception) -> tuple[int, str]:
    for kind, status, code in STATUSES:
        if isinstance(exc, kind):
            return status, code
    return 500, "internal"


def challenge(path: str) -> str:
    """The `WWW-Authenticate` a 401 carries: Basic under /dav/ (what WebDAV clients answer), Bearer elsewhere."""
    from api.http.matrix import BASIC_PREFIX

    if path.startswith(BASIC_PREFIX):
        return 'Basic realm="evidence", charset="UTF-8"'
    return 'Bearer realm="evidence"'


def unauthenticated(path: str, message: str) -> JSONResponse:
    return JSONResponse(error_body("unauthenticated", message), status_code=401,
                        headers={"WWW-Authenticate": challenge(path)})


def service_error_response(request: Request, exc: Exception) -> JSONResponse:
    status, code = status_of(exc)
    if isinstance(exc, Unauthenticated):
        return unauthenticated(request.url.path, str(exc))
    headers = getattr(exc, "headers", None)
    status = int(getattr(exc, "status_code", status))  # a ServiceError subclass may name its own (413, 429, 460)
    code = str(getattr(exc, "code", code))
    return JSONResponse(error_body(code, str(exc)), status_code=status, headers=headers)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    return service_error_response(request, exc)


async def _config_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("configuration error on %s %s: %s", request.method, request.scope.get("route_path", "?"), exc)
    return JSONResponse(error_body("unavailable", "the archive is not configured to answer this now"),
                        status_code=503)


async def _storage_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("storage error on %s %s: %s", request.method, _route_of(request), exc)
    return JSONResponse(error_body("unavailable", "a storage site did not answer; try again later"),
                        status_code=503, headers={"Retry-After": "30"})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else HTTP_CODES.get(status, "error")
    if status == 404 and detail == "Not Found":
        detail = "no such route"
    headers = dict(exc.headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", challenge(request.url.path))
    return JSONResponse(error_body(HTTP_CODES.get(status, "error"), detail), status_code=status,
                        headers=headers or None)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors()[:20]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"{where}: {error.get('msg', 'invalid')}")  # never the input value: it may be personal
    metrics.refuse("invalid")
    return JSONResponse(error_body("invalid", "; ".join(problems) or "invalid request"), status_code=422)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("internal error on %s %s", request.method, _route_of(request), exc_info=exc)
    return JSONResponse(error_body("internal", "internal error; the server's log has the details"),
                        status_code=500)


def _route_of(request: Request) -> str:
    """The matched route's template (never the concrete path: it may carry an upload secret)."""
    route = request.scope.get("route")
    return str(getattr(route, "path", "?"))


def install(app: FastAPI) -> None:
    """Register every handler on `app`."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(ConfigError, _config_error)
    app.add_exception_handler(StorageError, _storage_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
