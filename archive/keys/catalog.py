"""The catalog key: authenticated encryption of sensitive catalog fields, and keyed lookups.

A catalog key file holds one or more numbered 32-byte keys; the highest is
current. From each, HKDF derives a field key (ChaCha20-Poly1305) and a lookup
key (HMAC-SHA-256), so sealing and equality lookups never share a key. Every
sealed value is bound to its table, its row id and its key version through
the associated data: a value moved to another row, or relabelled with
another version, fails to open. Rotation adds a version; rows re-sealed under
it record it, and old versions go once no row uses them.

Every sealed plaintext is padded (`padded_json`, also used for the pending
rows a locked process seals with age): an unpadded blob's length is its JSON's
plus a constant, and whoever holds a known file recomputes that JSON (its raw
metadata with the project's own extractor, a video's frame count from its
fingerprints, a name's length) and matches the length.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CATALOG_KEY_NAME = "catalog.key"
_LINE = re.compile(r"^catalog-key ([1-9][0-9]{0,8}) ([0-9a-f]{64})$")
_NONCE = 12
_DECODER = json.JSONDecoder()
PADDED_MINIMUM = 256  # bytes: every sealed plaintext at least this long, so short rows all look alike


def padded_length(length: int) -> int:
    """Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and Communication with PURBs", 2019).

    A length L (at least `PADDED_MINIMUM`) rounds up to a multiple of 2^(E - S),
    E = floor(log2 L), S = floor(log2 E) + 1: the padded length leaks
    O(log log L) bits (only E and the top S bits of L), at most 12 % more bytes.
    """
    length = max(length, PADDED_MINIMUM)
    exponent = length.bit_length() - 1  # E
    mask = (1 << (exponent - exponent.bit_length())) - 1  # z = E - S low bits to clear
    return (length + mask) & ~mask


def padded_json(value: Any) -> bytes:
    """`value` as compact JSON padded with spaces to `padded_length` (still JSON: `json.loads` and `open` skip them)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return text + b" " * (padded_length(len(text)) - len(text))


class CatalogKeyError(ValueError):
    """A catalog key file that cannot be read, or a sealed value that does not open."""


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"evidence-catalog/1 " + purpose).derive(master)


@dataclass(frozen=True)
class _Version:
    number: int
    master: bytes = field(repr=False)

    @cached_property
    def aead(self) -> ChaCha20Poly1305:
        return ChaCha20Poly1305(_derive(self.master, b"fields"))

    @cached_property
    def lookup_key(self) -> bytes:
        return _derive(self.master, b"lookup")


class CatalogKeys:
    """Every held version of the catalog key; seals with the current one, opens with any."""

    def __init__(self, versions: dict[int, bytes]) -> None:
        if not versions:
            raise CatalogKeyError("a catalog key file needs at least one key")
        self._versions = {n: _Version(n, key) for n, key in versions.items()}
        self.current = max(versions)

    @classmethod
    def generate(cls) -> CatalogKeys:
        return cls({1: os.urandom(32)})

    @classmethod
    def parse(cls, text: str) -> CatalogKeys:
        versions: dict[int, bytes] = {}
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            match = _LINE.match(line)
            if match is None:
                raise CatalogKeyError("not a catalog key file (expected lines `catalog-key N <64 hex>`)")
            versions[int(match.group(1))] = bytes.fromhex(match.group(2))
        return cls(versions)

    def encode(self) -> str:
        lines = ["# evidence catalog key: keep it with the access identity, never in the catalog or on a site"]
        lines += [f"catalog-key {n} {v.master.hex()}" for n, v in sorted(self._versions.items())]
        return "\n".join(lines) + "\n"

    @property
    def versions(self) -> list[int]:
        return sorted(self._versions)

    def with_new_version(self) -> CatalogKeys:
        """These keys and one more, which becomes current (rotation's first step)."""
        versions = {n: v.master for n, v in self._versions.items()}
        versions[self.current + 1] = os.urandom(32)
        return CatalogKeys(versions)

    def without(self, numbers: set[int]) -> CatalogKeys:
        """These keys less the versions given (rotation's last step); the current one stays."""
        if self.current in numbers:
            raise CatalogKeyError("the current catalog key cannot be dropped")
        return CatalogKeys({n: v.master for n, v in self._versions.items() if n not in numbers})

    def _version(self, number: int) -> _Version:
        try:
            return self._versions[number]
        except KeyError:
            raise CatalogKeyError(f"catalog key version {number} is not held here") from None

    @staticmethod
    def _aad(table: str, row_id: object, version: int) -> bytes:
        return f"evidence-catalog/1 {table} {row_id} v{version}".encode()

    def seal(self, table: str, row_id: object, fields: dict[str, Any]) -> tuple[int, bytes]:
        """`fields` as padded JSON, encrypted and bound to (table, row id, version): (version, nonce || ciphertext)."""
        version = self._version(self.current)
        nonce = os.urandom(_NONCE)
        plaintext = padded_json(fields)
        return self.current, nonce + version.aead.encrypt(nonce, plaintext, self._aad(table, row_id, self.current))

    def open(self, table: str, row_id: object, version: int, blob: bytes) -> dict[str, Any]:
        """The fields sealed in `blob`; CatalogKeyError if it was altered, moved or relabelled."""
        held = self._versions.get(version) or self._version(version)  # the latter raises, naming the version
        if type(blob) is not bytes:  # a memoryview from PostgreSQL: one copy, then plain slices
            blob = bytes(blob)
        aad = f"evidence-catalog/1 {table} {row_id} v{version}".encode()  # = _aad(), inlined: one call per row
        try:
            plaintext = held.aead.decrypt(blob[:_NONCE], blob[_NONCE:], aad)
        except InvalidTag:
            raise CatalogKeyError(f"sealed {table} row {row_id} does not open: altered, moved or not ours") from None
        # raw_decode on the text: listing opens a row per item, and json.loads costs twice as much per row
        # (encoding detection, a whitespace scan) on what `seal` wrote itself: compact JSON, then spaces.
        text = plaintext.decode().rstrip(" ")
        value, end = _DECODER.raw_decode(text)
        if end != len(text) or not isinstance(value, dict):
            raise CatalogKeyError(f"sealed {table} row {row_id} holds no fields")
        return value

    def lookup(self, purpose: str, value: str, version: int | None = None) -> str:
        """The keyed hash that finds `value` by equality without storing it (hex, 64 characters)."""
        key = self._version(self.current if version is None else version).lookup_key
        return hmac.new(key, purpose.encode() + b"\x00" + value.encode(), hashlib.sha256).hexdigest()

    def lookups(self, purpose: str, value: str) -> list[str]:
        """The keyed hash under every held version: a lookup during a rotation finds rows of either."""
        return [self.lookup(purpose, value, n) for n in sorted(self._versions, reverse=True)]
