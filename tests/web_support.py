"""Helpers of the web pages' tests: a fresh archive, and a TestClient signed in as a role."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

from tests.api_support import client, make_home


def web_home(tmp_path: Path) -> Path:
    """A freshly initialised archive home for page tests."""
    return make_home(tmp_path / "home")


def add_account(test_client: Any, role: str, name: str | None = None) -> str:
    """A user with an account of `role` (its id), made through the accounts service."""
    from archive.services.accounts import add_user

    archive = test_client.app.state.runtime.archive("archive")
    return str(add_user(archive, name or f"{role}-{secrets.token_hex(3)}", role)["id"])


def signed_in(test_client: Any, role: str, name: str | None = None) -> Any:
    """Sign `test_client` in (a session cookie) as a new user with `role`; the session's caller."""
    from archive.services.web_sessions import COOKIE, start_session

    user_id = add_account(test_client, role, name)
    cookie, caller = start_session(test_client.app.state.runtime.archive("archive"), user_id)
    test_client.cookies.set(COOKIE, cookie)
    return caller


def csrf_of(html: str) -> str:
    """The CSRF token a rendered page carries (its `<meta name="csrf-token">`)."""
    found = re.search(r'<meta name="csrf-token" content="([^"]*)"', html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def web_client(home: Path | str, **kwargs: Any) -> Any:
    """A TestClient over the whole application (pages and API), with HTML asked for like a browser."""
    test_client = client(home, **kwargs)
    test_client.headers["Accept"] = "text/html,application/xhtml+xml"
    return test_client
