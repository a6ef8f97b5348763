"""What the two S3 drivers (boto3 and minio) share: credentials, options, errors, verification, markers.

Credentials never live in the configuration: they come from
`EVIDENCE_STORAGE_<NAME>_ACCESS_KEY` and `..._SECRET_KEY` (NAME upper-cased,
'-' and '.' turned into '_'), and an SSE-C key from `..._SSE_C_KEY` (base64 of
32 bytes). Nothing here ever puts a secret into an error message.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from storage.base import (
    MARKER_NAME,
    MIB,
    Backend,
    MarkerExists,
    ObjectMissing,
    StorageError,
    VerificationFailed,
    check_name,
)

LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
SSE_MODES = ("sse-c", "aws:kms", "sse-s3")
MIN_PART_SIZE = 5 * MIB  # S3's floor for every part but the last
PROBE_TIMEOUT = 5.0  # seconds, connect and read, for health checks
MARKER_TTL = 30.0  # seconds a bucket's good marker is trusted before a write checks it again

# S3 error codes, as both SDKs report them.
AUTH_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AuthorizationHeaderMalformed",
    "InvalidClientTokenId",
}
MISSING_CODES = {"NoSuchKey", "NoSuchVersion", "404", "NotFound", "ResourceNotFound", "NoSuchObject"}
DIGEST_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
PRECONDITION_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}


class AuthFailed(StorageError):
    """The server refused the credentials: final, never retried."""


class BucketMissing(StorageError):
    """The configured bucket does not exist on the server."""


class Unreachable(StorageError):
    """The server did not answer (refused, timed out, reset)."""


class RetentionRefused(StorageError):
    """The server refused to delete or overwrite an object under retention (Object Lock)."""


class NameTaken(StorageError):
    """A conditional write found the name taken: names are never reused."""


def classify(what: str, action: str, code: str, status: int, message: str) -> StorageError:
    """An S3 error response (code, HTTP status, message) as the archive's error type.

    Both drivers call this with what their SDK parsed, so an error means the
    same thing whichever SDK met it; `what` names the backend and the object.
    """
    if code in AUTH_CODES:
        return AuthFailed(f"{what}: the server refused the credentials ({code})")
    if code == "NoSuchBucket":
        return BucketMissing(f"{what}: the bucket does not exist")
    if code in ("AccessDenied", "403") or status == 403:
        if action == "delete":
            return RetentionRefused(f"{what}: the server refused the deletion (retention or access policy)")
        return AuthFailed(f"{what}: access denied (wrong credentials, or no permission on the bucket)")
    if code in PRECONDITION_CODES or status == 412:
        return NameTaken(f"{what}: an object of that name already exists (names are never reused)")
    if code in DIGEST_CODES:
        return VerificationFailed(f"{what}: the server received bytes other than those sent ({code})")
    if code in MISSING_CODES or status == 404:
        return ObjectMissing(f"{what}: no such object or version")
    return StorageError(f"{what}: {code or status}: {message}".rstrip(": "))


def env_prefix(name: str) -> str:
    """`EVIDENCE_STORAGE_<NAME>_` for a backend name, as the CLI documents it."""
    return "EVIDENCE_STORAGE_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "_"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = ""

    def __repr__(self) -> str:  # never show the secret, even in a traceback's locals
        return f"Credentials(access_key={self.access_key!r}, secret_key=***)"


def credentials_from_env(name: str, environ: dict[str, str] | None = None) -> Credentials:
    env = os.environ if environ is None else environ
    prefix = env_prefix(name)
    access, secret = env.get(prefix + "ACCESS_KEY"), env.get(prefix + "SECRET_KEY")
    if not access or not secret:
        raise AuthFailed(
            f"storage {name!r}: credentials missing; set {prefix}ACCESS_KEY and {prefix}SECRET_KEY in the environment"
        )
    return Credentials(access, secret)


def sse_c_key_from_env(name: str, environ: dict[str, str] | None = None) -> bytes:
    env = os.environ if environ is None else environ
    var = env_prefix(name) + "SSE_C_KEY"
    text = env.get(var)
    if not text:
        raise StorageError(f"storage {name!r} uses SSE-C: set {var} to the base64 of a 32-byte key")
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise StorageError(f"storage {name!r}: {var} is not valid base64") from exc
    if len(key) != 32:
        raise StorageError(f"storage {name!r}: {var} must decode to 32 bytes, not {len(key)}")
    return key


@dataclass(frozen=True)
class S3Options:
    """The non-secret options of an S3-like backend, as kept in config.toml."""

    endpoint: str | None
    bucket: str
    region: str | None = None
    prefix: str = ""
    object_lock: str | None = None  # GOVERNANCE | COMPLIANCE
    retention_days: int | None = None
    sse: str | None = None  # sse-c | aws:kms | sse-s3
    kms_key_id: str | None = None
    part_size: int = 8 * MIB
    concurrency: int = 4
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 3
    verify: str = "auto"  # auto: the server's checksum, else read back | readback: always read back

    @classmethod
    def from_dict(cls, name: str, options: dict[str, Any]) -> S3Options:
        bucket = options.get("bucket")
        if not bucket:
            raise StorageError(f"storage {name!r}: no bucket configured")
        lock = options.get("object_lock")
        lock = str(lock).upper() if lock else None
        if lock is not None and lock not in LOCK_MODES:
            raise StorageError(f"storage {name!r}: object_lock must be one of {', '.join(LOCK_MODES)}, not {lock!r}")
        days = options.get("retention_days")
        days = int(days) if days is not None else None
        if lock and (days is None or days < 1):
            raise StorageError(f"storage {name!r}: object_lock {lock} needs retention_days of at least 1")
        sse = options.get("sse")
        if sse is not None and sse not in SSE_MODES:
            raise StorageError(f"storage {name!r}: sse must be one of {', '.join(SSE_MODES)}, not {sse!r}")
        part_size = int(options.get("part_size_mib", 8)) * MIB
        if part_size < MIN_PART_SIZE:
            raise StorageError(f"storage {name!r}: part_size_mib must be at least 5")
        verify = str(options.get("verify", "auto"))
        if verify not in ("auto", "readback"):
            raise StorageError(f"storage {name!r}: verify must be 'auto' or 'readback'")
        prefix = str(options.get("prefix", "")).strip("/")
        return cls(
            endpoint=options.get("endpoint") or None,
            bucket=str(bucket),
            region=options.get("region") or None,
            prefix=prefix + "/" if prefix else "",
            object_lock=lock,
            retention_days=days if lock else None,
            sse=sse,
            kms_key_id=options.get("kms_key_id") or None,
            part_size=part_size,
            concurrency=max(1, int(options.get("concurrency", 4))),
            connect_timeout=float(options.get("connect_timeout", 5)),
            read_timeout=float(options.get("read_timeout", 60)),
            max_attempts=max(1, int(options.get("max_attempts", 3))),
            verify=verify,
        )

    def retain_until(self, now: datetime | None = None) -> datetime | None:
        """When a write made now may first be deleted, or None without Object Lock."""
        if not self.object_lock or not self.retention_days:
            return None
        return (now or datetime.now(UTC)) + timedelta(days=self.retention_days)

    def where(self, name: str) -> str:
        """How errors name this backend: never a secret, always enough to find it."""
        return f"storage {name!r} ({self.endpoint or 'AWS'}, bucket {self.bucket})"


def b64_sha256(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def check_sent(where: str, name: str, ours: str, expected_sha256: str) -> None:
    """The bytes the writer received must hash to what the caller expects, before anything is published."""
    if ours != expected_sha256:
        raise VerificationFailed(f"{where}: the bytes written for {name} do not hash to the expected SHA-256")


def composite_sha256(part_digests: list[bytes]) -> str:
    """S3's checksum of a multipart object: SHA-256 over the parts' SHA-256s, then '-N'."""
    outer = hashlib.sha256(b"".join(part_digests)).digest()
    return f"{b64_sha256(outer)}-{len(part_digests)}"


class RemoteBackend(Backend):
    """What the S3 and MinIO drivers share: options, credentials, lazily made clients,
    object keys, the verification rule and the marker's place.

    A subclass says how to make its SDK's client (`_make_client`), how to check
    the bucket (`check`), and the few SDK calls its marker needs; a second,
    short-timeout client answers health checks so `storage list` never hangs.
    """

    marker_hint = "is this the right bucket and prefix?"
    marker_ttl_seconds = MARKER_TTL  # a bucket is not unmounted: a GET per write would only cost time

    def __init__(
        self,
        name: str,
        options: S3Options,
        credentials: Credentials | None = None,
        sse_c_key: bytes | None = None,
        expected_archive_id: str | None = None,
    ) -> None:
        super().__init__(name, expected_archive_id)
        self.options = options
        self._credentials = credentials
        self._client: Any = None
        self._probe: Any = None
        self._lock = threading.Lock()
        if options.sse == "sse-c" and sse_c_key is None:
            sse_c_key = sse_c_key_from_env(name)
        self._sse_c_key = sse_c_key if options.sse == "sse-c" else None

    @classmethod
    def from_options(cls, name: str, options: dict[str, Any]) -> Any:
        return cls(name, S3Options.from_dict(name, options))

    @property
    def where(self) -> str:
        return self.options.where(self.name)

    @property
    def client(self) -> Any:
        """The SDK client, made once (client creation is slow and not thread-safe)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    @property
    def probe_client(self) -> Any:
        """A client for health checks: short timeouts, one attempt."""
        if self._probe is None:
            with self._lock:
                if self._probe is None:
                    self._probe = self._make_client(probe=True)
        return self._probe

    def _make_client(self, *, probe: bool = False) -> Any:
        raise NotImplementedError

    def check(self) -> None:
        """Raise a clear `StorageError` unless the bucket answers as configured."""
        raise NotImplementedError

    def reachability(self) -> str | None:
        """None when the bucket answers with these credentials (and has Object Lock if configured)."""
        try:
            self.check()
        except StorageError as exc:
            return str(exc)
        return None

    def with_auth_hint(self, error: StorageError) -> StorageError:
        """A refused credential names the variables to check (never their values)."""
        if isinstance(error, AuthFailed):
            prefix = env_prefix(self.name)
            return AuthFailed(f"{error}; check {prefix}ACCESS_KEY and {prefix}SECRET_KEY")
        return error

    # -- names -------------------------------------------------------------------------

    def key(self, name: str) -> str:
        return self.options.prefix + check_name(name)

    @property
    def marker_key(self) -> str:
        """The marker sits at the (prefixed) root, where no object name can land (they never start with '.')."""
        return self.options.prefix + MARKER_NAME

    def prepare_write(self, name: str) -> None:
        """Before a write: the site must be this archive's, and the name must be free.

        The name check fails early; the boto3 driver's write is conditional too.
        """
        self.require_marker()
        if self.stat(name) is not None:
            raise StorageError(f"{self.where}: object {name} already exists (names are never reused)")

    # -- verification ------------------------------------------------------------------

    def confirm(
        self,
        name: str,
        version_id: str | None,
        *,
        server: str | None,
        ours: str | None,
        expected_sha256: str,
        size: int,
        detail: dict[str, object],
    ) -> None:
        """The rule both drivers follow: the server's checksum must equal ours; without one, read back.

        `ours` is None when the SDK sent no checksum the server could echo. A
        version found wrong is discarded (unless retained), then the error raised.
        """
        try:
            if server is not None and ours is not None and server != ours:
                raise VerificationFailed(f"{self.where}: {name}: server checksum {server} differs from ours {ours}")
            if server is None or ours is None or self.options.verify == "readback":
                digest, stored = self.sha256_of(name, version_id)
                if digest != expected_sha256 or stored != size:
                    raise VerificationFailed(f"{self.where}: read-back of {name} does not match what was sent")
                detail["verified_by"] = "read-back"
            else:
                detail["verified_by"] = "server checksum"
        except VerificationFailed:
            self.discard_bad_version(name, version_id)
            raise

    def discard_bad_version(self, name: str, version_id: str | None) -> None:
        """Best effort: remove a version this writer itself just published and found wrong."""
        if self.options.object_lock:
            return  # retained: the catalog will simply never reference it
        try:
            self.delete(name, version_id)
        except StorageError:
            pass

    # -- the marker ----------------------------------------------------------------------

    def _get_marker(self) -> bytes:
        """The marker object's bytes (bounded); `ObjectMissing` when absent."""
        raise NotImplementedError

    def _put_marker(self, data: bytes) -> None:
        """Write the marker object; `NameTaken` when the server refuses an existing one."""
        raise NotImplementedError

    def _raise_if_bucket_missing(self) -> None:
        raise NotImplementedError

    def _read_marker_bytes(self) -> bytes | None:
        try:
            return self._get_marker()
        except ObjectMissing:
            self._raise_if_bucket_missing()  # a missing bucket is not a missing marker
            return None

    def _create_marker(self, data: bytes) -> None:
        if self._read_marker_bytes() is not None:
            raise MarkerExists(f"{self.where}: marker {MARKER_NAME} already exists")
        try:
            self._put_marker(data)
        except NameTaken as exc:
            raise MarkerExists(f"{self.where}: marker {MARKER_NAME} already exists") from exc


class SdkBodyReader(io.RawIOBase):
    """A raw stream over an SDK's response body whose failures become `StorageError`s.

    `translate` is the driver's own mapping of its SDK's exceptions; `release`
    hands the connection back when the stream is closed.
    """

    def __init__(
        self,
        read: Callable[[int], bytes],
        release: Callable[[], None],
        translate: Callable[..., StorageError],
        where: str,
        name: str,
    ) -> None:
        self._read = read
        self._release = release
        self._translate = translate
        self._where = where
        self._name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._read(len(buffer))
        except Exception as exc:  # noqa: BLE001 - every read failure is a storage failure
            raise self._translate(exc, self._where, "read", name=self._name) from exc
        size = len(data)
        buffer[:size] = data
        return size

    def close(self) -> None:
        if not self.closed:
            self._release()
        super().close()
