"""`evidence recipients`: who evidence bundles go to (a UN mechanism, a court, a partner) and their age keys."""

from __future__ import annotations

from typing import Any

import click

from api.cli.main import CliState, emit_json, pass_state
from archive.exports.formats import RECIPIENT_KINDS


def _line(row: dict[str, Any]) -> str:
    removed = f"  removed {row['removed_at']}" if row.get("removed_at") else ""
    return f"{row['id']}  {row['kind']:<7}  {row['fingerprint'][:16]}  {row['name']}{removed}"


@click.group("recipients")
def recipients() -> None:
    """Registered recipients of evidence bundles: `evidence export --to NAME` encrypts to their key.

    Adding and removing are for custodians and each is a custody event.
    """


@recipients.command("add")
@click.argument("name")
@click.option("--age", "age_key", required=True, metavar="AGE_RECIPIENT", help="The recipient's age public key.")
@click.option("--kind", required=True, type=click.Choice(RECIPIENT_KINDS),
              help="un and court bundles withhold victims without the family's consent for that scope.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def recipients_add(state: CliState, name: str, age_key: str, kind: str, as_json: bool) -> None:
    """Register NAME (an organisation) with its age public key and kind."""
    from archive.exports.recipients import add_recipient
    from archive.roles import Role

    with state.archive() as archive:
        row = add_recipient(archive, name, age_key, kind, role=Role.CUSTODIAN)
    emit_json(row) if as_json else click.echo(_line(row))


@recipients.command("list")
@click.option("--removed", is_flag=True, help="Also the recipients removed (past exports name them).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def recipients_list(state: CliState, removed: bool, as_json: bool) -> None:
    """The registered recipients: id, kind, key fingerprint (first 16 hex digits), name."""
    from archive.exports.recipients import list_recipients
    from archive.roles import Role

    with state.archive() as archive:
        rows = list_recipients(archive, role=Role.CUSTODIAN, removed=removed)
    for row in rows:
        emit_json(row) if as_json else click.echo(_line(row))


@recipients.command("remove")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def recipients_remove(state: CliState, name: str, as_json: bool) -> None:
    """Stop exporting to NAME (its record stays, for the exports already made to it)."""
    from archive.exports.recipients import remove_recipient
    from archive.roles import Role

    with state.archive() as archive:
        row = remove_recipient(archive, name, role=Role.CUSTODIAN)
    emit_json(row) if as_json else click.echo(f"{row['name']} removed ({row['id']})")


COMMANDS: list[Any] = [recipients]
