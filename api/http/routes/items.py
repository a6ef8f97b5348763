"""Routes: items (list, show, download of the original, similar) and the near-duplicate search by file.

Thin adapters over `archive.services.items`, `archive.services.originals` and
the similar-search service (`archive.similarity`), each called with the
caller's role: compartments hide items as not found, an auditor gets the
non-personal view (the services decide what that is).

Downloading an original (`GET /v1/items/{item_id}/original`) reads through
`open_original_for` (the caller's view of `open_original`), which decrypts a
stored copy, checks the bytes against the custody log's commitment to the
item and records the access as a custody event. Nothing plaintext touches a
disk. Verification needs every byte, so:
an original of up to `VERIFY_IN_MEMORY` bytes is read and verified whole before
the response starts (a bad copy is then skipped for the next one, and the
client gets either the verified bytes or an error status); a larger one is
streamed with its `Content-Length`, and the service holds back the final
chunk until the digest matched (a client that breaks the download off before
the end has had plaintext all the same: an access event too, `warning`,
unverified). A mismatch there is recorded (the copy marked
and queued for repair, the access a failure event) and the connection is cut
without the last chunk, so the client sees a truncated transfer, never a
complete wrong file. `Repr-Digest` carries the SHA-256 the catalog holds, for
the client to check too.

`POST /v1/similar` compares a file sent in the request with everything kept
and keeps nothing: the body is parsed as it arrives into memory (never through
the framework's form parser, which spools to a temporary file past 1 MB), at
most `MAX_SIMILAR_BYTES` (413 beyond), fingerprinted in the sandbox from
those bytes, and dropped; no item, no custody event, no file.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.http.routes.records import AFTER, LIMIT, Page, View, multipart_parts, who
from archive.services.errors import Invalid

if TYPE_CHECKING:
    from archive.services.originals import Original, OriginalCopy

router = APIRouter(max_body_size=1 << 20)  # JSON bodies; /v1/similar takes a file, up to its own limit
log = logging.getLogger("api.http.items")

VERIFY_IN_MEMORY = 8 * 1024 * 1024  # verified whole before a byte is sent (memory: this, per download at once)
MAX_SIMILAR_BYTES = 64 * 1024 * 1024  # a file to compare is held in memory: a photo, or a short clip
DOWNLOAD_PURPOSE = "download original (http)"


class Match(BaseModel):
    id: str
    distance: int
    frame_match_share: float | None = None


class ItemEntry(View):
    """One item of a list: for custodians and investigators its hash and size (when this server can open them);
    for auditors only the id, status and the day it was received."""

    id: str
    status: str
    sha256: str | None = None
    size: int | None = None
    size_bucket: str | None = None
    duplicate: bool | None = None
    received_day: str | None = None


class ItemPage(Page):
    data: list[ItemEntry]  # type: ignore[assignment]


class ItemView(View):
    """One item: everything the catalog knows for custodians and investigators; for auditors its states, where
    its copies are and the custody events that name it (`archive.services.items.AuditedRecord`)."""

    id: str
    status: str
    replicas: list[dict[str, Any]]


def _summary(entry: Any) -> dict[str, Any]:
    return entry.as_dict() if hasattr(entry, "as_dict") else dict(entry)


@router.get("/v1/items", response_model=ItemPage, response_model_exclude_unset=True)
def list_items(request: Request, limit: int = LIMIT, after: str | None = AFTER) -> Page:
    """Every item, oldest first (`evidence list`), as the caller's role may see them."""
    from archive.services.items import list_items as service

    archive, role = who(request)
    rows = [_summary(i) for i in service(archive, role=role, limit=limit + 1, after=after)]  # paged in SQL
    return Page(data=rows[:limit], next=str(rows[limit - 1]["id"]) if len(rows) > limit else None)


@router.get("/v1/items/{item_id}", response_model=ItemView, response_model_exclude_unset=True)
def show_item(request: Request, item_id: str) -> dict[str, Any]:
    """Everything the catalog knows about one item that the caller's role may see (`evidence show`)."""
    from archive.services.items import show_item as service

    archive, role = who(request)
    return _summary(service(archive, item_id, role=role))


@router.get("/v1/items/{item_id}/similar", response_model=list[Match], response_model_exclude_none=True)
def similar_to_item(request: Request, item_id: str,
                    max_distance: int = Query(11, ge=0, le=64, description="Largest Hamming distance (0-64).")
                    ) -> list[dict[str, Any]]:
    """Items that look like this one (`evidence similar ITEM`), best first."""
    from archive.similarity import similar_to_item as service

    archive, role = who(request)
    return [m.as_dict() for m in service(archive, item_id, max_distance, role=role)]


class ProvenanceChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["upload", "email", "messaging", "social_media", "field_researcher", "legacy_disk"] | None = None
    source: str | None = Field(None, min_length=1, max_length=128, description="The source record (ref or id).")
    arrival: int | None = Field(None, ge=1, description="Which arrival, when the item arrived more than once.")
    reason: str | None = Field(None, max_length=5000)


@router.patch("/v1/items/{item_id}/provenance")
def set_provenance(request: Request, item_id: str, body: ProvenanceChange) -> dict[str, Any]:
    """Give an arrival of the item its channel and source record (`evidence provenance`): a record change in
    the item's custody timeline."""
    from archive.services.sources import set_provenance as service

    archive, role = who(request)
    return service(archive, item_id, role=role, channel=body.channel, source=body.source, arrival=body.arrival,
                   reason=body.reason)


SIMILAR_BODY = {"content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary",
                            "description": "A picture or a video to compare (kept nowhere)."}}}}}}


class _Memory:
    """A part's bytes, in memory only."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> None:
        self.data += chunk


@router.post("/v1/similar", response_model=list[Match], response_model_exclude_none=True,
             max_body_size=MAX_SIMILAR_BYTES + 64 * 1024,
             openapi_extra={"requestBody": SIMILAR_BODY},
             responses={413: {"description": f"The file is larger than {MAX_SIMILAR_BYTES} bytes."}})
async def similar_to_file(request: Request,
                          max_distance: int = Query(11, ge=0, le=64, description="Largest Hamming distance (0-64).")
                          ) -> list[dict[str, Any]]:
    """Items that look like the file in the request's `file` field; the file is compared, never kept."""
    from fastapi.concurrency import run_in_threadpool

    from archive.similarity import similar_to_upload

    archive, role = who(request)
    parts: dict[str, _Memory] = {}

    def sink(field: str, _filename: str | None) -> _Memory:
        if field != "file" or field in parts:
            raise Invalid("give one file, in the form field `file`")
        parts[field] = _Memory()
        return parts[field]

    await multipart_parts(request, sink, MAX_SIMILAR_BYTES + 64 * 1024)
    if "file" not in parts or not parts["file"].data:
        raise Invalid("give the file to compare in the form field `file`")
    if len(parts["file"].data) > MAX_SIMILAR_BYTES:
        raise HTTPException(status_code=413, detail=f"a file to compare may be at most {MAX_SIMILAR_BYTES} bytes")
    data = bytes(parts.pop("file").data)
    matches = await run_in_threadpool(similar_to_upload, archive, data, max_distance, role=role)
    return [m.as_dict() for m in matches]


def _first(copy: OriginalCopy) -> tuple[Iterator[bytes], list[bytes], bool]:
    """Start decrypting a copy: (the rest of its chunks, the chunks read so far, whether that was all of it,
    verified). Reads up to VERIFY_IN_MEMORY bytes before anything is sent."""
    chunks = copy.chunks()
    held: list[bytes] = []
    size = 0
    for chunk in chunks:
        held.append(chunk)
        size += len(chunk)
        if size >= VERIFY_IN_MEMORY:
            return chunks, held, False
    return chunks, held, True


def _rest(original: Original, copy: OriginalCopy, chunks: Iterator[bytes], held: list[bytes]) -> Iterator[bytes]:
    """The streamed original; on a failure mid-stream, recorded and the connection cut (see the docstring)."""
    yield from held
    held.clear()
    try:
        yield from chunks
    except Exception as exc:  # noqa: BLE001 - recorded, then re-raised: the transfer must not end cleanly
        original.failures.append(f"{copy.replica.backend}: {exc}")
        copy.record_bad(exc)
        original.refuse()
        log.error("download of item %s cut short: %s", original.item.id, exc)
        raise


class OriginalStream(StreamingResponse):
    """The streamed original; a download the client breaks off before the end is an access all the same
    (the service records one once the bytes are verified, at the end): recorded as unfinished."""

    def __init__(self, original: Original, copy: OriginalCopy, content: Iterator[bytes],
                 headers: dict[str, str]) -> None:
        super().__init__(content, media_type="application/octet-stream", headers=headers)
        self.original, self.copy = original, copy

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from fastapi.concurrency import run_in_threadpool

        try:
            await super().__call__(scope, receive, send)
        finally:
            if not self.copy.sha256 and not self.original.failures:  # neither verified nor failed: broken off
                await run_in_threadpool(self.copy.record_unfinished)


@router.get("/v1/items/{item_id}/original", response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "The original's bytes, verified against the custody log."},
                       409: {"description": "No stored copy could be read and verified."},
                       503: {"description": "The access identity is not unlocked in the server."}})
def download_original(request: Request, item_id: str) -> Response:
    """The original, decrypted and verified against the custody log; the access is a custody event."""
    from archive.services.items import ItemRecord, open_original_for
    from archive.services.items import show_item as show

    archive, role = who(request)
    original = open_original_for(archive, item_id, role=role, purpose=DOWNLOAD_PURPOSE)  # hidden: not found
    record = show(archive, original.item.id, role=role)
    assert isinstance(record, ItemRecord)  # an auditor's view never gets here (open_original_for refuses it)
    headers = {"Content-Disposition": f'attachment; filename="{record.id}"', "Cache-Control": "no-store",
               "X-Content-Type-Options": "nosniff"}
    if record.sha256:
        headers["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(record.sha256)).decode()}:"
    for copy in original.copies:
        try:
            chunks, held, whole = _first(copy)
        except Exception as exc:  # noqa: BLE001 - this copy is bad or unreachable: recorded, try the next
            original.failures.append(f"{copy.replica.backend}: {exc}")
            copy.record_bad(exc)
            continue
        if whole:  # verified (and the access recorded) before a byte is sent
            return Response(b"".join(held), media_type="application/octet-stream", headers=headers)
        if record.size is not None:
            headers["Content-Length"] = str(record.size)
        return OriginalStream(original, copy, _rest(original, copy, chunks, held), headers)
    raise original.refuse()
