"""The authorization matrix, route by route: the app serves exactly its rows, and each row admits exactly its roles.

Parametrized from `api.http.matrix.ROUTES` itself, so a route another module
adds is covered the moment its row is: every route is called with a token
of every role, with no token, an expired and a revoked token, and with the
wrong scheme (Basic outside /dav/, Bearer under it). An admitted role never
gets 401 or 403 (whatever the route then says about the dummy input); every
other caller gets exactly 401 (with `WWW-Authenticate`) or 403, a JSON error,
and never its token back.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.http import matrix
from archive.roles import Role
from tests.api_support import bearer, client, make_home, token_record

SAMPLES = {
    "upload_id": "up-0123456789abcdef",
    "secret": "s" * 43,
    "item_id": "0123456789abcdef",
    "ref": "inc-0000",
    "link_id": "1",
    "seq": "0",
    "other": "fedcba9876543210",
    "decision": "confirm",
    "code": "en",
    "name": "app.css",
}
QUERIES = {"/v1/log/consistency": "?old=1&new=1"}


def concrete(template: str) -> str:
    """A path the template matches, with harmless sample values."""
    def value(match: re.Match[str]) -> str:
        name, _, kind = match.group(1).partition(":")
        if kind == "path":
            return "folder/sample.txt" if template.startswith("/dav/") else "0/000"
        return SAMPLES.get(name, "x")

    return re.sub(r"\{([^}]+)\}", value, template) + QUERIES.get(template, "")


class World:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.tokens: dict[str, str] = {}
        for role in Role:
            self.tokens[role.value] = token_record(home, f"m-{role.value}", role.value)["token"]
        expired = token_record(home, "m-expired", "custodian", expires_days=1)
        revoked = token_record(home, "m-revoked", "custodian")
        self._expire(expired["id"])
        from click.testing import CliRunner

        from api.cli.main import cli

        done = CliRunner().invoke(cli, ["--home", str(home), "tokens", "revoke", revoked["id"]])
        assert done.exit_code == 0, done.output
        self.expired, self.revoked = expired["token"], revoked["token"]
        self.sessions = self._sessions()

    def _sessions(self) -> dict[str, tuple[str, str]]:
        """A web session (cookie, CSRF token) per role, for the pages' rows."""
        from archive.context import Runtime
        from archive.services.accounts import authenticate
        from archive.services.web_sessions import start_session

        runtime = Runtime.open(self.home)
        try:
            sessions = {}
            for role, token in self.tokens.items():
                caller = authenticate(runtime, token)
                cookie, web = start_session(runtime.archive("archive"), caller.user_id)
                sessions[role] = (cookie, web.csrf)
            return sessions
        finally:
            runtime.close()

    def _expire(self, token_id: str) -> None:
        from sqlalchemy import text

        from archive.context import Runtime
        from archive.db import transaction

        runtime = Runtime.open(self.home)
        try:
            with transaction(runtime.engine) as session:
                session.execute(text("UPDATE tokens SET expires_at = '2001-01-01T00:00:00Z' WHERE id = :id"),
                                {"id": token_id})
        finally:
            runtime.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(make_home(tmp_path_factory.mktemp("matrix") / "home"))


@pytest.fixture(scope="module")
def api(world: World) -> Iterator[Any]:
    with client(world.home) as test_client:
        yield test_client


def served(app: Any) -> set[tuple[str, str]]:
    """(method, template) of every route the app serves, less the HEAD Starlette adds to its own GET routes
    (/openapi.json); a HEAD without a row is refused like any route without one."""
    from api.http.auth import app_routes

    pairs = {(method, path) for path, methods in app_routes(app) for method in methods}
    return {(m, p) for m, p in pairs if not (m == "HEAD" and ("GET", p) in pairs and ("HEAD", p) not in matrix.ROUTES)}


def test_the_app_serves_exactly_the_matrix(api: Any) -> None:
    routes = served(api.app)
    rows = set(matrix.ROUTES)
    assert not routes - rows, f"routes without a matrix row (refused to everyone): {sorted(routes - rows)}"
    assert not rows - routes, f"matrix rows without a route: {sorted(rows - routes)}"


def _callers(world: World, template: str) -> list[tuple[str, dict[str, str], str | None]]:
    """(label, headers, what is expected: a role value, 'anonymous' or 'refused-401')."""
    dav = template.startswith(matrix.BASIC_PREFIX)

    def creds(token: str) -> dict[str, str]:
        if dav:
            return {"Authorization": "Basic " + base64.b64encode(f"field:{token}".encode()).decode()}
        return bearer(token)

    callers: list[tuple[str, dict[str, str], str | None]] = [
        (role, creds(token), role) for role, token in world.tokens.items()
    ]
    if matrix.is_web(template):
        from archive.services.web_sessions import COOKIE

        sessions = world._sessions() if template == "/signout" else world.sessions  # signing out ends them
        callers += [(f"{role} session", {"Cookie": f"{COOKIE}={cookie}", "X-CSRF-Token": csrf}, role)
                    for role, (cookie, csrf) in sessions.items()]
        callers.append(("garbage session", {"Cookie": f"{COOKIE}={'0' * 64}"}, None))
    callers += [("no token", {}, None), ("expired", creds(world.expired), None),
                ("revoked", creds(world.revoked), None), ("garbage", creds("not-a-token"), None)]
    custodian = world.tokens[Role.CUSTODIAN.value]
    if dav:
        callers.append(("bearer under /dav/", bearer(custodian), None))
    else:
        basic = base64.b64encode(f"x:{custodian}".encode()).decode()
        callers.append(("basic outside /dav/", {"Authorization": f"Basic {basic}"}, None))
    return callers


@pytest.mark.parametrize(("method", "template"), sorted(matrix.ROUTES), ids=lambda v: str(v))
def test_route_admits_exactly_its_roles(api: Any, world: World, method: str, template: str) -> None:
    roles = matrix.ROUTES[(method, template)]
    path = concrete(template)
    problems = []
    for label, headers, role in _callers(world, template):
        response = api.request(method, path, headers=headers, follow_redirects=False)
        status = response.status_code
        if not roles and matrix.is_web(template) and method == "POST" or template in ("/enrol", "/signin/code"):
            # public sign-in steps check their own one-time cookies and CSRF: they may refuse, never fail
            if status >= 500:
                problems.append(f"{label}: {status} {response.text[:200]}")
            continue
        if not roles or (role is not None and Role(role) in roles):
            if status in (401, 403):
                problems.append(f"{label}: admitted, got {status} {response.text[:200]}")
            continue
        expected = 403 if role is not None else 401
        if matrix.is_web(template):  # pages: the sign-in page for a GET without a session, else an HTML page
            if role is None and method == "GET":
                expected = 303
            if status != expected:
                problems.append(f"{label}: expected {expected}, got {status} {response.text[:200]}")
            elif status == 303 and not response.headers.get("location", "").startswith("/signin?next="):
                problems.append(f"{label}: redirected to {response.headers.get('location')}")
            elif status != 303 and not response.headers.get("content-type", "").startswith("text/html"):
                problems.append(f"{label}: refusal is not a page: {response.headers.get('content-type')}")
            token = headers.get("Authorization", " ").split(" ", 1)[1]
            if token and token in response.text:
                problems.append(f"{label}: the credential is echoed")
            continue
        if status != expected:
            problems.append(f"{label}: expected {expected}, got {status} {response.text[:200]}")
            continue
        if method != "HEAD":
            body = response.json()
            if set(body) != {"error", "detail"}:
                problems.append(f"{label}: error body {body}")
        if status == 401 and not response.headers.get("www-authenticate"):
            problems.append(f"{label}: 401 without WWW-Authenticate")
        token = headers.get("Authorization", " ").split(" ", 1)[1]
        if token and (token in response.text or any(t in response.text for t in world.tokens.values())):
            problems.append(f"{label}: the credential is echoed")
    assert not problems, f"{method} {template}:\n" + "\n".join(problems)


def test_a_route_without_a_row_is_refused_to_everyone(world: World) -> None:
    with client(world.home) as fresh:
        @fresh.app.get("/v1/unlisted")
        def unlisted() -> dict[str, str]:
            return {"reached": "yes"}

        response = fresh.get("/v1/unlisted", headers=bearer(world.tokens[Role.CUSTODIAN.value]))
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "forbidden"
        assert "reached" not in response.text


def test_unknown_paths_are_json_404(api: Any, world: World) -> None:
    response = api.get("/v1/nothing-here", headers=bearer(world.tokens[Role.CUSTODIAN.value]))
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "no such route"}



@pytest.mark.parametrize("path", ["/v1/uploads/up-0123456789abcdef/s3cr3t-upload-secret/", "/v1/items/",
                                  "/v1/log/checkpoint/", "/healthz/", "/v1/receipts/key/"])
def test_a_trailing_slash_is_no_redirect(api: Any, world: World, path: str) -> None:
    """Starlette's slash redirect answers before any authorization, with the path (an upload's secret) in Location."""
    for method in ("GET", "HEAD", "PATCH"):
        for headers in ({}, bearer(world.tokens[Role.CUSTODIAN.value])):
            response = api.request(method, path, headers=headers, follow_redirects=False)
            assert response.status_code in (401, 403, 404, 405), (method, path, response.status_code)
            assert "location" not in response.headers and "s3cr3t" not in response.text


def test_a_refused_token_is_not_described_to_its_presenter(api: Any, world: World) -> None:
    """Expired or revoked: said so, without the token's id or its expiry."""
    for token, said in ((world.expired, "token expired"), (world.revoked, "token revoked")):
        response = api.get("/v1/items", headers=bearer(token))
        assert response.status_code == 401 and response.json()["detail"] == said, response.text


def test_basic_outside_dav_says_why(api: Any, world: World) -> None:
    basic = base64.b64encode(f"x:{world.tokens[Role.AUDITOR.value]}".encode()).decode()
    response = api.get("/v1/storage", headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 401
    assert "Basic authentication is accepted only under /dav/" in response.json()["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_refusals_are_counted_by_reason(api: Any, world: World) -> None:
    from api.http.metrics import REFUSALS

    def count(reason: str) -> float:
        return float(REFUSALS.labels(reason)._value.get())

    before = {reason: count(reason) for reason in ("missing", "expired", "revoked", "role", "scheme")}
    api.get("/v1/storage")
    api.get("/v1/storage", headers=bearer(world.expired))
    api.get("/v1/storage", headers=bearer(world.revoked))
    api.get("/v1/storage", headers=bearer(world.tokens[Role.CONTRIBUTOR.value]))
    api.get("/v1/storage", headers={"Authorization": "Basic eDp5"})
    assert {reason: count(reason) - before[reason] for reason in before} == \
        {"missing": 1, "expired": 1, "revoked": 1, "role": 1, "scheme": 1}


def test_a_refusal_comes_before_the_body_is_read(api: Any) -> None:
    """An anonymous client declaring a huge JSON or multipart body gets its 401 without sending a byte of it."""
    import anyio

    async def call(method: str, path: str, content_type: str) -> tuple[int, int]:
        sent: list[dict[str, Any]] = []
        reads = 0

        async def receive() -> dict[str, Any]:
            nonlocal reads
            reads += 1
            await anyio.sleep(30)  # the body never comes
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "path": path, "raw_path": path.encode(), "root_path": "", "scheme": "http", "query_string": b"",
                 "headers": [(b"host", b"test"), (b"content-type", content_type.encode()),
                             (b"content-length", b"100000000")],
                 "client": ("127.0.0.1", 1), "server": ("test", 80)}
        with anyio.fail_after(10):
            await api.app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        return int(start["status"]), reads

    for method, path, kind in [("POST", "/v1/incidents", "application/json"),
                               ("POST", "/v1/import", "multipart/form-data; boundary=x"),
                               ("POST", "/v1/similar", "multipart/form-data; boundary=x")]:
        status, reads = anyio.run(call, method, path, kind)
        assert (status, reads) == (401, 0), (path, status, reads)


def test_a_refused_tus_request_still_speaks_tus(api: Any) -> None:
    """tus clients read `Tus-Resumable` on every answer, refusals included (the matrix refuses before the route)."""
    answer = api.post("/v1/uploads", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "10"})
    assert answer.status_code == 401
    assert answer.headers.get("tus-resumable") == "1.0.0"
    assert api.get("/docs").status_code == 404  # no page that would load scripts from a CDN
