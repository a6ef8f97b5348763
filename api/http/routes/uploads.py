"""Routes: tus 1.0.0 uploads at /v1/uploads (see api.http.matrix for who may call each).

Core, creation, creation-with-upload, checksum (sha1, sha256; 460 on a
mismatch, the body discarded), termination and expiration, so standard tus
clients work unchanged. The upload URL is `/v1/uploads/{upload_id}/{secret}`:
the secret is the key to the upload's encrypted bytes and only the client
holds it (`archive.services.uploads`, `ingest.upload_store`); it is never
logged here, nor put in an error. An unknown upload, someone else's and a
wrong secret get one and the same 404.

Bodies are read as a stream (`request.stream()`) in a worker thread, one
chunk at a time, so a slow client holds a bounded amount of memory. The body
threads (`[api] upload_threads`) are shared fairly: at most `[api]
bodies_per_token` (4) bodies of one token are read at once (the others wait,
holding no thread), and a body trickling slower than `[api]
min_body_bytes_per_second` (256) over `body_rate_window_seconds` (60) is cut
off with 408, what arrived kept for resume. The PATCH
that brings the last byte runs the whole ingest and answers only once the item
is committed, with `Upload-Receipt: base64(receipt)`; a HEAD or PATCH after a
completion cut off by a crash finishes it. Every response carries
`Tus-Resumable: 1.0.0`.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Request, Response
from starlette.requests import ClientDisconnect

from api.http import metrics
from api.http.auth import archive_for, current_caller
from api.http.errors import service_error_response
from archive.services import uploads as service
from archive.services.errors import ServiceError

if TYPE_CHECKING:
    from archive.context import Archive
    from archive.services.accounts import Caller

router = APIRouter()

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
CHECKSUMS = "sha1,sha256"
OFFSET_TYPE = "application/offset+octet-stream"
DEFAULT_RATE = 600  # requests per minute and token on these routes (`[api] upload_requests_per_minute`)
ROUTE = "/v1/uploads/{upload_id}/{secret}"


class BadRequest(ServiceError):
    status_code = 400
    code = "bad_request"


class VersionMismatch(ServiceError):
    status_code = 412
    code = "tus_version"
    headers = {"Tus-Version": TUS_VERSION}


class WrongType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


class RateLimited(ServiceError):
    status_code = 429
    code = "rate"


_REASONS = {400: "bad_request", 404: "not_found", 408: "too_slow", 409: "offset", 412: "tus_version", 413: "too_large",
            415: "content_type", 422: "refused", 429: "rate", 460: "checksum", 503: "not_acknowledged"}


def _headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store", **extra}


def _error(request: Request, exc: ServiceError) -> Response:
    """A service error as tus clients expect it: the status, tus headers, JSON (no body for HEAD)."""
    answer = service_error_response(request, exc)
    metrics.refuse(str(getattr(exc, "code", None) or _REASONS.get(answer.status_code, "refused")))
    headers = {**dict(getattr(exc, "headers", None) or {}), **_headers()}
    if isinstance(exc, service.UploadRefused | service.UploadGone):
        headers["Upload-Refused"] = exc.reason
    if request.method == "HEAD":
        return Response(status_code=answer.status_code, headers=headers)
    answer.headers.update(headers)
    return answer


def _expires(stamp: str) -> str:
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return format_datetime(moment.replace(tzinfo=UTC), usegmt=True)


TUS_HEADERS = ("tus-resumable", "upload-length", "upload-offset", "upload-metadata", "upload-checksum",
               "upload-defer-length")


def _single(request: Request) -> None:
    """Each tus header at most once: a proxy keeping another copy than the server reads would disagree with it."""
    for name in TUS_HEADERS:
        if len(request.headers.getlist(name)) > 1:
            raise BadRequest(f"{name.title()}: given more than once")


def _check_version(request: Request) -> None:
    _single(request)
    if request.headers.get("tus-resumable") != TUS_VERSION:
        raise VersionMismatch(f"this server speaks tus {TUS_VERSION}: send `Tus-Resumable: {TUS_VERSION}`")


def _number(request: Request, header: str) -> int:
    value = request.headers.get(header)
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 19:
        raise BadRequest(f"{header}: a number of bytes is required")
    return int(value)


def parse_metadata(header: str | None) -> dict[str, str]:
    """tus `Upload-Metadata`: comma-separated `key base64(value)` pairs (the value may be absent)."""
    found: dict[str, str] = {}
    if not header or not header.strip():
        return found
    if len(header) > 16384:
        raise BadRequest("Upload-Metadata: too long")
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        key = parts[0]
        if not key or len(parts) > 2 or not key.isascii() or not key.isprintable():
            raise BadRequest("Upload-Metadata: pairs of a key and a base64 value, separated by commas")
        if key in found:
            raise BadRequest("Upload-Metadata: a key is given twice")
        try:
            value = base64.b64decode(parts[1], validate=True).decode("utf-8") if len(parts) == 2 else ""
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise BadRequest(f"Upload-Metadata: the value of {key[:32]!r} is not base64 of UTF-8 text") from None
        found[key] = value
    return found


def parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    """tus `Upload-Checksum`: `algorithm base64(digest)`, sha1 or sha256."""
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    sizes = {"sha1": 20, "sha256": 32}
    if algorithm not in sizes:
        raise BadRequest(f"Upload-Checksum: the algorithms are {CHECKSUMS}")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Upload-Checksum: the digest must be base64") from None
    if len(digest) != sizes[algorithm]:
        raise BadRequest(f"Upload-Checksum: a {algorithm} digest is {sizes[algorithm]} bytes")
    return algorithm, digest


class _Rate:
    """Requests per token and minute (a fixed one-minute window; enough to stop a runaway client)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}

    def check(self, token_id: str, limit: int) -> None:
        minute = int(time.time() // 60)
        with self._lock:
            window, count = self._windows.get(token_id, (minute, 0))
            if window != minute:
                window, count = minute, 0
            if len(self._windows) > 10000:
                self._windows = {k: v for k, v in self._windows.items() if v[0] == minute}
            self._windows[token_id] = (window, count + 1)
        if count + 1 > limit:
            retry = str(60 - int(time.time()) % 60)
            exc = RateLimited(f"at most {limit} upload requests a minute per token; retry in {retry} s")
            exc.headers = {"Retry-After": retry}  # type: ignore[attr-defined]
            raise exc


_RATE = _Rate()


def _caller(request: Request) -> tuple[Caller, Archive]:
    caller = current_caller(request)
    archive = archive_for(request)
    api = archive.settings.extra.get("api") or {}
    _RATE.check(caller.token_id, int(api.get("upload_requests_per_minute", DEFAULT_RATE)))
    return caller, archive


PIECE = 1024 * 1024  # body bytes handed to the worker thread at a time (bounded; fewer thread hops)
BODY_THREADS = 64  # request bodies read at once, per app (`[api] upload_threads`); beyond, a body waits


def _body_threads(request: Request) -> anyio.CapacityLimiter:
    """Threads for upload bodies, apart from the pool every other route uses: slow clients trickling bytes
    hold these, never the threads the rest of the API needs. One limiter per app (made in its event loop)."""
    limiter = getattr(request.app.state, "upload_body_threads", None)
    if limiter is None:
        api = request.app.state.runtime.settings.extra.get("api") or {}
        limiter = anyio.CapacityLimiter(int(api.get("upload_threads", BODY_THREADS)))
        request.app.state.upload_body_threads = limiter
    return limiter


BODIES_PER_TOKEN = 4  # upload bodies read at once per token (`[api] bodies_per_token`); beyond, a body waits
MIN_RATE = 256  # bytes a second a body must average over each `RATE_WINDOW` (`[api] min_body_bytes_per_second`)
RATE_WINDOW = 60.0


class TooSlow(ServiceError):
    """A body trickling slower than the minimum rate: cut off (what arrived is kept), so it frees its thread."""

    status_code = 408
    code = "too_slow"


def _token_bodies(request: Request, token_id: str) -> anyio.CapacityLimiter:
    """One token's share of the body threads: one client (or one stolen token) cannot hold them all."""
    limiters: dict[str, anyio.CapacityLimiter] | None = getattr(request.app.state, "upload_token_bodies", None)
    if limiters is None:
        limiters = request.app.state.upload_token_bodies = {}
    limiter = limiters.get(token_id)
    if limiter is None:
        if len(limiters) > 10000:  # forget idle tokens' limiters (none of their bodies in flight)
            for key in [k for k, v in limiters.items() if v.borrowed_tokens == 0 and v.statistics().tasks_waiting == 0]:
                del limiters[key]
        api = request.app.state.runtime.settings.extra.get("api") or {}
        limiter = limiters[token_id] = anyio.CapacityLimiter(int(api.get("bodies_per_token", BODIES_PER_TOKEN)))
    return limiter


def _min_rate(request: Request) -> tuple[float, float]:
    """(bytes a second, over seconds) a body must average: `[api] min_body_bytes_per_second`,
    `body_rate_window_seconds`."""
    api = request.app.state.runtime.settings.extra.get("api") or {}
    return float(api.get("min_body_bytes_per_second", MIN_RATE)), float(api.get("body_rate_window_seconds",
                                                                                RATE_WINDOW))


def _completions(request: Request) -> anyio.CapacityLimiter:
    """Threads for completions (whole ingests), `[api] max_completions` at once: each may hold a file of up to
    the in-memory analysis limit, so the rest wait in the event loop (holding no thread) and answer later."""
    limiter = getattr(request.app.state, "upload_completions", None)
    if limiter is None:
        limiter = anyio.CapacityLimiter(service.max_completions(request.app.state.runtime.settings.extra))
        request.app.state.upload_completions = limiter
    return limiter


async def _complete(request: Request, archive: Archive, caller: Caller, upload_id: str,
                    secret: str) -> service.Completed:
    return await anyio.to_thread.run_sync(lambda: service.complete(archive, caller, upload_id, secret),
                                          limiter=_completions(request))


class _Body:
    """Whether a request's body was read to its end (an answer before that closes the connection)."""

    def __init__(self) -> None:
        self.read = False


def _unread(request: Request, body: _Body, answer: Response) -> Response:
    """An answer given before the body was read: close the connection, so the client stops sending now
    (kept alive, the server would read and drop the whole rest before the client hears the answer)."""
    if not body.read and request.method in ("PATCH", "POST") and _declares_body(request):
        answer.headers["Connection"] = "close"
    return answer


def _declares_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


def _chunks(stream: AsyncIterator[bytes], body: _Body | None = None,
            min_rate: tuple[float, float] = (0.0, RATE_WINDOW)) -> Iterator[bytes]:
    """The request body as a blocking iterator of pieces up to about `PIECE`, for the service's worker thread.

    A body averaging less than `min_rate` (bytes a second, over a window) is
    cut off (`TooSlow`, after the bytes that arrived): a trickle must not hold a
    body thread forever (a silent body is cut by `api.http.app.BodyIdleTimeout`).
    """
    finished = False
    failed: list[BaseException] = []  # a body cut off mid-piece: what arrived is handed over first
    window = [0.0, 0]  # start of the current rate window (from the first read: not the wait for a thread), bytes

    def too_slow(size: int) -> bool:
        window[1] += size
        now = time.monotonic()
        if now - window[0] < min_rate[1]:
            return False
        slow = window[1] < min_rate[0] * (now - window[0])
        window[0], window[1] = now, 0
        return slow

    async def piece() -> bytes:
        nonlocal finished
        parts: list[bytes] = []
        held = 0
        if not window[0]:
            window[0] = time.monotonic()
        while held < PIECE:
            try:
                chunk = await stream.__anext__()
                if min_rate[0] > 0 and too_slow(len(chunk)):
                    parts.append(chunk)
                    failed.append(TooSlow(f"the body arrived slower than {min_rate[0]:g} bytes a second: cut off, "
                                          "what arrived is kept (ask HEAD for the offset and resume)"))
                    finished = True
                    break
            except StopAsyncIteration:
                finished = True
                if body is not None:
                    body.read = True
                break
            except Exception as exc:  # noqa: BLE001 - raised again after the bytes before it
                failed.append(exc)
                finished = True
                break
            parts.append(chunk)
            held += len(chunk)
        return b"".join(parts)

    while not finished:
        block: bytes = anyio.from_thread.run(piece)
        if block:
            yield block
    if failed:
        raise failed[0]


def encode_metadata(metadata: dict[str, str] | None) -> str:
    """tus `Upload-Metadata` from the keys the archive kept."""
    return ",".join(f"{key} {base64.b64encode(value.encode('utf-8')).decode('ascii')}"
                    for key, value in sorted((metadata or {}).items()))


def _completed_headers(done: service.Completed) -> dict[str, str]:
    return _headers(**{"Upload-Offset": str(done.size), "Upload-Length": str(done.size),
                       "Upload-Receipt": done.receipt_b64()})


async def _has_body(request: Request) -> bool:
    return _declares_body(request)


async def _append(request: Request, archive: Archive, caller: Caller, upload_id: str, secret: str, offset: int,
                  checksum: tuple[str, bytes] | None, body: _Body | None = None) -> int:
    stream = request.stream()
    metrics.UPLOADS_IN_PROGRESS.inc()
    try:
        async with _token_bodies(request, caller.token_id):  # waits here, holding no thread
            reached = await anyio.to_thread.run_sync(
                lambda: service.append(archive, caller, upload_id, secret, offset,
                                       _chunks(stream, body, _min_rate(request)), checksum),
                limiter=_body_threads(request))
    finally:
        metrics.UPLOADS_IN_PROGRESS.dec()
    if reached > offset:
        metrics.BYTES_RECEIVED.inc(reached - offset)
    return reached


@router.options("/v1/uploads", status_code=204, summary="tus discovery: version, extensions, maximum size")
async def discover(request: Request) -> Response:
    from archive.context import Runtime

    runtime: Runtime = request.app.state.runtime
    api = runtime.settings.extra.get("api") or {}
    return Response(status_code=204, headers=_headers(**{
        "Tus-Version": TUS_VERSION, "Tus-Extension": EXTENSIONS, "Tus-Checksum-Algorithm": CHECKSUMS,
        "Tus-Max-Size": str(int(api.get("max_upload_bytes", service.DEFAULT_MAX_BYTES)))}))


@router.post("/v1/uploads", status_code=201, summary="Create an upload (tus creation, creation-with-upload)")
async def create(request: Request) -> Response:
    try:
        _check_version(request)
        caller, archive = _caller(request)
        if request.headers.get("upload-defer-length") is not None:
            raise BadRequest("Upload-Defer-Length is not supported: send Upload-Length")
        length = _number(request, "upload-length")
        metadata = parse_metadata(request.headers.get("upload-metadata"))
        body = await _has_body(request)
        if body and request.headers.get("content-type") != OFFSET_TYPE:
            raise WrongType(f"a body sent with the creation must be {OFFSET_TYPE}")
        checksum = parse_checksum(request.headers.get("upload-checksum")) if body else None
        upload_id, secret, expires = await anyio.to_thread.run_sync(
            lambda: service.create_upload(archive, caller, length, metadata))
    except ServiceError as exc:
        return _unread(request, _Body(), _error(request, exc))
    location = f"{request.scope.get('root_path', '')}/v1/uploads/{upload_id}/{secret}"
    headers = _headers(Location=location, **{"Upload-Expires": _expires(expires)})
    offset = 0
    read = _Body()
    try:
        if body:
            try:
                offset = await _append(request, archive, caller, upload_id, secret, 0, checksum, read)
            except service.ChecksumMismatch:
                metrics.refuse("checksum")  # the upload exists; the client sends its first bytes again
            headers["Upload-Offset"] = str(offset)
        if offset == length and (body or length == 0):
            done = await _complete(request, archive, caller, upload_id, secret)
            headers.update(_completed_headers(done))
    except ServiceError as exc:
        answer = _error(request, exc)
        answer.headers["Location"] = location
        return _unread(request, read, answer)
    return Response(status_code=201, headers=headers)


@router.head(ROUTE, summary="Where an upload stands (tus core); finishes a completion cut off by a crash")
async def head(request: Request, upload_id: str, secret: str) -> Response:
    try:
        _check_version(request)
        caller, archive = _caller(request)
        found = await anyio.to_thread.run_sync(lambda: service.status(archive, caller, upload_id, secret))
        if found.completed is None and found.needs_completion:
            done = await _complete(request, archive, caller, upload_id, secret)
            finished = _completed_headers(done)
            if found.metadata:
                finished["Upload-Metadata"] = encode_metadata(found.metadata)
            return Response(status_code=200, headers=finished)
    except ServiceError as exc:
        return _error(request, exc)
    if found.completed is not None:
        headers = _completed_headers(found.completed)
    else:
        headers = _headers(**{"Upload-Offset": str(found.offset), "Upload-Expires": _expires(found.expires_at)})
        if found.length is not None:
            headers["Upload-Length"] = str(found.length)
    if found.metadata:
        headers["Upload-Metadata"] = encode_metadata(found.metadata)
    return Response(status_code=200, headers=headers)


@router.patch(ROUTE, status_code=204, summary="Send bytes at an offset (tus core, checksum); the last completes it")
async def patch(request: Request, upload_id: str, secret: str) -> Response:
    read = _Body()
    try:
        _check_version(request)
        caller, archive = _caller(request)
        if request.headers.get("content-type") != OFFSET_TYPE:
            raise WrongType(f"a PATCH body must be {OFFSET_TYPE}")
        offset = _number(request, "upload-offset")
        checksum = parse_checksum(request.headers.get("upload-checksum"))
        found = await anyio.to_thread.run_sync(lambda: service.status(archive, caller, upload_id, secret))
        if found.completed is not None:
            if offset != found.completed.size:
                raise service.OffsetMismatch(f"Upload-Offset {offset} is not where this upload stands "
                                             f"({found.completed.size})")
            if _declares_body(request):  # bytes past the end: refused, not silently dropped behind a 204
                raise service.TooLarge(f"the upload is complete ({found.completed.size} bytes): it takes no more")
            return Response(status_code=204, headers=_completed_headers(found.completed))
        if offset != found.offset:
            raise service.OffsetMismatch(f"Upload-Offset {offset} is not where this upload stands ({found.offset})")
        declared = request.headers.get("content-length")
        if (found.length is not None and declared is not None and declared.isdigit()
                and offset + int(declared) > found.length):
            raise service.TooLarge(f"the body runs past the upload's length ({found.length} bytes)")
        try:
            reached = await _append(request, archive, caller, upload_id, secret, offset, checksum, read)
        except ClientDisconnect:  # what arrived is kept (without a checksum); nobody reads this answer
            return Response(status_code=400, headers=_headers(Connection="close"))
        if found.length is not None and reached == found.length:
            done = await _complete(request, archive, caller, upload_id, secret)
            return Response(status_code=204, headers=_completed_headers(done))
    except ServiceError as exc:
        return _unread(request, read, _error(request, exc))
    return Response(status_code=204, headers=_headers(**{"Upload-Offset": str(reached),
                                                         "Upload-Expires": _expires(found.expires_at)}))


@router.delete(ROUTE, status_code=204, summary="Terminate an upload in progress (never a completed one)")
async def delete(request: Request, upload_id: str, secret: str) -> Response:
    try:
        _check_version(request)
        caller, archive = _caller(request)
        await anyio.to_thread.run_sync(lambda: service.terminate(archive, caller, upload_id, secret))
    except ServiceError as exc:
        return _error(request, exc)
    return Response(status_code=204, headers=_headers())
