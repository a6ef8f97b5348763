"""Receipts on the device: the archive's receipt key, pinned on first use, and each receipt's check.

A receipt only proves something if it is checked against the right key. The
key comes from `--vkey FILE` (given out of band: the strongest), or is fetched
from the server the first time and pinned in the queue directory; from then on
a different key from the same server is an error, not a silent update (a
swapped or impersonated server would otherwise sign its own receipts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api.push.queue import Queue
from api.push.tus import TusClient


class ReceiptProblem(Exception):
    """A receipt key that changed, or a receipt that does not verify or does not describe what was sent."""


def receipt_key(queue: Queue, client: TusClient, server: str, vkey_file: str | None) -> str:
    """The key to check this server's receipts against (a file given, or the pinned one, or pinned now)."""
    if vkey_file:
        try:
            return Path(vkey_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ReceiptProblem(f"cannot read the receipt key {vkey_file}: {exc.strerror}") from exc
    pinned = queue.pinned_key(server)
    fetched = client.receipt_key()
    if pinned is None:
        queue.pin_key(server, fetched)
        return fetched
    if fetched != pinned:
        raise ReceiptProblem(
            "the server's receipt key is not the one pinned on first use: refusing to send. "
            f"If the archive really changed its key, check the new one out of band, then remove "
            f"{queue.key_path(server)} (or pass --vkey FILE)"
        )
    return pinned


def check_receipt(note: str, vkey: str, *, upload_id: str, sha256: str, size: int) -> dict[str, Any]:
    """The receipt's fields once its signature verifies and it describes this very file; else ReceiptProblem."""
    from archive.custody.receipts import ReceiptError, verify_receipt

    try:
        fields = dict(verify_receipt(note, vkey))
    except ReceiptError as exc:
        raise ReceiptProblem(f"the receipt does not verify against the archive's receipt key: {exc}") from exc
    expected = {"upload": upload_id, "sha256": sha256, "size": str(size)}
    for name, value in expected.items():
        if str(fields.get(name)) != value:
            raise ReceiptProblem(f"the receipt's {name} is not this file's ({fields.get(name)!r})")
    return fields
