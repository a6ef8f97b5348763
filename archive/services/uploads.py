"""Uploads: resumable (tus) and one-shot (WebDAV) arrivals, encrypted at rest until ingested.

The use cases behind `/v1/uploads` (tus) and `/dav/` (WebDAV); both ways in call
these, so the rules never fork:

- `create_upload`: a row (`archive.catalog.uploads`) and an empty segment
  folder; returns the upload id, the secret (256 bits, shown once: the client
  puts it in the URL) and the expiry. Limits: `[api] max_upload_bytes`
  (default 8 GiB, `TooLarge`), `[api] max_open_uploads` per token (default 8,
  `TooMany`, whose Retry-After is the time until that token's oldest open
  upload expires), `[api] upload_expiry_hours` (default 24, counted from the
  last byte received) and `[api] empty_upload_expiry_hours` (default 1: an
  upload that never received a byte, e.g. left by a crashed app, frees its
  slot soon). A file name is a label: one too long is cut down
  (`archive.services.ingest.safe_name`), never refused.
- `append`: a request body, consumed as a stream, sealed segment by segment
  under the secret's key and fsync'd (`ingest.upload_store`) before the new
  offset is committed. With a checksum (tus `Upload-Checksum`), a mismatch
  takes the whole body back (`ChecksumMismatch`). Without one, a body cut off
  keeps what arrived (tus resumes from there).
- `complete`: once every byte is in, the whole ingest runs in the request, from
  the decrypted segments (no plaintext written anywhere). At most `[api]
  max_completions` (default 2 × CPUs) run at once per process: each may hold a
  file of up to the in-memory analysis limit, so memory must not grow with the
  number of contributors finishing together; the others wait their turn. The row turns `done`
  inside the item's own transaction (`ingest.steps.arrival.OnCommit`), with the
  outcome and the signed receipt sealed in it: a completion cut off by a crash
  is finished by the next request (HEAD or PATCH), or was committed and is
  answered again, never twice. A final refusal (the declared `sha256` differs,
  the stored bytes are damaged, nothing to keep) is recorded with the refusal
  event; anything else (storage down, a concurrent arrival) leaves the upload
  whole for a retry (`NotAcknowledged`).
- `status`, `terminate` (never a completed upload), `expire_uploads` (idle
  uploads past their expiry; never a completed one), `ingest_stream` (WebDAV:
  the same, under a random secret held in memory only for the request).

Contributors learn nothing of other uploads (an unknown id, another's upload and
a wrong secret are the same `UploadNotFound`) nor whether the file was already
held: a duplicate's `Completed` has the same fields as a new file's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets as random
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from archive.catalog import uploads as table
from archive.catalog.uploads import Upload
from archive.services.errors import Invalid, NotFound, ServiceError

if TYPE_CHECKING:
    from archive.context import Archive
    from archive.services.accounts import Caller
    from ingest.pipeline import Ingestion

DEFAULT_MAX_BYTES = 8 * 1024**3
DEFAULT_MAX_OPEN = 8
DEFAULT_EXPIRY_HOURS = 24.0
DEFAULT_EMPTY_EXPIRY_HOURS = 1.0  # an upload that never received a byte
DEFAULT_GRACE_DAYS = 30.0  # an upload with every byte in, its completion cut off, waits this long for its client
SOON_SECONDS = 30  # Retry-After when a slot frees by itself shortly (an upload of the token is completing)
METADATA_KEYS = ("filename", "filetype", "source", "channel", "note", "incident", "sha256")
_TEXT_LIMITS = {"filename": 4096, "filetype": 255, "source": 4000, "channel": 32, "note": 4000, "incident": 255,
                "sha256": 64}
FINAL_REFUSALS = ("sha256-mismatch", "damaged", "empty")  # the bytes themselves: retrying cannot change them
FAULT_ENV = "EVIDENCE_TEST_UPLOAD_FAULT"  # tests only: "before-commit" | "after-commit" [":exit"]
UPLOAD_PREFIX = "up-"


# --- errors (each names the HTTP status the routes answer with) ----------------------------------

class UploadNotFound(NotFound):
    """No such upload for this caller: unknown, someone else's, ended, or the wrong secret (one answer)."""


class UploadGone(ServiceError):
    """The caller's own upload (its secret right) ended before it was complete: said so, not a bare 404."""

    status_code = 410
    code = "gone"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class OffsetMismatch(ServiceError):
    status_code = 409
    code = "offset"


class ChecksumMismatch(ServiceError):
    status_code = 460
    code = "checksum"


class TooLarge(ServiceError):
    status_code = 413
    code = "too_large"


class TooMany(ServiceError):
    status_code = 429
    code = "too_many_uploads"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(max(1, retry_after))}


class UploadBusy(ServiceError):
    status_code = 409
    code = "busy"
    headers = {"Retry-After": "2"}


class Incomplete(ServiceError):
    status_code = 409
    code = "incomplete"


class UploadKept(ServiceError):
    """A completed upload is evidence: it is never terminated."""

    status_code = 409
    code = "completed"


class UploadRefused(ServiceError):
    """Not acknowledged, for good: the bytes are not what can be kept (the reason says why)."""

    status_code = 422
    code = "refused"

    def __init__(self, message: str, reason: str = "refused") -> None:
        super().__init__(message)
        self.reason = reason


class NotAcknowledged(ServiceError):
    """Not acknowledged this time (storage, a concurrent arrival, an internal error): the upload stays whole."""

    status_code = 503
    code = "not_acknowledged"
    headers = {"Retry-After": "30"}


class SimulatedCrash(BaseException):
    """Tests only (`FAULT_ENV`): the process dies here. A BaseException, so no handler takes it for an error."""


# --- results --------------------------------------------------------------------------------------

@dataclass
class Completed:
    """What the sender of a completed upload is told (the same fields for a file the archive already held)."""

    upload_id: str
    item_id: str
    sha256: str
    size: int
    received: str  # RFC 3339, UTC
    event_seq: int  # the arrival's ingestion event
    receipt: str  # the signed receipt note
    status: str  # preserved | degraded
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def receipt_b64(self) -> str:
        return base64.b64encode(self.receipt.encode("utf-8")).decode("ascii")


@dataclass
class UploadStatus:
    upload_id: str
    state: str
    offset: int
    length: int | None
    expires_at: str
    completed: Completed | None = None
    metadata: dict[str, str] | None = None  # what the client sent at creation (the keys kept), for tus HEAD

    @property
    def needs_completion(self) -> bool:
        """Every byte is in but no item answers for it yet (a completion cut off: the next request finishes it)."""
        return self.state in table.ACTIVE and self.length is not None and self.offset == self.length


# --- configuration and helpers --------------------------------------------------------------------

def limits(archive: Archive) -> tuple[int, int, float]:
    """(max upload bytes, max open uploads per user, expiry hours) from `[api]` in config.toml."""
    api = archive.settings.extra.get("api") or {}
    return (int(api.get("max_upload_bytes", DEFAULT_MAX_BYTES)), int(api.get("max_open_uploads", DEFAULT_MAX_OPEN)),
            float(api.get("upload_expiry_hours", DEFAULT_EXPIRY_HOURS)))


def empty_expiry_hours(archive: Archive) -> float:
    """How long an upload that never received a byte is kept (`[api] empty_upload_expiry_hours`)."""
    api = archive.settings.extra.get("api") or {}
    return float(api.get("empty_upload_expiry_hours", DEFAULT_EMPTY_EXPIRY_HOURS))


def max_completions(settings_extra: dict[str, Any]) -> int:
    """Completions (whole ingests) running at once per process (`[api] max_completions`, default 2 × CPUs)."""
    api = settings_extra.get("api") or {}
    return max(1, int(api.get("max_completions", 2 * (os.cpu_count() or 1))))


_GATES: dict[int, threading.BoundedSemaphore] = {}
_GATES_LOCK = threading.Lock()


def _gate(archive: Archive) -> threading.BoundedSemaphore:
    """The process's completion gate for this limit (one per distinct limit: apps of one process share it)."""
    limit = max_completions(archive.settings.extra)
    with _GATES_LOCK:
        gate = _GATES.get(limit)
        if gate is None:
            gate = _GATES[limit] = threading.BoundedSemaphore(limit)
        return gate


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _segments(archive: Archive, upload_id: str, secret: str | None = None) -> Any:
    from ingest.upload_store import Segments, segment_key

    return Segments(archive.home, upload_id, segment_key(secret, upload_id) if secret is not None else None)


def _seal(secret: str, upload_id: str, what: str, document: dict[str, Any]) -> bytes:
    from ingest.upload_store import field_key, seal_fields

    return seal_fields(field_key(secret, upload_id), upload_id, what, json.dumps(document).encode("utf-8"))


def _open(secret: str, upload_id: str, what: str, blob: bytes) -> dict[str, Any]:
    from ingest.upload_store import field_key, open_fields

    return dict(json.loads(open_fields(field_key(secret, upload_id), upload_id, what, blob)))


def _check_metadata(metadata: dict[str, str]) -> dict[str, str]:
    from archive.records.vocab import CHANNELS

    kept: dict[str, str] = {}
    for key in METADATA_KEYS:
        value = metadata.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise Invalid(f"upload metadata {key}: text expected")
        if key == "filename" and len(value) > _TEXT_LIMITS[key]:
            value = _cut_label(value)
        if len(value) > _TEXT_LIMITS[key]:
            raise Invalid(f"upload metadata {key}: at most {_TEXT_LIMITS[key]} characters")
        kept[key] = value
    digest = kept.get("sha256")
    if digest is not None and (len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest)):
        raise Invalid("upload metadata sha256: the file's SHA-256 as 64 lowercase hex digits")
    if "channel" in kept and kept["channel"] not in CHANNELS:
        raise Invalid(f"upload metadata channel: one of {', '.join(CHANNELS)}")
    return kept


def _cut_label(name: str) -> str:
    """A name too long to keep whole, cut down to a bounded harmless label (`safe_name`), its extension kept."""
    from archive.services.ingest import safe_name

    label = safe_name(name)
    suffix = Path(safe_name(name[-32:])).suffix
    if suffix and not label.endswith(suffix) and len(suffix) < 32:
        label = label[:255 - len(suffix)] + suffix
    return label


def _row(session: Session, caller: Caller, upload_id: str, secret: str) -> Upload:
    """The caller's upload, its secret checked; one `UploadNotFound` for every other case."""
    from ingest.upload_store import secret_matches

    row = session.get(Upload, upload_id) if upload_id.startswith(UPLOAD_PREFIX) and len(upload_id) <= 40 else None
    if row is None or row.owner != caller.user_id or not secret_matches(secret, row.secret_digest):
        raise UploadNotFound("no such upload")
    ended = row.state if row.state in (table.TERMINATED, table.EXPIRED) else None
    if row.state == table.OPEN and not _awaits_completion(row) and _parse(row.expires_at) <= _now():
        ended = table.EXPIRED
    if ended is not None:
        how = "was terminated" if ended == table.TERMINATED else "expired (idle too long)"
        raise UploadGone(f"this upload {how} before it was complete: nothing of it was kept; start it again", ended)
    return row


def _awaits_completion(row: Upload) -> bool:
    """Every byte is in (a completion cut off, or never begun): never expired as idle, only after a long grace."""
    return row.state == table.COMPLETING or (row.state == table.OPEN and row.length is not None
                                             and row.offset == row.length)


def _load(archive: Archive, caller: Caller, upload_id: str, secret: str) -> Upload:
    from archive.db import read_only

    with Session(read_only(archive.engine)) as session:
        return _row(session, caller, upload_id, secret)


def _completed(row: Upload, secret: str) -> Completed:
    assert row.result is not None
    found = _open(secret, row.id, "result", row.result)
    return Completed(**{k: found[k] for k in Completed.__dataclass_fields__ if k in found})


def _refusal(row: Upload, secret: str) -> UploadRefused:
    reason = "the upload was refused"
    if row.result is not None:
        reason = str(_open(secret, row.id, "result", row.result).get("reason") or reason)
    return UploadRefused(reason, row.refusal or "refused")


def _fault(point: str) -> None:
    """Test hook (`FAULT_ENV`): die at `point` of a completion. Never active without the variable."""
    wanted = os.environ.get(FAULT_ENV, "")
    name, _, how = wanted.partition(":")
    if name != point:
        return
    if how == "exit":
        os._exit(137)
    raise SimulatedCrash(point)


# --- use cases ------------------------------------------------------------------------------------

def create_upload(archive: Archive, caller: Caller, length: int | None,
                  metadata: dict[str, str]) -> tuple[str, str, str]:
    """A new upload of `length` bytes (None: told at the end, WebDAV only); (upload id, secret, expires at)."""
    from archive.catalog.uploads import seal_upload_fields
    from archive.db import transaction
    from ingest.upload_store import new_secret, secret_digest

    max_bytes, max_open, hours = limits(archive)
    if length is not None:
        if length < 0:
            raise Invalid("Upload-Length: a number of bytes, zero or more")
        if length > max_bytes:
            raise TooLarge(f"the archive takes uploads of at most {max_bytes} bytes")
    kept = _check_metadata(metadata)
    upload_id = UPLOAD_PREFIX + random.token_hex(16)
    secret = new_secret()
    now = _now()
    # Until its first byte an upload holds only a slot: an app that crashed right after creating it (its URL,
    # and so its secret, lost) must not keep the token's slot for a day.
    expires = _stamp(now + timedelta(hours=min(hours, empty_expiry_hours(archive)) if length else hours))
    version, sealed = seal_upload_fields(archive, upload_id, {"filename": kept.get("filename"), "receipt": None})
    segments = _segments(archive, upload_id, secret)
    with transaction(archive.engine) as session:
        open_now = session.exec(select(Upload.state, Upload.expires_at).where(
            col(Upload.token_id) == caller.token_id, col(Upload.state).in_(table.ACTIVE),
            col(Upload.expires_at) > _stamp(now))).all()
        if len(open_now) >= max_open:
            raise _too_many(max_open, open_now, now, hours, empty_expiry_hours(archive))
        session.add(Upload(
            id=upload_id, owner=caller.user_id, token_id=caller.token_id, secret_digest=secret_digest(secret),
            state=table.OPEN, length=length, offset=0, fields=_seal(secret, upload_id, "fields", kept),
            sealed=sealed, key_version=version, created_at=_stamp(now), updated_at=_stamp(now), expires_at=expires,
        ))
    # The folder only once its row is committed: the sweep (`expire_uploads`) takes a folder no active row
    # knows for a leftover, and must never see one whose row is still being written.
    segments.create()
    return upload_id, secret, expires


def _too_many(max_open: int, open_now: Any, now: datetime, hours: float, empty_hours: float) -> TooMany:
    """The 429 for a token with every slot taken: when one frees by itself, and how to free one now."""
    if any(state == table.COMPLETING for state, _ in open_now):
        wait = SOON_SECONDS  # one is being ingested: its slot frees when that ends
    else:
        oldest = min(_parse(stamp) for _, stamp in open_now)
        wait = max(1, int((oldest - now).total_seconds()) + 1)
    return TooMany(f"at most {max_open} uploads in progress at once per token: finish one, or end one with "
                   f"DELETE on its upload URL, or wait until the oldest expires (in {wait} s; an upload that "
                   f"received no byte expires {min(hours, empty_hours):g} h after its creation, others "
                   f"{hours:g} h after their last byte)", wait)


def status(archive: Archive, caller: Caller, upload_id: str, secret: str) -> UploadStatus:
    """Where an upload stands; a done upload carries its `Completed` (refused: `UploadRefused`)."""
    row = _load(archive, caller, upload_id, secret)
    if row.state == table.REFUSED:
        raise _refusal(row, secret)
    metadata = {k: str(v) for k, v in _open(secret, row.id, "fields", row.fields).items()}
    if row.state == table.DONE:
        done = _completed(row, secret)
        return UploadStatus(row.id, row.state, done.size, done.size, row.expires_at, done, metadata)
    return UploadStatus(row.id, row.state, int(row.offset or 0), row.length, row.expires_at, None, metadata)


def append(archive: Archive, caller: Caller, upload_id: str, secret: str, offset: int, chunks: Iterator[bytes],
           checksum: tuple[str, bytes] | None = None) -> int:
    """Store a body at `offset`, durably, and return the new offset (see the module docstring).

    `checksum`: (algorithm "sha1" | "sha256", digest bytes) of this body. A body
    cut off by the client: without a checksum what arrived is kept (its segments
    are on disk before the offset moves); with one, nothing of it is.
    """
    from ingest.upload_store import Busy, StoreDamaged

    if checksum is not None and checksum[0] not in ("sha1", "sha256"):
        raise ServiceError("Upload-Checksum: the algorithms are sha1 and sha256")
    row = _load(archive, caller, upload_id, secret)
    if row.state == table.REFUSED:
        raise _refusal(row, secret)
    if row.state == table.DONE:
        size = _completed(row, secret).size
        if offset != size:
            raise OffsetMismatch(f"Upload-Offset {offset} is not where this upload stands ({size})")
        return size
    if offset != row.offset:
        raise OffsetMismatch(f"Upload-Offset {offset} is not where this upload stands ({row.offset})")
    if row.state == table.COMPLETING:
        return offset  # every byte is in; the caller completes it
    segments = _segments(archive, upload_id, secret)
    try:
        with segments.lock():
            return _append_locked(archive, caller, upload_id, secret, offset, chunks, checksum, segments)
    except Busy as exc:
        raise UploadBusy(str(exc)) from None
    except StoreDamaged as exc:
        raise UploadRefused(f"{exc}: start the upload again", "damaged") from None


def _append_locked(archive: Archive, caller: Caller, upload_id: str, secret: str, offset: int,
                   chunks: Iterator[bytes], checksum: tuple[str, bytes] | None, segments: Any) -> int:
    from ingest.upload_store import SegmentWriter

    row = _load(archive, caller, upload_id, secret)  # again, holding the upload
    if row.state != table.OPEN or row.offset != offset:
        raise OffsetMismatch(f"Upload-Offset {offset} is not where this upload stands ({row.offset})")
    max_bytes = limits(archive)[0]
    limit = row.length if row.length is not None else max_bytes
    segments.discard_from(offset)  # leftovers of a body never acknowledged
    writer = SegmentWriter(segments, offset)
    hasher = hashlib.new(checksum[0]) if checksum is not None else None
    try:
        for chunk in chunks:
            if writer.reached + len(chunk) > limit:
                writer.abandon()
                if row.length is None:
                    raise TooLarge(f"the archive takes uploads of at most {max_bytes} bytes")
                raise TooLarge(f"the body runs past the upload's length ({row.length} bytes): nothing of it was kept")
            if hasher is not None:
                hasher.update(chunk)
            writer.feed(chunk)
    except TooLarge:
        raise
    except BaseException as exc:
        # The client went away, the body could not be read, or the request was cancelled: keep what arrived,
        # unless a checksum was promised for the whole body, which can no longer be checked. The cause is
        # what the caller hears, even if keeping fails (a failure here must not pass for the cause).
        try:
            if hasher is not None:
                writer.abandon()
            else:
                _advance(archive, upload_id, offset, writer.flush())
        except Exception as keeping:  # noqa: BLE001 - the bytes stay unacknowledged; the next body rewrites them
            exc.add_note(f"what arrived could not be kept: {type(keeping).__name__}")
        raise
    if hasher is not None and checksum is not None and not _same(hasher.digest(), checksum[1]):
        writer.abandon()
        raise ChecksumMismatch(f"the body's {checksum[0]} is not the Upload-Checksum sent: nothing of it was kept")
    reached = writer.flush()
    _advance(archive, upload_id, offset, reached)
    return reached


def _count(result: Any) -> int:
    """Rows an UPDATE changed."""
    return int(getattr(result, "rowcount", 0) or 0)


def _same(a: bytes, b: bytes) -> bool:
    import hmac

    return hmac.compare_digest(a, b)


def _advance(archive: Archive, upload_id: str, old: int, new: int) -> None:
    """Commit the new offset (its segments are on disk already); the expiry moves with the activity."""
    from archive.db import transaction

    if new == old:
        return
    now = _now()
    hours = limits(archive)[2]
    with transaction(archive.engine) as session:
        done = session.execute(update(Upload).where(
            col(Upload.id) == upload_id, col(Upload.offset) == old, col(Upload.state) == table.OPEN,
        ).values(offset=new, updated_at=_stamp(now), expires_at=_stamp(now + timedelta(hours=hours))))
        if _count(done) != 1:
            raise OffsetMismatch("the upload moved on meanwhile")


def terminate(archive: Archive, caller: Caller, upload_id: str, secret: str) -> None:
    """End an upload in progress and delete its bytes (`UploadKept` for a completed one: it is evidence)."""
    from archive.db import transaction
    from ingest.upload_store import Busy

    row = _load(archive, caller, upload_id, secret)
    if row.state in (table.DONE, table.COMPLETING):
        raise UploadKept("a completed upload is kept as evidence; it cannot be terminated")
    segments = _segments(archive, upload_id)
    try:
        with segments.lock() if segments.exists() else _nothing():  # a refused upload's bytes are gone already
            with transaction(archive.engine) as session:
                ended = session.execute(update(Upload).where(
                    col(Upload.id) == upload_id, col(Upload.state).in_((table.OPEN, table.REFUSED)),
                ).values(state=table.TERMINATED, length=None, offset=None, updated_at=_stamp(_now())))
            if not _count(ended):
                raise UploadKept("a completed upload is kept as evidence; it cannot be terminated")
            segments.remove()
    except Busy as exc:
        raise UploadBusy(str(exc)) from None


def complete(archive: Archive, caller: Caller, upload_id: str, secret: str) -> Completed:
    """Ingest a whole upload (idempotent: a done one is answered again, a cut-off one finished)."""
    from ingest.upload_store import Busy, StoreDamaged

    row = _load(archive, caller, upload_id, secret)
    if row.state == table.DONE:
        return _completed(row, secret)
    if row.state == table.REFUSED:
        raise _refusal(row, secret)
    if row.length is None or row.offset != row.length:
        raise Incomplete(f"the upload holds {row.offset} of its {row.length} bytes: send the rest first")
    segments = _segments(archive, upload_id, secret)
    try:
        with _gate(archive):  # waits its turn (bounded memory), never fails for it
            with segments.lock():
                return _complete_locked(archive, caller, upload_id, secret, segments)
    except Busy as exc:
        raise UploadBusy("this upload is being completed by another request; ask again shortly") from exc
    except StoreDamaged as exc:
        raise UploadRefused(f"{exc}: start the upload again", "damaged") from None


def _claim(archive: Archive, upload_id: str) -> str:
    from archive.db import transaction

    claim = random.token_hex(8)
    with transaction(archive.engine) as session:
        session.execute(update(Upload).where(col(Upload.id) == upload_id, col(Upload.state).in_(table.ACTIVE))
                        .values(state=table.COMPLETING, claim=claim, updated_at=_stamp(_now())))
    return claim


def _complete_locked(archive: Archive, caller: Caller, upload_id: str, secret: str, segments: Any) -> Completed:
    from archive.custody.receipts import receipt_signer

    row = _load(archive, caller, upload_id, secret)  # again, holding the upload
    if row.state == table.DONE:
        return _completed(row, secret)
    if row.state == table.REFUSED:
        raise _refusal(row, secret)
    assert row.length is not None
    fields = _open(secret, upload_id, "fields", row.fields)
    claim = _claim(archive, upload_id)
    if row.length == 0:
        _mark_refused(archive, upload_id, secret, claim, "empty", "an empty file: there is nothing to keep")
        raise UploadRefused("an empty file: there is nothing to keep", "empty")
    from archive.custody.service import log_signer

    # Read (and sealed onto the sites) now: inside the item's transaction signing is pure computation.
    signer, origin = receipt_signer(archive), log_signer(archive).name
    for _attempt in range(3):
        ingestion = _ingest(archive, upload_id, secret, claim, row.length, fields, segments, (signer, origin))
        if ingestion.status != "refused":
            break
        code = ingestion.refusal_code or "internal"
        reason = ingestion.errors[-1]["reason"] if ingestion.errors else "not acknowledged"
        if code in FINAL_REFUSALS:
            segments.remove()
            raise UploadRefused(reason, code)
        if code != "concurrent":
            break  # retried only when the same bytes were committed by another arrival a moment ago
    else:
        raise NotAcknowledged("the same file was arriving at the same moment; ask again shortly")
    fresh = _load(archive, caller, upload_id, secret)
    if fresh.state != table.DONE:
        code = ingestion.refusal_code or "internal"
        reason = ingestion.errors[-1]["reason"] if ingestion.errors else "not acknowledged"
        raise NotAcknowledged(f"not acknowledged ({code}): {reason}; the upload is kept whole, ask again")
    _fault("after-commit")
    segments.remove()
    return _completed(fresh, secret)


def _incoming(upload_id: str, length: int, fields: dict[str, Any], segments: Any) -> Any:
    from archive.services.ingest import safe_name
    from ingest.pipeline import Incoming
    from ingest.upload_store import SegmentReader

    name = safe_name(fields.get("filename") or "upload")
    return Incoming(
        path=Path(name),  # a label only: the bytes come from `opener`
        original_name=name,
        source=fields.get("source"),
        note=fields.get("note"),
        declared_type=fields.get("filetype"),
        channel=fields.get("channel") or "upload",
        opener=lambda: SegmentReader(segments, length),
        size=length,
    )


def _ingest(archive: Archive, upload_id: str, secret: str, claim: str, length: int, fields: dict[str, Any],
            segments: Any, signing: tuple[Any, str]) -> Ingestion:
    from ingest.pipeline import Ingestion, Refused, default_steps, run_pipeline
    from ingest.steps.arrival import AnalyseLikeNew, LinkIncident, OnCommit
    from ingest.steps.catalog import CommitToCatalog
    from ingest.steps.declared import CheckDeclaredDigest
    from ingest.steps.receive import IN_MEMORY_LIMIT

    class LostClaim(Refused):
        code = "lost-claim"

    def on_commit(ingestion: Ingestion, session: Session) -> None:
        _fault("before-commit")
        if not _mark_done(archive, session, upload_id, secret, claim, ingestion, fields, signing):
            raise LostClaim("another request completed this upload meanwhile")

    def on_refusal(session: Session, code: str, reason: str) -> None:
        if code in FINAL_REFUSALS:
            _mark_refused_in(session, upload_id, secret, claim, code, reason)

    from ingest.steps.replicate import Replicate

    steps = default_steps(deferred_analysis=length > IN_MEMORY_LIMIT)
    steps.insert(1, CheckDeclaredDigest(fields.get("sha256")))
    replicate_at = next(i for i, step in enumerate(steps) if isinstance(step, Replicate))
    steps.insert(replicate_at, AnalyseLikeNew(steps))  # a duplicate takes as long as a new file
    commit_at = next(i for i, step in enumerate(steps) if isinstance(step, CommitToCatalog))
    extra = [LinkIncident(fields["incident"])] if fields.get("incident") else []
    steps[commit_at:commit_at] = [*extra, OnCommit(on_commit)]
    ingestion = Ingestion(incoming=_incoming(upload_id, length, fields, segments), actor=archive.actor)
    ingestion.on_refusal = on_refusal
    return run_pipeline(ingestion, archive, steps)


def _mark_done(archive: Archive, session: Session, upload_id: str, secret: str, claim: str, ingestion: Ingestion,
               fields: dict[str, Any], signing: tuple[Any, str]) -> bool:
    """Inside the item's transaction: the upload is done, its outcome and receipt sealed in its row."""
    from sqlalchemy import text

    from archive.catalog.uploads import seal_upload_fields
    from archive.custody.log import INGESTION
    from archive.custody.receipts import receipt_text

    assert ingestion.item_id is not None and ingestion.sha256 is not None and ingestion.size is not None
    seq = session.execute(text("SELECT MAX(seq) FROM events WHERE item_id = :item AND event_type = :kind"),
                          {"item": ingestion.item_id, "kind": INGESTION}).scalar_one()
    received = str(ingestion.results.get("received_at"))
    signer, origin = signing  # what `archive.custody.receipts.sign_receipt` does, without its file and site reads
    receipt = signer.sign_note(receipt_text(origin, upload_id, ingestion.item_id, ingestion.sha256, ingestion.size,
                                            received, int(seq)))
    done = Completed(upload_id=upload_id, item_id=ingestion.item_id, sha256=ingestion.sha256, size=ingestion.size,
                     received=received, event_seq=int(seq), receipt=receipt,
                     status=ingestion.status if ingestion.status in ("preserved", "degraded") else "degraded")
    version, sealed = seal_upload_fields(archive, upload_id, {"filename": fields.get("filename"), "receipt": receipt})
    now = _stamp(_now())
    changed = session.execute(update(Upload).where(
        col(Upload.id) == upload_id, col(Upload.claim) == claim, col(Upload.state) == table.COMPLETING,
    ).values(state=table.DONE, item_id=ingestion.item_id, event_seq=int(seq), length=None, offset=None, claim=None,
             result=_seal(secret, upload_id, "result", done.as_dict()), sealed=sealed, key_version=version,
             completed_at=now, updated_at=now))
    return bool(_count(changed))


def _mark_refused_in(session: Session, upload_id: str, secret: str, claim: str, code: str, reason: str) -> None:
    session.execute(update(Upload).where(
        col(Upload.id) == upload_id, col(Upload.claim) == claim, col(Upload.state) == table.COMPLETING,
    ).values(state=table.REFUSED, refusal=code, length=None, offset=None, claim=None,
             result=_seal(secret, upload_id, "result", {"reason": reason, "code": code}),
             completed_at=_stamp(_now()), updated_at=_stamp(_now())))


def _mark_refused(archive: Archive, upload_id: str, secret: str, claim: str, code: str, reason: str) -> None:
    from archive.custody.log import INGESTION, append_event
    from archive.db import transaction

    with transaction(archive.engine) as session:
        append_event(session, INGESTION, actor=archive.actor, outcome="failure", details={"refused": reason})
        _mark_refused_in(session, upload_id, secret, claim, code, reason)
    _segments(archive, upload_id).remove()


def ingest_stream(archive: Archive, caller: Caller, chunks: Iterator[bytes], *, filename: str,
                  filetype: str | None = None, source: str | None = None, channel: str | None = None,
                  note: str | None = None, incident: str | None = None, sha256: str | None = None) -> Completed:
    """One-shot arrival (WebDAV PUT): the body sealed as it arrives under a random secret held in memory only
    for this request, then ingested as a completed upload (same rules, same `Completed`, a receipt stored)."""
    from archive.db import transaction

    metadata = {k: v for k, v in {"filename": filename, "filetype": filetype, "source": source, "channel": channel,
                                  "note": note, "incident": incident, "sha256": sha256}.items() if v}
    upload_id, secret, _ = create_upload(archive, caller, None, metadata)
    try:
        reached = append(archive, caller, upload_id, secret, 0, chunks)
        with transaction(archive.engine) as session:
            session.execute(update(Upload).where(col(Upload.id) == upload_id, col(Upload.state) == table.OPEN)
                            .values(length=reached))
        return complete(archive, caller, upload_id, secret)
    except BaseException:
        _abandon(archive, upload_id)  # nobody holds the secret any more: its bytes can never be read
        raise


def _abandon(archive: Archive, upload_id: str) -> None:
    from archive.db import transaction

    try:
        with transaction(archive.engine) as session:
            session.execute(update(Upload).where(col(Upload.id) == upload_id, col(Upload.state).in_(table.ACTIVE))
                            .values(state=table.TERMINATED, length=None, offset=None, claim=None,
                                    updated_at=_stamp(_now())))
        _segments(archive, upload_id).remove()
    except Exception:  # noqa: BLE001 - the expiry sweep removes it later
        pass


def expire_uploads(archive: Archive) -> int:
    """End idle uploads past their expiry and delete their bytes; never a done one. How many ended.

    Also removes segment folders left behind by an ended upload (a crash between
    its commit and the removal) and folders no row knows.
    """
    from archive.db import read_only, transaction
    from ingest.upload_store import Busy, Segments, uploads_root

    now = _stamp(_now())
    grace = float((archive.settings.extra.get("api") or {}).get("completion_grace_days", DEFAULT_GRACE_DAYS))
    cutoff = _stamp(_now() - timedelta(days=grace))
    with Session(read_only(archive.engine)) as session:
        rows = list(session.exec(select(Upload).where(col(Upload.state).in_(table.ACTIVE),
                                                      col(Upload.expires_at) <= now)).all())
    # An upload whose every byte is in waits for its client to ask again (the next HEAD completes it) for
    # `[api] completion_grace_days`, not the idle expiry: it may be evidence its sender believes sent.
    stale = [(row.id, cutoff if _awaits_completion(row) else now) for row in rows
             if not _awaits_completion(row) or row.expires_at <= cutoff]
    ended = 0
    for upload_id, before in stale:
        segments = _segments(archive, upload_id)
        try:
            with segments.lock() if segments.exists() else _nothing():
                with transaction(archive.engine) as session:
                    ended += _count(session.execute(update(Upload).where(
                        col(Upload.id) == upload_id, col(Upload.state).in_(table.ACTIVE),
                        col(Upload.expires_at) <= before,
                    ).values(state=table.EXPIRED, length=None, offset=None, claim=None, updated_at=now)))
                segments.remove()
        except Busy:
            continue  # in use right now: not idle
    root = uploads_root(archive.home)
    if root.is_dir():
        names = [n for n in os.listdir(root) if n.startswith(UPLOAD_PREFIX)]
        with Session(read_only(archive.engine)) as session:
            live = set(session.exec(select(Upload.id).where(col(Upload.id).in_(names),
                                                            col(Upload.state).in_(table.ACTIVE))).all())
        for name in names:
            if name not in live:
                folder = Segments(archive.home, name)
                try:
                    with folder.lock():
                        folder.remove()
                except (Busy, OSError):
                    continue
    return ended


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def upload_row(archive: Archive, upload_id: str) -> Upload | None:
    """The row of an upload, for readers of its receipt (`archive.services.receipts`); no access check here."""
    from archive.db import read_only

    with Session(read_only(archive.engine)) as session:
        return session.get(Upload, upload_id)
