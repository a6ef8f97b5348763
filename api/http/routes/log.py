"""Routes: the custody log (see `api.http.matrix` for who may call each).

`/v1/log/` is laid out as a C2SP tlog-tiles log (`checkpoint`, `tile/…`), so
a standard tiles client pointed at it can follow and verify the log; proofs
and consistency are also served ready-made. Everything here is what the log
already publishes to every storage site: ids, event types and seqs, never a
name or a file's hash.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from api.http.auth import archive_for
from archive.services.errors import NotFound, ServiceError

router = APIRouter(prefix="/v1/log", tags=["log"])

IMMUTABLE = "private, max-age=31536000, immutable"
PARTIAL = "private, max-age=60"  # a partial tile's bytes never change, but it disappears once its tile fills
NOTE = "text/plain; charset=utf-8"
# response_class=Response (no media type of its own) keeps the error answers documented as JSON.
TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}
BINARY = {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}


class NotCovered(ServiceError):
    """The event exists but no signed checkpoint covers it yet: ask again shortly."""

    status_code = 409
    code = "not_covered"
    headers = {"Retry-After": "10"}


def _custody_error(exc: ServiceError, seq: int | None = None) -> ServiceError:
    message = str(exc)
    if "not covered by a checkpoint" in message or "no checkpoint yet" in message:
        return NotCovered(message)
    if "no event with sequence number" in message or "no checkpoint of size" in message:
        return NotFound(message)
    return exc


@router.get("/checkpoint", response_class=Response, summary="The latest signed checkpoint (C2SP note)",
            responses={200: TEXT, 404: {"description": "No checkpoint yet"}})
def checkpoint(request: Request) -> Response:
    from archive.services.log_tiles import latest_note

    return Response(latest_note(archive_for(request)), media_type=NOTE, headers={"Cache-Control": "no-cache"})


@router.get("/vkey", response_class=Response, summary="The checkpoints' verifier key (C2SP vkey)",
            responses={200: TEXT})
def vkey(request: Request) -> Response:
    from archive.custody.service import verifier_key

    return Response(verifier_key(archive_for(request)).encode() + "\n", media_type=NOTE)


@router.get("/proof/{seq}", response_class=Response,
            summary="Inclusion proof of event `seq` (C2SP tlog-proof, against the latest checkpoint)",
            responses={200: TEXT, 404: {"description": "No such event"},
                       409: {"description": "Not covered by a checkpoint yet (Retry-After)"}})
def proof(request: Request, seq: int = Path(ge=0, le=2**62)) -> Response:
    from archive.custody.proof_format import tlog_proof

    try:
        text = tlog_proof(archive_for(request), seq)
    except ServiceError as exc:
        raise _custody_error(exc, seq) from None
    return Response(text, media_type=NOTE)


@router.get("/consistency", summary="RFC 9162 consistency proof between two signed checkpoints",
            responses={404: {"description": "No checkpoint of that size"}})
def consistency(request: Request, old: int = Query(ge=0, le=2**62), new: int = Query(ge=0, le=2**62)) -> dict:
    from archive.custody.service import prove_consistency

    try:
        return prove_consistency(archive_for(request), old, new)
    except ServiceError as exc:
        raise _custody_error(exc) from None


@router.get("/tile/{path:path}", response_class=Response,
            summary="C2SP tlog-tiles: hash tiles `<L>/<N>[.p/<W>]` and entry bundles `entries/<N>[.p/<W>]`",
            responses={200: BINARY,
                       404: {"description": "No such tile, or beyond the signed tree"}})
def tile(request: Request, path: str) -> Response:
    from archive.services.log_tiles import read_tile

    found = read_tile(archive_for(request), path)
    return Response(found.data, media_type="application/octet-stream",
                    headers={"Cache-Control": IMMUTABLE if found.full else PARTIAL})
