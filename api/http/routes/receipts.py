"""Routes: receipts (see api.http.matrix for who may call each).

Plain text, byte for byte what the archive signed: the receipt verifier key
(C2SP vkey), a receipt (C2SP signed note) and the tlog-proof of its event
(c2sp.org/tlog-proof@v1), so a contributor can save each to a file and check it
offline (`evidence receipt verify`, or any C2SP tooling).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import PlainTextResponse, Response

from api.http.auth import archive_for, current_caller
from archive.services import receipts

router = APIRouter(tags=["receipts"])

_TEXT: dict[int | str, dict[str, Any]] = {200: {"content": {"text/plain": {"schema": {"type": "string"}}}}}
_ERROR = {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "string"},
                                                                           "detail": {"type": "string"}}}}}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such upload for this caller", "content": _ERROR},
    409: {"description": "For a proof: no checkpoint covers the event yet (`not_covered`, with Retry-After)",
          "content": _ERROR},
    503: {"description": "The catalog key is locked: the receipt is sealed", "content": _ERROR},
}
UploadId = Path(min_length=1, max_length=64, description="The upload's id (the path segment before its secret)")


@router.get("/v1/receipts/key", response_class=Response, responses=_TEXT,
            summary="The receipt verifier key (C2SP vkey)")
def receipt_key(request: Request) -> PlainTextResponse:
    return PlainTextResponse(receipts.receipt_key(archive_for(request)) + "\n")


@router.get("/v1/receipts/{upload_id}", response_class=Response, responses={**_TEXT, **_NOT_FOUND},
            summary="The signed receipt of an upload (a C2SP signed note)")
def receipt(request: Request, upload_id: str = UploadId) -> PlainTextResponse:
    return PlainTextResponse(receipts.get_receipt(archive_for(request), current_caller(request), upload_id))


@router.get("/v1/receipts/{upload_id}/proof", response_class=Response, responses={**_TEXT, **_NOT_FOUND},
            summary="The C2SP tlog-proof of the upload's ingestion event")
def receipt_proof(request: Request, upload_id: str = UploadId) -> PlainTextResponse:
    text = receipts.receipt_proof(archive_for(request), current_caller(request), upload_id)
    return PlainTextResponse(text, headers={"Content-Disposition": f'attachment; filename="{_safe(upload_id)}'
                                                                    '.tlog-proof"'})


def _safe(upload_id: str) -> str:
    return "".join(c for c in upload_id if c.isascii() and (c.isalnum() or c in "-_.")) or "receipt"
