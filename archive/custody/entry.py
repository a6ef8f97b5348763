"""The canonical byte encoding of a custody event: the Merkle leaf.

Format `evidence-event/1`: a JSON object serialised as RFC 8785 (JCS) requires
for the values we allow (strings, integers, booleans, null, lists, objects):
keys sorted by UTF-16 code units, no insignificant white space, UTF-8, minimal
string escapes. Floats are refused so number formatting can never be ambiguous.
Changing any field, or the version, changes the leaf hash.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

FORMAT = "evidence-event/1"


class EntryError(ValueError):
    """A value that has no canonical encoding (a float, a non-string key …)."""


def _check(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if abs(value) > 2**53 - 1:
            raise EntryError(f"{where}: integer {value} is outside the I-JSON range")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EntryError(f"{where}: key {key!r} is not a string")
            _check(item, f"{where}.{key}")
        return
    raise EntryError(f"{where}: {type(value).__name__} has no canonical encoding")


_LIMIT = 2**53 - 1
_PLAIN = (str, bool, type(None))


def _scan(value: Any) -> bool | None:
    """One walk without building paths: None if some value has no canonical encoding (then `_check` says
    where), else whether every key is ASCII (then `sort_keys` gives RFC 8785's order)."""
    kind = type(value)
    if kind in _PLAIN:
        return True
    if kind is int:
        return True if -_LIMIT <= value <= _LIMIT else None
    ascii_keys = True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return None
            found = _scan(item) if type(item) not in _PLAIN else True
            if found is None:
                return None
            ascii_keys = ascii_keys and found and key.isascii()
        return ascii_keys
    if kind is list:
        for item in value:
            found = _scan(item) if type(item) not in _PLAIN else True
            if found is None:
                return None
            ascii_keys = ascii_keys and found
        return ascii_keys
    return None


def _sort_key(key: str) -> list[int]:
    encoded = key.encode("utf-16-be")
    return [int.from_bytes(encoded[i : i + 2], "big") for i in range(0, len(encoded), 2)]


def _order(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _order(value[k]) for k in sorted(value, key=_sort_key)}
    if isinstance(value, list):
        return [_order(v) for v in value]
    return value


def _ascii_keys(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and k.isascii() and _ascii_keys(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_ascii_keys(v) for v in value)
    return True


def encode(fields: dict[str, Any]) -> bytes:
    """RFC 8785 bytes of `fields`, without validating them first.

    For ASCII keys, Python's code-point key order is RFC 8785's UTF-16 order,
    so `sort_keys` suffices (values may be any text: an Arabic name); other
    keys take the careful path. The
    verifier uses this directly: a stored value that could never have been
    appended (a float, say) simply encodes to bytes that match no leaf.
    """
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if text.isascii():
        return text.encode("ascii")
    if _ascii_keys(fields):  # non-ASCII values only (an Arabic name): the key order is the same in UTF-16
        return text.encode("utf-8")
    return json.dumps(_order(fields), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def canonical(fields: dict[str, Any]) -> bytes:
    """RFC 8785 bytes of `fields` (validated first)."""
    ascii_keys = _scan(fields)
    if ascii_keys is None:  # something unusual: a float (refused, naming it), or a str or int subclass (fine)
        _check(fields, "event")
        return encode(fields)
    if ascii_keys:
        return json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return encode(fields)


def entry_fields(
    *,
    seq: int,
    occurred_at: str,
    actor: str,
    event_type: str,
    item_id: str | None,
    objects: list[str],
    outcome: str,
    details: dict[str, Any],
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "seq": seq,
        "time": occurred_at,
        "actor": actor,
        "type": event_type,
        "item": item_id,
        "objects": objects,
        "outcome": outcome,
        "details": details,
    }


def leaf_hash(entry: bytes) -> bytes:
    """RFC 9162 section 2.1.1: SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()
