"""`evidence verify-bundle FILE`: check an evidence bundle as received, with no catalog and no network."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from api.cli.main import emit_json


def _text(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _Unusable(f"cannot read the {what} {path}: {exc}") from exc


class _Unusable(Exception):
    """An error in use (exit 2): unreadable file, a key that does not parse, no identity."""


@click.command("verify-bundle")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--identity", "identity_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The recipient's age identity file, for an encrypted bundle (decrypted to a private temp file).")
@click.option("--vkey", "vkey_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The archive's log verifier key from a trusted channel (`evidence log key`): the only thing "
                   "that establishes authenticity.")
@click.option("--checkpoint", "checkpoint_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The bundle's checkpoint as a witness or the archive gave it, or the JSON of `evidence log "
                   "consistency OLD NEW --json`: the bundle's history must still be part of the log. Without "
                   "--vkey it is checked under the bundle's own log key, so authenticity then rests on where "
                   "that checkpoint came from.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
def verify_bundle(file: Path, identity_path: Path | None, vkey_path: Path | None, checkpoint_path: Path | None,
                  as_json: bool) -> None:
    """Check FILE (a bundle .zip/.tar, age-encrypted or not, or an unpacked bag folder) offline.

    Checks the bag (both manifests and tag manifests, Payload-Oxum, no missing
    or extra file), the bundle signature, the checkpoint signature, every
    inclusion proof and event, every item and record commitment and
    salts.json, and reports how many of each. Without --vkey the bundle can
    be intact but its authenticity is NOT established (the keys inside could
    be a forger's); a --checkpoint alone is checked under the bundle's own log
    key, so authenticity then rests on that checkpoint's trusted origin.

    Exit codes: 0 verified, 1 a check failed, 2 an error in use.
    """
    from archive.exports.verify_bundle import BundleUnreadable
    from archive.exports.verify_bundle import verify_bundle as check
    from archive.exports.verify_script import Failed, checkpoint_input, parse_vkey

    try:
        vkey = _text(vkey_path, "verifier key")
        if vkey is not None:
            lines = [line for line in vkey.splitlines() if line.strip()]
            if not lines:
                raise _Unusable(f"--vkey {vkey_path} holds no key")
            for line in lines:
                try:
                    parse_vkey(line)
                except Failed as exc:
                    raise _Unusable(f"--vkey {vkey_path} is not a verifier key ({exc})") from exc
        checkpoint = _text(checkpoint_path, "checkpoint")
        if checkpoint is not None:
            try:
                checkpoint_input(checkpoint)
            except Failed as exc:
                raise _Unusable(f"--checkpoint {checkpoint_path} is unusable: {exc}") from exc
        report = check(file, identity_path=identity_path, vkey=vkey, checkpoint=checkpoint)
    except (_Unusable, BundleUnreadable) as exc:
        if as_json:
            emit_json({"ok": False, "error": str(exc)})
        else:
            click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if as_json:
        emit_json(report.as_dict())
    else:
        click.echo(report.text(), nl=False)
    sys.exit(0 if report.ok else 1)


COMMANDS: list[Any] = [verify_bundle]
