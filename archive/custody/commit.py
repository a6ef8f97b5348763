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

PREFIX = "evidence-commit/1"
SALT_BYTES = 32


def new_salt() -> str:
    return os.urandom(SALT_BYTES).hex()


def commitment_line(item_id: str, salt_hex: str, sha256_hex: str) -> str:
    return f"{PREFIX} {item_id} {salt_hex} {sha256_hex}\n"


def commitment(item_id: str, salt_hex: str, sha256_hex: str) -> str:
    """The lowercase hex commitment of an item's plaintext SHA-256 under its salt."""
    return hashlib.sha256(commitment_line(item_id, salt_hex, sha256_hex).encode("ascii")).hexdigest()
