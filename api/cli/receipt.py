"""`evidence receipt …`: the receipt verifier key, and checking a receipt offline."""

from __future__ import annotations

import base64
import binascii
import json
import sys
from typing import Any

import click

from api.cli.main import CliState, emit_json, pass_state


@click.group()
def receipt() -> None:
    """Upload receipts: C2SP signed notes under the archive's receipt key (never the log key)."""


@receipt.command("key")
@pass_state
def key(state: CliState) -> None:
    """Print the receipt verifier key (C2SP vkey) contributors check receipts with."""
    from archive.services.receipts import receipt_key

    with state.archive() as archive:
        click.echo(receipt_key(archive))


class _Refused(Exception):
    """Why verification stopped, and the exit code that says so (1 invalid, 2 unusable input)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _read(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read(1 << 20)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise _Refused(f"cannot read the {what} {path}: {reason}", 2) from exc


def _key(path: str, what: str, option: str) -> str:
    """A verifier key file's text, once it parses (a key that does not is an error in use: exit 2)."""
    from archive.custody.verify import NoteError, Verifier

    text = _read(path, what)
    try:
        Verifier.decode(text)
    except NoteError as exc:
        raise _Refused(f"{option} {path} is not a verifier key ({exc}); expected one line "
                       "<name>+<key id>+<key>", 2) from exc
    return text


def _receipt_text(text: str) -> str:
    """The receipt note; also accepts the `Upload-Receipt` header's value (the same note, base64)."""
    from archive.custody.receipts import HEADER

    stripped = text.strip()
    if stripped and not stripped.startswith(HEADER) and "\n" not in stripped:
        try:
            decoded = base64.b64decode(stripped, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return text
        if decoded.startswith(HEADER):
            return decoded
    return text


def _check_proof(fields: dict[str, Any], proof_text: str, log_vkey: str) -> dict[str, Any]:
    """The proof's checkpoint is signed by the log key, and its leaf at index `event` leads to that root."""
    from archive.custody.proof_format import verify_tlog_proof
    from archive.custody.verify import VerificationError

    try:
        shown = verify_tlog_proof(proof_text, None, log_vkey, origin=fields["origin"])
    except VerificationError as exc:
        raise _Refused(f"proof: {exc}", 1) from exc
    if shown.index != fields["event"]:
        raise _Refused(f"proof: it is for event {shown.index}, the receipt names event {fields['event']}", 1)
    if shown.entry is not None:  # a reader of the log got the whole entry: it must be this arrival
        entry = json.loads(shown.entry)
        if entry.get("item") != fields["item"] or entry.get("type") != "ingestion":
            raise _Refused(f"proof: event {shown.index} is a {entry.get('type')!r} event of item "
                           f"{entry.get('item')!r}, not the ingestion of item {fields['item']}", 1)
    return {"index": shown.index, "tree_size": shown.tree_size, "root_hash": shown.root_hash.hex(),
            "leaf_hash": shown.leaf_hash.hex(), "entry_checked": shown.entry is not None}


@receipt.command("verify")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--vkey", "vkey_file", type=click.Path(dir_okay=False), required=True,
              help="The archive's receipt verifier key, as you received it (`evidence receipt key`, "
                   "GET /v1/receipts/key).")
@click.option("--proof", "proof_file", type=click.Path(dir_okay=False),
              help="Also check this tlog-proof of the receipt's event (GET /v1/receipts/{upload_id}/proof).")
@click.option("--log-vkey", "log_vkey_file", type=click.Path(dir_okay=False),
              help="The custody log's verifier key the proof's checkpoint is signed by (GET /v1/log/vkey; "
                   "not the receipt key). Required with --proof.")
@click.option("--json", "as_json", is_flag=True, help="ok and the receipt's fields, or ok false and the error.")
def verify(file: str, vkey_file: str, proof_file: str | None, log_vkey_file: str | None, as_json: bool) -> None:
    """Check the receipt in FILE offline (no archive needed), and with --proof its place in the custody log.

    FILE is the receipt note (GET /v1/receipts/{upload_id}) or the base64
    value of the `Upload-Receipt` header. With --proof and --log-vkey, the
    tlog-proof's checkpoint must be signed by the log key for the receipt's
    origin, its index must be the receipt's `event`, and its leaf must lead
    to the checkpoint's root. A contributor's proof gives the leaf only as a
    hash: that proves the log committed, at that position and signed, to an
    event it can no longer change or drop unnoticed (every later checkpoint
    must be consistent with this one), not what the event says.

    Exit codes: 0 valid, 1 invalid (not signed by the key, altered, another
    event), 2 an error in use (unreadable file, a key that does not parse,
    --proof without --log-vkey).
    """
    from archive.custody.receipts import ReceiptError, verify_receipt

    try:
        if (proof_file is None) != (log_vkey_file is None):
            raise _Refused("--proof and --log-vkey go together: the proof's checkpoint is signed by the log key", 2)
        note = _receipt_text(_read(file, "receipt"))
        vkey = _key(vkey_file, "receipt verifier key", "--vkey")
        proof = log_vkey = None
        if proof_file is not None and log_vkey_file is not None:
            proof, log_vkey = _read(proof_file, "proof"), _key(log_vkey_file, "log verifier key", "--log-vkey")
        try:
            fields: dict[str, Any] = verify_receipt(note, vkey)
        except ReceiptError as exc:
            raise _Refused(str(exc), 1) from exc
        checked = _check_proof(fields, proof, log_vkey) if proof is not None and log_vkey is not None else None
    except _Refused as exc:
        if as_json:
            emit_json({"ok": False, "error": str(exc)})
        else:
            click.echo(("INVALID: " if exc.code == 1 else "error: ") + str(exc), err=True)
        sys.exit(exc.code)
    if as_json:
        emit_json({"ok": True, **fields, **({"proof": checked} if checked else {})})
        return
    click.echo(f"ok: upload {fields['upload']} received {fields['received']} as item {fields['item']} "
               f"({fields['size']} bytes, sha256 {fields['sha256']}), event {fields['event']} of {fields['origin']}")
    if checked:
        what = "entry checked" if checked["entry_checked"] else "leaf given as a hash"
        click.echo(f"ok: event {checked['index']} is in the custody log at tree size {checked['tree_size']} "
                   f"(root {checked['root_hash']}, signed by the log key; {what})")


COMMANDS = [receipt]
