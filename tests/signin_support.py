"""Helpers for tests that sign in through the real pages: a set-up account, enrolment, the current TOTP code.

`setup(client, role)` makes an account and its one-time setup code (the service `evidence users setup`
calls); `enrol(client, name, role)` goes through /signin and /enrol like a person would and returns the
password chosen and the TOTP secret; `sign_in(client, name, password, secret)` signs in again with both
factors. Codes follow the runtime's clock (`totp_now`), so a test that moves the clock gets the codes of then.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from typing import Any

import pyotp
import pytest

from tests.web_support import add_account, csrf_of

PASSWORD = "correct horse battery staple"


@pytest.fixture()
def quick_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id at its cheapest for a test's many sign-ins (the defaults take ~0.5 s a hash on a loaded box).

    Import it into a test module (`from tests.signin_support import quick_argon2`) and use it, or autouse it.
    """
    from argon2 import PasswordHasher

    from archive.services import web_signin

    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(web_signin, "_hasher", hasher)
    monkeypatch.setattr(web_signin, "_dummy", hasher.hash("a dummy password"))


def runtime_of(test_client: Any) -> Any:
    return test_client.app.state.runtime


def setup(test_client: Any, role: str, name: str | None = None) -> tuple[str, str, str]:
    """A new account with `role`: (user id, name, one-time setup code)."""
    from archive.services.web_signin import setup_account

    name = name or f"{role}-{secrets.token_hex(3)}"
    user_id = add_account(test_client, role, name)
    code = setup_account(runtime_of(test_client).archive("archive"), user_id)
    return user_id, name, code


def totp_now(test_client: Any, secret: str, steps: int = 0) -> str:
    """The code an authenticator app shows now by the runtime's clock (`steps` × 30 s later)."""
    moment = runtime_of(test_client).clock() + timedelta(seconds=30 * steps)
    return pyotp.TOTP(secret).at(moment)


def page_csrf(test_client: Any, path: str) -> str:
    answer = test_client.get(path, follow_redirects=False)
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:500])
    return csrf_of(answer.text)


def post_signin(test_client: Any, name: str, password: str, next: str = "/") -> Any:
    return test_client.post("/signin", data={"csrf": page_csrf(test_client, "/signin"), "name": name,
                                             "password": password, "next": next}, follow_redirects=False)


def post_code(test_client: Any, code: str, next: str = "/") -> Any:
    return test_client.post("/signin/code", data={"csrf": page_csrf(test_client, "/signin/code"), "code": code,
                                                  "next": next}, follow_redirects=False)


def secret_of(html: str) -> str:
    found = re.search(r'<code class="secret" dir="ltr">([A-Z2-7 ]+)</code>', html)
    assert found, "the enrolment page shows no secret"
    return found.group(1).replace(" ", "")


def enrol_with(test_client: Any, name: str, setup_code: str, password: str = PASSWORD) -> str:
    """Through /signin (name + setup code) and /enrol: signed in; the TOTP secret."""
    answer = post_signin(test_client, name, setup_code)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/enrol"), answer.text[:500]
    page = test_client.get("/enrol", follow_redirects=False)
    assert page.status_code == 200, page.text[:500]
    secret = secret_of(page.text)
    done = test_client.post("/enrol", data={"csrf": csrf_of(page.text), "password": password, "repeat": password,
                                            "code": totp_now(test_client, secret)}, follow_redirects=False)
    assert done.status_code == 303, done.text[:800]
    return secret


def enrol(test_client: Any, name: str, role: str, password: str = PASSWORD) -> tuple[str, str]:
    """A new account `name` with `role`, enrolled through the real pages: (password, TOTP secret).

    The client is left signed in (as a person is after enrolling).
    """
    _user_id, _name, code = setup(test_client, role, name)
    return password, enrol_with(test_client, name, code, password)


def sign_in(test_client: Any, name: str, password: str, secret: str, *, steps: int = 0) -> Any:
    """Name and password, then the code (`steps` × 30 s ahead, so two sign-ins in one step differ)."""
    first = post_signin(test_client, name, password)
    assert first.status_code == 303 and first.headers["location"].startswith("/signin/code"), first.text[:500]
    return post_code(test_client, totp_now(test_client, secret, steps))
