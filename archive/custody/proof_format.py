"""Inclusion proofs as C2SP tlog-proof text (c2sp.org/tlog-proof@v1): one file an outsider checks offline.

    c2sp.org/tlog-proof@v1
    extra <base64 of opaque data>          (optional; here the event's canonical entry, or its leaf hash)
    index <leaf index, decimal>
    <base64 hash>                          (the RFC 6962 audit path, leaf's sibling first, one per line)
    …
                                           (an empty line)
    <the checkpoint, verbatim: a C2SP signed note>

The spec leaves `extra` to the application and warns it is not authenticated.
This archive puts there what the verifier needs to recompute the leaf: the
event's canonical entry (`archive.custody.entry`) for readers of the log, or
only its 32-byte leaf hash for a contributor (the entry's details are not
theirs to read). Either way nothing in it is trusted: the leaf it yields must
lead, through the audit path, to the root the log signed.

`tlog_proof` writes one for an event (checked before it is handed out);
`parse_tlog_proof` and `verify_tlog_proof` read and check one with no archive
at all, using the verifier in `archive.custody.verify`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from archive.custody.entry import leaf_hash
from archive.custody.merkle import HASH_SIZE
from archive.custody.verify import (
    CheckpointBody,
    NoteError,
    ProofFailed,
    VerificationError,
    Verifier,
    open_note,
    parse_checkpoint,
    verify_inclusion,
)

if TYPE_CHECKING:
    from archive.context import Archive

HEADER = "c2sp.org/tlog-proof@v1"
FILE_EXTENSION = ".tlog-proof"
MEDIA_TYPE = "text/plain; charset=utf-8"
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
Extra = Literal["entry", "leaf", "none"]


class TlogProofError(VerificationError):
    """A tlog-proof that is malformed or does not prove what it claims; the message says which part."""


@dataclass(frozen=True)
class TlogProof:
    """A parsed tlog-proof: nothing in it checked yet."""

    index: int
    path: tuple[bytes, ...]  # the audit path, leaf's sibling first
    checkpoint: str  # the signed note, verbatim
    extra: bytes | None = None

    def encode(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode("ascii"))
        lines.append(f"index {self.index}")
        lines += [base64.b64encode(h).decode("ascii") for h in self.path]
        return "\n".join(lines) + "\n\n" + self.checkpoint


@dataclass(frozen=True)
class ProofVerified:
    """What a tlog-proof showed, once its checkpoint's signature and its audit path checked out."""

    origin: str
    index: int
    tree_size: int
    root_hash: bytes
    leaf_hash: bytes
    entry: bytes | None  # the entry the leaf was computed from, when it was given or carried in `extra`

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"ok": True, "origin": self.origin, "index": self.index,
                                   "tree_size": self.tree_size, "root_hash": self.root_hash.hex(),
                                   "leaf_hash": self.leaf_hash.hex()}
        if self.entry is not None:
            data["entry"] = self.entry.decode("utf-8", "replace")
        return data


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TlogProofError(f"{what} is not base64") from exc


def parse_tlog_proof(text: str) -> TlogProof:
    """Read a tlog-proof's structure (header, optional extra, index, audit path, checkpoint); check nothing yet."""
    head, sep, checkpoint = text.partition("\n\n")
    if not sep:
        raise TlogProofError("not a tlog-proof: no empty line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise TlogProofError(f"not a tlog-proof: the first line is {lines[0][:40]!r}, not {HEADER!r}")
    at = 1
    extra = None
    if at < len(lines) and lines[at].startswith("extra "):
        extra = _b64(lines[at][len("extra "):], "the extra line")
        at += 1
    if at >= len(lines) or not lines[at].startswith("index "):
        raise TlogProofError(f"line {at + 1} must be 'index <decimal>'")
    index_text = lines[at][len("index "):]
    if not _DECIMAL.fullmatch(index_text):
        raise TlogProofError(f"index {index_text[:30]!r} is not a decimal number without leading zeroes")
    path = []
    for number, line in enumerate(lines[at + 1:], start=at + 2):
        value = _b64(line, f"audit path line {number}")
        if len(value) != HASH_SIZE:
            raise TlogProofError(f"audit path line {number} is not a SHA-256 hash ({len(value)} bytes)")
        path.append(value)
    if not checkpoint:
        raise TlogProofError("the checkpoint is missing after the empty line")
    return TlogProof(int(index_text), tuple(path), checkpoint, extra)


def _leaf_of(leaf: bytes | None, proof: TlogProof) -> tuple[bytes, bytes | None]:
    """(leaf hash, entry or None): from what the caller gives, else from the proof's extra data."""
    given = leaf if leaf is not None else proof.extra
    if given is None:
        raise TlogProofError("no leaf to check: give the entry or its leaf hash (the proof carries no extra data)")
    if len(given) == HASH_SIZE:  # a leaf hash; an entry is a JSON object far longer than 32 bytes
        return given, None
    return leaf_hash(given), given


def verify_tlog_proof(text: str, leaf: bytes | None, vkey_text: str, *, origin: str | None = None) -> ProofVerified:
    """Check a tlog-proof offline: the checkpoint's signature by `vkey_text`, then the audit path from the leaf.

    `leaf` is the entry's bytes, or its 32-byte RFC 6962 leaf hash, or None to
    take it from the proof's extra data (which proves something only once it
    leads to the signed root, as checked here). The checkpoint's origin must be
    the key's name (tlog-checkpoint: the key name matches the origin), and
    `origin` when given. An entry of this archive's format must carry the
    proof's index as its own sequence number. Raises `TlogProofError` (or
    `VerificationError`) naming what does not hold.
    """
    proof = parse_tlog_proof(text)
    try:
        verifier = Verifier.decode(vkey_text)
    except NoteError as exc:
        raise TlogProofError(f"bad log verifier key: {exc}") from exc
    try:
        body: CheckpointBody = parse_checkpoint(open_note(proof.checkpoint, verifier))
    except NoteError as exc:
        raise TlogProofError(f"the proof's checkpoint does not verify: {exc}") from exc
    if body.origin != verifier.name:
        raise TlogProofError(f"the checkpoint is for {body.origin!r}, the key signs for {verifier.name!r}")
    if origin is not None and body.origin != origin:
        raise TlogProofError(f"the checkpoint is for {body.origin!r}, not {origin!r}")
    hashed, entry = _leaf_of(leaf, proof)
    if entry is not None:
        try:
            fields = json.loads(entry)
        except ValueError:
            fields = None
        if isinstance(fields, dict) and "seq" in fields and fields["seq"] != proof.index:
            raise TlogProofError(f"the entry is event {fields['seq']}, the proof is for index {proof.index}")
    try:
        verify_inclusion(hashed, proof.index, body.tree_size, list(proof.path), body.root_hash)
    except ProofFailed as exc:
        raise TlogProofError(f"wrong leaf or tampered proof: {exc}") from exc
    return ProofVerified(body.origin, proof.index, body.tree_size, body.root_hash, hashed, entry)


def tlog_proof(archive: Archive, seq: int, *, extra: Extra = "entry") -> str:
    """The tlog-proof of event `seq` against the latest checkpoint (which must cover it).

    Raises `archive.custody.service.CustodyError` when there is no such event or
    no checkpoint covers it yet (see `NotCovered`). The proof is checked with
    the offline verifier before it is returned.
    """
    from archive.custody.service import CustodyError, prove_inclusion, verifier_key

    document = prove_inclusion(archive, seq)
    entry = str(document["entry"]).encode("utf-8")
    carried = {"entry": entry, "leaf": bytes.fromhex(document["leaf_hash"]), "none": None}[extra]
    proof = TlogProof(seq, tuple(bytes.fromhex(h) for h in document["inclusion_proof"]), document["note"], carried)
    text = proof.encode()
    try:
        verify_tlog_proof(text, entry, verifier_key(archive).encode())
    except VerificationError as exc:
        raise CustodyError(f"the proof of event {seq} does not verify ({exc}); run `evidence log verify`") from exc
    return text


def not_covered(message: str) -> bool:
    """Whether a `CustodyError` from `tlog_proof` means only "no checkpoint covers this event yet"."""
    return "not covered by a checkpoint" in message or "no checkpoint yet" in message
