"""`evidence similar`: the same picture or footage among everything kept."""

from __future__ import annotations

import click

from api.cli.main import CliState, emit_json, pass_state


@click.command()
@click.argument("target")
@click.option(
    "--max-distance",
    type=click.IntRange(0, 64),
    default=None,
    help="Largest Hamming distance (0-64) of the best-matching fingerprint; default 11.",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON list of {id, distance[, frame_match_share]}.")
@pass_state
def similar(state: CliState, target: str, max_distance: int | None, as_json: bool) -> None:
    """Items that look like TARGET: a file (compared, never ingested) or an ITEM id or prefix."""
    from archive.similarity import DEFAULT_MAX_DISTANCE
    from archive.similarity import similar as find_similar

    with state.archive() as archive:
        matches = find_similar(archive, target, DEFAULT_MAX_DISTANCE if max_distance is None else max_distance)
    if as_json:
        emit_json([m.as_dict() for m in matches])
        return
    if not matches:
        click.echo("no similar items")
    for m in matches:
        share = "" if m.frame_match_share is None else f"  frames {m.frame_match_share:.0%}"
        click.echo(f"{m.id}  distance {m.distance}{share}")


COMMANDS = [similar]
