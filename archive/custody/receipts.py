"""Upload receipts: C2SP signed notes under a receipt key of the archive's own, never the log key.

A receipt tells a contributor, in a form it can check offline and show
others, what the archive acknowledged for one arrival:

    evidence-receipt/1
    origin <the log's origin>
    upload <upload id>
    item <item id>
    sha256 <lowercase hex of the whole file>
    size <bytes, decimal>
    received <RFC 3339 UTC, e.g. 2026-12-01T18:10:22.123456Z>
    event <sequence number of the arrival's ingestion event>

signed as a C2SP signed note (see `archive.custody.checkpoint.Signer`). The
key is named `<origin>/receipts`: its name and key id differ from the log's
(`<origin>`), and its first line is no tree size, so a receipt never opens as
a checkpoint and a checkpoint never as a receipt, whichever key is tried. The
receipt says nothing of whether the file was already held.

The signer key lives beside the log key in `keys/` (`receipt-signing.key`,
0600; `receipt.vkey` published), and each storage site keeps it sealed to the
archive's recipients (`log/receipt-key.age`, beside the log's sealed key), so
a custodian who rebuilds the catalog from a site can go on signing receipts
that verify under the key contributors pinned.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive.custody.side_keys import SideKey
from archive.custody.verify import NoteError, VerificationError, Verifier, open_note, valid_key_name

if TYPE_CHECKING:
    from archive.age import Identity, Recipient
    from archive.config import Settings
    from archive.context import Archive
    from archive.custody.checkpoint import Signer
    from storage.base import Backend

HEADER = "evidence-receipt/1"
KEY_SUFFIX = "/receipts"
SIGNING_KEY_NAME = "receipt-signing.key"
VKEY_NAME = "receipt.vkey"
SEALED_KEY = "log/receipt-key.age"  # on each site, beside log/signing-key.age
SITE_VKEY = "log/receipt.vkey"
FIELDS = ("origin", "upload", "item", "sha256", "size", "received", "event")

_SHA256 = re.compile(r"[0-9a-f]{64}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")
_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no space


class ReceiptError(VerificationError):
    """A receipt that is malformed, signed by another key, or whose signature does not verify."""


def receipt_key_name(origin: str) -> str:
    """The receipt key's name for a log origin: never the origin itself."""
    return origin + KEY_SUFFIX


def _rfc3339(received: str | datetime) -> str:
    if isinstance(received, datetime):
        if received.tzinfo is None:
            raise ValueError("received must be an aware datetime (UTC)")
        return received.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if not _RFC3339_UTC.fullmatch(received):
        raise ValueError(f"received {received!r} is not an RFC 3339 UTC time (…Z)")
    datetime.fromisoformat(received.replace("Z", "+00:00"))  # a real date and time
    return received


def receipt_text(origin: str, upload_id: str, item_id: str, sha256: str, size: int, received: str | datetime,
                 event_seq: int) -> str:
    """The exact text a receipt signs, checked field by field (ValueError naming the bad one)."""
    if not valid_key_name(origin) or not valid_key_name(receipt_key_name(origin)):
        raise ValueError(f"origin {origin!r} is not a signed-note key name")
    for name, value in (("upload", upload_id), ("item", item_id)):
        if not _ID.fullmatch(value):
            raise ValueError(f"{name} id {value!r} is not an id (1-128 printable ASCII characters, no space)")
    if not _SHA256.fullmatch(sha256):
        raise ValueError("sha256 must be 64 lowercase hex digits")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"size {size!r} is not a byte count")
    if isinstance(event_seq, bool) or not isinstance(event_seq, int) or event_seq < 0:
        raise ValueError(f"event {event_seq!r} is not a sequence number")
    lines = [HEADER, f"origin {origin}", f"upload {upload_id}", f"item {item_id}", f"sha256 {sha256}",
             f"size {size}", f"received {_rfc3339(received)}", f"event {event_seq}"]
    return "\n".join(lines) + "\n"


def parse_receipt_text(text: str) -> dict[str, Any]:
    """The fields of a receipt's (already authenticated) text; ReceiptError naming the first bad line."""
    lines = text.split("\n")
    if lines[-1] != "":
        raise ReceiptError("malformed receipt: the text must end in a newline")
    lines = lines[:-1]
    if not lines or lines[0] != HEADER:
        first = lines[0] if lines else ""
        raise ReceiptError(f"wrong header: {first[:40]!r} (a receipt starts with {HEADER!r})")
    if len(lines) != 1 + len(FIELDS):
        raise ReceiptError(f"malformed receipt: {len(lines)} lines, expected {1 + len(FIELDS)}")
    fields: dict[str, Any] = {}
    for number, (line, name) in enumerate(zip(lines[1:], FIELDS, strict=True), start=2):
        key, sep, value = line.partition(" ")
        if key != name or not sep or not value:
            raise ReceiptError(f"malformed line {number}: expected '{name} <value>', got {line[:60]!r}")
        fields[name] = value
    for name in ("size", "event"):
        if not _DECIMAL.fullmatch(fields[name]):
            raise ReceiptError(f"malformed {name} line: {fields[name]!r} is not a decimal number")
        fields[name] = int(fields[name])
    if not _SHA256.fullmatch(fields["sha256"]):
        raise ReceiptError("malformed sha256 line: not 64 lowercase hex digits")
    try:
        _rfc3339(fields["received"])
    except ValueError as exc:
        raise ReceiptError(f"malformed received line: {exc}") from exc
    for name in ("upload", "item"):
        if not _ID.fullmatch(fields[name]):
            raise ReceiptError(f"malformed {name} line: {fields[name][:60]!r} is not an id")
    if not valid_key_name(fields["origin"]):
        raise ReceiptError("malformed origin line: not a log origin")
    return fields


def verify_receipt(note_text: str, vkey_text: str) -> dict[str, Any]:
    """Check a receipt offline against the archive's receipt verifier key; its fields when it holds.

    Raises `ReceiptError` saying what is wrong: a bad verifier key, a key that
    is no receipt key (a log's checkpoint key, say), a note not signed by this
    key, a bad signature, a wrong header or a malformed line, or a receipt for
    another archive than the key's.
    """
    try:
        verifier = Verifier.decode(vkey_text)
    except NoteError as exc:
        raise ReceiptError(f"bad receipt verifier key: {exc}") from exc
    if not verifier.name.endswith(KEY_SUFFIX):
        raise ReceiptError(f"wrong key: {verifier.name!r} is not a receipt key (its name ends in {KEY_SUFFIX!r}; "
                           "a log's checkpoint key never verifies a receipt)")
    try:
        text = open_note(note_text, verifier)
    except NoteError as exc:
        if "does not verify" in str(exc):
            raise ReceiptError(f"bad signature: {exc}") from exc
        if "no signature by" in str(exc):
            raise ReceiptError(f"wrong key: {exc}") from exc
        raise ReceiptError(f"malformed receipt: {exc}") from exc
    fields = parse_receipt_text(text)
    if receipt_key_name(fields["origin"]) != verifier.name:
        raise ReceiptError(f"wrong key: the receipt is for {fields['origin']!r}, the key signs for {verifier.name!r}")
    return {**fields, "key": verifier.name, "key_id": verifier.key_id.hex()}


# -- the key ------------------------------------------------------------------------------------

KEY = SideKey("receipts", KEY_SUFFIX, SIGNING_KEY_NAME, VKEY_NAME, SEALED_KEY, SITE_VKEY, error=ReceiptError)
RETRY_SECONDS = KEY.retry_seconds  # a site that could not take the sealed key is tried again after this long


def ensure_receipt_key(settings: Settings, origin: str) -> Signer:
    """The archive's receipt signer, created on first use; keys/receipt-signing.key (0600), keys/receipt.vkey."""
    return KEY.ensure(settings, origin)


def install_receipt_key(keys_dir: Path, signer: Signer) -> None:
    """Put a recovered receipt signer into a new home's keys/ (a rebuild), unless one is there."""
    KEY.install(keys_dir, signer)


def receipt_signer(archive: Archive) -> Signer:
    """The receipt signer, read once per process (again if the key file changes), and sealed onto each site."""
    return KEY.signer(archive)


def seal_receipt_key(signer: Signer, recipients: list[Recipient]) -> bytes:
    """The receipt signer, age-encrypted: a seized site cannot sign receipts, a custodian can recover the key."""
    return KEY.seal(signer, recipients)


def unseal_receipt_key(backend: Backend, identities: list[Identity]) -> Signer | None:
    """The receipt signer a site keeps sealed, or None when the site has none (an older site)."""
    return KEY.unseal(backend, identities)


def receipt_vkey(archive: Archive) -> str:
    """The receipt verifier key, C2SP vkey format: what contributors pin and `evidence receipt verify` takes."""
    return receipt_signer(archive).verifier.encode()


def sign_receipt(archive: Archive, upload_id: str, item_id: str, sha256: str, size: int, received: str | datetime,
                 event_seq: int) -> str:
    """The signed receipt note for one arrival (ValueError when a field is not what a receipt may hold)."""
    from archive.custody.service import log_signer

    text = receipt_text(log_signer(archive).name, upload_id, item_id, sha256, size, received, event_seq)
    return receipt_signer(archive).sign_note(text)
