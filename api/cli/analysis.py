"""`evidence analyze --backfill`: queue metadata and fingerprints for items that lack them."""

from __future__ import annotations

import click

from api.cli.main import CliState, emit_json, pass_state


@click.command()
@click.option("--backfill", is_flag=True, help="Queue an analysis job for every item that lacks a result.")
@click.option("--step", "steps", multiple=True, type=click.Choice(["metadata", "fingerprint"]),
              help="Only this step (repeat for several; default: every step).")
@click.option("--all", "redo_all", is_flag=True, help="Analyse every item again, not only those lacking a result.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def analyze(state: CliState, backfill: bool, steps: tuple[str, ...], redo_all: bool, as_json: bool) -> None:
    """Analyse items after the fact; the worker runs the jobs (it needs the access identity unlocked)."""
    from archive.services.backfill import STEPS, queue_analysis_backfill

    if not backfill:
        raise click.UsageError("say what to analyse: --backfill queues every item lacking metadata or fingerprints")
    with state.archive() as archive:
        queued = queue_analysis_backfill(archive, steps=steps or STEPS, only_missing=not redo_all)
    if as_json:
        emit_json(queued)
        return
    counts = ", ".join(f"{step}: {n}" for step, n in queued.by_step.items())
    click.echo(f"checked {queued.items_checked} items; queued {queued.jobs} analysis jobs ({counts})")
    if queued.jobs:
        click.echo("`evidence worker` runs them")
    if queued.needs_identity:
        click.echo("note: the worker needs the access identity to decode the originals, and it is locked here; "
                   "the jobs wait until a custodian runs `evidence unlock` (or starts the worker with --unlock)",
                   err=True)


COMMANDS = [analyze]
