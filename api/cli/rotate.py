"""`evidence keys rotate-catalog`: a new catalog key version, every sealed row re-sealed, the old ones dropped.

A subcommand of `evidence keys` (`api.cli.keys`); here so the keys group stays small.
"""

from __future__ import annotations

import click

from api.cli.main import CliState, emit_json, pass_state


@click.command("rotate-catalog")
@click.option("--batch", type=int, default=500, show_default=True, help="Rows re-sealed per transaction.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def rotate_catalog(state: CliState, batch: int, as_json: bool) -> None:
    """Rotate the catalog key (run again after an interruption: it finishes the rotation under way)."""
    from archive.services.rotate import rotate_catalog as rotate

    def progress(table: str, done: int) -> None:
        if not as_json:
            click.echo(f"  {table}: {done} rows re-sealed", err=True)

    with state.archive() as archive:
        report = rotate(archive, batch=batch, progress=progress)
    if as_json:
        emit_json(report)
        return
    verb = "finished the rotation under way" if report.resumed else "rotated"
    total = sum(report.resealed.values())
    click.echo(f"catalog key {verb}: now version {report.current}, {total} rows re-sealed, "
               f"versions dropped: {', '.join(map(str, report.dropped)) or 'none'}")
