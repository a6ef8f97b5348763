"""Signing in to the web pages: a password (Argon2id) and a second factor (TOTP), or an API token.

How an account gets there: a custodian runs `evidence users setup NAME`
(`issue_setup`), which prints a one-time setup code valid for `SETUP_LIFE`
(only its SHA-256 is kept, like a token's). The person signs in with their
name and that code as the password, and enrols (`begin_enrol`,
`finish_enrol`): a password of their choosing and an authenticator app fed the
TOTP secret, confirmed with a current code. From then on: name and password
(`check_password`), then the current code (`check_code`), which is accepted
once (`totp_last_counter`), so a code seen over a shoulder is worth nothing
after its owner used it.

Guessing is slowed three ways: Argon2id itself; an account locked for
`LOCK_FIRST` after `LOCK_AFTER` wrong passwords or codes, doubling on each
further lock-out up to `LOCK_MAX` (the count is cleared only by a complete
sign-in, so a known password does not reopen guessing of the code); and an
in-memory throttle per client address. A name that has no account costs the
same Argon2 verification as one that has, and every refusal says the same
thing, so the page tells nobody which names exist.

Every sign-in, refusal, enrolment and sign-out is a custody event carrying ids
and a reason code only: never a name (an unknown name's refusal carries no id
at all), a password, a code or a token.

The TOTP secret is sealed under the catalog key (`web_credentials` is a
sealed table, re-sealed by key rotation); the signed "half" cookie between the
password and the code is keyed with the catalog key's lookup key, so it cannot
be forged from a copy of the database either.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from archive.services.accounts import rfc3339
from archive.services.errors import Invalid, Locked, NotFound, ServiceError, Unauthenticated

if TYPE_CHECKING:
    from sqlmodel import Session

    from archive.catalog.web import Credential
    from archive.context import Archive, Runtime
    from archive.keys.catalog import CatalogKeys
    from archive.services.web_sessions import WebCaller

# The archive's own event types (PREMIS has none for signing in to a catalog).
SIGN_IN = "web sign-in"
SIGN_IN_FAILED = "web sign-in failed"
SIGN_OUT = "web sign-out"
ENROLLED = "web enrolled"
SETUP_ISSUED = "web sign-in set up"

SETUP_LIFE = timedelta(hours=72)
CODE_STEP_LIFE = timedelta(minutes=5)  # between the password and the code
ENROL_LIFE = timedelta(minutes=20)  # scanning a QR code takes a while
LOCK_AFTER = 5
LOCK_FIRST = timedelta(minutes=15)
LOCK_MAX = timedelta(hours=24)
THROTTLE_WINDOW = timedelta(minutes=5)
THROTTLE_LIMIT = 20  # failures from one address within the window
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # Argon2 takes any length; a megabyte "password" should not cost a hash
ISSUER = "Evidence archive"
LOOKUP = "web-half"  # purpose of the keyed hash that signs half cookies
# key_version of a credential with no secret yet: neither a pending row (0, which settling would open) nor a
# sealed one (> 0, which rotation re-seals)
NOTHING_SEALED = -1

_SETUP_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud or off paper
_SETUP_GROUPS = 5  # 5 groups of 4: 100 bits

GENERIC = "wrong name or password, or the account is locked for a while after too many failed attempts"


class SignInRefused(Unauthenticated):
    """A refused sign-in: one message for every reason (the reason code goes to the custody log only)."""

    def __init__(self, reason: str, message: str = GENERIC) -> None:
        super().__init__(message, reason=reason)


class Throttled(ServiceError):
    """Too many failed sign-ins from one address: wait (HTTP 429)."""

    status_code = 429
    code = "throttled"


@dataclass(frozen=True)
class Step:
    """What a correct first step leads to: the TOTP code (`code`) or enrolment (`enrol`), and the half cookie."""

    kind: str  # code | enrol
    user_id: str
    half: str


# ---- passwords -------------------------------------------------------------------------------------------------

_hasher_lock = threading.Lock()
_hasher: Any = None
_dummy: str | None = None


def _ph() -> Any:
    global _hasher, _dummy
    with _hasher_lock:
        if _hasher is None:
            from argon2 import PasswordHasher

            _hasher = PasswordHasher()  # Argon2id with the library's (RFC 9106) defaults
            _dummy = _hasher.hash(secrets.token_hex(16))
    return _hasher


# Argon2id costs 64 MiB and a core for ~0.5 s: a flood of anonymous sign-ins must queue here, briefly,
# not run them all at once (memory) nor make the rest of the server wait behind them.
HASHES_AT_ONCE = 2
HASHES_WAITING = 4  # beyond these, refused at once: a waiting sign-in holds one of the server's shared threads
HASH_WAIT_SECONDS = 5.0
_hashing = threading.BoundedSemaphore(HASHES_AT_ONCE)
_admitted_lock = threading.Lock()
_admitted = 0  # sign-ins running or waiting for an Argon2 check


def _verify(stored: str | None, password: str) -> bool:
    """Argon2 verification against `stored`, or against a dummy hash (same cost) when there is none.

    At most `HASHES_AT_ONCE` run together and `HASHES_WAITING` wait (each holds a thread of the server's shared
    pool, which every page and /healthz need); any further sign-in, or one that cannot start within
    `HASH_WAIT_SECONDS`, is refused as busy at once (`Throttled`), counted as nothing.
    """
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    global _admitted
    hasher = _ph()
    with _admitted_lock:
        if _admitted >= HASHES_AT_ONCE + HASHES_WAITING:  # a flood (from many addresses): no thread waits for it
            raise Throttled("the archive is busy checking other sign-ins: try again in a moment")
        _admitted += 1
    try:
        if not _hashing.acquire(timeout=HASH_WAIT_SECONDS):
            raise Throttled("the archive is busy checking other sign-ins: try again in a moment")
        try:
            hasher.verify(stored or _dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        finally:
            _hashing.release()
    finally:
        with _admitted_lock:
            _admitted -= 1
    return stored is not None


def password_problem(password: str, name: str | None) -> str | None:
    """Why a new password is refused, as a code (`too-short`, `too-long`, `is-name`), or None."""
    if len(password) < MIN_PASSWORD:
        return "too-short"
    if len(password) > MAX_PASSWORD:
        return "too-long"
    if name and password.strip().casefold() == name.strip().casefold():
        return "is-name"
    return None


# ---- throttle --------------------------------------------------------------------------------------------------

class Throttle:
    """Failed sign-ins per client address in the last `THROTTLE_WINDOW`, in memory (one server process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, deque[datetime]] = {}
        self._running: dict[str, int] = {}  # attempts being checked now: they count as failures until they end

    def _trim(self, address: str, now: datetime) -> deque[datetime]:
        held = self._failures.setdefault(address, deque())
        while held and held[0] <= now - THROTTLE_WINDOW:
            held.popleft()
        return held

    def check(self, address: str, now: datetime) -> None:
        with self._lock:
            if len(self._trim(address, now)) + self._running.get(address, 0) >= THROTTLE_LIMIT:
                raise Throttled("too many failed sign-ins from this address: wait a few minutes")

    @contextmanager
    def attempt(self, address: str | None, now: datetime) -> Iterator[None]:
        """One attempt from `address`: refused at once when its failures and the attempts still being checked
        reach the limit (so parallel requests cannot all pass before the first one fails)."""
        if address is None:
            yield
            return
        with self._lock:
            if len(self._trim(address, now)) + self._running.get(address, 0) >= THROTTLE_LIMIT:
                raise Throttled("too many failed sign-ins from this address: wait a few minutes")
            self._running[address] = self._running.get(address, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._running.get(address, 1) - 1
                if left > 0:
                    self._running[address] = left
                else:
                    self._running.pop(address, None)

    def fail(self, address: str, now: datetime) -> None:
        with self._lock:
            self._trim(address, now).append(now)
            if len(self._failures) > 10_000:  # an address sweep must not grow memory without end
                for key in [k for k, v in self._failures.items() if not v or v[-1] <= now - THROTTLE_WINDOW]:
                    del self._failures[key]


def throttle_for(runtime: Runtime) -> Throttle:
    """The throttle of this process (kept on the runtime: one per server)."""
    held = runtime.__dict__.get("web_signin_throttle")
    if held is None:
        with _hasher_lock:
            held = runtime.__dict__.setdefault("web_signin_throttle", Throttle())
    return held  # type: ignore[no-any-return]


# ---- events and rows -------------------------------------------------------------------------------------------

def _event(db: Session, event_type: str, user_id: str | None, *, outcome: str = "success",
           **details: Any) -> None:
    from archive.custody.log import append_event

    objects = [user_id] if user_id else []
    objects += [str(v) for k, v in details.items() if k == "session" and v]
    append_event(db, event_type, actor=user_id if user_id and outcome == "success" else "archive",
                 objects=objects, outcome=outcome, details={**({"user": user_id} if user_id else {}), **details})


def record_failure(archive: Archive, reason: str, user_id: str | None, address: str | None) -> None:
    """A refused sign-in: its custody event (reason code only) and the throttle's count."""
    from archive.db import transaction

    if address is not None:
        throttle_for(archive.runtime).fail(address, archive.runtime.clock())
    with transaction(archive.engine) as session:
        _event(session, SIGN_IN_FAILED, user_id, outcome="failure", reason=reason)


def _parse(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    from archive.services.web_sessions import _parse as parse

    return parse(stamp)


def _locked_out(row: Credential, now: datetime) -> bool:
    until = _parse(row.locked_until)
    return until is not None and until > now


def _count_failure(session: Session, row: Credential, now: datetime) -> None:
    """One more failure on the account; every `LOCK_AFTER`th locks it, each lock-out twice the last."""
    row.failures += 1
    if row.failures % LOCK_AFTER == 0:
        lockouts = row.failures // LOCK_AFTER
        length = min(LOCK_FIRST * (2 ** min(lockouts - 1, 16)), LOCK_MAX)
        row.locked_until = rfc3339(now + length)
    row.updated_at = rfc3339(now)
    session.add(row)


def _keys(archive: Archive) -> CatalogKeys:
    try:
        return archive.runtime.keys.catalog()
    except Locked:
        raise Locked("signing in with a name needs the catalog key (names are sealed): a custodian must run "
                     "`evidence unlock`; an API token still signs in") from None


def _name_of(session: Session, keys: CatalogKeys, user_id: str) -> str | None:
    from archive.catalog.users import name_of

    return name_of(session, keys, user_id)


# ---- half cookies ----------------------------------------------------------------------------------------------

def _bind(row: Credential, kind: str) -> str:
    """What a half cookie is bound to: the enrolment nonce's digest, or the password hash (a change kills it)."""
    source = (row.setup_digest or "") if kind == "enrol" else (row.password_hash or "")
    return hashlib.sha256(source.encode()).hexdigest()[:32]


def _half(keys: CatalogKeys, kind: str, user_id: str, expires: datetime, bind: str) -> str:
    body = f"{kind}.{user_id}.{int(expires.timestamp())}.{bind}"
    return body + "." + keys.lookup(LOOKUP, body)


def read_half(archive: Archive, half: str | None, kind: str) -> str:
    """The user id a half cookie of `kind` stands for; `SignInRefused` when forged, stale or spent."""
    from sqlmodel import Session

    from archive.catalog.web import Credential
    from archive.db import read_only

    if not half or len(half) > 256:
        raise SignInRefused("no-half", "start again: sign in with your name first")
    keys = _keys(archive)
    body, _, mac = half.rpartition(".")
    parts = body.split(".")
    if len(parts) != 4 or parts[0] != kind or not any(
            hmac.compare_digest(mac, keys.lookup(LOOKUP, body, n)) for n in keys.versions):
        raise SignInRefused("bad-half", "start again: sign in with your name first")
    _, user_id, expires, bind = parts
    if not expires.isdigit() or int(expires) <= archive.runtime.clock().timestamp():
        raise SignInRefused("half-expired", "that took too long: sign in again")
    with Session(read_only(archive.runtime.engine)) as session:
        row = session.get(Credential, user_id)
        if row is None or not hmac.compare_digest(_bind(row, kind), bind):
            raise SignInRefused("half-spent", "start again: sign in with your name first")
    return user_id


# ---- setup codes -----------------------------------------------------------------------------------------------

def _setup_digest(code: str) -> str:
    normal = "".join(ch for ch in code.upper() if ch.isalnum())
    return hashlib.sha256(("evidence-setup/1 " + normal).encode()).hexdigest()


def _new_setup_code() -> str:
    chars = "".join(secrets.choice(_SETUP_ALPHABET) for _ in range(4 * _SETUP_GROUPS))
    return "-".join(chars[i:i + 4] for i in range(0, len(chars), 4))


def issue_setup(archive: Archive, user: str) -> dict[str, Any]:
    """A one-time setup code for USER's account (a name or a u- id): returned once, only its SHA-256 kept.

    Setting up again resets the account's sign-in: its password and authenticator stop working and its
    web sessions end, so this is also what a custodian does for a lost phone or a leaked password.
    """
    from archive.catalog.web import Credential
    from archive.db import transaction
    from archive.services.accounts import _account
    from archive.services.web_sessions import end_sessions_of

    code = _new_setup_code()
    now = archive.runtime.clock()
    expires = rfc3339(now + SETUP_LIFE)
    actor = archive.actor
    with transaction(archive.engine) as session:
        account = _account(session, archive, user)
        if account.disabled_at is not None:
            raise Invalid("that user's account is disabled: it cannot sign in")
        row = session.get(Credential, account.user_id) or Credential(user_id=account.user_id,
                                                                     updated_at=rfc3339(now))
        row.password_hash = None
        row.sealed = None
        row.key_version = NOTHING_SEALED
        row.enrolled_at = None
        row.totp_last_counter = None
        row.setup_digest = _setup_digest(code)
        row.setup_expires_at = expires
        row.failures = 0
        row.locked_until = None
        row.updated_at = rfc3339(now)
        session.add(row)
        session.flush()
        from archive.custody.log import append_event

        append_event(session, SETUP_ISSUED, actor=actor, objects=[account.user_id],
                     details={"user": account.user_id, "expires_at": expires})
        user_id = account.user_id
    end_sessions_of(archive, user_id)
    return {"id": user_id, "code": code, "expires_at": expires}


def setup_account(archive: Archive, user: str) -> str:
    """The one-time setup code for a user (for tests and tools): see `issue_setup`."""
    return str(issue_setup(archive, user)["code"])


# ---- the first step: name and password (or setup code) ---------------------------------------------------------

def check_password(archive: Archive, name: str, password: str, *, address: str | None = None) -> Step:
    """Name and password (or a setup code): the next step; `SignInRefused`, `Throttled` or `Locked` otherwise.

    The Argon2 verification runs outside any write transaction (on SQLite one would hold the write lock for
    its whole cost); the outcome is then applied to the row as it is by then.
    """
    runtime = archive.runtime
    now = runtime.clock()
    with throttle_for(runtime).attempt(address, now):
        return _check_password(archive, name, password, address=address, now=now)


def _check_password(archive: Archive, name: str, password: str, *, address: str | None, now: datetime) -> Step:
    from sqlmodel import Session

    from archive.catalog.accounts import Account
    from archive.catalog.users import find
    from archive.catalog.web import Credential
    from archive.db import read_only, transaction

    runtime = archive.runtime
    keys = _keys(archive)
    password = password[:MAX_PASSWORD]
    with Session(read_only(runtime.engine)) as reader:
        user_id = find(reader, keys, name.strip()) if name.strip() else None
        account = reader.get(Account, user_id) if user_id else None
        seen = reader.get(Credential, user_id) if account is not None and user_id else None
        stored = seen.password_hash if seen is not None else None
        disabled = account is not None and account.disabled_at is not None
    matches = _verify(stored, password)  # always one verification, a dummy one for an unknown name
    setup_digest = _setup_digest(password)
    reason: str | None = None
    step: Step | None = None
    with transaction(archive.engine) as session:
        row = session.get(Credential, user_id) if account is not None and user_id else None
        if account is None or user_id is None:
            reason, user_id = "unknown-name", None
        elif disabled:
            reason = "disabled"
        elif row is None:
            reason = "no-password"
        elif _locked_out(row, now):
            reason = "locked-out"
        elif (row.setup_digest is not None and row.enrolled_at is None
              and hmac.compare_digest(row.setup_digest, setup_digest)):
            expires = _parse(row.setup_expires_at)
            if expires is None or expires <= now:
                reason = "setup-expired"
                _count_failure(session, row, now)
            else:  # the setup code is spent here: the half cookie carries the enrolment on
                nonce = secrets.token_hex(16)
                row.setup_digest = _setup_digest("enrol " + nonce)
                row.setup_expires_at = rfc3339(now + ENROL_LIFE)
                row.updated_at = rfc3339(now)
                session.add(row)
                step = Step("enrol", user_id, _half(keys, "enrol", user_id, now + ENROL_LIFE, _bind(row, "enrol")))
        elif matches and row.password_hash == stored and row.enrolled_at is not None and row.sealed is not None:
            step = Step("code", user_id, _half(keys, "code", user_id, now + CODE_STEP_LIFE, _bind(row, "code")))
        else:
            reason = "wrong-password"
            _count_failure(session, row, now)
        if reason is not None:
            _event(session, SIGN_IN_FAILED, user_id, outcome="failure", reason=reason)
    if step is None:
        if address is not None:
            throttle_for(runtime).fail(address, now)
        raise SignInRefused(reason or "wrong-password")
    return step


# ---- the second step: the TOTP code ----------------------------------------------------------------------------

def _secret(keys: CatalogKeys, row: Credential) -> str:
    from archive.catalog.sealing import open_row
    from archive.catalog.web import CREDENTIALS_TABLE

    fields = open_row(keys, CREDENTIALS_TABLE, row.user_id, row.key_version, row.sealed)
    return str(fields["totp"])


def _matching_counter(secret: str, code: str, now: datetime) -> int | None:
    """The TOTP time step `code` belongs to (now, or one step either side), or None."""
    import pyotp

    code = "".join(ch for ch in code if not ch.isspace())
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    found = None
    for counter in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(counter), code):
            found = counter
    return found


def check_code(archive: Archive, half: str | None, code: str, *, address: str | None = None
               ) -> tuple[str, WebCaller]:
    """The TOTP step: a new session (cookie, caller) when the half cookie and the code are good, once."""
    from sqlalchemy import text

    from archive.catalog.web import Credential
    from archive.db import transaction
    from archive.services.web_sessions import start_session

    runtime = archive.runtime
    now = runtime.clock()
    if address is not None:
        throttle_for(runtime).check(address, now)
    user_id = read_half(archive, half, "code")
    keys = _keys(archive)
    reason = None
    with transaction(archive.engine) as session:
        row = session.get(Credential, user_id)
        assert row is not None  # read_half found it
        if _locked_out(row, now):
            reason = "locked-out"
        else:
            counter = _matching_counter(_secret(keys, row), code, now)
            if counter is None:
                reason = "wrong-code"
            else:  # taken only if no later (or the same) code was used: a replay, even a concurrent one, fails
                taken = session.execute(text(
                    "UPDATE web_credentials SET totp_last_counter = :c, failures = 0, locked_until = NULL, "
                    "updated_at = :now WHERE user_id = :u AND (totp_last_counter IS NULL OR totp_last_counter < :c)"),
                    {"c": counter, "now": rfc3339(now), "u": user_id})
                if not taken.rowcount:  # type: ignore[attr-defined]
                    reason = "code-replayed"
        if reason is not None:
            if reason != "locked-out":
                session.refresh(row)
                _count_failure(session, row, now)
            _event(session, SIGN_IN_FAILED, user_id, outcome="failure", reason=reason)
    if reason is not None:
        if address is not None:
            throttle_for(runtime).fail(address, now)
        raise SignInRefused(reason, "wrong code, or the account is locked for a while after too many failed "
                                    "attempts")
    cookie, caller = start_session(archive, user_id)
    _signed_in(archive, caller, "password+totp")
    return cookie, caller


def _signed_in(archive: Archive, caller: WebCaller, method: str, **details: Any) -> None:
    from archive.db import transaction

    with transaction(archive.engine) as session:
        _event(session, SIGN_IN, caller.user_id, session=caller.session_id, method=method, **details)


# ---- tokens ----------------------------------------------------------------------------------------------------

def sign_in_with_token(archive: Archive, token: str, *, address: str | None = None) -> tuple[str, WebCaller]:
    """An API token signs a browser in directly (tools, and the first custodian): a session for its account.

    Needs no catalog key, so it works on a locked server.
    """
    from archive.services.accounts import authenticate
    from archive.services.web_sessions import start_session

    runtime = archive.runtime
    now = runtime.clock()
    bucket = f"token {address}" if address is not None else None  # apart from the password attempts' bucket
    if bucket is not None:
        throttle_for(runtime).check(bucket, now)
    try:
        caller = authenticate(runtime, token.strip())
        cookie, web_caller = start_session(archive, caller.user_id, method="token")
    except Unauthenticated as exc:
        record_failure(archive, f"token-{exc.reason}", None, bucket)
        raise SignInRefused(f"token-{exc.reason}", "that token is not valid (unknown, expired or revoked)") from None
    _signed_in(archive, web_caller, "token", token=caller.token_id)
    return cookie, web_caller


# ---- enrolment -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Enrolment:
    """What the enrolment page shows: the secret (for manual entry) and the otpauth URI (the QR code)."""

    user_id: str
    secret: str
    uri: str


def begin_enrol(archive: Archive, half: str | None, issuer: str = ISSUER) -> Enrolment:
    """The TOTP secret being enrolled (made and sealed on first call; the same one on a reload)."""
    import pyotp

    from archive.catalog.web import CREDENTIALS_TABLE, Credential
    from archive.db import transaction

    user_id = read_half(archive, half, "enrol")
    keys = _keys(archive)
    with transaction(archive.engine) as session:
        row = session.get(Credential, user_id)
        assert row is not None
        if row.sealed is None or row.key_version <= 0:
            secret = pyotp.random_base32()
            row.key_version, row.sealed = keys.seal(CREDENTIALS_TABLE, user_id, {"totp": secret})
            row.updated_at = rfc3339(archive.runtime.clock())
            session.add(row)
        else:
            secret = _secret(keys, row)
    # The label is the user id, not the name: authenticator apps sync their lists to other companies' clouds.
    uri = pyotp.TOTP(secret).provisioning_uri(name=user_id, issuer_name=issuer)
    return Enrolment(user_id, secret, uri)


def finish_enrol(archive: Archive, half: str | None, password: str, repeat: str, code: str
                 ) -> tuple[str, WebCaller]:
    """Set the password and confirm the authenticator with a current code: then signed in.

    `EnrolProblem` carries {field: problem code} for the form; nothing is changed then.
    """
    from sqlalchemy import text
    from sqlmodel import Session

    from archive.catalog.web import Credential
    from archive.db import read_only, transaction
    from archive.services.web_sessions import start_session

    now = archive.runtime.clock()
    user_id = read_half(archive, half, "enrol")
    keys = _keys(archive)
    problems: dict[str, str] = {}
    with Session(read_only(archive.runtime.engine)) as reader:
        row = reader.get(Credential, user_id)
        if row is None or row.sealed is None:
            raise SignInRefused("enrol-no-secret", "start again: sign in with your name and setup code")
        name = _name_of(reader, keys, user_id)
        secret = _secret(keys, row)
        nonce_digest = row.setup_digest
    found = password_problem(password, name)
    if found:
        problems["password"] = found
    elif password != repeat:
        problems["repeat"] = "differ"
    counter = _matching_counter(secret, code, now)
    if counter is None:
        problems["code"] = "wrong-code"
    if problems:
        raise EnrolProblem(problems)
    hashed = _ph().hash(password)
    with transaction(archive.engine) as session:
        done = session.execute(text(  # only if the enrolment is still this one (a second submit finds it spent)
            "UPDATE web_credentials SET password_hash = :h, enrolled_at = :now, totp_last_counter = :c, "
            "setup_digest = NULL, setup_expires_at = NULL, failures = 0, locked_until = NULL, updated_at = :now "
            "WHERE user_id = :u AND setup_digest = :d AND enrolled_at IS NULL"),
            {"h": hashed, "now": rfc3339(now), "c": counter, "u": user_id, "d": nonce_digest})
        if not done.rowcount:  # type: ignore[attr-defined]
            raise SignInRefused("half-spent", "start again: sign in with your name first")
        _event(session, ENROLLED, user_id, method="password+totp")
    cookie, caller = start_session(archive, user_id)
    _signed_in(archive, caller, "enrol")
    return cookie, caller


class EnrolProblem(Invalid):
    """The enrolment form's fields that need another go: {field: problem code}."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


# ---- signing out -----------------------------------------------------------------------------------------------

def sign_out(archive: Archive, cookie: str | None) -> str | None:
    """End the session of `cookie` and record it; the user id, or None when it named no open session."""
    from sqlmodel import select

    from archive.catalog.web import WebSession
    from archive.db import transaction
    from archive.services.web_sessions import _digest, end_session

    if not cookie:
        return None
    user_id = end_session(archive, cookie)
    if user_id is None:
        return None
    with transaction(archive.engine) as session:
        row = session.exec(select(WebSession).where(WebSession.digest == _digest(cookie))).first()
        _event(session, SIGN_OUT, user_id, session=row.id if row is not None else None)
    return user_id


def is_locked(runtime: Runtime) -> bool:
    """Whether this process lacks the catalog key (then only a token signs in)."""
    try:
        runtime.keys.catalog()
    except Locked:
        return True
    return False


def credential_state(archive: Archive, user_id: str) -> dict[str, Any]:
    """An account's sign-in state, ids and times only (for `users list` and tests)."""
    from sqlmodel import Session

    from archive.catalog.web import Credential
    from archive.db import read_only

    with Session(read_only(archive.runtime.engine)) as session:
        row = session.get(Credential, user_id)
        if row is None:
            raise NotFound("that account has no web sign-in: `evidence users setup NAME` makes one")
        return {"user": user_id, "enrolled_at": row.enrolled_at, "setup_expires_at": row.setup_expires_at,
                "failures": row.failures, "locked_until": row.locked_until}

