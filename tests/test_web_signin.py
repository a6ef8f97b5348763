"""Signing in to the web pages, attacked: guessing, replays, reused and stale setup codes, forged steps,
open redirects, cross-site forms, cookie flags, expiry, disabled accounts, and what the log and the
server's log must never hold.

Every test makes its own archive and drives the real pages through a TestClient; time is the runtime's
`clock`, moved by the test (TOTP codes follow it: `tests.signin_support.totp_now`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from archive.services.errors import Locked
from archive.services.web_sessions import COOKIE
from tests.signin_support import (
    PASSWORD,
    enrol,
    enrol_with,
    page_csrf,
    post_code,
    post_signin,
    quick_argon2,  # noqa: F401 - a fixture, used by every test below
    runtime_of,
    setup,
    sign_in,
    totp_now,
)
from tests.web_support import add_account, csrf_of, web_client, web_home

NAME = "Amira Haddad"


class Clock:
    """A clock the test moves (the runtime calls it for every `now`)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


pytestmark = pytest.mark.usefixtures("quick_argon2")  # cheap Argon2id; one test checks the real defaults


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    return web_home(tmp_path)


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def http(home: Path, clock: Clock) -> Iterator[Any]:
    with web_client(home) as test_client:
        runtime_of(test_client).clock = clock
        yield test_client


def events(test_client: Any, kind_prefix: str = "web ") -> list[dict[str, Any]]:
    """The custody events whose type starts with `kind_prefix`, in order, as plain dicts."""
    from sqlmodel import Session, col, select

    from archive.catalog.events import Event

    with Session(runtime_of(test_client).engine) as session:
        rows = session.exec(select(Event).order_by(col(Event.seq))).all()
        return [{"type": e.event_type, "actor": e.actor, "objects": list(e.objects), "outcome": e.outcome,
                 "details": dict(e.details)} for e in rows if e.event_type.startswith(kind_prefix)]


def reasons(test_client: Any) -> list[str]:
    return [e["details"]["reason"] for e in events(test_client) if e["type"] == "web sign-in failed"]


def token_of(test_client: Any, role: str) -> tuple[str, str]:
    """(user id, a fresh API token) for a new account with `role`."""
    from archive.services.accounts import create_token

    user_id = add_account(test_client, role)
    made = create_token(runtime_of(test_client).archive("archive"), user_id)
    return user_id, str(made["token"])


def token_signin(test_client: Any, token: str, next: str = "/") -> Any:
    return test_client.post("/signin", data={"csrf": page_csrf(test_client, "/signin"), "token": token,
                                             "next": next}, follow_redirects=False)


def set_cookies(answer: Any) -> dict[str, str]:
    """Set-Cookie headers of an answer, by cookie name (the whole header, flags and all)."""
    found = {}
    for header in answer.headers.get_list("set-cookie"):
        found[header.split("=", 1)[0]] = header
    return found


def signed_in_ok(test_client: Any) -> bool:
    answer = test_client.get("/", follow_redirects=False)
    if answer.status_code == 200:
        return True
    assert answer.status_code == 303 and answer.headers["location"].startswith("/signin"), answer.status_code
    return False


def sign_out(test_client: Any) -> Any:
    page = test_client.get("/", follow_redirects=False)
    return test_client.post("/signout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)


# ---- the whole path -------------------------------------------------------------------------------------------

def test_setup_enrol_sign_out_and_sign_in_again_with_both_factors(http: Any, clock: Clock) -> None:
    user_id, name, code = setup(http, "investigator", NAME)
    first = post_signin(http, name, code)
    assert first.status_code == 303 and first.headers["location"] == "/enrol?next=%2F"
    half = set_cookies(first)["evidence_half"]
    assert "HttpOnly" in half and "SameSite=strict" in half.replace("Strict", "strict") and "Path=/" in half
    assert COOKIE not in set_cookies(first), "a setup code alone must not sign anyone in"
    assert not signed_in_ok(http)

    page = http.get("/enrol")
    assert page.status_code == 200
    assert "<svg" in page.text and 'role="img"' in page.text and "<script>" not in page.text
    assert "otpauth" not in page.text.split("<svg", 1)[0], "the URI is in the QR code, not printed"
    assert name not in page.text.split("<svg", 1)[1].split("</svg>", 1)[0]
    secret = page.text.split('<code class="secret" dir="ltr">', 1)[1].split("</code>", 1)[0].replace(" ", "")
    done = http.post("/enrol", data={"csrf": csrf_of(page.text), "password": PASSWORD, "repeat": PASSWORD,
                                     "code": totp_now(http, secret)}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/"
    session = set_cookies(done)[COOKIE]
    assert "HttpOnly" in session and "samesite=strict" in session.lower() and "Path=/" in session
    assert "Secure" not in session  # served over plain http here (see the https test)
    assert signed_in_ok(http)

    old = http.cookies.get(COOKIE)
    assert sign_out(http).headers["location"] == "/signin"
    assert not signed_in_ok(http)
    http.cookies.set(COOKIE, old)  # the old cookie, kept by an attacker: refused
    assert not signed_in_ok(http)
    http.cookies.clear()

    clock.advance(seconds=30)
    step = post_signin(http, name, PASSWORD, next="/items")
    assert step.status_code == 303 and step.headers["location"] == "/signin/code?next=%2Fitems"
    assert COOKIE not in set_cookies(step), "the password alone must not sign in"
    assert not signed_in_ok(http)
    answer = post_code(http, totp_now(http, secret), next="/items")
    assert answer.status_code == 303 and answer.headers["location"] == "/items"
    assert signed_in_ok(http)

    kinds = [(e["type"], e["outcome"]) for e in events(http)]
    assert kinds == [("web sign-in set up", "success"), ("web enrolled", "success"), ("web sign-in", "success"),
                     ("web sign-out", "success"), ("web sign-in", "success")]
    for event in events(http):
        assert event["details"]["user"] == user_id
    assert [e["details"].get("method") for e in events(http) if e["type"] == "web sign-in"] == [
        "enrol", "password+totp"]


def test_cookies_are_secure_over_https_and_a_forwarded_proto_is_trusted_only_from_a_listed_proxy(
        home: Path) -> None:
    from fastapi.testclient import TestClient

    from api.http.app import create_app

    with TestClient(create_app(str(home)), base_url="https://testserver") as https:
        https.headers["Accept"] = "text/html"
        _, token = token_of(https, "custodian")
        page = https.get("/signin")
        assert "Secure" in set_cookies(page)["evidence_csrf"]
        answer = https.post("/signin", data={"csrf": csrf_of(page.text), "token": token}, follow_redirects=False)
        assert answer.status_code == 303
        cookie = set_cookies(answer)[COOKIE]
        assert "Secure" in cookie and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    with web_client(home) as plain:  # http, and a header anyone can send
        _, token = token_of(plain, "custodian")
        csrf = page_csrf(plain, "/signin")
        answer = plain.post("/signin", data={"csrf": csrf, "token": token}, headers={"X-Forwarded-Proto": "https"},
                            follow_redirects=False)
        assert answer.status_code == 303 and "Secure" not in set_cookies(answer)[COOKIE]


# ---- guessing -------------------------------------------------------------------------------------------------

def test_wrong_passwords_lock_the_account_even_against_the_right_one_until_expiry(
        http: Any, clock: Clock) -> None:
    _, secret = enrol(http, NAME, "investigator")
    http.cookies.clear()
    for _ in range(5):
        answer = post_signin(http, NAME, "not the password at all")
        assert answer.status_code == 401 and "evidence_half" not in set_cookies(answer)
        assert "wrong" in answer.text and "not the password" not in answer.text
    refused = post_signin(http, NAME, PASSWORD)
    assert refused.status_code == 401 and "evidence_half" not in set_cookies(refused)
    assert reasons(http) == ["wrong-password"] * 5 + ["locked-out"]

    clock.advance(minutes=14)
    assert post_signin(http, NAME, PASSWORD).status_code == 401
    clock.advance(minutes=2)  # past the first 15 minutes
    assert sign_in(http, NAME, PASSWORD, secret).status_code == 303
    http.cookies.clear()

    for _ in range(4):  # a complete sign-in cleared the count: four more do not lock it, a fifth does
        post_signin(http, NAME, "still not it, no")
    assert sign_in(http, NAME, PASSWORD, secret, steps=1).status_code == 303
    http.cookies.clear()
    for _ in range(5):
        post_signin(http, NAME, "still not it, no")
    assert post_signin(http, NAME, PASSWORD).status_code == 401
    clock.advance(minutes=16)
    assert sign_in(http, NAME, PASSWORD, secret).status_code == 303


def test_lock_out_doubles_up_to_a_day(http: Any, clock: Clock) -> None:
    from archive.services.web_signin import credential_state

    uid, name, code = setup(http, "auditor", "Bassel Nour")
    enrol_with(http, name, code)
    http.cookies.clear()
    lengths = []
    for _ in range(10):
        for _ in range(5):
            post_signin(http, name, "wrong wrong wrong")
        until = credential_state(runtime_of(http).archive("archive"), uid)["locked_until"]
        ends = datetime.fromisoformat(until.replace("Z", "+00:00"))
        lengths.append(round((ends - clock.now).total_seconds() / 60))
        clock.now = ends + timedelta(seconds=1)
    assert lengths[:4] == [15, 30, 60, 120] and lengths[-1] == 24 * 60 and max(lengths) == 24 * 60


def test_wrong_codes_count_towards_the_lock_out_and_a_right_code_is_refused_while_locked(
        http: Any, clock: Clock) -> None:
    _, secret = enrol(http, NAME, "investigator")
    http.cookies.clear()
    clock.advance(seconds=30)
    assert post_signin(http, NAME, PASSWORD).status_code == 303
    right = totp_now(http, secret)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(5):
        answer = post_code(http, wrong)
        assert answer.status_code == 401 and COOKIE not in set_cookies(answer)
    refused = post_code(http, right)
    assert refused.status_code == 401 and COOKIE not in set_cookies(refused)
    assert reasons(http) == ["wrong-code"] * 5 + ["locked-out"]
    assert not signed_in_ok(http)


def test_a_code_is_accepted_once(http: Any, clock: Clock) -> None:
    _, secret = enrol(http, NAME, "investigator")
    enrolled_code = totp_now(http, secret)
    sign_out(http)
    assert post_signin(http, NAME, PASSWORD).status_code == 303
    assert post_code(http, enrolled_code).status_code == 401  # the enrolment's own code, same 30 s step
    clock.advance(seconds=30)
    code = totp_now(http, secret)
    assert post_code(http, code).status_code == 303
    sign_out(http)
    assert post_signin(http, NAME, PASSWORD).status_code == 303
    replay = post_code(http, code)  # seen over a shoulder, typed within the same step
    assert replay.status_code == 401 and COOKIE not in set_cookies(replay)
    clock.advance(seconds=30)  # the previous step's code is still in the window, but older than the used one
    assert post_code(http, code).status_code == 401
    assert reasons(http) == ["code-replayed", "code-replayed", "code-replayed"]


def test_passwords_are_argon2id_with_the_library_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from archive.services import web_signin

    monkeypatch.setattr(web_signin, "_hasher", None)
    hasher = web_signin._ph()
    stored = hasher.hash(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert web_signin._verify(stored, PASSWORD) and not web_signin._verify(stored, PASSWORD + "!")
    assert not web_signin._verify(None, PASSWORD)  # the dummy hash never matches


def test_an_unknown_name_costs_one_argon2_verification_like_a_known_one(http: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from archive.services import web_signin

    enrol(http, NAME, "investigator")
    http.cookies.clear()
    calls: list[str] = []
    hasher = web_signin._ph()
    original = type(hasher).verify

    def counted(self: Any, stored: str, password: str) -> bool:
        calls.append(stored)
        return bool(original(self, stored, password))

    monkeypatch.setattr(type(hasher), "verify", counted)
    for name in (NAME, "Nobody Here", ""):
        calls.clear()
        answer = post_signin(http, name or " ", "a wrong password")
        assert answer.status_code in (401, 422)
        if name:
            assert len(calls) == 1 and calls[0].startswith("$argon2id$"), name
    a = post_signin(http, NAME, "a wrong password")
    b = post_signin(http, "Nobody Here", "a wrong password")
    assert a.status_code == b.status_code == 401
    assert a.text.replace("Amira Haddad", "Nobody Here") == b.text.replace(csrf_of(a.text), csrf_of(b.text))


def test_one_address_is_throttled_after_many_failures(http: Any, clock: Clock) -> None:
    from archive.services.web_signin import THROTTLE_LIMIT

    _, secret = enrol(http, NAME, "investigator")
    http.cookies.clear()
    for n in range(THROTTLE_LIMIT):
        assert post_signin(http, f"nobody {n}", "guess guess guess").status_code == 401
    throttled = post_signin(http, NAME, PASSWORD)
    assert throttled.status_code == 429 and "evidence_half" not in set_cookies(throttled)
    assert "Too many failed attempts" in throttled.text
    _, token = token_of(http, "custodian")
    # A token cannot be guessed: password failures from a shared address (Tor, a NAT) never block it.
    assert token_signin(http, token).status_code == 303
    http.cookies.clear()
    clock.advance(minutes=6)
    assert sign_in(http, NAME, PASSWORD, secret, steps=1).status_code == 303


# ---- setup codes ----------------------------------------------------------------------------------------------

def test_a_setup_code_works_once_and_not_after_72_hours(home: Path, clock: Clock) -> None:
    with web_client(home) as first, web_client(home) as second:
        runtime_of(first).clock = clock
        runtime_of(second).clock = clock
        _, name, code = setup(first, "investigator", NAME)
        assert post_signin(first, name, code).status_code == 303
        again = post_signin(second, name, code)  # the same code, another browser
        assert again.status_code == 401 and "evidence_half" not in set_cookies(again)
        assert post_signin(first, name, code.lower().replace("-", " ")).status_code == 401  # spent, any spelling
        enrol_page = first.get("/enrol", follow_redirects=False)
        assert enrol_page.status_code == 200  # the browser that used it goes on enrolling

        _, late_name, late_code = setup(second, "auditor", "Bassel Nour")
        clock.advance(hours=72, seconds=1)
        late = post_signin(second, late_name, late_code)
        assert late.status_code == 401
        assert reasons(second)[-1] == "setup-expired"


def test_setting_up_again_stops_the_old_password_and_ends_sessions(http: Any, clock: Clock) -> None:
    from archive.services.web_signin import setup_account

    _, secret = enrol(http, NAME, "investigator")
    assert signed_in_ok(http)
    setup_account(runtime_of(http).archive("archive"), NAME)
    assert not signed_in_ok(http)
    clock.advance(seconds=30)
    assert post_signin(http, NAME, PASSWORD).status_code == 401
    assert secret


def test_cli_users_setup_prints_a_code_that_signs_in_once(home: Path, clock: Clock) -> None:
    from api.cli.main import cli

    runner = CliRunner()
    assert runner.invoke(cli, ["--home", str(home), "users", "add", NAME, "--role", "investigator"]).exit_code == 0
    text = runner.invoke(cli, ["--home", str(home), "users", "setup", NAME])
    assert text.exit_code == 0, text.output
    assert "/signin" in text.stderr and "/signin" not in text.stdout
    made = runner.invoke(cli, ["--home", str(home), "users", "setup", NAME, "--json"])
    result = json.loads(made.stdout)
    assert result["id"].startswith("u-") and len(result["code"]) == 24 and result["expires_at"]
    with web_client(home) as http:
        runtime_of(http).clock = clock
        assert post_signin(http, NAME, text.stdout.strip()).status_code == 401  # replaced by the second
        assert post_signin(http, NAME, result["code"]).status_code == 303
        enrol_page = http.get("/enrol")
        assert enrol_page.status_code == 200
    missing = runner.invoke(cli, ["--home", str(home), "users", "setup", "Nobody"])
    assert missing.exit_code != 0


# ---- forged steps, redirects, cross-site forms ----------------------------------------------------------------

def test_the_half_cookie_cannot_be_forged_moved_or_kept(http: Any, clock: Clock) -> None:
    _, secret = enrol(http, NAME, "investigator")
    http.cookies.clear()
    clock.advance(seconds=30)
    step = post_signin(http, NAME, PASSWORD)
    half = http.cookies.get("evidence_half")
    kind, user_id, expires, bind, mac = half.split(".")
    for forged in (f"{kind}.{user_id}.{int(expires) + 9999}.{bind}.{mac}",
                   f"enrol.{user_id}.{expires}.{bind}.{mac}",
                   f"{kind}.u-0000000000000000.{expires}.{bind}.{mac}", "garbage"):
        http.cookies.set("evidence_half", forged)
        assert http.get("/signin/code", follow_redirects=False).status_code == 303
        answer = http.post("/signin/code", data={"csrf": page_csrf(http, "/signin"), "code": totp_now(http, secret)},
                           follow_redirects=False)
        assert answer.status_code == 401 and COOKIE not in set_cookies(answer)
    http.cookies.set("evidence_half", half)
    moved = http.get("/enrol", follow_redirects=False)  # a code step is no enrolment
    assert moved.status_code == 401 and "ask a custodian for a new setup code" in moved.text
    clock.advance(minutes=6)
    assert http.get("/signin/code", follow_redirects=False).status_code == 303  # stale
    assert step.status_code == 303


TARGETS = ("//evil.example/x", "https://evil.example/", "/\\evil.example", "evil", "/%0d%0aSet-Cookie:x=1", "\x01/x",
           "/\t/evil.example")


def test_next_is_followed_only_to_a_path_of_this_site(http: Any) -> None:
    _, token = token_of(http, "investigator")
    for target in TARGETS:
        http.cookies.delete(COOKIE)
        answer = token_signin(http, token, next=target)
        assert answer.status_code == 303
        location = answer.headers["location"]
        assert location.startswith("/") and not location.startswith("//") and "\\" not in location, target
        assert "evil.example" not in location and "\r" not in location and "\n" not in location, target
        again = http.get("/signin", params={"next": target}, follow_redirects=False)  # signed in already
        assert again.status_code == 303 and "evil.example" not in again.headers["location"], target


def test_next_to_a_local_page_is_kept_through_every_step(http: Any) -> None:
    _, token = token_of(http, "investigator")
    page = http.get("/items?q=x", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/signin?next=%2Fitems%3Fq%3Dx"
    form = http.get(page.headers["location"])
    assert 'name="next" value="/items?q=x"' in form.text
    answer = token_signin(http, token, next="/items?q=x")
    assert answer.headers["location"] == "/items?q=x"


def test_the_sign_in_forms_refuse_a_missing_wrong_or_cross_site_csrf_token(http: Any, clock: Clock) -> None:
    _, secret = enrol(http, NAME, "investigator")
    sign_out(http)
    _, token = token_of(http, "custodian")
    good = page_csrf(http, "/signin")
    before = len(events(http))
    for data, headers in (({"token": token}, {}), ({"token": token, "csrf": "x" * 43}, {}),
                          ({"token": token, "csrf": good}, {"Origin": "https://evil.example"}),
                          ({"name": NAME, "password": PASSWORD}, {})):
        answer = http.post("/signin", data=data, headers=headers, follow_redirects=False)
        assert answer.status_code == 403, (data.keys(), answer.status_code)
        assert COOKIE not in set_cookies(answer) and "evidence_half" not in set_cookies(answer)
        assert "renewed" in answer.text and token not in answer.text
    http.cookies.delete("evidence_csrf")  # the field without its cookie
    assert http.post("/signin", data={"token": token, "csrf": good}, follow_redirects=False).status_code == 403
    assert len(events(http)) == before, "a refused form is no sign-in attempt"
    assert not signed_in_ok(http)

    clock.advance(seconds=30)
    assert post_signin(http, NAME, PASSWORD).status_code == 303
    code = totp_now(http, secret)
    assert http.post("/signin/code", data={"code": code}, follow_redirects=False).status_code == 403
    assert post_code(http, code).status_code == 303  # the code was not spent by the refused form
    assert http.post("/signout", data={}, follow_redirects=False).status_code == 403
    assert signed_in_ok(http), "a sign-out without the session's token is refused, the session stays"

    http.cookies.clear()
    _, name, setup_code = setup(http, "auditor", "Bassel Nour")
    assert post_signin(http, name, setup_code).status_code == 303
    page = http.get("/enrol")
    answer = http.post("/enrol", data={"password": PASSWORD, "repeat": PASSWORD, "code": "000000"},
                       follow_redirects=False)
    assert answer.status_code == 403 and COOKIE not in set_cookies(answer)
    assert page.status_code == 200


# ---- sessions -------------------------------------------------------------------------------------------------

def test_idle_and_absolute_expiry(http: Any, clock: Clock) -> None:
    _, token = token_of(http, "investigator")
    assert token_signin(http, token).status_code == 303
    clock.advance(minutes=29)
    assert signed_in_ok(http)  # moves the idle clock
    clock.advance(minutes=29)
    assert signed_in_ok(http)
    clock.advance(minutes=31)
    assert not signed_in_ok(http)

    http.cookies.clear()
    assert token_signin(http, token).status_code == 303
    start = clock.now
    for _ in range(40):  # busy all day, never idle for long
        clock.advance(minutes=20)
        if not signed_in_ok(http):
            break
    assert timedelta(hours=12) <= clock.now - start < timedelta(hours=12, minutes=20)
    assert [e["details"]["method"] for e in events(http) if e["type"] == "web sign-in"] == ["token", "token"]


def test_a_disabled_users_session_is_refused_and_ended(http: Any) -> None:
    from sqlmodel import Session, select

    from archive.catalog.web import WebSession
    from archive.services.accounts import disable_user

    enrol(http, NAME, "investigator")
    assert signed_in_ok(http)
    disable_user(runtime_of(http).archive("archive"), NAME)
    assert not signed_in_ok(http)
    with Session(runtime_of(http).engine) as session:
        rows = session.exec(select(WebSession)).all()
        assert rows and all(row.ended_at is not None for row in rows)
    assert post_signin(http, NAME, PASSWORD).status_code == 401
    assert reasons(http)[-1] == "disabled"


# ---- locked archive, validation, language ---------------------------------------------------------------------

def test_a_locked_archive_says_so_for_names_and_still_takes_a_token(http: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _, token = token_of(http, "custodian")
    keys = runtime_of(http).keys

    def locked() -> Any:
        raise Locked("the catalog key is not unlocked")

    monkeypatch.setattr(keys, "catalog", locked)
    form = http.get("/signin")
    assert form.status_code == 200 and "An API token still signs in" in form.text
    answer = post_signin(http, NAME, PASSWORD)
    assert answer.status_code == 503 and "The archive is locked" in answer.text
    assert PASSWORD not in answer.text
    signed = token_signin(http, token)
    assert signed.status_code == 303 and COOKIE in set_cookies(signed)
    assert http.get("/signin", follow_redirects=False).status_code == 303  # the session is good


def test_validation_messages_sit_beside_their_fields_and_keep_the_name_never_the_password(http: Any) -> None:
    csrf = page_csrf(http, "/signin")
    answer = http.post("/signin", data={"csrf": csrf, "name": "Amira <b>", "password": ""}, follow_redirects=False)
    assert answer.status_code == 422
    assert 'id="password-error"' in answer.text and 'value="Amira &lt;b&gt;"' in answer.text
    answer = http.post("/signin", data={"csrf": csrf, "name": "", "password": "typed secret words"},
                       follow_redirects=False)
    assert answer.status_code == 422 and 'id="name-error"' in answer.text
    assert "typed secret words" not in answer.text

    arabic = http.post("/signin", data={"csrf": csrf, "name": "", "password": ""},
                       headers={"Accept-Language": "ar"}, follow_redirects=False)
    assert 'dir="rtl"' in arabic.text and "أدخل اسم المستخدم." in arabic.text

    _, name, code = setup(http, "investigator", NAME)
    post_signin(http, name, code)
    page = http.get("/enrol")
    for password, repeat, problem in (("short", "short", "at least 12 characters"),
                                      (NAME, NAME, "must not be your user name"),
                                      (PASSWORD, PASSWORD + "x", "passwords differ")):
        answer = http.post("/enrol", data={"csrf": csrf_of(page.text), "password": password, "repeat": repeat,
                                           "code": "123456"}, follow_redirects=False)
        assert answer.status_code == 422 and problem in answer.text.lower()
        assert "Wrong code" in answer.text and PASSWORD not in answer.text
        assert COOKIE not in set_cookies(answer)


# ---- what must never be written -------------------------------------------------------------------------------

def test_the_log_the_catalog_and_the_server_log_hold_no_name_password_code_or_token(
        http: Any, home: Path, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    user_id, name, setup_code = setup(http, "investigator", NAME)
    secret = enrol_with(http, name, setup_code)
    sign_out(http)
    clock.advance(seconds=30)
    code = totp_now(http, secret)
    sign_in(http, NAME, PASSWORD, secret)
    sign_out(http)
    post_signin(http, NAME, "a wrong password guess")
    post_signin(http, "Nobody Known", "another guess here")
    _, token = token_of(http, "custodian")
    token_signin(http, token)
    cookie = http.cookies.get(COOKIE)
    http.cookies.delete(COOKIE)
    token_signin(http, "f" * 64)

    logged = json.dumps(events(http), ensure_ascii=False)
    secrets_used = [NAME, "Nobody Known", PASSWORD, "a wrong password guess", "another guess here", setup_code,
                    setup_code.replace("-", ""), secret, code, token, cookie, "f" * 64]
    for value in secrets_used:
        assert value not in logged, value
        assert value not in caplog.text, value
    unknown = [e for e in events(http) if e["type"] == "web sign-in failed" and e["details"]["reason"] ==
               "unknown-name"]
    assert len(unknown) == 1 and unknown[0]["objects"] == [] and "user" not in unknown[0]["details"]
    assert unknown[0]["actor"] == "archive"
    assert set(reasons(http)) == {"wrong-password", "unknown-name", "token-unknown"}
    known = [e for e in events(http) if e["details"].get("reason") == "wrong-password"]
    assert known[0]["objects"] == [user_id]
    for path in home.rglob("*"):  # the catalog (SQLite) and every other file of the home
        if path.is_file():
            data = path.read_bytes()
            for value in (PASSWORD, secret, setup_code, token, cookie):
                assert value.encode() not in data, (path, value[:4])


def test_key_rotation_reseals_the_totp_secret_and_sign_in_still_works(http: Any, clock: Clock) -> None:
    from archive.services.rotate import rotate_catalog

    _, secret = enrol(http, NAME, "investigator")
    http.cookies.clear()
    report = rotate_catalog(runtime_of(http).archive("archive"))
    assert report.resealed.get("web_credentials") == 1
    clock.advance(seconds=30)
    assert sign_in(http, NAME, PASSWORD, secret).status_code == 303
    assert signed_in_ok(http)
