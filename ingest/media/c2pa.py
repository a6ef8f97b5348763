"""Content Credentials (C2PA): keep the manifest store and what validating it says.

The manifest is found by its container box (JPEG APP11 JUMBF, PNG caBX, WebP
C2PA chunk, ISO-BMFF uuid box) before any C2PA library is called, so files
without one cost nothing. The raw manifest bytes are kept whatever happens;
validation uses c2pa-python (the CAI's reference library) when it is
installed, else the result says "unavailable" and why. Validation runs offline
(no remote manifest fetch, no OCSP); with no trust list configured, a sound
manifest from an unknown signer reads "Valid" (not "Trusted") and the results
name the untrusted credential.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
from typing import Any

from ingest.media.limits import MAX_C2PA, MAX_JUMBF_BOXES, MAX_JUMBF_DEPTH


def _label_is_c2pa(box: bytes) -> bool:
    # A JUMBF superbox's description box carries the label "c2pa" for a manifest store.
    return b"c2pa" in box[:256]


def jumbf_problem(box: bytes) -> str | None:
    """Why a JUMBF structure is too deep or too large to hand to a native parser, or None.

    The C2PA library walks nested boxes; a hostile file nesting them thousands
    deep must not reach it (a native stack overflow would end the process).
    """
    start = box.find(b"jumb", 0, 96) - 4
    if start < 0:
        return "no JUMBF superbox found"
    pending = [(start, len(box), 0)]
    boxes = 0
    while pending:
        pos, end, depth = pending.pop()
        if depth > MAX_JUMBF_DEPTH:
            return f"JUMBF boxes nested deeper than {MAX_JUMBF_DEPTH} levels (refused)"
        while pos + 8 <= end:
            boxes += 1
            if boxes > MAX_JUMBF_BOXES:
                return f"more than {MAX_JUMBF_BOXES} JUMBF boxes (refused)"
            size, kind = struct.unpack(">I4s", box[pos : pos + 8])
            body = pos + 8
            if size == 1 and pos + 16 <= end:
                size, body = struct.unpack(">Q", box[pos + 8 : pos + 16])[0], pos + 16
            if size < body - pos or pos + size > end:
                break  # truncated or odd: the library will judge; nothing deeper to walk here
            if kind == b"jumb":
                pending.append((body, pos + size, depth + 1))
            pos += size
    return None


def read_c2pa(data: bytes | None, mime: str, boxes: list[bytes], *, validate: bool = True) -> dict[str, Any] | None:
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
    problem = jumbf_problem(boxes[0])
    if problem:
        result["validation"] = {"state": "refused", "reason": problem, "results": None}
        return result
    if not validate:
        result["validation"]["reason"] = "not validated: the C2PA library failed on this file before"
        return result
    try:
        import c2pa
    except ImportError as exc:
        result["validation"]["reason"] = f"c2pa-python is not installed ({exc})"
        return result
    if data is None:
        result["validation"]["reason"] = "file too large to validate in memory"
        return result
    try:
        # Offline only: no remote manifests, no OCSP; the archive never reaches out because of a file.
        settings = c2pa.Settings.from_dict({"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}})
        with c2pa.Reader(mime, io.BytesIO(data), context=c2pa.Context(settings)) as reader:
            result["manifest_store"] = json.loads(reader.json())
            result["validation"] = {
                "state": reader.get_validation_state(),
                "reason": None,
                "results": reader.get_validation_results(),
            }
    except Exception as exc:  # noqa: BLE001 - a manifest the library rejects is itself a finding
        result["validation"] = {"state": "invalid", "reason": f"{type(exc).__name__}: {exc}"[:500], "results": None}
    return result
