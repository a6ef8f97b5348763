"""Content Credentials (C2PA): keep the manifest store and what validating it says.

The manifest is found by its container box (JPEG APP11 JUMBF, PNG caBX, WebP
C2PA chunk, ISO-BMFF uuid box) before any C2PA library is called, so files
without one cost nothing. The raw manifest bytes are kept whatever happens;
validation uses c2pa-python (the CAI's reference library) when it is
installed, else the result says "unavailable" and why.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from typing import Any

from ingest.media.limits import MAX_C2PA


def _label_is_c2pa(box: bytes) -> bool:
    # A JUMBF superbox's description box carries the label "c2pa" for a manifest store.
    return b"c2pa" in box[:256]


def read_c2pa(data: bytes | None, mime: str, boxes: list[bytes]) -> dict[str, Any] | None:
    """The manifest store (raw and as JSON) and its validation result; None when the file has none."""
    boxes = [b for b in boxes if _label_is_c2pa(b)]
    if not boxes:
        return None
    raw = b"".join(boxes)
    result: dict[str, Any] = {
        "raw_size": len(raw),
        "raw_sha256": hashlib.sha256(raw).hexdigest(),
        "raw_base64": base64.b64encode(raw[:MAX_C2PA]).decode() if len(raw) <= MAX_C2PA else None,
        "manifest_store": None,
        "validation": {"state": "unavailable", "reason": None, "results": None},
    }
    try:
        import c2pa
    except ImportError as exc:
        result["validation"]["reason"] = f"c2pa-python is not installed ({exc})"
        return result
    if data is None:
        result["validation"]["reason"] = "file too large to validate in memory"
        return result
    try:
        with c2pa.Reader(mime, io.BytesIO(data)) as reader:
            result["manifest_store"] = json.loads(reader.json())
            result["validation"] = {
                "state": reader.get_validation_state(),
                "reason": None,
                "results": reader.get_validation_results(),
            }
    except Exception as exc:  # noqa: BLE001 - a manifest the library rejects is itself a finding
        result["validation"] = {"state": "invalid", "reason": f"{type(exc).__name__}: {exc}"[:500], "results": None}
    return result
