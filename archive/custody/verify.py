"""Checking what the log hands out: signed checkpoints and RFC 9162 proofs. No database here.

Meant to be read by an auditor in one sitting: opening a C2SP signed note
with a C2SP verifier key, reading a C2SP tlog-checkpoint, and the RFC 9162
section 2.1.3.2 and 2.1.4.2 proof-checking algorithms, step by step.
Every failure raises a `VerificationError` saying what did not match. The
last two functions check, offline, the proof documents `evidence log prove
--json` and `evidence log consistency --json` hand to outsiders.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ED25519 = b"\x01"  # signed-note signature type
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space


class VerificationError(Exception):
    """Something handed out by the log does not verify."""


class NoteError(VerificationError):
    """A signed note that is malformed or not signed by the expected key."""


class ProofFailed(VerificationError):
    """An inclusion or consistency proof that does not lead to the signed root."""


def valid_key_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_id(name: str, public_key: bytes) -> bytes:
    """C2SP signed-note key id: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519 + public_key).digest()[:4]


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 verifier key, as published in the C2SP vkey format."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    def encode(self) -> str:
        """<name>+<hex key id>+<base64(0x01 || public key)>."""
        blob = base64.b64encode(ED25519 + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    @classmethod
    def decode(cls, text: str) -> Verifier:
        parts = text.strip().split("+", 2)  # base64 may hold '+' too
        if len(parts) != 3 or not valid_key_name(parts[0]):
            raise NoteError("a verifier key reads <name>+<key id>+<key>")
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except binascii.Error as exc:
            raise NoteError(f"verifier key is not base64: {exc}") from exc
        if len(blob) != 33 or blob[:1] != ED25519:
            raise NoteError("verifier key is not an Ed25519 key")
        verifier = cls(parts[0], blob[1:])
        if verifier.key_id.hex() != parts[1].lower():
            raise NoteError("verifier key id does not match its key")
        return verifier


def open_note(note: str, verifier: Verifier) -> str:
    """The text of `note` if it carries a valid signature by `verifier`; NoteError otherwise."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("not a signed note (no blank line before the signatures)")
    text, signatures = note[: split + 1], note[split + 2 :].splitlines()
    for line in signatures:
        if not line.startswith(SIGNATURE_PREFIX) or line.count(" ") != 2:
            raise NoteError(f"malformed signature line {line!r}")
        name, blob_text = line[len(SIGNATURE_PREFIX) :].split(" ")
        try:
            blob = base64.b64decode(blob_text, validate=True)
        except binascii.Error as exc:
            raise NoteError(f"signature of {name!r} is not base64") from exc
        if name != verifier.name or blob[:4] != verifier.key_id:
            continue  # someone else's signature (a witness, say): not ours to judge
        try:
            Ed25519PublicKey.from_public_bytes(verifier.public_key).verify(blob[4:], text.encode("utf-8"))
        except InvalidSignature as exc:
            raise NoteError(f"the signature by {name} does not verify") from exc
        return text
    raise NoteError(f"the note carries no signature by {verifier.name} (key id {verifier.key_id.hex()})")


@dataclass(frozen=True)
class CheckpointBody:
    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()


def parse_checkpoint(text: str) -> CheckpointBody:
    """Read a C2SP tlog-checkpoint body: origin, decimal size, base64 root, optional extension lines."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint has an origin, a size and a root hash, one per line")
    origin, size_text, root_text = lines[:3]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise NoteError(f"checkpoint size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise NoteError("checkpoint root hash is not base64") from exc
    if len(root) != 32:
        raise NoteError("checkpoint root hash is not 32 bytes")
    return CheckpointBody(origin, int(size_text), root, tuple(lines[3:-1]))


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> None:
    """RFC 9162 section 2.1.3.2: does `proof` take leaf `index` of a `size`-leaf tree to `root`?"""
    if index >= size:
        raise ProofFailed(f"leaf index {index} is not below tree size {size}")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofFailed("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofFailed("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise ProofFailed(f"inclusion proof of leaf {index} does not lead to the root of size {size}")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> None:
    """RFC 9162 section 2.1.4.2: is the `old_size` tree a prefix of the `new_size` tree?"""
    if old_size > new_size:
        raise ProofFailed(f"old size {old_size} is larger than new size {new_size}")
    if old_size == new_size:
        if proof or old_root != new_root:
            raise ProofFailed(f"two trees of size {old_size} must have the same root and an empty proof")
        return
    if old_size == 0:
        if proof:
            raise ProofFailed("the empty tree's consistency proof is empty")
        return
    if old_size & (old_size - 1) == 0:
        proof = [old_root, *proof]
    if not proof:
        raise ProofFailed("consistency proof is empty")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            raise ProofFailed("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofFailed("consistency proof is too short")
    if fr != old_root:
        raise ProofFailed(f"consistency proof does not lead to the root of size {old_size}")
    if sr != new_root:
        raise ProofFailed(f"consistency proof does not lead to the root of size {new_size}")


def check_inclusion_document(document: dict[str, Any], verifier: Verifier) -> CheckpointBody:
    """Check a `log prove --json` document offline: signed note, entry, leaf hash and audit path."""
    body = parse_checkpoint(open_note(document["note"], verifier))
    entry = str(document["entry"])
    leaf = hashlib.sha256(b"\x00" + entry.encode("utf-8")).digest()
    index = int(document["leaf_index"])
    if json.loads(entry).get("seq") != index:
        raise ProofFailed(f"the entry's own sequence number is not the leaf index {index}")
    if leaf.hex() != document.get("leaf_hash", leaf.hex()):
        raise ProofFailed("the entry does not hash to the leaf hash given")
    if int(document.get("tree_size", body.tree_size)) != body.tree_size:
        raise ProofFailed("the tree size given is not the signed one")
    verify_inclusion(leaf, index, body.tree_size, [bytes.fromhex(h) for h in document["inclusion_proof"]],
                     body.root_hash)
    return body


def check_consistency_document(document: dict[str, Any], verifier: Verifier) -> tuple[CheckpointBody, CheckpointBody]:
    """Check a `log consistency --json` document offline: both signed notes and the proof between them."""
    old = parse_checkpoint(open_note(document["old_note"], verifier))
    new = parse_checkpoint(open_note(document["new_note"], verifier))
    if old.origin != new.origin:
        raise ProofFailed(f"the checkpoints come from two logs: {old.origin} and {new.origin}")
    verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash,
                       [bytes.fromhex(h) for h in document["consistency_proof"]])
    return old, new


@dataclass(frozen=True)
class ProofChecked:
    """What a saved proof document showed, once every signature and hash checked out."""

    origin: str
    message: str
    leaf_index: int | None = None
    tree_size: int | None = None
    old_size: int | None = None
    new_size: int | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"ok": True, "origin": self.origin}
        for key in ("leaf_index", "tree_size", "old_size", "new_size"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


def check_document(document: dict[str, Any], verifier: Verifier) -> ProofChecked:
    """Check a saved inclusion or consistency proof offline; raises `VerificationError` naming what failed."""
    try:
        if "inclusion_proof" in document:
            body = check_inclusion_document(document, verifier)
            index = int(document["leaf_index"])
            return ProofChecked(body.origin, f"event {index} is in checkpoint {body.tree_size} of {body.origin}",
                                leaf_index=index, tree_size=body.tree_size)
        old, new = check_consistency_document(document, verifier)
    except (KeyError, TypeError, ValueError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise VerificationError(f"not a proof document: {detail}") from exc
    return ProofChecked(new.origin, f"checkpoint {new.tree_size} of {new.origin} extends checkpoint {old.tree_size}",
                        old_size=old.tree_size, new_size=new.tree_size)
