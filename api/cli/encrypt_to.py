"""`evidence encrypt-to list|add|remove`: who new originals are encrypted to."""

from __future__ import annotations

import click

from api.cli.main import CliState, emit_json, pass_state


@click.group("encrypt-to")
def encrypt_to() -> None:
    """The age recipients every new original is encrypted to (custodians, escrow keys)."""


def _print(result: object, as_json: bool) -> None:
    if as_json:
        emit_json(result)
        return
    for recipient in result.recipients:  # type: ignore[attr-defined]
        click.echo(recipient)


@encrypt_to.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def list_(state: CliState, as_json: bool) -> None:
    """List the recipients."""
    from archive.services.recipients import list_recipients

    with state.archive() as archive:
        _print(list_recipients(archive), as_json)


@encrypt_to.command("add")
@click.argument("recipient")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def add(state: CliState, recipient: str, as_json: bool) -> None:
    """Encrypt every new original to RECIPIENT (age1…) as well."""
    from archive.services.recipients import add_recipient

    with state.archive() as archive:
        _print(add_recipient(archive, recipient), as_json)


@encrypt_to.command("remove")
@click.argument("recipient")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def remove(state: CliState, recipient: str, as_json: bool) -> None:
    """Stop encrypting new originals to RECIPIENT (objects already written keep theirs)."""
    from archive.services.recipients import remove_recipient

    with state.archive() as archive:
        _print(remove_recipient(archive, recipient), as_json)


COMMANDS = [encrypt_to]
