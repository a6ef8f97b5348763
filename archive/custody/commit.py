"""Salted commitments: the log binds each item's bytes without revealing them.

The commitment is SHA-256 of the ASCII line
`evidence-commit/1 <item-id> <salt-hex> <sha256-hex>\n`, with a random 32-byte
salt per item. Anyone holding the salt (an export carries the salts of its
items) checks it with `printf … | sha256sum`; without it, the log cannot
confirm that the archive holds some known file.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlmodel import Session

PREFIX = "evidence-commit/1"
SALT_BYTES = 32


def new_salt() -> str:
    return os.urandom(SALT_BYTES).hex()


def commitment_line(item_id: str, salt_hex: str, sha256_hex: str) -> str:
    return f"{PREFIX} {item_id} {salt_hex} {sha256_hex}\n"


def commitment(item_id: str, salt_hex: str, sha256_hex: str) -> str:
    """The lowercase hex commitment of an item's plaintext SHA-256 under its salt."""
    return hashlib.sha256(commitment_line(item_id, salt_hex, sha256_hex).encode("ascii")).hexdigest()


COMMITMENT_FORMAT = "evidence-commit/1"
LEGACY_NOTE = "commitment added for an item ingested before commitments"


def commitment_details(item_id: str, salt_hex: str, sha256_hex: str) -> dict[str, str]:
    """The details of an item's `message digest calculation` event: the commitment, never the hash or a size."""
    return {"algorithm": "SHA-256", "commitment": commitment(item_id, salt_hex, sha256_hex),
            "commitment_format": COMMITMENT_FORMAT}


def add_commitment(session: Session, actor: str, item_id: str, sha256: str) -> str:
    """Commit the log to an item ingested before commitments existed; returns the new salt.

    Appended as a new event in the caller's transaction (old events stay: the
    log is append-only), saying why it comes late. The caller keeps the salt
    sealed with the item. Refused when the log already commits to the item:
    the first commitment of an item is final.
    """
    from archive.custody.expected import logged_commitment
    from archive.custody.log import MESSAGE_DIGEST, append_event

    if logged_commitment(session, item_id) is not None:
        raise ValueError(f"the log already commits to item {item_id}; a commitment is final")
    salt = new_salt()
    details: dict[str, str] = {**commitment_details(item_id, salt, sha256), "note": LEGACY_NOTE}
    append_event(session, MESSAGE_DIGEST, actor=actor, item_id=item_id, details=details)
    return salt
