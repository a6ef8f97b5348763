"""`evidence source add|edit|show|list|interview`: sources, witnesses' aliases and identities, interviews.

A witness's real identity and contacts are read from a file or stdin
(`--identity-file FILE`, `-` for stdin: a JSON object such as
`{"name": …, "phone": …}`, or plain text), never from the command line, so
they do not land in shell history or a process listing. They are encrypted to
the custodian recipients and shown only by `source show REF --reveal-identity`
with a custodian key (`--identity KEYFILE`, default keys/custodian.key).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from api.cli.main import CliState, emit_json, pass_state

_FIELD_OPTIONS = (
    ("kind", "survivor, eyewitness, filmer, open_source, medical, or official."),
    ("alias", "The name the witness asked to be known by (sealed)."),
    ("url", "An open-source publication's URL (sealed)."),
    ("channel", "The channel or account that published it (sealed)."),
    ("posted-at", "When it was posted: YYYY-MM-DD or YYYY-MM-DDTHH:MM (sealed)."),
    ("description", "Who or what the source is, without naming a protected witness (sealed)."),
)


def _field_options(func: Any) -> Any:
    for name, text in reversed(_FIELD_OPTIONS):
        func = click.option(f"--{name}", name.replace("-", "_"), default=None, help=text)(func)
    return func


def _identity_from(path: str | None) -> Any:
    """The identity a file (or stdin, `-`) holds; None when no file is given."""
    from archive.records.identity import parse_identity_text
    from archive.services.errors import Invalid

    if path is None:
        return None
    try:
        data = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Invalid(f"--identity-file: cannot read it ({type(exc).__name__})") from None
    return parse_identity_text(data)


_IDENTITY_FILE = click.option(
    "--identity-file", default=None, metavar="FILE",
    help="The witness's real identity and contacts: a JSON object or text, from FILE or stdin ('-'); "
         "encrypted to the custodians.")


def _print(source: dict[str, Any]) -> None:
    for key in ("id", "ref", "kind", "reliability", "alias", "url", "channel", "posted_at", "description"):
        if source.get(key) not in (None, ""):
            click.echo(f"{key:12} {source[key]}")
    identity = source.get("identity")
    if isinstance(identity, dict):
        for field, value in identity.items():
            click.echo(f"identity     {field}: {value}")
    elif identity is not None:
        click.echo(f"identity     {identity}")
    for i in source.get("interviews", []):
        flags = f"  [{'; '.join(i['flags'])}]" if i.get("flags") else ""
        click.echo(f"interview    {i['held_on']} {i['id']} consent={str(i['informed_consent']).lower()} "
                   f"no_payment={str(i['no_payment']).lower()}{flags}")
    for change in source.get("history", []):
        click.echo(f"change       {change['at'][:19]} {change['change']} by {change['by']}"
                   f"{': ' + change['reason'] if change.get('reason') else ''}")


@click.group()
def source() -> None:
    """Sources: witnesses (maybe under an alias), people who filmed, publications, with their reliability."""


@source.command("add")
@click.argument("ref")
@_field_options
@_IDENTITY_FILE
@click.option("--reason", default=None, help="Why (kept in the history).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def add(state: CliState, ref: str, identity_file: str | None, reason: str | None, as_json: bool,
        **fields: Any) -> None:
    """Record a new source REF."""
    from archive.roles import Role
    from archive.services.sources import add_source

    identity = _identity_from(identity_file)
    given = {k: v for k, v in fields.items() if v is not None}
    with state.archive() as archive:
        shown = add_source(archive, {"ref": ref, **given}, role=Role.CUSTODIAN, identity=identity, reason=reason)
    emit_json(shown) if as_json else _print(shown)


@source.command("edit")
@click.argument("name")
@click.option("--ref", default=None, help="A new ref.")
@_field_options
@_IDENTITY_FILE
@click.option("--forget-identity", is_flag=True, help="Remove the identity (its history keeps it, encrypted).")
@click.option("--clear", "cleared", multiple=True, help="Clear an optional field (e.g. --clear alias).")
@click.option("--reason", default=None, help="Why (kept in the history).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def edit(state: CliState, name: str, identity_file: str | None, forget_identity: bool, cleared: tuple[str, ...],
         reason: str | None, as_json: bool, **fields: Any) -> None:
    """Change fields of source NAME (a ref or an id); the old state stays in its history."""
    from archive.roles import Role
    from archive.services.sources import edit_source

    identity = _identity_from(identity_file)
    changes = {**{k: v for k, v in fields.items() if v is not None}, **{c.replace("-", "_"): None for c in cleared}}
    with state.archive() as archive:
        shown = edit_source(archive, name, changes, role=Role.CUSTODIAN, identity=identity,
                            forget_identity=forget_identity, reason=reason)
    emit_json(shown) if as_json else _print(shown)


@source.command("show")
@click.argument("name")
@click.option("--reveal-identity", is_flag=True, help="Decrypt the witness's real identity (custodians only).")
@click.option("--identity", "identity_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The custodian's age identity file (default keys/custodian.key).")
@click.option("--history", is_flag=True, help="Every change, with the state before and after it.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def show(state: CliState, name: str, reveal_identity: bool, identity_path: Path | None, history: bool,
         as_json: bool) -> None:
    """Everything about source NAME (a ref or an id); its identity stays sealed unless revealed."""
    from archive.roles import Role
    from archive.services.sources import show_source

    with state.archive() as archive:
        shown = show_source(archive, name, role=Role.CUSTODIAN, reveal_identity=reveal_identity,
                            identity_path=identity_path, history=history)
    emit_json(shown) if as_json else _print(shown)


@source.command("list")
@click.option("--kind", default=None)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per source, per line.")
@pass_state
def list_command(state: CliState, kind: str | None, as_json: bool) -> None:
    """Sources by ref: kind, reliability rank, alias, interviews (never an identity)."""
    from archive.roles import Role
    from archive.services.sources import list_sources

    with state.archive() as archive:
        rows = list_sources(archive, role=Role.CUSTODIAN, kind=kind)
    for row in rows:
        if as_json:
            emit_json(row)
        else:
            flagged = f"  ({row['flagged_interviews']} flagged)" if row["flagged_interviews"] else ""
            click.echo(f"{row['ref']:24} {row['kind']:12} rank {row['reliability']}  {row['alias'] or '-':20} "
                       f"{'identity sealed' if row['has_identity'] else 'no identity':16} "
                       f"{row['interviews']} interview(s){flagged}")


@source.command("interview")
@click.argument("name")
@click.option("--held-on", required=True, help="The day of the interview (YYYY-MM-DD).")
@click.option("--informed-consent", required=True, type=click.Choice(["true", "false"]),
              help="Whether the witness gave informed consent (false is recorded and flagged).")
@click.option("--no-payment", required=True, type=click.Choice(["true", "false"]),
              help="true: no payment was offered or made (false is recorded and flagged).")
@click.option("--interviewer", default=None, help="Who interviewed (sealed).")
@click.option("--notes", default=None, help="Notes (sealed).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def interview(state: CliState, name: str, held_on: str, informed_consent: str, no_payment: str,
              interviewer: str | None, notes: str | None, as_json: bool) -> None:
    """Record an interview of source NAME, with its informed consent and no-payment answers."""
    from archive.roles import Role
    from archive.services.sources import add_interview

    with state.archive() as archive:
        shown = add_interview(archive, name, held_on, informed_consent, no_payment, interviewer, notes,
                              role=Role.CUSTODIAN)
    if as_json:
        emit_json(shown)
        return
    click.echo(f"interview {shown['id']} of {name} on {shown['held_on']} recorded")
    for flag in shown["flags"]:
        click.echo(f"warning: {flag}", err=True)



@click.command("provenance")
@click.argument("item")
@click.option("--channel", default=None,
              help="How it came: upload, email, messaging, social_media, field_researcher, legacy_disk.")
@click.option("--source-record", default=None, metavar="REF", help="The source record that handed it over.")
@click.option("--arrival", type=int, default=None, help="Which arrival (ids in `show ITEM`), when several.")
@click.option("--reason", default=None, help="Why (kept in the history).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def provenance(state: CliState, item: str, channel: str | None, source_record: str | None, arrival: int | None,
               reason: str | None, as_json: bool) -> None:
    """Give an arrival of ITEM its channel and source record (a change in its custody timeline)."""
    from archive.roles import Role
    from archive.services.sources import set_provenance

    with state.archive() as archive:
        shown = set_provenance(archive, item, role=Role.CUSTODIAN, channel=channel, source=source_record,
                               arrival=arrival, reason=reason)
    if as_json:
        emit_json(shown)
        return
    what = "recorded" if shown["changed"] else "unchanged"
    click.echo(f"arrival {shown['arrival']} of {shown['item_id']}: channel {shown['channel'] or '-'}, "
               f"source {shown['source_ref'] or '-'} ({what})")


COMMANDS = [source, provenance]
