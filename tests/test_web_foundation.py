"""What every page stands on: cookie sessions on the API routes a browser may call, CSRF and Origin checks,
error pages instead of JSON, the language of a request, static files by name only, and the headers pages carry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.web.i18n import choose
from archive.services.web_sessions import COOKIE, IDLE, authenticate_session
from tests.web_support import signed_in, web_client, web_home


@pytest.fixture()
def web(tmp_path: Path) -> Iterator[Any]:
    with web_client(web_home(tmp_path)) as test_client:
        yield test_client


def test_a_page_without_a_session_sends_the_browser_to_sign_in_and_back(web: Any) -> None:
    answer = web.get("/incidents?type=shelling", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin?next=%2Fincidents%3Ftype%3Dshelling"


def test_a_garbage_or_ended_session_is_no_session(web: Any) -> None:
    from archive.services.web_sessions import end_session

    web.cookies.set(COOKIE, "f" * 64)
    assert web.get("/incidents", follow_redirects=False).status_code == 303
    signed_in(web, "investigator")
    cookie = web.cookies.get(COOKIE)
    assert web.get("/v1/receipts/key").status_code == 200  # a cookie-enabled API route, signed in
    end_session(web.app.state.runtime.archive("archive"), cookie)
    assert web.get("/v1/receipts/key").status_code == 401
    assert web.get("/incidents", follow_redirects=False).status_code == 303


def test_an_idle_session_expires_and_so_does_an_old_one(web: Any) -> None:
    caller = signed_in(web, "investigator")
    cookie = web.cookies.get(COOKIE)
    runtime = web.app.state.runtime
    real = runtime.clock
    try:
        start = real()
        runtime.clock = lambda: start + IDLE * 0.9
        assert authenticate_session(runtime, cookie).user_id == caller.user_id  # used: the idle clock restarts
        runtime.clock = lambda: start + IDLE * 1.8
        assert authenticate_session(runtime, cookie).user_id == caller.user_id
        runtime.clock = lambda: start + IDLE * 3
        with pytest.raises(Exception, match="expired"):
            authenticate_session(runtime, cookie)
    finally:
        runtime.clock = real


def test_the_cookie_opens_only_the_api_routes_a_browser_needs(web: Any) -> None:
    signed_in(web, "custodian")
    assert web.get("/v1/log/vkey").status_code == 200
    refused = web.get("/v1/items")  # everything else of the API still wants a token
    assert refused.status_code == 401 and refused.json()["error"] == "unauthenticated"


def test_a_cookie_authenticated_upload_needs_the_csrf_header_and_our_origin(web: Any) -> None:
    caller = signed_in(web, "contributor")
    tus = {"Tus-Resumable": "1.0.0", "Upload-Length": "5"}
    no_token = web.post("/v1/uploads", headers=tus)
    assert no_token.status_code == 403 and "X-CSRF-Token" in no_token.json()["detail"]
    wrong = web.post("/v1/uploads", headers={**tus, "X-CSRF-Token": "x" + caller.csrf[1:]})
    assert wrong.status_code == 403
    elsewhere = web.post("/v1/uploads", headers={**tus, "X-CSRF-Token": caller.csrf, "Origin": "https://evil.example"})
    assert elsewhere.status_code == 403
    made = web.post("/v1/uploads", headers={**tus, "X-CSRF-Token": caller.csrf, "Origin": "http://testserver"})
    assert made.status_code == 201, made.text


def test_an_unknown_page_is_a_page_and_an_unknown_api_path_is_json(web: Any) -> None:
    page = web.get("/no-such-page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "<html lang=\"en\" dir=\"ltr\">" in page.text
    api = web.get("/v1/no-such-thing", headers={"Accept": "application/json"})
    assert api.status_code == 404 and api.json()["error"] == "not_found"


def test_pages_carry_a_strict_content_security_policy(web: Any) -> None:
    page = web.get("/no-such-page")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text and " style=" not in page.text and " onclick=" not in page.text


def test_the_language_follows_the_browser_then_the_switch(web: Any) -> None:
    arabic = web.get("/no-such-page", headers={"Accept-Language": "ar-SY,ar;q=0.9,en;q=0.5"})
    assert '<html lang="ar" dir="rtl">' in arabic.text and "غير موجود" in arabic.text
    switched = web.get("/lang/en?next=/no-such-page", headers={"Accept-Language": "ar"}, follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == "/no-such-page"
    assert "samesite=strict" in switched.headers["set-cookie"].lower()
    english = web.get("/no-such-page", headers={"Accept-Language": "ar"})
    assert '<html lang="en" dir="ltr">' in english.text


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "evil", "/\x00x"])
def test_the_switch_never_redirects_off_the_site(web: Any, target: str) -> None:
    answer = web.get("/lang/ar", params={"next": target}, follow_redirects=False)
    assert answer.headers["location"] == "/"


def test_languages_by_preference() -> None:
    assert choose(None, "fr-FR, ar;q=0.8, en;q=0.5").code == "ar"
    assert choose(None, "en-GB,ar;q=0.1").code == "en"
    assert choose(None, None).code == "en" and choose(None, "de").code == "en"
    assert choose("ar", "en").code == "ar" and choose("xx", "ar").dir == "rtl"


@pytest.mark.parametrize("name", ["../app.py", "..%2Fapp.py", "vendor/../../../pyproject.toml", "vendor/package.json",
                                  "vendor/htmx.org/package.json", ".hidden.css", "nothing.js"])
def test_static_files_are_served_by_name_only(web: Any, name: str) -> None:
    assert web.get(f"/static/{name}").status_code == 404


def test_the_front_end_libraries_come_from_npm(web: Any) -> None:
    from api.web.static import VENDOR

    for name in VENDOR:
        answer = web.get(f"/static/vendor/{name}")
        assert answer.status_code == 200, f"{name}: run scripts/setup.sh's ensure_frontend (npm ci)"
        assert answer.headers["cache-control"].startswith("public")


def test_revoking_a_token_signs_out_the_browsers_it_signed_in(web: Any) -> None:
    from archive.services.accounts import create_token, revoke_token
    from archive.services.web_sessions import start_session
    from tests.web_support import add_account

    archive = web.app.state.runtime.archive("archive")
    user = add_account(web, "custodian")
    token = create_token(archive, user)
    by_token, _ = start_session(archive, user, method="token")
    by_password, _ = start_session(archive, user, method="password+totp")
    revoke_token(archive, token["id"])
    runtime = web.app.state.runtime
    with pytest.raises(Exception, match="signed out"):
        authenticate_session(runtime, by_token)
    assert authenticate_session(runtime, by_password).user_id == user  # the password's session is not the token's


def test_parallel_sign_ins_cannot_all_pass_the_throttle_before_the_first_fails() -> None:
    from datetime import UTC, datetime

    from archive.services.web_signin import THROTTLE_LIMIT, Throttle, Throttled

    throttle, now = Throttle(), datetime.now(UTC)
    held = [throttle.attempt("203.0.113.9", now) for _ in range(THROTTLE_LIMIT)]
    for attempt in held:
        attempt.__enter__()  # all of them still being checked (their Argon2 running)
    with pytest.raises(Throttled):
        with throttle.attempt("203.0.113.9", now):
            pass
    with throttle.attempt("198.51.100.1", now):  # another address is not held back
        pass
    for attempt in held:
        attempt.__exit__(None, None, None)
    with throttle.attempt("203.0.113.9", now):  # they ended without failing: the address may try again
        pass


def test_a_locked_archive_says_so_on_every_page_of_the_staff(tmp_path: Path) -> None:
    from archive.services.web_sessions import start_session
    from tests.api_support import run_cli
    from tests.web_support import add_account

    home = web_home(tmp_path)
    with web_client(home) as before:
        investigator = add_account(before, "investigator")
        contributor = add_account(before, "contributor")
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("a long enough passphrase for the test\n")
    passphrase.chmod(0o600)
    run_cli(home, "keys", "protect", "--passphrase-file", str(passphrase))
    with web_client(home) as web:
        archive = web.app.state.runtime.archive("archive")
        cookie, _ = start_session(archive, investigator)
        web.cookies.set(COOKIE, cookie)
        dashboard = web.get("/")
        assert dashboard.status_code == 200 and 'class="locked-banner"' in dashboard.text
        assert "evidence unlock" in dashboard.text
        assert 'class="locked-banner"' in web.get("/items").text
        cookie, _ = start_session(archive, contributor)
        web.cookies.set(COOKIE, cookie)
        assert 'class="locked-banner"' not in web.get("/upload").text  # uploads need no key: nothing to say


def test_a_form_address_opened_directly_says_so(web: Any) -> None:
    signed_in(web, "investigator")
    answer = web.get("/export/plan", headers={"Accept-Language": "ar"})
    assert answer.status_code == 405 and "يُفتح هذا العنوان عبر نموذج" in answer.text


def test_a_form_without_its_token_says_it_expired_and_changes_nothing(web: Any) -> None:
    signed_in(web, "investigator")
    answer = web.post("/incidents", data={"ref": "X-1"}, headers={"Accept-Language": "ar"})
    assert answer.status_code == 403 and "انتهت صلاحية هذا النموذج" in answer.text
    assert "X-1" not in web.get("/incidents").text


def test_a_sign_in_flood_from_many_addresses_is_refused_at_once_not_queued() -> None:
    """Sign-ins waiting for an Argon2 check hold threads every page needs: beyond a few, refused at once."""
    import threading
    import time

    from archive.services import web_signin

    gate = threading.Event()
    entered = threading.Semaphore(0)

    class SlowHasher:
        def verify(self, stored: str, password: str) -> bool:
            entered.release()
            gate.wait(10)
            return True

    real, real_dummy = web_signin._hasher, web_signin._dummy
    web_signin._hasher, web_signin._dummy = SlowHasher(), "x"
    outcomes: list[str] = []

    def attempt() -> None:
        try:
            web_signin._verify(None, "guess")
            outcomes.append("checked")
        except web_signin.Throttled:
            outcomes.append("busy")

    admitted = web_signin.HASHES_AT_ONCE + web_signin.HASHES_WAITING
    threads = [threading.Thread(target=attempt) for _ in range(admitted)]
    try:
        for thread in threads:
            thread.start()
        for _ in range(web_signin.HASHES_AT_ONCE):
            assert entered.acquire(timeout=10)  # two are hashing, the rest wait for a slot
        time.sleep(0.2)
        started = time.monotonic()
        extra = [threading.Thread(target=attempt) for _ in range(20)]
        for thread in extra:
            thread.start()
        for thread in extra:
            thread.join(5)
        assert time.monotonic() - started < 2 and outcomes.count("busy") == 20  # no waiting: answered at once
    finally:
        gate.set()
        for thread in threads:
            thread.join(15)
        web_signin._hasher, web_signin._dummy = real, real_dummy
    assert outcomes.count("checked") == admitted
