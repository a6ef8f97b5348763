"""The sign-in pages: name and password, then the authenticator's code; enrolment; an API token; sign-out.

The work is `archive.services.web_signin`'s; these routes carry it between
forms and cookies. Three cookies, all HttpOnly, SameSite=Strict, Path=/, and
Secure when the page is served over https:

- `evidence_session`: the session (`archive.services.web_sessions`);
- `evidence_half`: between the password and the code (or through enrolment), a
  short-lived signed value that names the account and signs nobody in;
- `evidence_csrf`: these forms' CSRF token, before any session exists to hold
  one (a double submit: the form's hidden field must equal the cookie, and a
  page of another site can neither read nor set it).

`?next=` is followed only to a path of this site (`language.local_target`).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from api.http.auth import archive_for, same_origin, session_cookie
from api.web.errors import error_page
from api.web.forms import csrf_ok, from_proxy, is_https
from api.web.i18n import N_
from api.web.render import language_of, render
from api.web.routes.language import local_target
from archive.services import web_signin
from archive.services.errors import Locked, Unauthenticated
from archive.services.web_sessions import COOKIE

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_ok)])

HALF_COOKIE = "evidence_half"
CSRF_COOKIE = "evidence_csrf"
_HALF_STEPS = ("no-half", "bad-half", "half-expired", "half-spent", "enrol-no-secret")

REFUSED = N_("The name or password is wrong, or the account is locked for a while after too many failed attempts.")
CODE_REFUSED = N_("The code is wrong or was already used, or the account is locked for a while after too many "
                  "failed attempts.")
TOKEN_REFUSED = N_("That token is not valid: it is unknown, expired or revoked.")
THROTTLED = N_("Too many failed attempts from this address. Wait a few minutes and try again.")
NAME_NEEDED = N_("Enter your user name.")
PASSWORD_NEEDED = N_("Enter your password, or the setup code a custodian gave you.")
CODE_NEEDED = N_("Enter the six-digit code your authenticator app shows.")
STALE = N_("This form had expired and has been renewed. Please send it again.")
START_AGAIN = N_("That took too long, or the step was already used. Sign in again.")
ENROL_AGAIN = N_("That took too long, or this set-up was already finished. If you have not set up your sign-in yet, "
                 "ask a custodian for a new setup code: each works once.")
ENROL_PROBLEMS = {
    "too-short": N_("Choose at least 12 characters."),
    "too-long": N_("That password is too long."),
    "is-name": N_("The password must not be your user name."),
    "differ": N_("The two passwords differ. Type the same password twice."),
    "wrong-code": N_("Wrong code. Type the six digits the app shows now."),
}


# ---- cookies and forms -----------------------------------------------------------------------------------------

def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="strict",
                        secure=is_https(request))


def drop_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="strict", secure=is_https(request))


def _address(request: Request) -> str:
    """The client address the throttle counts: behind a listed proxy, the address that proxy saw."""
    if from_proxy(request):
        forwarded = request.headers.get("x-forwarded-for", "").split(",")[-1].strip()
        if forwarded:
            return forwarded[:64]
    return request.client.host if request.client else "unknown"


def _form_token(request: Request) -> str:
    """This browser's CSRF token for the sign-in forms (made now if it has none); templates find it as `csrf`."""
    held = request.cookies.get(CSRF_COOKIE, "")
    token = held if len(held) == 43 and held.replace("-", "").replace("_", "").isalnum() else secrets.token_urlsafe(32)
    request.state.csrf = token
    return token


def _page(request: Request, template: str, status: int = 200, **values: Any) -> Response:
    """A sign-in page, carrying (and, if new, setting) the forms' CSRF token."""
    token = _form_token(request)
    response = render(request, template, status_code=status, **values)
    response.headers["Cache-Control"] = "no-store"
    if request.cookies.get(CSRF_COOKIE) != token:
        set_cookie(request, response, CSRF_COOKIE, token, None)
    return response


def _form_ok(request: Request, form: Any) -> bool:
    """The double-submit check: same origin, and the form's `csrf` field equal to the cookie."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get("csrf")
    return (same_origin(request.headers) and bool(cookie) and isinstance(sent, str) and bool(sent)
            and hmac.compare_digest(sent.encode(), cookie.encode()))


def _text(form: Any, name: str, limit: int = 4096) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _next(value: str | None) -> str:
    return local_target(value, "/")


def _redirect(target: str) -> RedirectResponse:
    response = RedirectResponse(target, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    return response


def _signed_in(request: Request, cookie: str, target: str) -> Response:
    response = _redirect(_next(target))
    set_cookie(request, response, COOKIE, cookie, None)  # ends with the browser too; the server ends it at ABSOLUTE
    drop_cookie(request, response, HALF_COOKIE)
    return response


def _system(request: Request) -> Any:
    return archive_for(request)  # the archive itself: nobody is signed in on these routes


# ---- /signin ---------------------------------------------------------------------------------------------------

def _signin_page(request: Request, status: int = 200, *, values: dict[str, str] | None = None,
                 errors: dict[str, str] | None = None, notice: str | None = None, target: str = "/") -> Response:
    _ = language_of(request).gettext
    return _page(request, "signin.html", status, values=values or {},
                 errors={k: _(v) for k, v in (errors or {}).items()}, notice=_(notice) if notice else None,
                 next=_next(target), locked=web_signin.is_locked(request.app.state.runtime))


@router.get("/signin")
def signin_form(request: Request, next: str | None = None) -> Response:
    from archive.services.web_sessions import authenticate_session

    cookie = session_cookie(request.headers)
    if cookie:
        try:
            authenticate_session(request.app.state.runtime, cookie)
            return _redirect(_next(next))  # signed in already
        except Unauthenticated:
            pass
    return _signin_page(request, target=next or "/")


@router.post("/signin")
async def signin(request: Request) -> Response:
    form = await request.form()
    target = _text(form, "next", 2048) or "/"
    name = _text(form, "name", 256)
    if not _form_ok(request, form):
        return _signin_page(request, 403, values={"name": name}, notice=STALE, target=target)
    token = _text(form, "token", 256).strip()
    archive = _system(request)
    address = _address(request)
    if token:
        try:
            cookie, _caller = await anyio.to_thread.run_sync(
                lambda: web_signin.sign_in_with_token(archive, token, address=address))
        except web_signin.Throttled:
            return _signin_page(request, 429, errors={"token": THROTTLED}, target=target)
        except Unauthenticated:
            return _signin_page(request, 401, errors={"token": TOKEN_REFUSED}, target=target)
        return _signed_in(request, cookie, target)
    password = _text(form, "password", web_signin.MAX_PASSWORD)
    errors = {}
    if not name.strip():
        errors["name"] = NAME_NEEDED
    if not password:
        errors["password"] = PASSWORD_NEEDED
    if errors:
        return _signin_page(request, 422, values={"name": name}, errors=errors, target=target)
    try:
        step = await anyio.to_thread.run_sync(
            lambda: web_signin.check_password(archive, name, password, address=address))
    except Locked:
        return error_page(request, 503, locked=True)
    except web_signin.Throttled:
        return _signin_page(request, 429, values={"name": name}, errors={"password": THROTTLED}, target=target)
    except Unauthenticated:
        return _signin_page(request, 401, values={"name": name}, errors={"password": REFUSED}, target=target)
    where = "/signin/code" if step.kind == "code" else "/enrol"
    response = _redirect(where + "?next=" + quote(_next(target), safe=""))
    life = web_signin.CODE_STEP_LIFE if step.kind == "code" else web_signin.ENROL_LIFE
    set_cookie(request, response, HALF_COOKIE, step.half, int(life.total_seconds()))
    return response


# ---- /signin/code ----------------------------------------------------------------------------------------------

def _start_again(request: Request, target: str, notice: str = START_AGAIN) -> Response:
    response = _signin_page(request, 401, notice=notice, target=target)
    drop_cookie(request, response, HALF_COOKIE)
    return response


@router.get("/signin/code")
def code_form(request: Request, next: str | None = None) -> Response:
    try:
        web_signin.read_half(_system(request), request.cookies.get(HALF_COOKIE), "code")
    except Locked:
        return error_page(request, 503, locked=True)
    except Unauthenticated:
        return _redirect("/signin?next=" + quote(_next(next), safe=""))
    return _page(request, "signin_code.html", errors={}, next=_next(next))


@router.post("/signin/code")
async def code(request: Request) -> Response:
    form = await request.form()
    target = _text(form, "next", 2048) or "/"
    _ = language_of(request).gettext
    if not _form_ok(request, form):
        return _page(request, "signin_code.html", 403, errors={}, notice=_(STALE), next=_next(target))
    typed = _text(form, "code", 32)
    if not typed.strip():
        return _page(request, "signin_code.html", 422, errors={"code": _(CODE_NEEDED)}, next=_next(target))
    archive = _system(request)
    half = request.cookies.get(HALF_COOKIE)
    address = _address(request)
    try:
        cookie, _caller = await anyio.to_thread.run_sync(
            lambda: web_signin.check_code(archive, half, typed, address=address))
    except Locked:
        return error_page(request, 503, locked=True)
    except web_signin.Throttled:
        return _page(request, "signin_code.html", 429, errors={"code": _(THROTTLED)}, next=_next(target))
    except Unauthenticated as exc:
        if exc.reason in _HALF_STEPS:
            return _start_again(request, target)
        return _page(request, "signin_code.html", 401, errors={"code": _(CODE_REFUSED)}, next=_next(target))
    return _signed_in(request, cookie, target)


# ---- /enrol ----------------------------------------------------------------------------------------------------

def _issuer(request: Request) -> str:
    return str((request.app.state.runtime.settings.section("web") or {}).get("issuer") or web_signin.ISSUER)


def _qr_svg(uri: str, title: str) -> str:
    """The otpauth URI as an inline SVG QR code (segno: no script, no image request)."""
    import segno
    from markupsafe import escape

    svg = segno.make(uri, error="m").svg_inline(scale=5, border=4, dark="#000", light="#fff", title=str(escape(title)))
    return str(svg).replace("<svg ", '<svg role="img" ', 1)


def _enrol_page(request: Request, enrolment: web_signin.Enrolment, status: int = 200, *,
                errors: dict[str, str] | None = None, notice: str | None = None, target: str = "/") -> Response:
    from markupsafe import Markup

    _ = language_of(request).gettext
    secret = " ".join(enrolment.secret[i:i + 4] for i in range(0, len(enrolment.secret), 4))
    qr = Markup(_qr_svg(enrolment.uri, _("QR code for your authenticator app")))  # noqa: S704 - segno's own SVG
    return _page(request, "enrol.html", status, qr=qr, secret=secret, issuer=_issuer(request),
                 account=enrolment.user_id, errors={k: _(ENROL_PROBLEMS[v]) for k, v in (errors or {}).items()},
                 notice=_(notice) if notice else None, next=_next(target))


@router.get("/enrol")
def enrol_form(request: Request, next: str | None = None) -> Response:
    try:
        enrolment = web_signin.begin_enrol(_system(request), request.cookies.get(HALF_COOKIE), _issuer(request))
    except Locked:
        return error_page(request, 503, locked=True)
    except Unauthenticated:
        return _start_again(request, next or "/", ENROL_AGAIN)
    return _enrol_page(request, enrolment, target=next or "/")


@router.post("/enrol")
async def enrol(request: Request) -> Response:
    form = await request.form()
    target = _text(form, "next", 2048) or "/"
    archive = _system(request)
    half = request.cookies.get(HALF_COOKIE)
    issuer = _issuer(request)
    try:
        enrolment = await anyio.to_thread.run_sync(lambda: web_signin.begin_enrol(archive, half, issuer))
    except Locked:
        return error_page(request, 503, locked=True)
    except Unauthenticated:
        return _start_again(request, target, ENROL_AGAIN)
    if not _form_ok(request, form):
        return _enrol_page(request, enrolment, 403, notice=STALE, target=target)
    password = _text(form, "password", web_signin.MAX_PASSWORD + 1)
    repeat = _text(form, "repeat", web_signin.MAX_PASSWORD + 1)
    typed = _text(form, "code", 32)
    try:
        cookie, _caller = await anyio.to_thread.run_sync(
            lambda: web_signin.finish_enrol(archive, half, password, repeat, typed))
    except web_signin.EnrolProblem as problem:
        return _enrol_page(request, enrolment, 422, errors=problem.fields, target=target)
    except Locked:
        return error_page(request, 503, locked=True)
    except Unauthenticated:
        return _start_again(request, target, ENROL_AGAIN)
    return _signed_in(request, cookie, target)


# ---- /signout --------------------------------------------------------------------------------------------------

@router.post("/signout")
def signout(request: Request) -> Response:
    """End this browser's session (the form carries the session's CSRF token: `csrf_ok`)."""
    web_signin.sign_out(archive_for(request), session_cookie(request.headers))
    response = _redirect("/signin")
    drop_cookie(request, response, COOKIE)
    drop_cookie(request, response, HALF_COOKIE)
    return response
