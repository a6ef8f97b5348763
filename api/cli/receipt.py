"""`evidence receipt …`: the receipt verifier key, and checking a receipt offline."""

from __future__ import annotations

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


def _read(path: str, what: str, as_json: bool) -> str:
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read(1 << 20)
    except (OSError, UnicodeDecodeError) as exc:
        message = f"cannot read the {what} {path}: {exc.strerror if isinstance(exc, OSError) else exc}"
        if as_json:
            emit_json({"ok": False, "error": message})
        else:
            click.echo(f"error: {message}", err=True)
        sys.exit(2)


@receipt.command("verify")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--vkey", "vkey_file", type=click.Path(dir_okay=False), required=True,
              help="The archive's receipt verifier key, as you received it (`evidence receipt key`).")
@click.option("--json", "as_json", is_flag=True, help="ok and the receipt's fields, or ok false and the error.")
def verify(file: str, vkey_file: str, as_json: bool) -> None:
    """Check the receipt in FILE offline (no archive needed). Exit 0 valid, 1 invalid, 2 unreadable input."""
    from archive.custody.receipts import ReceiptError, verify_receipt

    note, vkey = _read(file, "receipt", as_json), _read(vkey_file, "verifier key", as_json)
    try:
        fields: dict[str, Any] = verify_receipt(note, vkey)
    except ReceiptError as exc:
        if as_json:
            emit_json({"ok": False, "error": str(exc)})
        else:
            click.echo(f"INVALID: {exc}", err=True)
        sys.exit(1)
    if as_json:
        emit_json({"ok": True, **fields})
        return
    click.echo(f"ok: upload {fields['upload']} received {fields['received']} as item {fields['item']} "
               f"({fields['size']} bytes, sha256 {fields['sha256']}), event {fields['event']} of {fields['origin']}")


COMMANDS = [receipt]
