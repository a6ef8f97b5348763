"""Routes: evidence bundles (`POST /v1/exports`, its plan, the bundle key) and registered recipients.

Thin adapters over `archive.exports.service` and `archive.exports.recipients`, called with the caller's role.

`POST /v1/exports` streams the bundle as it is written, never spooled: the export runs in a thread that
writes into a bounded queue (`QUEUE_CHUNKS` chunks of `CHUNK` bytes at most, so memory stays bounded
whatever the bundle's size) that the response drains. The response starts only once the first `CHUNK`
bytes are ready, so whatever the export refuses up front (a bad request, an unknown recipient, a hidden
incident, nothing to export) is an ordinary JSON error. A failure later cuts the connection: the client
gets a truncated transfer, never a complete-looking bundle, and the export is recorded as a failed
transfer. A client that goes away stops the export at its next write (also a failed transfer). A split
export is several files: not over HTTP (`evidence export --split-size`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.http.routes.records import who
from archive.services.errors import Invalid, ServiceError

if TYPE_CHECKING:
    from archive.context import Archive
    from archive.exports.selection import ExportRequest
    from archive.roles import Role

router = APIRouter(max_body_size=1 << 20)
log = logging.getLogger("api.http.exports")

CHUNK = 1 << 20  # bytes gathered before a chunk goes to the response
QUEUE_CHUNKS = 4  # chunks waiting for the client at most: memory per export ~ (QUEUE_CHUNKS + 1) * CHUNK
POLL_SECONDS = 0.25  # how often a blocked writer or reader looks whether the other side gave up
IDLE_SECONDS = 600.0  # a response that takes nothing for this long is gone (never started, or stuck)
MAX_IDS = 10_000

# `query`: the options of `GET /v1/search` (same names) -> the search service's field names.
QUERY_FIELDS = {"from": "date_from", "to": "date_to", "date_from": "date_from", "date_to": "date_to",
                "governorate": "governorate", "box": "box", "party": "party", "type": "type_",
                "victim": "category", "source_kind": "source_kind", "linked": "linked",
                "captured_from": "captured_from", "captured_to": "captured_to", "device": "device",
                "sha256": "sha256", "similar_to": "similar_to"}


class Selection(BaseModel):
    """What to export (as `evidence export`): incidents, items or a search, and the purpose."""

    model_config = ConfigDict(extra="forbid")

    purpose: str = Field(max_length=16, description="un | court | partner | internal")
    incidents: list[str] = Field(default_factory=list, max_length=MAX_IDS)
    items: list[str] = Field(default_factory=list, max_length=MAX_IDS)
    query: dict[str, Any] | None = Field(None, description="Options of GET /v1/search, e.g. {\"party\": \"x\"}.")
    overrides: list[str] = Field(default_factory=list, max_length=MAX_IDS)
    override_reason: str | None = Field(None, max_length=5000)


class ExportBody(Selection):
    """An export: the selection, who can open it, and how it is serialized."""

    to: str | None = Field(None, max_length=128, description="A registered recipient's name.")
    recipients: list[str] = Field(default_factory=list, max_length=100,
                                  description="Ad-hoc age recipients (age1…): custodians only.")
    plaintext: bool = False
    format: Literal["zip", "tar"] = "zip"
    split_size: Any = Field(None, description="Not offered over HTTP: refused (use `evidence export`).")


class RecipientBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    age: str = Field(min_length=1, max_length=256, description="The recipient's age public key (age1…).")
    kind: Literal["un", "court", "partner"]


def _query(options: dict[str, Any] | None) -> Any:
    from archive.services.record_search import Query

    if options is None:
        return None
    unknown = sorted(set(options) - set(QUERY_FIELDS))
    if unknown:
        raise Invalid(f"query: unknown search option(s) {', '.join(unknown)} (those of GET /v1/search)")
    values: dict[str, Any] = {}
    for name, value in options.items():
        linked = name == "linked"
        if value is not None and not isinstance(value, bool if linked else str):
            raise Invalid(f"query: {name} must be {'true or false' if linked else 'a string'}")
        values[QUERY_FIELDS[name]] = value
    return Query(**values)


def _request(body: Selection) -> ExportRequest:
    from archive.exports.selection import ExportRequest

    if not (body.incidents or body.items or body.query):
        raise Invalid("choose what to export: incidents, items or query")
    return ExportRequest(purpose=body.purpose, incidents=tuple(body.incidents), items=tuple(body.items),
                         query=_query(body.query), overrides=tuple(body.overrides),
                         override_reason=body.override_reason)


class ClientGone(Exception):
    """The client stopped reading: the export stops (a failed transfer)."""


_DONE = object()


class Pipe:
    """The writable the exporter writes into: chunks of CHUNK bytes into a bounded queue the response drains."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_CHUNKS)
        self.gone = threading.Event()  # the client went away (or the response ended)
        self._buffer = bytearray()
        self._taken = time.monotonic()  # when the reader last took something

    def _put(self, value: Any) -> None:
        while True:
            if self.gone.is_set():
                raise ClientGone("the client went away")
            try:
                self.queue.put(value, timeout=POLL_SECONDS)
                return
            except queue.Full:
                if time.monotonic() - self._taken > IDLE_SECONDS:
                    self.gone.set()

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) >= CHUNK:
            chunk = bytes(self._buffer[:CHUNK])
            del self._buffer[:CHUNK]
            self._put(chunk)
        return len(data)

    def flush(self) -> None:
        """Send what is buffered and wait until the response took every chunk (ClientGone if it went away):
        called at the end of the bundle, so its transfer is recorded only once the bytes were handed over."""
        if self._buffer:
            self._put(bytes(self._buffer))
            self._buffer.clear()
        while not self.queue.empty():
            if self.gone.is_set():
                raise ClientGone("the client went away")
            if time.monotonic() - self._taken > IDLE_SECONDS:
                self.gone.set()
            time.sleep(POLL_SECONDS / 5)

    def finish(self, outcome: Any) -> None:
        """The last bytes, then the outcome (`_DONE` or the exception that ended the export)."""
        if self._buffer and outcome is _DONE:
            self._put(bytes(self._buffer))
        self._buffer.clear()
        try:
            self._put(outcome)
        except ClientGone:
            pass

    def next(self) -> Any:
        """The next chunk or outcome (blocking, for the response's thread)."""
        while True:
            try:
                item = self.queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if self.gone.is_set():
                    return ClientGone("the response ended")
                continue
            self._taken = time.monotonic()
            return item


def _run(pipe: Pipe, archive: Archive, request: ExportRequest, role: Role, body: ExportBody) -> None:
    from archive.exports.service import export_bundle

    try:
        result = export_bundle(archive, request, role=role, stream=pipe,  # type: ignore[arg-type]
                               to=body.to or None, recipients=body.recipients, plaintext=body.plaintext,
                               fmt=body.format)
    except BaseException as exc:  # noqa: BLE001 - handed to the response: an error status or a cut connection
        if not isinstance(exc, ClientGone):
            log.warning("export failed: %s: %s", type(exc).__name__, exc)
        pipe.finish(exc)
        return
    log.info("export %s streamed (transfer event %s)", result.export_id, result.transfer_seq)
    pipe.finish(_DONE)


def _drain(pipe: Pipe, first: bytes) -> Iterator[bytes]:
    yield first
    while True:
        item = pipe.next()
        if item is _DONE:
            return
        if isinstance(item, BaseException):
            raise item  # the connection is cut: a truncated transfer, never a complete-looking bundle
        yield item


class BundleStream(StreamingResponse):
    """The streamed bundle; whichever way the response ends, the export's thread is told to stop writing."""

    def __init__(self, pipe: Pipe, content: Iterator[bytes], headers: dict[str, str]) -> None:
        super().__init__(content, media_type="application/octet-stream", headers=headers)
        self.pipe = pipe

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.pipe.gone.set()


@router.post("/v1/exports", response_class=StreamingResponse,
             responses={200: {"content": {"application/octet-stream": {}},
                              "description": "The bundle: a zip or tar, age-encrypted unless plaintext was asked."},
                        400: {"description": "A refused request (nothing written or recorded)."}})
def export(request: Request, body: ExportBody) -> Response:
    """Stream an evidence bundle (`evidence export` to standard output): two custody events, export started
    and transfer (with the SHA-256 of what was sent)."""
    archive, role = who(request)
    if body.split_size is not None:
        raise ServiceError("a split export is several files: not offered over HTTP (use `evidence export "
                           "--split-size`)")
    return stream_bundle(archive, role, _request(body), body)


def stream_bundle(archive: Archive, role: Role, export_request: ExportRequest, body: ExportBody) -> Response:
    """The bundle as a streamed download (blocking until its first chunk: a refusal up front is raised, a
    `ServiceError`); POST /v1/exports and the export page's download both answer with it."""
    pipe = Pipe()
    thread = threading.Thread(target=_run, args=(pipe, archive, export_request, role, body),
                              name="evidence-export", daemon=True)
    thread.start()
    first = pipe.next()
    if isinstance(first, BaseException):
        raise first  # refused before a byte was sent: a JSON error
    suffix = ("." + body.format) + ("" if body.plaintext else ".age")
    headers = {"Content-Disposition": f'attachment; filename="evidence-bundle{suffix}"',
               "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if first is _DONE:  # cannot happen (a bag is never empty), but never hang on it
        return Response(b"", media_type="application/octet-stream", headers=headers)
    return BundleStream(pipe, _drain(pipe, first), headers)


@router.post("/v1/exports/plan")
def plan(request: Request, body: ExportBody) -> dict[str, Any]:
    """What an export would carry and withhold, and why (counts and reasons, no identities); the same body as
    POST /v1/exports, whose delivery fields (to, recipients, plaintext, format) change nothing here."""
    from archive.exports.service import plan_export

    archive, role = who(request)
    return plan_export(archive, _request(body), role=role)


@router.get("/v1/exports/key", response_class=PlainTextResponse)
def bundle_key(request: Request) -> str:
    """The bundle verifier key (C2SP vkey, one line): what a bundle's `signature.note` verifies under."""
    from archive.custody.bundle_key import bundle_vkey

    archive, _role = who(request)
    return bundle_vkey(archive) + "\n"


@router.get("/v1/recipients")
def list_recipients(request: Request, removed: bool = False) -> list[dict[str, Any]]:
    """The registered recipients (`evidence recipients list`)."""
    from archive.exports.recipients import list_recipients as service

    archive, role = who(request)
    return service(archive, role=role, removed=removed)


@router.post("/v1/recipients", status_code=201)
def add_recipient(request: Request, body: RecipientBody) -> dict[str, Any]:
    """Register a recipient (`evidence recipients add`): a custody event."""
    from archive.exports.recipients import add_recipient as service

    archive, role = who(request)
    return service(archive, body.name, body.age, body.kind, role=role)


@router.delete("/v1/recipients/{name}")
def remove_recipient(request: Request, name: str) -> dict[str, Any]:
    """Stop exporting to a recipient (`evidence recipients remove`): a custody event."""
    from archive.exports.recipients import remove_recipient as service

    archive, role = who(request)
    return service(archive, name, role=role)
