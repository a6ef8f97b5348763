"""A tus 1.0.0 client over httpx: creation, chunked PATCH with per-chunk SHA-256, HEAD to resume.

Written for bad connections: every request that fails to reach the server is
retried with exponential backoff, and after a failed PATCH the client asks the
server (HEAD) where the upload really stands instead of trusting its own count,
so a chunk the server kept is never sent twice and one it lost is sent again.
A chunk the server refuses with 460 (checksum mismatch: corrupted on the way)
is sent again as it is. Errors say what to do next: `Offline` (keep the file
queued, try later), `Gone` (the upload expired or was terminated: create a new
one), `Denied` (the token is not accepted: stop), `Refused` (the server will
not take this file: drop it, with the server's reason).

The upload URL carries the upload secret, so no message here ever contains it.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import httpx

TUS_VERSION = "1.0.0"
RETRYABLE = {423, 425, 429, 500, 502, 503, 504}
MAX_CHECKSUM_RESENDS = 3
MAX_WAIT = 30.0  # seconds between two attempts, at most


class TusError(Exception):
    """A tus exchange that did not finish; the subclass says what to do next."""


class Offline(TusError):
    """The server could not be reached (or kept answering "later"): keep the file queued."""


class Gone(TusError):
    """The upload no longer exists on the server (expired, terminated): create a new one."""


class Denied(TusError):
    """The server does not accept the token (401) or its role (403): stop, nothing more will go through."""


class Refused(TusError):
    """The server will not take this file (too large, bad metadata, a hash mismatch …): the reason is its own."""


@dataclass
class Finished:
    """What the completing request answered: the receipt (signed note text) when the server sent one."""

    receipt: str | None


def upload_id_of(url: str) -> str:
    """The upload id in `/v1/uploads/{upload_id}/{secret}` (the secret is the last segment, never the id)."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    if len(parts) < 2 or parts[-3:-2] != ["uploads"]:
        raise TusError("the server's upload URL is not /v1/uploads/{id}/{secret}")
    return parts[-2]


def encode_metadata(metadata: dict[str, str]) -> str:
    """`Upload-Metadata`: `key base64(value)` pairs, comma-separated (tus 1.0.0 creation)."""
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in metadata.items() if value)


def reason_of(response: httpx.Response) -> str:
    """The server's reason for a refusal, short and without anything of the request (never the URL)."""
    detail = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            detail = str(body.get("detail") or body.get("error") or "")
    except ValueError:
        detail = response.text.strip()
    detail = " ".join(detail.split())[:300]
    return f"HTTP {response.status_code}" + (f": {detail}" if detail else "")


class TusClient:
    """One server, one token; `retries` attempts (with backoff) before a request counts as offline."""

    def __init__(
        self,
        server: str,
        token: str,
        *,
        retries: int = 6,
        backoff: float = 0.5,
        timeout: float = 900.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.server = server.rstrip("/") + "/"
        self.retries = max(1, retries)
        self.backoff = backoff
        self.sleep = sleep
        self.http = httpx.Client(
            headers={"Authorization": f"Bearer {token}", "Tus-Resumable": TUS_VERSION},
            timeout=httpx.Timeout(timeout, connect=20.0, write=120.0),
            transport=transport,
            follow_redirects=False,
        )
        self.sent = 0  # bytes of file content sent in PATCH bodies by this client (resends included)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> TusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # requests, retried

    def _wait(self, attempt: int, response: httpx.Response | None = None) -> None:
        delay = min(MAX_WAIT, self.backoff * (2**attempt))
        if response is not None and response.headers.get("Retry-After", "").isdigit():
            delay = min(60.0, float(response.headers["Retry-After"]))
        self.sleep(delay)

    def _request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        """A request retried on connection errors and "try later" answers; Offline when they never stop."""
        last = "no answer"
        for attempt in range(self.retries):
            try:
                response = self.http.request(method, url, **kwargs)  # type: ignore[arg-type]
            except httpx.TransportError as exc:
                last = type(exc).__name__
                if attempt + 1 < self.retries:
                    self._wait(attempt)
                continue
            if response.status_code in RETRYABLE:
                last = f"HTTP {response.status_code}"
                if attempt + 1 < self.retries:
                    self._wait(attempt, response)
                continue
            self._raise_for_auth(response)
            return response
        raise Offline(f"the server did not answer ({last}) after {self.retries} attempts")

    @staticmethod
    def _raise_for_auth(response: httpx.Response) -> None:
        if response.status_code in (401, 403):
            raise Denied(f"the server does not accept this token ({reason_of(response)})")

    # the protocol

    def create(self, length: int, metadata: dict[str, str]) -> str:
        """POST /v1/uploads: a new upload of `length` bytes; its URL (which holds the secret)."""
        headers = {"Upload-Length": str(length)}
        encoded = encode_metadata(metadata)
        if encoded:
            headers["Upload-Metadata"] = encoded
        response = self._request("POST", urljoin(self.server, "v1/uploads"), headers=headers)
        if response.status_code != 201 or not response.headers.get("Location"):
            raise Refused(f"the server did not create the upload ({reason_of(response)})")
        return urljoin(self.server, response.headers["Location"])

    def status(self, url: str) -> tuple[int, str | None]:
        """HEAD: how many bytes the server holds (the only count a resume trusts), and the receipt once complete.

        The server finishes a completion a crash cut off when asked this way.
        """
        response = self._request("HEAD", url, headers={"Cache-Control": "no-store"})
        if response.status_code in (404, 410):
            raise Gone("the upload is no longer on the server (expired or terminated)")
        if response.status_code != 200 or not response.headers.get("Upload-Offset", "").isdigit():
            raise Refused(f"the server did not say where the upload stands ({reason_of(response)})")
        return int(response.headers["Upload-Offset"]), decode_receipt(response.headers.get("Upload-Receipt"))

    def offset(self, url: str) -> int:
        return self.status(url)[0]

    def terminate(self, url: str) -> bool:
        """DELETE the upload (termination); False when the server could not be told."""
        try:
            response = self._request("DELETE", url)
        except (Offline, Denied):
            return False
        return response.status_code in (204, 404, 410)

    def receipt(self, upload_id: str) -> str | None:
        """GET /v1/receipts/{upload_id}: the receipt again, or None while there is none."""
        response = self._request("GET", urljoin(self.server, f"v1/receipts/{upload_id}"))
        if response.status_code == 200:
            return response.text
        return None

    def receipt_key(self) -> str:
        """GET /v1/receipts/key: the archive's receipt verifier key (C2SP vkey)."""
        response = self._request("GET", urljoin(self.server, "v1/receipts/key"))
        if response.status_code != 200:
            raise Refused(f"the server did not give its receipt key ({reason_of(response)})")
        return response.text.strip()

    def upload(
        self,
        url: str,
        file: BinaryIO,
        length: int,
        *,
        chunk_size: int,
        on_progress: Callable[[int], None] = lambda offset: None,
    ) -> tuple[int, Finished]:
        """Send the rest of the file from the server's offset; (the offset resumed from, the completion).

        Failures without progress are counted; `retries` of them in a row and
        the upload is left for later (Offline).
        """
        offset, receipt = self.status(url)
        resumed_from = offset
        on_progress(offset)
        failures = mismatches = 0
        while True:
            if offset >= length:
                return resumed_from, Finished(receipt) if receipt else self._finish(url, length)
            file.seek(offset)
            chunk = file.read(min(chunk_size, length - offset))
            if not chunk:
                raise Refused("the local file is shorter than when it was queued")
            digest = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
            try:
                self.sent += len(chunk)
                response = self.http.patch(url, content=chunk, headers={
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Checksum": f"sha256 {digest}",
                })
            except httpx.TransportError:
                failures += 1
                if failures >= self.retries:
                    raise Offline(f"the connection kept failing ({failures} times in a row)") from None
                self._wait(failures - 1)
                offset, receipt = self.status(url)  # where the server really stands
                on_progress(offset)
                continue
            status = response.status_code
            if status == 204 and response.headers.get("Upload-Offset", "").isdigit():
                new_offset = int(response.headers["Upload-Offset"])
                if new_offset > offset:
                    failures = mismatches = 0
                offset = new_offset
                on_progress(offset)
                if offset >= length:
                    return resumed_from, Finished(decode_receipt(response.headers.get("Upload-Receipt")))
                continue
            if status == 460:  # the chunk arrived damaged: the server discarded it; send it again
                mismatches += 1
                if mismatches > MAX_CHECKSUM_RESENDS:
                    raise Refused("every resend of a chunk arrived damaged (checksum mismatch)")
                continue
            if status == 409:  # offsets disagree: ask (a server that keeps disagreeing is not one to send to)
                failures += 1
                if failures >= self.retries:
                    raise Refused("the server's offsets kept disagreeing with its own answers")
                offset, receipt = self.status(url)
                on_progress(offset)
                continue
            if status in (404, 410):
                raise Gone("the upload is no longer on the server (expired or terminated)")
            self._raise_for_auth(response)
            if status in RETRYABLE:
                failures += 1
                if failures >= self.retries:
                    raise Offline(f"the server kept answering {status}")
                self._wait(failures - 1, response)
                offset, receipt = self.status(url)
                continue
            raise Refused(reason_of(response))

    def _finish(self, url: str, length: int) -> Finished:
        """All bytes are there but no answer came (the completing request was cut): ask again.

        An empty PATCH at the final offset makes the server finish (or refuse,
        with its reason) a completion a crash interrupted, and answer with the receipt.
        """
        response = self._request("PATCH", url, content=b"", headers={
            "Upload-Offset": str(length),
            "Content-Type": "application/offset+octet-stream",
        })
        if response.status_code == 204:
            return Finished(decode_receipt(response.headers.get("Upload-Receipt")))
        if response.status_code in (404, 410):
            raise Gone("the upload is no longer on the server (expired or terminated)")
        raise Refused(reason_of(response))


def decode_receipt(header: str | None) -> str | None:
    if not header:
        return None
    try:
        return base64.b64decode(header, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
