"""Users, roles and API tokens: who may call the HTTP API, and as what.

A user is the random id of `archive.catalog.users` (the name sealed under the
catalog key); an account gives that id a role; a token is 256 random bits shown
once, of which the catalog keeps only the SHA-256. So a copy of the database
names nobody and cannot call the API. Every change is a custody event whose
details carry ids and roles only, never a name, never a token.

`authenticate` is on every request's path: one indexed query on the digest,
over a read-only connection (on SQLite it never takes the write lock, so many
server threads authenticate while an ingest writes) and without the catalog
key, so a locked server still knows its callers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from archive.roles import Role
from archive.services.errors import Invalid, Locked, NotFound, Unauthenticated

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.catalog.accounts import Account
    from archive.context import Archive, Runtime

# The archive's own event types: PREMIS has none for granting access to a catalog.
USER_ADDED = "user added"
USER_DISABLED = "user disabled"
TOKEN_CREATED = "token created"
TOKEN_REVOKED = "token revoked"

TOKEN_HEX = 64  # 256 bits
MAX_EXPIRES_DAYS = 3650
_HEX = "0123456789abcdef"

_LOOKUP = text(
    "SELECT t.id, t.user_id, t.digest, t.expires_at, t.revoked_at, a.role, a.disabled_at "
    "FROM tokens t LEFT JOIN accounts a ON a.user_id = t.user_id WHERE t.digest = :digest"
)


@dataclass(frozen=True)
class Caller:
    """Who a request acts as: the user id (what custody events record), its role, and the token used."""

    user_id: str
    role: Role
    token_id: str


def digest_of(token: str) -> str:
    """The SHA-256 (hex) of a token: all the catalog ever holds of it."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(stamp: str) -> datetime:
    parsed = datetime.fromisoformat(stamp)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_role(role: str | Role) -> Role:
    try:
        return Role(str(role).strip().lower())
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise Invalid(f"unknown role {str(role)[:40]!r}: one of {known}") from None


def _catalog_keys(archive: Archive, doing: str) -> Any:
    """The catalog key, needed to find or seal a user's name; a clear `Locked` otherwise."""
    try:
        return archive.runtime.keys.catalog()
    except Locked:
        raise Locked(f"{doing} needs the catalog key (user names are sealed): a custodian must run "
                     "`evidence unlock` first") from None


def _find_user(session: Session, archive: Archive, user: str) -> str | None:
    """The user id behind a name or an id (an id is taken as it is), or None."""
    from archive.catalog.users import find, is_user_id

    user = user.strip()
    if is_user_id(user):
        return user
    return find(session, _catalog_keys(archive, "finding a user by name"), user)


def _account(session: Session, archive: Archive, user: str) -> Account:
    from archive.catalog.accounts import Account

    user_id = _find_user(session, archive, user)
    account = session.get(Account, user_id) if user_id is not None else None
    if account is None:
        raise NotFound(f"no user {user.strip()[:80]!r} with an account: add one with "
                       "`evidence users add NAME --role ROLE`")
    return account


def add_user(archive: Archive, name: str, role: str | Role) -> dict[str, Any]:
    """Give a person an account with a role (their users row is created, sealed, or reused)."""
    from archive.catalog.accounts import Account
    from archive.catalog.users import SYSTEM, find, is_user_id, resolve
    from archive.config import ConfigError, check_actor
    from archive.custody.log import append_event, utc_now
    from archive.db import transaction

    parsed = parse_role(role)
    try:
        name = check_actor(name)
    except ConfigError as exc:
        raise Invalid(str(exc).replace("operator name", "user name")) from None
    if name == SYSTEM or is_user_id(name):
        raise Invalid("that is the archive's own name or a user id, not a person's name")
    keys = _catalog_keys(archive, "adding a user")
    actor = archive.actor  # resolved before the transaction (on SQLite it would wait for this one's lock)
    now = utc_now()
    with transaction(archive.engine) as session:
        existing = find(session, keys, name)
        if existing is not None and session.get(Account, existing) is not None:
            raise Invalid("that name already has an account (see `evidence users list`)")
        user_id = resolve(session, keys, name, now)
        session.add(Account(user_id=user_id, role=parsed.value, created_at=now))
        session.flush()
        append_event(session, USER_ADDED, actor=actor, objects=[user_id],
                     details={"user": user_id, "role": parsed.value})
    return {"id": user_id, "name": name, "role": parsed.value}


def create_token(archive: Archive, user: str, expires_days: float | None = None) -> dict[str, Any]:
    """A new token for a user's account: returned once, only its SHA-256 kept."""
    from archive.catalog.accounts import Token
    from archive.custody.log import append_event, utc_now
    from archive.db import transaction

    expires_at = None
    if expires_days is not None:
        if not 0 < expires_days <= MAX_EXPIRES_DAYS:
            raise Invalid(f"--expires must be more than 0 and at most {MAX_EXPIRES_DAYS} days")
        expires_at = rfc3339(archive.runtime.clock() + timedelta(days=expires_days))
    actor = archive.actor
    token = secrets.token_hex(TOKEN_HEX // 2)
    token_id = "tok-" + secrets.token_hex(8)
    with transaction(archive.engine) as session:
        account = _account(session, archive, user)
        if account.disabled_at is not None:
            raise Invalid("that user's account is disabled: no new tokens")
        session.add(Token(id=token_id, user_id=account.user_id, digest=digest_of(token), created_at=utc_now(),
                          expires_at=expires_at))
        session.flush()
        append_event(session, TOKEN_CREATED, actor=actor, objects=[token_id],
                     details={"token_id": token_id, "user": account.user_id, "role": account.role,
                              "expires_at": expires_at})
        role = account.role
        user_id = account.user_id
    return {"id": token_id, "user": user_id, "role": role, "token": token, "expires_at": expires_at}


def revoke_token(archive: Archive, token_id: str) -> dict[str, Any]:
    """Stop a token from working, at once (idempotent: an already revoked token stays as it was)."""
    from archive.catalog.accounts import Account, Token
    from archive.custody.log import append_event, utc_now
    from archive.db import transaction

    actor = archive.actor
    with transaction(archive.engine) as session:
        row = session.get(Token, token_id.strip())
        if row is None:
            raise NotFound(f"no token {token_id.strip()[:40]!r} (see `evidence tokens list`)")
        if row.revoked_at is None:
            row.revoked_at = utc_now()
            session.add(row)
            session.flush()
            append_event(session, TOKEN_REVOKED, actor=actor, objects=[row.id],
                         details={"token_id": row.id, "user": row.user_id})
        view = _token_view(row, session.get(Account, row.user_id), archive.runtime.clock())
        user_id = row.user_id
    from archive.services.web_sessions import end_sessions_of  # browsers signed in with it (after: one writer)

    end_sessions_of(archive, user_id, method="token")
    return view


def disable_user(archive: Archive, user: str) -> dict[str, Any]:
    """Close an account: its tokens are revoked and no new one can be made."""
    from sqlmodel import col, select

    from archive.catalog.accounts import Token
    from archive.custody.log import append_event, utc_now
    from archive.db import transaction

    actor = archive.actor
    now = utc_now()
    with transaction(archive.engine) as session:
        account = _account(session, archive, user)
        revoked: list[str] = []
        if account.disabled_at is None:
            account.disabled_at = now
            session.add(account)
            for row in session.exec(select(Token).where(Token.user_id == account.user_id,
                                                        col(Token.revoked_at).is_(None))).all():
                row.revoked_at = now
                session.add(row)
                revoked.append(row.id)
            session.flush()
            append_event(session, USER_DISABLED, actor=actor, objects=[account.user_id, *sorted(revoked)],
                         details={"user": account.user_id, "role": account.role, "revoked": sorted(revoked)})
        result = {"id": account.user_id, "role": account.role, "disabled_at": account.disabled_at,
                  "revoked": sorted(revoked)}
    from archive.services.web_sessions import end_sessions_of  # its browsers too (after: SQLite's one writer)

    end_sessions_of(archive, str(result["id"]))
    return result


def list_users(archive: Archive) -> list[dict[str, Any]]:
    """Every account: id, name (None when this process cannot open it), role, state, active token count."""
    from sqlmodel import Session, col, select

    from archive.catalog.accounts import Account, Token
    from archive.catalog.secrets import opener
    from archive.catalog.users import name_of
    from archive.db import read_only

    keys = opener(archive)
    now = archive.runtime.clock()
    with Session(read_only(archive.runtime.engine)) as session:
        accounts = session.exec(select(Account).order_by(col(Account.created_at), col(Account.user_id))).all()
        tokens = session.exec(select(Token)).all()
        out = []
        for account in accounts:
            try:
                name = name_of(session, keys, account.user_id)
            except Locked:
                name = None
            active = sum(1 for t in tokens if t.user_id == account.user_id
                         and _token_state(t, account, now) == "active")
            out.append({"id": account.user_id, "name": name, "role": account.role,
                        "created_at": account.created_at, "disabled_at": account.disabled_at,
                        "active_tokens": active})
    return out


def list_tokens(archive: Archive) -> list[dict[str, Any]]:
    """Every token by id, with its user id, role and state: never the token (the catalog does not have it)."""
    from sqlmodel import Session, col, select

    from archive.catalog.accounts import Account, Token
    from archive.db import read_only

    now = archive.runtime.clock()
    with Session(read_only(archive.runtime.engine)) as session:
        accounts = {a.user_id: a for a in session.exec(select(Account)).all()}
        rows = session.exec(select(Token).order_by(col(Token.created_at), col(Token.id))).all()
        return [_token_view(row, accounts.get(row.user_id), now) for row in rows]


def _token_state(row: Any, account: Any, now: datetime) -> str:
    if row.revoked_at is not None or account is None or account.disabled_at is not None:
        return "revoked"
    if row.expires_at is not None and _parse_time(row.expires_at) <= now:
        return "expired"
    return "active"


def _token_view(row: Any, account: Any, now: datetime) -> dict[str, Any]:
    return {"id": row.id, "user": row.user_id, "role": account.role if account is not None else None,
            "created_at": row.created_at, "expires_at": row.expires_at, "revoked_at": row.revoked_at,
            **({"state": _token_state(row, account, now)} if account is not None else
               {"state": "revoked" if row.revoked_at else "active"})}


def authenticate(runtime_or_archive: Runtime | Archive, token: str) -> Caller:
    """The caller a bearer token stands for; `Unauthenticated` (unknown, expired, revoked) otherwise.

    Never needs the catalog key; never writes; the token is in no message.
    """
    from archive.context import Archive
    from archive.db import read_only

    runtime = runtime_or_archive.runtime if isinstance(runtime_or_archive, Archive) else runtime_or_archive
    if not isinstance(token, str) or len(token) != TOKEN_HEX or token.strip(_HEX):  # not one we made: no query
        raise Unauthenticated("unknown token", reason="unknown")
    digest = digest_of(token)
    with read_only(runtime.engine).connect() as conn:
        row = conn.execute(_LOOKUP, {"digest": digest}).first()
    if row is None or not hmac.compare_digest(str(row.digest), digest):
        raise Unauthenticated("unknown token", reason="unknown")
    if row.revoked_at is not None or row.role is None or row.disabled_at is not None:
        raise Unauthenticated("token revoked", reason="revoked")  # no id, no date: not for the presenter
    if row.expires_at is not None and _parse_time(str(row.expires_at)) <= runtime.clock():
        raise Unauthenticated("token expired", reason="expired")
    try:
        role = Role(row.role)
    except ValueError:
        raise Unauthenticated("token revoked", reason="revoked") from None  # its account's role is unknown
    return Caller(user_id=str(row.user_id), role=role, token_id=str(row.id))
