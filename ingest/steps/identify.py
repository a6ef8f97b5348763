"""Identify: the format from the bytes themselves, never from the name or declared type.

The sender's claims (declared MIME type, file extension) are compared with
what the bytes are, and a disagreement is recorded on the item; so is a file
that is two formats at once (a JPEG with a ZIP archive appended).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archive.custody.log import FORMAT_IDENTIFICATION
from ingest.media.sniff import HEAD_SIZE, identify, mismatch
from ingest.pipeline import Ingestion, Step

if TYPE_CHECKING:
    from archive.context import Archive

TAIL_SIZE = 65_536 + 22  # a ZIP's end-of-central-directory record lies within this of the end


class Identify(Step):
    name = "identify"
    analysis = True

    def run(self, ingestion: Ingestion, archive: Archive) -> None:
        if "identify" in ingestion.results:
            return
        with ingestion.open_plaintext() as stream:
            head = stream.read(HEAD_SIZE)
            stream.seek(0, 2)
            size = stream.tell()
            stream.seek(max(0, size - TAIL_SIZE))
            tail = stream.read()
        detected = identify(head, tail)
        ingestion.media_type = detected.mime
        claim = mismatch(detected.mime, ingestion.incoming.declared_type, ingestion.incoming.original_name)
        ingestion.results["identify"] = {"detected": detected, "mismatch": claim}
        if claim:
            ingestion.fail(self.name, claim)
        for other in detected.also:
            ingestion.fail(self.name, f"the bytes are also a valid {other} (polyglot file)")
        ingestion.event(
            FORMAT_IDENTIFICATION,
            "warning" if claim or detected.also else "success",
            format=detected.mime,
            declared_mismatch=bool(claim),
            polyglot=list(detected.also),
        )
