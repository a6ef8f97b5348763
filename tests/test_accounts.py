"""Users, roles and API tokens: the promises an attacker with the database, or a token, would test.

A token is shown once and the catalog keeps only its SHA-256, so neither the
database nor any file of the home holds it; a revoked, expired or disabled
token fails with its reason, at once; one user's token never acts as another;
every change is a custody event naming ids and roles, never a person or a
token; `authenticate` works while the catalog key is locked and never queues
behind a writer.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from archive.context import Runtime
from archive.roles import Role
from archive.services.accounts import Caller, authenticate
from archive.services.errors import Unauthenticated
from tests.conftest import Cli

NAMES = ("Amira Haddad", "Bassel Nour")
VAULT = ("catalog.key", "access.key", "custodian.key")  # what a custodian takes away: the server is locked


@pytest.fixture()
def db_cli(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    return cli


@pytest.fixture()
def runtime(db_cli: Cli) -> Iterator[Runtime]:
    opened = Runtime.open(db_cli.home)
    yield opened
    opened.close()


def _token(cli: Cli, user: str, *extra: str) -> dict[str, Any]:
    made: dict[str, Any] = cli.json("tokens", "create", user, *extra)
    return made


def _refused(runtime: Runtime, token: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        authenticate(runtime, token)
    if token.strip():
        assert token not in str(caught.value) and token[:16] not in str(caught.value)
    return caught.value


def _dump(catalog_url: str) -> bytes:
    """Everything the catalog holds, as bytes (the SQLite files, or a pg_dump)."""
    if catalog_url.startswith("sqlite"):
        db = Path(catalog_url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    return subprocess.run(["pg_dump", "--dbname", catalog_url], check=True, capture_output=True).stdout


def _events(catalog_url: str, types: tuple[str, ...]) -> list[dict[str, Any]]:
    from sqlalchemy import bindparam, text

    from archive.db import make_engine

    engine = make_engine(catalog_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT seq, actor, event_type, objects, details FROM events "
                                     "WHERE event_type IN :types ORDER BY seq")
                                .bindparams(bindparam("types", expanding=True)), {"types": list(types)}).all()
    finally:
        engine.dispose()
    def parsed(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    return [{**row._mapping, "objects": parsed(row.objects), "details": parsed(row.details)} for row in rows]


def test_the_token_is_stored_nowhere_only_its_sha256(db_cli: Cli, catalog_url: str, tmp_path: Path,
                                                     runtime: Runtime) -> None:
    user = db_cli.json("users", "add", NAMES[0], "--role", "contributor")
    made = _token(db_cli, NAMES[0])
    token = made["token"]
    assert len(token) == 64 and int(token, 16) >= 0 and made["user"] == user["id"] and made["role"] == "contributor"
    digest = hashlib.sha256(token.encode()).hexdigest()
    dumped = _dump(catalog_url)
    assert digest.encode() in dumped, "the digest is found, so the search below could find the token too"
    forms = (token.encode(), token.upper().encode(), bytes.fromhex(token), token[:32].encode(), token[32:].encode())
    for form in forms:
        assert form not in dumped
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "catalog.key" for p in files)
    for path in files:
        data = path.read_bytes()
        assert not any(form in data for form in forms), f"{path} holds the token"
    assert NAMES[0].encode() not in dumped, "the user's name is sealed"
    assert authenticate(runtime, token) == Caller(user_id=user["id"], role=Role.CONTRIBUTOR, token_id=made["id"])


def test_revoked_expired_disabled_and_unknown_tokens_fail_with_their_reason(db_cli: Cli, runtime: Runtime) -> None:
    db_cli("users", "add", NAMES[0], "--role", "investigator")
    db_cli("users", "add", NAMES[1], "--role", "auditor")
    short = _token(db_cli, NAMES[0], "--expires", "1")
    revoked = _token(db_cli, NAMES[0])
    kept = _token(db_cli, NAMES[0])
    other = _token(db_cli, NAMES[1])
    expires = datetime.fromisoformat(short["expires_at"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(days=1)
    assert authenticate(runtime, short["token"]).token_id == short["id"]
    assert authenticate(runtime, revoked["token"]).token_id == revoked["id"]

    _, out, _ = db_cli("tokens", "revoke", revoked["id"])
    assert revoked["id"] in out
    assert _refused(runtime, revoked["token"]).reason == "revoked", "at once, in a process that was already running"
    assert authenticate(runtime, kept["token"]).token_id == kept["id"], "only that token"

    runtime.clock = lambda: expires - timedelta(seconds=1)
    assert authenticate(runtime, short["token"]).role == Role.INVESTIGATOR
    runtime.clock = lambda: expires + timedelta(seconds=1)
    assert _refused(runtime, short["token"]).reason == "expired"
    assert authenticate(runtime, kept["token"]).token_id == kept["id"], "a token without expiry never expires"

    for unknown in ("0" * 64, kept["token"][:-1] + ("0" if kept["token"][-1] != "0" else "1"), kept["token"][:63],
                    kept["token"] + "0", kept["token"].upper(), "", " " * 64, "é" * 64, "Bearer " + kept["token"]):
        assert _refused(runtime, unknown).reason == "unknown", unknown

    disabled = db_cli.json("users", "disable", NAMES[0])
    assert set(disabled["revoked"]) == {short["id"], kept["id"]}
    assert _refused(runtime, kept["token"]).reason == "revoked"
    assert authenticate(runtime, other["token"]).role == Role.AUDITOR, "another user's token still works"
    code, _, err = db_cli("tokens", "create", NAMES[0], expect=2)
    assert "disabled" in err
    states = {row["id"]: row["state"] for row in db_cli.json_lines("tokens", "list")}
    assert states == {short["id"]: "revoked", revoked["id"]: "revoked", kept["id"]: "revoked", other["id"]: "active"}


def test_a_token_of_one_user_never_authenticates_as_another(db_cli: Cli, runtime: Runtime) -> None:
    users = [db_cli.json("users", "add", name, "--role", role)
             for name, role in zip(NAMES, ("contributor", "custodian"), strict=True)]
    tokens = [[_token(db_cli, name) for _ in range(3)] for name in NAMES]
    by_id = _token(db_cli, users[1]["id"])  # a u- id works like the name
    assert by_id["user"] == users[1]["id"]
    for user, made in zip(users, tokens, strict=True):
        for entry in made:
            caller = authenticate(runtime, entry["token"])
            assert caller == Caller(user_id=user["id"], role=Role(user["role"]), token_id=entry["id"])
    assert len({entry["token"] for made in tokens for entry in made}) == 6
    db_cli("tokens", "revoke", tokens[0][0]["id"])
    assert authenticate(runtime, tokens[1][0]["token"]).user_id == users[1]["id"]
    assert authenticate(runtime, tokens[0][1]["token"]).user_id == users[0]["id"]


def test_every_change_is_a_custody_event_naming_no_one_and_no_token(db_cli: Cli, catalog_url: str) -> None:
    users = [db_cli.json("users", "add", name, "--role", "investigator") for name in NAMES]
    made = _token(db_cli, NAMES[0], "--expires", "30")
    second = _token(db_cli, NAMES[1])
    db_cli("tokens", "revoke", made["id"])
    db_cli("tokens", "revoke", made["id"])  # again: nothing changes, nothing is recorded
    db_cli("users", "disable", NAMES[1])
    events = _events(catalog_url, ("user added", "token created", "token revoked", "user disabled"))
    assert [e["event_type"] for e in events] == ["user added", "user added", "token created", "token created",
                                                 "token revoked", "user disabled"]
    assert [e["details"] for e in events[:2]] == [{"user": u["id"], "role": "investigator"} for u in users]
    assert events[2]["details"] == {"token_id": made["id"], "user": users[0]["id"], "role": "investigator",
                                    "expires_at": made["expires_at"]}
    assert events[4]["details"] == {"token_id": made["id"], "user": users[0]["id"]}
    assert events[5]["details"]["revoked"] == [second["id"]]
    everything = json.dumps(_events(catalog_url, tuple({e["event_type"] for e in events}) + ("ingestion",)))
    for secret in (*NAMES, made["token"], second["token"], "tester"):
        assert secret not in everything
    actors = {e["actor"] for e in events}
    assert len(actors) == 1 and next(iter(actors)).startswith("u-"), "the operator acts by id"
    code, out, _ = db_cli("log", "verify")
    assert "ok" in out


def test_unknown_users_roles_and_ids_are_refused_clearly_and_write_nothing(db_cli: Cli, catalog_url: str) -> None:
    from tests.conftest import row_counts

    tables = ("accounts", "tokens", "events")
    before = row_counts(db_cli.home, tables)
    _, _, err = db_cli("tokens", "create", "Nobody Known", expect=2)
    assert "no user 'Nobody Known' with an account" in err and "users add" in err
    _, _, err = db_cli("tokens", "create", "u-0123456789abcdef", expect=2)
    assert "no user" in err
    _, _, err = db_cli("tokens", "revoke", "tok-0000000000000000", expect=2)
    assert "no token" in err
    _, _, err = db_cli("users", "add", NAMES[0], "--role", "admin", expect=2)
    assert "unknown role 'admin'" in err and "contributor" in err
    for bad in ("", "   ", "a\nb", "x" * 256, "archive", "u-0123456789abcdef"):
        db_cli("users", "add", bad, "--role", "auditor", expect=2)
    db_cli("tokens", "create", NAMES[0], "--expires", "0", expect=2)
    db_cli("tokens", "create", NAMES[0], "--expires", "-3", expect=2)
    assert row_counts(db_cli.home, tables) == before

    for role in Role:
        added = db_cli.json("users", "add", f"{NAMES[0]} {role.value}", "--role", role.value.upper())
        assert added["role"] == role.value
    _, _, err = db_cli("users", "add", f"{NAMES[0]} auditor", "--role", "custodian", expect=2)
    assert "already has an account" in err
    db_cli("tokens", "create", NAMES[1], "--expires", "1", expect=2)  # no account yet: no token either


def test_the_operator_can_get_an_account_under_the_id_it_already_acts_by(db_cli: Cli, catalog_url: str) -> None:
    db_cli("users", "add", NAMES[0], "--role", "contributor")
    [event] = _events(catalog_url, ("user added",))
    operator = db_cli.json("users", "add", "tester", "--role", "custodian")
    assert operator["id"] == event["actor"], "the users row behind the operator's name is reused"


def test_lists_and_the_cli_never_show_a_token_again(db_cli: Cli) -> None:
    db_cli("users", "add", NAMES[0], "--role", "contributor")
    code, out, err = db_cli("tokens", "create", NAMES[0])
    token = out.strip()
    assert len(token) == 64 and "not be shown again" in err and token not in err
    shown = [db_cli("tokens", "list")[1], db_cli("users", "list")[1],
             json.dumps(db_cli.json_lines("tokens", "list")), json.dumps(db_cli.json_lines("users", "list"))]
    assert all(token not in text for text in shown)
    [user] = db_cli.json_lines("users", "list")
    assert user["name"] == NAMES[0] and user["active_tokens"] == 1
    [row] = db_cli.json_lines("tokens", "list")
    assert set(row) == {"id", "user", "role", "created_at", "expires_at", "revoked_at", "state"}


def test_locked_users_add_says_why_and_authenticate_still_works(db_cli: Cli, tmp_path: Path) -> None:
    user = db_cli.json("users", "add", NAMES[0], "--role", "contributor")
    made = _token(db_cli, NAMES[0])
    vault = tmp_path / "vault"
    vault.mkdir()
    for name in VAULT:
        shutil.move(db_cli.home / "keys" / name, vault / name)
    _, _, err = db_cli("users", "add", NAMES[1], "--role", "auditor", expect=1)
    assert "catalog key" in err and "evidence unlock" in err
    _, _, err = db_cli("tokens", "create", NAMES[0], expect=1)
    assert "catalog key" in err
    by_id = _token(db_cli, user["id"])  # by id it needs no key
    [listed] = db_cli.json_lines("users", "list")
    assert listed["id"] == user["id"] and listed["name"] is None
    locked = Runtime.open(db_cli.home)
    try:
        assert authenticate(locked, made["token"]).user_id == user["id"]
        assert authenticate(locked, by_id["token"]).user_id == user["id"]
    finally:
        locked.close()


def test_authenticate_never_waits_for_a_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many server threads authenticate while another process's transaction holds SQLite's write lock."""
    from archive.db import make_engine, transaction

    monkeypatch.setenv("EVIDENCE_DATABASE_URL", f"sqlite:///{tmp_path / 'catalog.db'}")
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    cli("users", "add", NAMES[0], "--role", "contributor")
    tokens = [_token(cli, NAMES[0])["token"] for _ in range(4)]
    server = Runtime.open(cli.home)
    writer = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    results: list[Any] = []
    try:
        assert server.engine is not None  # opened once, before the threads (as the server does at start)
        with transaction(writer) as session:
            from sqlalchemy import text

            session.execute(text("UPDATE tokens SET created_at = created_at"))  # the write lock is held
            threads = [threading.Thread(target=lambda t=t: results.append(authenticate(server, t)))
                       for t in tokens * 8]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=10)
            assert not any(thread.is_alive() for thread in threads), "authenticate waited for the write lock"
    finally:
        writer.dispose()
        server.close()
    assert len(results) == 32 and all(isinstance(r, Caller) for r in results)
