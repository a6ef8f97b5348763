"""`evidence previews backfill`: thumbnails and poster frames for items ingested before previews existed."""

from __future__ import annotations

import click

from api.cli.main import CliState, emit_json, pass_state


@click.group()
def previews() -> None:
    """The web pages' previews (metadata-free, encrypted to the preview identity)."""


@previews.command("backfill")
@click.option("--limit", type=click.IntRange(min=1), default=500, show_default=True,
              help="Items decoded in this run (run again for more).")
@click.option("--retry", is_flag=True, help="Try again the files that yielded no preview before.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def backfill(state: CliState, limit: int, retry: bool, as_json: bool) -> None:
    """Make the missing previews, reading each original through the access identity (an access event each)."""
    from archive.services.previews import backfill_previews

    with state.archive() as archive:
        result = backfill_previews(archive, limit, retry=retry)
    if as_json:
        emit_json(result)
        return
    click.echo(f"{result.made} previews made, {result.none} files yield none, {result.remaining} items still "
               f"without one (of {result.missing} missing)")
    for problem in result.problems:
        click.echo(f"warning: {problem}", err=True)


COMMANDS = [previews]
