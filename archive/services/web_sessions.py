"""Browser sessions of the web pages: a random cookie, of which the catalog keeps only the SHA-256.

Why sessions and not the API token in the browser: a token lives for months
and would sit in the browser's storage; a session cookie is HttpOnly (no
script reads it), SameSite=Strict (no other site's page sends it), ends after
`IDLE` without use and `ABSOLUTE` after sign-in whatever happens, and ends at
once on sign-out. Each session carries its own CSRF token, which every form
and every unsafe request of the pages must send back.

`authenticate_session` is on every page's path, like `accounts.authenticate`:
one indexed query over a read-only connection, no catalog key. It writes only
to move `seen_at` forward, at most once per `TOUCH` (the idle clock needs it;
a write per page view would contend with ingest for SQLite's lock).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import text

from archive.roles import Role
from archive.services.accounts import Caller, rfc3339
from archive.services.errors import Unauthenticated

if TYPE_CHECKING:
    from archive.context import Archive, Runtime

COOKIE = "evidence_session"
IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
TOUCH = timedelta(minutes=1)
COOKIE_HEX = 64  # 256 bits

_LOOKUP = text(
    "SELECT s.id, s.user_id, s.digest, s.csrf, s.seen_at, s.expires_at, s.ended_at, a.role, a.disabled_at "
    "FROM web_sessions s LEFT JOIN accounts a ON a.user_id = s.user_id WHERE s.digest = :digest"
)


@dataclass(frozen=True)
class WebCaller(Caller):
    """A caller signed in through the web pages: its session and the CSRF token forms must carry."""

    session_id: str = ""
    csrf: str = ""


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("ascii")).hexdigest()


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)


def start_session(archive: Archive, user_id: str, *, method: str = "password+totp") -> tuple[str, WebCaller]:
    """A new session for an account: the cookie value (returned once) and the caller it stands for.

    The caller checks the credential first (`archive.services.web_signin`); this only records the session.
    """
    from archive.catalog.accounts import Account
    from archive.catalog.web import WebSession
    from archive.db import transaction

    now = archive.runtime.clock()
    cookie = secrets.token_hex(COOKIE_HEX // 2)
    row = WebSession(id="ses-" + secrets.token_hex(8), digest=_digest(cookie), user_id=user_id,
                     csrf=secrets.token_urlsafe(32), method=method, created_at=rfc3339(now), seen_at=rfc3339(now),
                     expires_at=rfc3339(now + ABSOLUTE))
    with transaction(archive.engine) as session:
        account = session.get(Account, user_id)
        if account is None or account.disabled_at is not None:
            raise Unauthenticated("this account cannot sign in", reason="revoked")
        role = Role(account.role)
        session.add(row)
    return cookie, WebCaller(user_id=user_id, role=role, token_id=row.id, session_id=row.id, csrf=row.csrf)


def authenticate_session(runtime: Runtime, cookie: str) -> WebCaller:
    """The caller a session cookie stands for; `Unauthenticated` (unknown, ended, idle, expired) otherwise."""
    from archive.db import read_only, transaction

    if not isinstance(cookie, str) or len(cookie) != COOKIE_HEX or cookie.strip("0123456789abcdef"):
        raise Unauthenticated("not signed in", reason="unknown")
    digest = _digest(cookie)
    with read_only(runtime.engine).connect() as conn:
        row = conn.execute(_LOOKUP, {"digest": digest}).first()
    if row is None or not hmac.compare_digest(str(row.digest), digest):
        raise Unauthenticated("not signed in", reason="unknown")
    now = runtime.clock()
    if row.ended_at is not None or row.role is None or row.disabled_at is not None:
        raise Unauthenticated("signed out", reason="revoked")
    if _parse(str(row.expires_at)) <= now or _parse(str(row.seen_at)) + IDLE <= now:
        raise Unauthenticated("the session expired: sign in again", reason="expired")
    try:
        role = Role(row.role)
    except ValueError:
        raise Unauthenticated("signed out", reason="revoked") from None
    if _parse(str(row.seen_at)) + TOUCH <= now:
        with transaction(runtime.engine) as session:
            session.execute(text("UPDATE web_sessions SET seen_at = :now WHERE id = :id AND ended_at IS NULL"),
                            {"now": rfc3339(now), "id": row.id})
    return WebCaller(user_id=str(row.user_id), role=role, token_id=str(row.id), session_id=str(row.id),
                     csrf=str(row.csrf))


def end_session(archive: Archive, cookie: str) -> str | None:
    """End the session of a cookie (sign-out); its user id, None when the cookie named no open session."""
    from sqlmodel import select

    from archive.catalog.web import WebSession
    from archive.db import transaction

    if not isinstance(cookie, str) or len(cookie) != COOKIE_HEX:
        return None
    with transaction(archive.engine) as session:
        row = session.exec(select(WebSession).where(WebSession.digest == _digest(cookie))).first()
        if row is None or row.ended_at is not None:
            return None
        row.ended_at = rfc3339(archive.runtime.clock())
        session.add(row)
        return row.user_id


def end_sessions_of(archive: Archive, user_id: str, *, method: str | None = None) -> int:
    """End every open session of an account (it was disabled, its password changed), or only those opened
    with `method` ("token": one of its tokens was revoked; which token a session came from is not kept)."""
    from archive.db import transaction

    where = "user_id = :u AND ended_at IS NULL" + (" AND method = :m" if method is not None else "")
    with transaction(archive.engine) as session:
        done = session.execute(text(f"UPDATE web_sessions SET ended_at = :now WHERE {where}"),
                               {"now": rfc3339(archive.runtime.clock()), "u": user_id, "m": method})
        return int(done.rowcount or 0)  # type: ignore[attr-defined]
