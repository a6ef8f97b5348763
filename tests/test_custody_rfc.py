"""An independent RFC 9162 / C2SP reference, written from the specifications, importing no production code.

The other custody tests check the archive's proofs and checkpoints with these
functions, so a bug shared by the production writer and the production
verifier cannot hide. Kept deliberately naive: lists and recursion.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ref_leaf(entry: bytes) -> bytes:
    return sha(b"\x00" + entry)


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 section 2.1.1, over leaf *hashes*."""
    if not leaves:
        return sha(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = _k(len(leaves))
    return sha(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:]))


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of section 2.1.3.1."""
    if len(leaves) <= 1:
        return []
    k = _k(len(leaves))
    if m < k:
        return ref_path(m, leaves[:k]) + [ref_mth(leaves[k:])]
    return ref_path(m - k, leaves[k:]) + [ref_mth(leaves[:k])]


def ref_proof(m: int, leaves: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of section 2.1.4.1."""

    def sub(m: int, d: list[bytes], b: bool) -> list[bytes]:
        if m == len(d):
            return [] if b else [ref_mth(d)]
        k = _k(len(d))
        if m <= k:
            return sub(m, d[:k], b) + [ref_mth(d[k:])]
        return sub(m - k, d[k:], False) + [ref_mth(d[:k])]

    return sub(m, leaves, True) if 0 < m < len(leaves) else []


def ref_verify_inclusion(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """Section 2.1.3.2, step by step."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = sha(b"\x01" + p + r)
            while fn % 2 == 0 and fn != 0:
                fn //= 2
                sn //= 2
        else:
            r = sha(b"\x01" + r + p)
        fn //= 2
        sn //= 2
    return sn == 0 and r == root


def ref_verify_consistency(first: int, second: int, first_hash: bytes, second_hash: bytes, path: list[bytes]) -> bool:
    """Section 2.1.4.2, step by step (0 < first < second)."""
    if not 0 < first < second:
        return False
    if first & (first - 1) == 0:
        path = [first_hash] + path
    if not path:
        return False
    fn, sn = first - 1, second - 1
    while fn % 2 == 1:
        fn //= 2
        sn //= 2
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr = sha(b"\x01" + c + fr)
            sr = sha(b"\x01" + c + sr)
            while fn % 2 == 0 and fn != 0:
                fn //= 2
                sn //= 2
        else:
            sr = sha(b"\x01" + sr + c)
        fn //= 2
        sn //= 2
    return fr == first_hash and sr == second_hash and sn == 0


def ref_open_checkpoint(note: str, vkey: str) -> tuple[str, int, bytes]:
    """C2SP signed-note + tlog-checkpoint: (origin, size, root) if `vkey` signed `note`, else ValueError."""
    name, key_hash, key_b64 = vkey.split("+", 2)
    key = base64.b64decode(key_b64)
    assert key[0] == 1 and sha(name.encode() + b"\n" + key)[:4].hex() == key_hash
    text, _, sigs = note.rpartition("\n\n")
    text += "\n"
    for line in sigs.splitlines():
        dash, signer, blob_b64 = line.split(" ")
        blob = base64.b64decode(blob_b64)
        if dash == "\u2014" and signer == name and blob[:4].hex() == key_hash:
            Ed25519PublicKey.from_public_bytes(key[1:]).verify(blob[4:], text.encode())  # raises if forged
            origin, size, root = text.split("\n")[:3]
            return origin, int(size), base64.b64decode(root)
    raise ValueError("no signature by that key")


# RFC 6962 test vectors (as used by the certificate-transparency implementations).
CT_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_reference_matches_rfc6962_vectors() -> None:
    leaves = [ref_leaf(bytes.fromhex(d)) for d in CT_LEAVES]
    assert [ref_mth(leaves[:n]).hex() for n in range(1, 9)] == CT_ROOTS
    assert ref_mth([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_reference_proofs_verify() -> None:
    leaves = [ref_leaf(bytes([i])) for i in range(20)]
    for n in range(1, 21):
        root = ref_mth(leaves[:n])
        for m in range(n):
            assert ref_verify_inclusion(leaves[m], m, n, ref_path(m, leaves[:n]), root)
            assert not ref_verify_inclusion(leaves[m], m, n, ref_path(m, leaves[:n]), sha(b"x"))
        for m in range(1, n):
            assert ref_verify_consistency(m, n, ref_mth(leaves[:m]), root, ref_proof(m, leaves[:n]))
            assert not ref_verify_consistency(m, n, sha(b"x"), root, ref_proof(m, leaves[:n]))


def test_non_ascii_values_under_ascii_keys_encode_as_the_careful_path_does() -> None:
    """The fast path for ASCII keys (Arabic names in a record's state) gives RFC 8785's bytes exactly."""
    import json

    from archive.custody.entry import _order, encode

    for fields in ({"name": "أحمد الحمصي", "b": ["فاطمة", {"z": "é", "a": "\u2028"}], "a": 1},
                   {"\u00e9": 1, "e": "x", "\U0001f600": "y", "\uff61": "z"}):
        careful = json.dumps(_order(fields), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        assert encode(fields) == careful


def test_canonical_refuses_what_has_no_encoding_and_accepts_subclasses() -> None:
    """The one-walk validation names a float wherever it hides, and takes StrEnum and IntEnum values as
    their plain values."""
    from enum import IntEnum, StrEnum

    import pytest

    from archive.custody.entry import EntryError, canonical, encode

    class Colour(StrEnum):
        RED = "red"

    class Size(IntEnum):
        BIG = 3

    for bad, where in (({"a": [1, {"b": 1.5}]}, "event.a[1].b"), ({"x": 2**53}, "event.x"), ({1: "k"}, "event")):
        with pytest.raises(EntryError, match=where.replace("[", r"\[").replace("]", r"\]")):
            canonical(bad)  # type: ignore[arg-type]
    assert canonical({"c": Colour.RED, "s": Size.BIG, "n": None}) == b'{"c":"red","n":null,"s":3}'
    mixed = {"name": "فاطمة", "list": ["ء", {"é": 1, "e": 2}], "t": True}
    assert canonical(mixed) == encode(mixed)
