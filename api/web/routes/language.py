"""The language switch on every page: a cookie, then back to the page it was pressed on."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from api.web.forms import is_https
from api.web.i18n import LANG_COOKIE, LANGUAGES

router = APIRouter(include_in_schema=False)
YEAR = 365 * 24 * 3600


def local_target(target: str | None, default: str = "/") -> str:
    """`target` if it is a path on this site, else `default` (no open redirect to another host)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(ch) < 32 for ch in target):
        return default
    return target


@router.get("/lang/{code}")
def switch_language(request: Request, code: str, next: str | None = None) -> RedirectResponse:
    response = RedirectResponse(local_target(next), status_code=303)
    if code in LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=YEAR, path="/", samesite="strict", httponly=True,
                            secure=is_https(request))
    return response
