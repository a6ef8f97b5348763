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
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive.config import ConfigError, Settings
from archive.custody.checkpoint import Signer, _locked, write_new
from archive.custody.verify import NoteError, VerificationError, Verifier, open_note, valid_key_name

if TYPE_CHECKING:
    from archive.age import Identity, Recipient
    from archive.context import Archive
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


def ensure_receipt_key(settings: Settings, origin: str) -> Signer:
    """The archive's receipt signer, created on first use; keys/receipt-signing.key (0600), keys/receipt.vkey."""
    import os

    name = receipt_key_name(origin)
    path = settings.keys_dir / SIGNING_KEY_NAME
    with _locked(settings.keys_dir):
        if path.exists():
            try:
                signer = Signer.decode(path.read_text(encoding="ascii"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{path}: {exc}") from exc
            if signer.name != name:
                raise ConfigError(f"{path} signs receipts for {signer.name!r}, but this archive's receipts are "
                                  f"{name!r} (the log origin changed?)")
        else:
            signer = Signer.generate(name)
            write_new(path, signer.encode() + "\n")
        vkey_path = settings.keys_dir / VKEY_NAME
        if not vkey_path.exists() or vkey_path.read_text(encoding="ascii").strip() != signer.verifier.encode():
            tmp = vkey_path.with_suffix(".tmp")
            tmp.write_text(signer.verifier.encode() + "\n", encoding="ascii")
            os.replace(tmp, vkey_path)
    return signer


def install_receipt_key(keys_dir: Path, signer: Signer) -> None:
    """Put a recovered receipt signer into a new home's keys/ (a rebuild), unless one is there."""
    if not (keys_dir / SIGNING_KEY_NAME).exists():
        write_new(keys_dir / SIGNING_KEY_NAME, signer.encode() + "\n")
    (keys_dir / VKEY_NAME).write_text(signer.verifier.encode() + "\n", encoding="ascii")


_held: dict[Path, tuple[tuple[int, int], Signer]] = {}
_sealed_on: set[tuple[Path, str]] = set()  # (keys dir, site) this process saw holding the sealed key
_failed_at: dict[tuple[Path, str], float] = {}  # (keys dir, site) -> when it last could not take it
RETRY_SECONDS = 60.0  # a site that could not take the sealed key is tried again after this long, not at every receipt
_lock = threading.Lock()


def receipt_signer(archive: Archive) -> Signer:
    """The receipt signer, read once per process (again if the key file changes), and sealed onto each site."""
    from archive.custody.service import log_signer

    path = archive.settings.keys_dir / SIGNING_KEY_NAME
    with _lock:
        try:
            stat = path.stat()
            signature = (stat.st_ino, stat.st_mtime_ns)
        except FileNotFoundError:
            signature = (0, 0)
        held = _held.get(path)
        if held is None or held[0] != signature:
            signer = ensure_receipt_key(archive.settings, log_signer(archive).name)
            stat = path.stat()
            held = _held[path] = ((stat.st_ino, stat.st_mtime_ns), signer)
    _seal_on_sites(archive, held[1])
    return held[1]


def seal_receipt_key(signer: Signer, recipients: list[Recipient]) -> bytes:
    """The receipt signer, age-encrypted: a seized site cannot sign receipts, a custodian can recover the key."""
    from archive.age import encrypt_bytes

    return encrypt_bytes((signer.encode() + "\n").encode("ascii"), recipients)


def _seal_on_sites(archive: Archive, signer: Signer) -> None:
    """Each site that lacks it gets the sealed receipt key and its vkey, once; a site that cannot take it now
    is tried again RETRY_SECONDS later (a receipt never fails, nor waits on a site that is down, for it)."""
    import time

    keys_dir = archive.settings.keys_dir
    try:
        backends = list(archive.backends.values())
    except Exception:  # noqa: BLE001 - no configuration yet: nothing to seal onto
        return
    for backend in backends:
        place = (keys_dir, backend.name)
        failed = _failed_at.get(place)
        if place in _sealed_on or (failed is not None and time.monotonic() - failed < RETRY_SECONDS):
            continue
        try:
            if backend.stat(SEALED_KEY) is None:
                backend.put_bytes(SEALED_KEY, seal_receipt_key(signer, archive.recipients()))
            if backend.stat(SITE_VKEY) is None:
                backend.put_bytes(SITE_VKEY, (signer.verifier.encode() + "\n").encode("ascii"))
        except Exception:  # noqa: BLE001 - unavailable now; tried again RETRY_SECONDS later
            with _lock:
                _failed_at[place] = time.monotonic()
            continue
        with _lock:
            _sealed_on.add(place)
            _failed_at.pop(place, None)


def unseal_receipt_key(backend: Backend, identities: list[Identity]) -> Signer | None:
    """The receipt signer a site keeps sealed, or None when the site has none (an older site)."""
    from archive.age import AgeError, decrypt_bytes

    if backend.stat(SEALED_KEY) is None:
        return None
    with backend.open_reader(SEALED_KEY) as stream:
        sealed = bytes(stream.read())
    try:
        return Signer.decode(decrypt_bytes(sealed, identities).decode("ascii").strip())
    except (AgeError, ValueError, UnicodeDecodeError) as exc:
        raise ReceiptError(f"{SEALED_KEY} on {backend.name!r} cannot be opened: {exc}") from exc


def receipt_vkey(archive: Archive) -> str:
    """The receipt verifier key, C2SP vkey format: what contributors pin and `evidence receipt verify` takes."""
    return receipt_signer(archive).verifier.encode()


def sign_receipt(archive: Archive, upload_id: str, item_id: str, sha256: str, size: int, received: str | datetime,
                 event_seq: int) -> str:
    """The signed receipt note for one arrival (ValueError when a field is not what a receipt may hold)."""
    from archive.custody.service import log_signer

    text = receipt_text(log_signer(archive).name, upload_id, item_id, sha256, size, received, event_seq)
    return receipt_signer(archive).sign_note(text)
