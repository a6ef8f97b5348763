#!/usr/bin/env python3
"""Check an evidence bundle: `python verify.py [BAG_FOLDER]` (default: the folder this file is in).

Needs only Python 3.11+ and the `cryptography` package. Exit 0 when everything
verifies, 1 when anything fails. (Being written: issue 12.)
"""

from __future__ import annotations

ORIGINALS = "data/originals/"
RECORDS = "data/records/"
CERTIFICATES = "data/records/certificates/"
CUSTODY = "data/custody/"
EVENTS = "data/custody/events/"
PROOFS = "data/custody/proofs/"
CHECKPOINT = "data/custody/checkpoint.txt"
LOG_VKEY = "data/custody/log.vkey"
BUNDLE_VKEY = "data/custody/bundle.vkey"
SALTS = "data/custody/salts.json"
SALTS_FORMAT = "evidence-salts/1"
SIGNATURE = "signature.note"
SIGNATURE_HEADER = "evidence-bundle/1"
# The tag files both tag manifests cover (signature.note signs tagmanifest-sha256.txt, so neither lists it).
TAG_FILES = ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt", "bagit-profile.json",
             "README.txt", "verify.py", "withheld.txt")


def signature_text(origin: str, export_id: str, part: int, parts: int, tagmanifest_sha256: str) -> str:
    """The text signature.note signs (a C2SP signed note under the key `<origin>/bundles`)."""
    return (f"{SIGNATURE_HEADER}\norigin {origin}\nbundle {export_id}\npart {part} of {parts}\n"
            f"tagmanifest-sha256 {tagmanifest_sha256}\n")
