"""Routes: WebDAV under /dav/ for the apps field activists already use (OpenArchive Save, rclone).

Four methods and no more (RFC 4918, class 1 without locks): OPTIONS,
PROPFIND, MKCOL and PUT; anything else (GET, DELETE, MOVE, COPY, PROPPATCH,
LOCK …) is 405, so nothing under /dav/ can read, rename or remove evidence.

- PUT streams the body into `archive.services.uploads.ingest_stream` (bytes
  encrypted in flight under a per-request key held in memory) and answers 201
  only once the item is committed with its minimum of verified copies; a
  refusal is a 4xx with a plain-text reason (WebDAV clients show the body).
- PROPFIND lists the collection asked for and, at Depth 1, only this token's
  uploads of the last hour (`archive.services.recent_uploads`): what a client
  needs to check its copy (rclone reads the size back after each PUT), and
  nothing else of the archive.
- MKCOL is a no-op that succeeds: folders are labels, not places.

Paths are labels, never file system paths: `.` and `..` segments are resolved
within the label (never above /dav/), so `../../etc/passwd` is the label
`etc/passwd`; control characters are kept in the label but escaped on output
(percent-encoded in hrefs, replaced in display names, which XML 1.0 could not
carry). Authentication (Basic, the token as password) is `api.http.auth`'s.
Excluded from the OpenAPI document: OpenAPI has no PROPFIND or MKCOL.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from api.http import metrics
from api.http.auth import archive_for, current_caller
from api.http.routes.uploads import _body_threads, _chunks, _min_rate, _token_bodies
from archive.services.errors import ServiceError

router = APIRouter(tags=["webdav"])

PREFIX = "/dav/"
METHODS = ["OPTIONS", "PROPFIND", "MKCOL", "PUT"]
ALLOW = ", ".join(METHODS)
MAX_LABEL = 4096  # characters of a path under /dav/ (PATH_MAX; the uploads service keeps labels that long); longer: 414
MAX_PROPFIND_BODY = 64 * 1024
DAV = "DAV:"
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")  # not allowed in XML 1.0

ET.register_namespace("D", DAV)


def text(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A plain-text answer: WebDAV clients show the body of an error as it is."""
    return Response(message.rstrip("\n") + "\n", status_code=status, media_type="text/plain; charset=utf-8",
                    headers=headers)


def label_of(path: str) -> str:
    """The label a path under /dav/ stands for: `.`/`..` resolved inside it, empty segments dropped."""
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    return "/".join(parts)


def href(label: str, collection: bool) -> str:
    """The absolute, percent-encoded href of a label (collections end in `/`)."""
    encoded = quote(label, safe="/")
    return PREFIX + encoded + ("/" if collection and encoded else "")


def display(name: str) -> str:
    return _NOT_XML.sub("\ufffd", name)


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def _response(parent: ET.Element, label: str, *, collection: bool, size: int | None = None,
              modified: datetime | None = None) -> None:
    node = ET.SubElement(parent, f"{{{DAV}}}response")
    ET.SubElement(node, f"{{{DAV}}}href").text = href(label, collection)
    propstat = ET.SubElement(node, f"{{{DAV}}}propstat")
    prop = ET.SubElement(propstat, f"{{{DAV}}}prop")
    ET.SubElement(prop, f"{{{DAV}}}displayname").text = display(label.rsplit("/", 1)[-1])
    kind = ET.SubElement(prop, f"{{{DAV}}}resourcetype")
    if collection:
        ET.SubElement(kind, f"{{{DAV}}}collection")
    else:
        ET.SubElement(prop, f"{{{DAV}}}getcontentlength").text = str(size or 0)
        ET.SubElement(prop, f"{{{DAV}}}getcontenttype").text = "application/octet-stream"
    ET.SubElement(prop, f"{{{DAV}}}getlastmodified").text = http_date(modified or datetime.now(UTC))
    ET.SubElement(propstat, f"{{{DAV}}}status").text = "HTTP/1.1 200 OK"


def multistatus(label: str, as_collection: bool, depth: str, uploads: list[Any]) -> bytes | None:
    """The 207 body for a PROPFIND of `label`, or None when it names nothing (404).

    A path asked for with a trailing slash (how clients list a folder) is
    always a collection, empty or not; without one it is this token's latest
    upload of that name, else a collection when uploads sit below it, else nothing.
    """
    files = {u.label: u for u in uploads}  # the latest upload of a name wins (oldest first in)
    root = ET.Element(f"{{{DAV}}}multistatus")
    below = [u for u in uploads if not label or u.label.startswith(label + "/")]
    if not as_collection and label and label in files:
        upload = files[label]
        _response(root, label, collection=False, size=upload.size, modified=upload.received)
        return _serialize(root)
    if not as_collection and label and not below:
        return None
    newest = max((u.received for u in below), default=None)
    _response(root, label, collection=True, modified=newest)
    if depth != "0":
        start = len(label) + 1 if label else 0
        children: dict[str, Any] = {}
        folders: dict[str, datetime] = {}
        for upload in below:
            rest = upload.label[start:]
            name, sep, _ = rest.partition("/")
            child = f"{label}/{name}" if label else name
            if sep:
                folders[child] = max(folders.get(child, upload.received), upload.received)
            else:
                children[child] = upload
        for child, moment in sorted(folders.items()):
            _response(root, child, collection=True, modified=moment)
        for child, upload in sorted(children.items()):
            if child not in folders:
                _response(root, child, collection=False, size=upload.size, modified=upload.received)
    return _serialize(root)


def _serialize(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _label_or_refusal(path: str) -> tuple[str, Response | None]:
    if len(path) > MAX_LABEL:
        return "", text(414, f"the name is longer than {MAX_LABEL} characters")
    return label_of(path), None


@router.api_route("/dav/{path:path}", methods=METHODS, include_in_schema=False)
async def dav(request: Request, path: str) -> Response:
    """WebDAV for field apps: see the module docstring."""
    method = request.method.upper()
    if method == "OPTIONS":
        return Response(status_code=200, headers={"DAV": "1", "Allow": ALLOW, "MS-Author-Via": "DAV",
                                                  "Content-Length": "0"})
    label, refusal = _label_or_refusal(path)
    if refusal is not None:
        return refusal
    if method == "MKCOL":
        await _discard_body(request)
        return Response(status_code=201)  # folders are labels: nothing to make
    if method == "PROPFIND":
        return await _propfind(request, label, as_collection=path.endswith("/") or not label)
    return await _put(request, label, path)


async def _discard_body(request: Request, limit: int = MAX_PROPFIND_BODY) -> None:
    """Read and drop a small request body (PROPFIND's prop list: every listing gives the same four)."""
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            break


async def _propfind(request: Request, label: str, *, as_collection: bool) -> Response:
    from archive.services.recent_uploads import recent_uploads

    await _discard_body(request)
    depth = request.headers.get("depth", "1").strip().lower()
    depth = "0" if depth == "0" else "1"  # "infinity" is answered as 1: nothing here is deeper than labels
    caller = current_caller(request)
    archive = archive_for(request)
    try:
        uploads = await run_in_threadpool(recent_uploads, archive, caller)
    except ServiceError as exc:
        return _refused(exc)
    body = multistatus(label, as_collection, depth, uploads)
    if body is None:
        return text(404, "nothing of that name was uploaded with this token in the last hour")
    return Response(body, status_code=207, media_type='application/xml; charset="utf-8"')


def _refused(exc: ServiceError) -> Response:
    from api.http.errors import status_of

    status, _ = status_of(exc)
    status = int(getattr(exc, "status_code", status))
    headers = getattr(exc, "headers", None)
    return text(status, f"refused: {exc}", headers=headers)


async def _put(request: Request, label: str, path: str) -> Response:
    from archive.services.uploads import ingest_stream, limits

    if not label or path.endswith("/"):
        return text(405, "PUT needs a file name: a folder cannot be uploaded", headers={"Allow": "OPTIONS, PROPFIND, "
                                                                                              "MKCOL"})
    caller = current_caller(request)
    archive = archive_for(request)
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limits(archive)[0]:  # said before a byte is sent: spare the link
        metrics.refuse("too_large")
        return text(413, f"refused: larger than this archive takes ({limits(archive)[0]} bytes at most)")
    filetype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower() or None
    if filetype in ("application/octet-stream", "") or (filetype and "/" not in filetype):
        filetype = None
    metrics.UPLOADS_IN_PROGRESS.inc()
    try:
        # The tus bodies' limits: this token's share of the body threads (waiting holds no thread), their own
        # pool apart from the rest of the API, and the minimum rate (a trickling PUT is cut, never held forever).
        stream = request.stream()
        async with _token_bodies(request, caller.token_id):
            completed = await anyio.to_thread.run_sync(
                lambda: ingest_stream(archive, caller, _chunks(stream, None, _min_rate(request)), filename=label,
                                      filetype=filetype),
                limiter=_body_threads(request))
    except ClientDisconnect:
        metrics.refuse("disconnect")
        return text(400, "the body was cut off before its end: nothing was kept")
    except ServiceError as exc:
        metrics.refuse(str(getattr(exc, "code", None) or "refused"))
        return _refused(exc)
    finally:
        metrics.UPLOADS_IN_PROGRESS.dec()
    metrics.BYTES_RECEIVED.inc(completed.size)
    if completed.status == "refused":
        return text(422, f"refused: {completed.reason or 'the archive did not keep this file'}")
    headers: dict[str, str] = {}
    if completed.receipt:
        import base64

        headers["Upload-Receipt"] = base64.b64encode(completed.receipt.encode()).decode()
    return text(201, completed.receipt or "received", headers=headers)
