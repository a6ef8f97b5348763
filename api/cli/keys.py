"""`evidence unlock`, `lock`, and `keys protect|status|add-access`: the access identity, the catalog key and the
preview identity (it opens the web pages' thumbnails only).

A passphrase comes from `--passphrase-file FILE` (its first line), else the
file named by `EVIDENCE_PASSPHRASE_FILE`, else a prompt on the terminal; it is
never echoed, printed or logged.
"""

from __future__ import annotations

from pathlib import Path

import click

from api.cli.main import CliState, emit_json, pass_state

PASSPHRASE_FILE = click.option(
    "--passphrase-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Read the passphrase from this file's first line (else $EVIDENCE_PASSPHRASE_FILE, else a prompt).",
)


def ask_passphrase(path: Path | None, *, confirm: bool = False) -> str:
    """The passphrase from the file given, the environment's file, or a hidden prompt (twice with `confirm`)."""
    from archive.keys.wrapping import passphrase_from_env, passphrase_from_file

    if path is not None:
        return passphrase_from_file(path)
    from_env = passphrase_from_env()
    if from_env is not None:
        return from_env
    text: str = click.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm, err=True)
    return text


@click.command()
@PASSPHRASE_FILE
@click.option("--json", "as_json", is_flag=True)
@pass_state
def unlock(state: CliState, passphrase_file: Path | None, as_json: bool) -> None:
    """Unlock the access identity, the catalog key and the preview identity for this user's processes of the
    archive (RAM only)."""
    from archive.services.keys import unlock as unlock_keys

    with state.archive() as archive:
        result = unlock_keys(archive, ask_passphrase(passphrase_file))
    if as_json:
        emit_json(result)
    elif result.note:
        click.echo(result.note)
    else:
        click.echo(f"unlocked {', '.join(result.keys)} in {result.ram_dir} (RAM only; `evidence lock` removes them)")


@click.command()
@click.option("--json", "as_json", is_flag=True)
@pass_state
def lock(state: CliState, as_json: bool) -> None:
    """Remove the unlocked keys from RAM: reads are refused again (a process unlocked by its own passphrase
    stays unlocked until it ends)."""
    from archive.services.keys import lock as lock_keys

    with state.archive() as archive:
        result = lock_keys(archive)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"locked: removed {result.ram_dir}" if result.removed else "nothing was unlocked in RAM")


@click.group()
def keys() -> None:
    """The access identity and the catalog key: protect, status, add-access."""


@keys.command()
@PASSPHRASE_FILE
@click.option("--json", "as_json", is_flag=True)
@pass_state
def protect(state: CliState, passphrase_file: Path | None, as_json: bool) -> None:
    """Wrap the access identity, the catalog key and the preview identity with a passphrase (age) and remove the
    unwrapped files."""
    from archive.services.keys import protect as protect_keys

    with state.archive() as archive:
        result = protect_keys(archive, ask_passphrase(passphrase_file, confirm=True))
    if as_json:
        emit_json(result)
        return
    for path in result.wrapped:
        click.echo(f"wrapped {path}")
    click.echo("the keys are protected: `evidence unlock` (or `evidence worker --unlock`) unlocks them; "
               "without the passphrase nobody can read originals through the archive")


@keys.command()
@click.option("--json", "as_json", is_flag=True)
@pass_state
def status(state: CliState, as_json: bool) -> None:
    """Where each key is kept and whether this process can use it."""
    from archive.services.keys import status as key_status

    with state.archive() as archive:
        result = key_status(archive)
    if as_json:
        emit_json(result)
        return
    for place in result.keys:
        ram = " (and unlocked in RAM)" if place.in_ram else ""
        here = f"usable here: {place.usable_here}" if place.usable_here else "LOCKED in this process"
        click.echo(f"{place.name}: {place.at_rest} in keys/{ram}; {here}")
    click.echo(f"access recipient: {result.access_recipient or 'none'}"
               + ("" if result.access_in_recipients else " (NOT among the recipients of new originals)"))


@keys.command("add-access")
@click.option("--identity", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The custodian's age identity (default keys/custodian.key if it is there).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def add_access(state: CliState, identity: Path | None, as_json: bool) -> None:
    """Give the access identity to items encrypted before it existed (headers rewrapped, payloads untouched);
    make a missing access, catalog or preview key first."""
    from archive.services.add_access import add_access as run

    with state.archive() as archive:
        result = run(archive, identity)
    if as_json:
        emit_json(result)
        return
    for key in result.created:
        click.echo(f"created {key} (unwrapped; `evidence keys protect` wraps it)")
    click.echo(f"{result.rewrapped} copies rewrapped, {result.resealed} sealed documents re-sealed, "
               f"{result.already} already readable, {result.skipped} skipped")
    for problem in result.problems:
        click.echo(f"warning: {problem}", err=True)


@keys.command("settle")
@click.option("--identity", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Also open pending rows with this age identity (the custodian's), for rows the access "
                   "identity does not open.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def settle(state: CliState, identity: Path | None, as_json: bool) -> None:
    """Settle the rows written while locked now (needs the catalog key); report those no identity opens."""
    from archive.services.settle import settle_with

    with state.archive() as archive:
        result = settle_with(archive, identity)
    if as_json:
        emit_json(result)
        return
    click.echo(f"{result.total} pending rows settled, {len(result.merged)} items merged, "
               f"{len(result.skipped)} left pending")
    for table, row_id, reason in result.skipped:
        click.echo(f"warning: {table} {row_id} left pending: {reason}", err=True)
    if result.skipped:
        raise SystemExit(1)


def _more_subcommands() -> None:
    from api.cli.rotate import rotate_catalog  # its own module: rotation is a use case of its own

    keys.add_command(rotate_catalog)


_more_subcommands()
COMMANDS = [unlock, lock, keys]
