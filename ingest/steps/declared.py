"""CheckDeclaredDigest: the sender's SHA-256 of the whole file against the one computed on arrival.

Runs right after `Receive`, before anything is looked up or published: bytes
that are not what the sender hashed (changed on the way, or a damaged client)
are refused and nothing of them is kept as evidence. The refusal names no
hash: the sender has its own, and the archive's says nothing it needs.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from ingest.pipeline import Ingestion, Refused, Step

if TYPE_CHECKING:
    from archive.context import Archive


class DigestMismatch(Refused):
    code = "sha256-mismatch"


class CheckDeclaredDigest(Step):
    name = "declared-digest"
    runs_on_duplicates = True

    def __init__(self, declared: str | None) -> None:
        self.declared = declared.lower() if declared else None

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        if self.declared is None or ingestion.sha256 is None:
            return
        if not hmac.compare_digest(self.declared, ingestion.sha256):
            raise DigestMismatch("the bytes received do not have the SHA-256 declared in the upload's sha256 "
                                 "metadata (changed on the way?): nothing was kept; upload the file again")
