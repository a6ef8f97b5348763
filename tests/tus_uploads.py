"""Uploading with the real tuspy client, and checking what the archive answered.

`upload(...)` runs an unchanged `tusclient` uploader (its own retries and
resume-by-HEAD) and returns what a contributor ends up holding: the upload id,
the secret of its URL, the receipt (the completing PATCH's `Upload-Receipt`,
else `GET /v1/receipts/{id}`), and every offset the client resumed from.
`check_receipt` verifies a receipt against the archive's receipt key as a
contributor would, offline.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from tusclient.client import TusClient
from tusclient.uploader import Uploader


class RecordingUploader(Uploader):  # type: ignore[misc]
    """tuspy's own uploader, noting each offset the server gave it on a resume (its HEAD requests)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.resumed_at: list[int] = []
        super().__init__(*args, **kwargs)

    def get_offset(self) -> int:
        offset = int(super().get_offset())
        self.resumed_at.append(offset)
        return offset


@dataclass
class Sent:
    """What one contributor holds after an upload."""

    upload_id: str
    secret: str
    url: str
    receipt: str | None
    resumed_at: list[int] = field(default_factory=list)
    receipt_from: str = "header"  # or "receipts route"


def split_upload_url(url: str) -> tuple[str, str]:
    """`/v1/uploads/{upload_id}/{secret}` → (upload_id, secret)."""
    parts = urlsplit(url).path.rstrip("/").split("/")
    assert parts[-4:-2] == ["v1", "uploads"], f"unexpected upload URL shape: {urlsplit(url).path}"
    return parts[-2], parts[-1]


def metadata_for(path: Path, data: bytes | None = None, **extra: str) -> dict[str, str]:
    digest = hashlib.sha256(data if data is not None else path.read_bytes()).hexdigest()
    return {"filename": path.name, "sha256": digest, **extra}


def uploader(base: str, token: str, path: Path, *, chunk_size: int | None = None,
             metadata: dict[str, str] | None = None, retries: int = 0, retry_delay: int = 1,
             url: str | None = None, checksum: bool = False) -> RecordingUploader:
    """A tuspy uploader for `path` against `base` (a server or proxy URL) with a bearer token."""
    client = TusClient(f"{base}/v1/uploads", headers={"Authorization": f"Bearer {token}"})
    kwargs: dict[str, Any] = {"client": client, "metadata": metadata if metadata is not None else metadata_for(path),
                              "retries": retries, "retry_delay": retry_delay, "upload_checksum": checksum}
    if chunk_size is not None:
        kwargs["chunk_size"] = chunk_size
    if url is not None:
        kwargs["url"] = url
    return RecordingUploader(str(path), **kwargs)


def receipt_of(up: RecordingUploader, base: str, token: str) -> tuple[str | None, str]:
    """The receipt a finished upload got: its completing response's header, else the receipts route."""
    request = getattr(up, "request", None)
    header = request.response_headers.get("upload-receipt") if request is not None else None
    if header:
        return base64.b64decode(header).decode("utf-8"), "header"
    upload_id, _ = split_upload_url(str(up.url))
    answer = httpx.get(f"{base}/v1/receipts/{upload_id}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    if answer.status_code != 200:
        return None, f"receipts route {answer.status_code}: {answer.text[:200]}"
    return answer.text, "receipts route"


def upload(base: str, token: str, path: Path, *, receipt_base: str | None = None, **options: Any) -> Sent:
    """Upload `path` with tuspy to the end; what the contributor then holds."""
    up = uploader(base, token, path, **options)
    up.upload()
    assert up.url, "tuspy never got an upload URL"
    upload_id, secret = split_upload_url(str(up.url))
    receipt, source = receipt_of(up, receipt_base or base, token)
    return Sent(upload_id, secret, str(up.url), receipt, list(up.resumed_at), source)


def receipt_vkey(home: Path) -> str:
    """The receipt verifier key as the archive publishes it (`keys/receipt.vkey`)."""
    return (home / "keys" / "receipt.vkey").read_text(encoding="utf-8")


def check_receipt(receipt: str | None, vkey: str, *, upload_id: str, sha256: str, size: int) -> dict[str, Any]:
    """Verify `receipt` offline with the receipt key; it must describe exactly this upload. Its fields."""
    from archive.custody.receipts import verify_receipt

    assert receipt, "no receipt"
    fields = verify_receipt(receipt, vkey)
    assert fields["upload"] == upload_id, fields
    assert fields["sha256"] == sha256, fields
    assert int(fields["size"]) == size, fields
    assert fields["item"], fields
    return fields
