"""The upload page: files sent with tus-js-client to our tus server (/v1/uploads), as the signed-in browser.

The page itself sends nothing: its script (`upload.js`) talks tus 1.0.0 to
`/v1/uploads` with the session cookie and the `X-CSRF-Token` header (those
routes are in `api.http.matrix.COOKIE_API`), resumes after a dropped
connection from the offset the server holds, and shows the signed receipt of
each file (the completing answer's `Upload-Receipt`, else GET
/v1/receipts/{id}). Upload URLs carry the upload's secret: they live in the
page's memory only, never in localStorage. The page shows the receipt
verifier key, so a contributor can keep it beside the receipts and check them
offline (`evidence receipt verify`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from api.http.auth import archive_for
from api.web.forms import csrf_ok
from api.web.render import language_of, render
from archive.services.errors import ServiceError

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_ok)])

RETRY_DELAYS = (0, 1000, 3000, 5000, 10000, 20000, 30000)  # ms between tus-js-client's retries of a dropped request
CHUNK_BYTES = 8 * 1024 * 1024  # one PATCH at most: a drop loses at most this much
DIGEST_LIMIT = 256 * 1024 * 1024  # files up to this size get a client-side SHA-256 (held in memory to hash)


@router.get("/upload", response_class=HTMLResponse)
def upload_page(request: Request) -> HTMLResponse:
    from archive.services.receipts import receipt_key

    _ = language_of(request).gettext
    try:
        vkey: str | None = receipt_key(archive_for(request))
    except ServiceError:
        vkey = None  # not yet made or locked: the page still uploads, the receipts route serves it later
    texts = {
        "waiting": _("Waiting"), "hashing": _("Computing the SHA-256 checksum"), "sending": _("Sending"),
        "retrying": _("Connection lost: trying again"), "offline": _("Offline: the upload resumes when the "
                                                                      "connection is back"),
        "done": _("Received and preserved"), "failed": _("Failed"), "resume": _("Resume"),
        "receipt": _("Signed receipt"), "download": _("Download the receipt"),
        "noreceipt": _("The receipt could not be fetched yet; it is kept by the archive: try again later."),
        "progress": _("Progress of %(name)s"), "item": _("Item"),
    }
    config = {"endpoint": "/v1/uploads", "retryDelays": list(RETRY_DELAYS), "chunkSize": CHUNK_BYTES,
              "digestLimit": DIGEST_LIMIT, "texts": texts}
    return render(request, "upload.html", vkey=vkey, config=config)
