"""`evidence similar`: the same picture or footage among everything kept."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import click

from api.cli.main import CliState, emit_json, fail, pass_state


@click.command()
@click.argument("target", required=False)
@click.option("--file", "file", type=click.File("rb"), default=None,
              help="Compare this file (read here, handed over as bytes; never ingested). '-' reads standard input.")
@click.option(
    "--max-distance",
    type=click.IntRange(0, 64),
    default=None,
    help="Largest Hamming distance (0-64) of the best-matching fingerprint; default 11.",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON list of {id, distance[, frame_match_share]}.")
@pass_state
def similar(state: CliState, target: str | None, file: BinaryIO | None, max_distance: int | None,
            as_json: bool) -> None:
    """Items that look like an ITEM (an id or a unique prefix), or like the bytes of --file."""
    from archive.similarity import DEFAULT_MAX_DISTANCE, similar_to_item, similar_to_upload

    distance = DEFAULT_MAX_DISTANCE if max_distance is None else max_distance
    if (target is None) == (file is None):
        fail("name an ITEM, or give --file (not both)")
    with state.archive() as archive:
        if file is not None:
            with spooled(file) as source:
                matches = similar_to_upload(archive, source, distance)
        else:
            assert target is not None
            matches = similar_to_item(archive, target, distance)
    if as_json:
        emit_json([m.as_dict() for m in matches])
        return
    if not matches:
        click.echo("no similar items")
    for m in matches:
        share = "" if m.frame_match_share is None else f"  frames {m.frame_match_share:.0%}"
        click.echo(f"{m.id}  distance {m.distance}{share}")


QUERY_LIMIT = 4 * 1024 * 1024 * 1024  # a query file larger than this is refused, never spooled without end


@contextmanager
def spooled(stream: BinaryIO, in_memory: int = 64 * 1024 * 1024, limit: int = QUERY_LIMIT) -> Iterator[bytes | Path]:
    """The bytes of `stream`: as bytes when small, else a sealed in-memory file (never a file on disk)."""
    from ingest.sandbox.memory import in_memory as memory

    head = stream.read(in_memory + 1)
    if len(head) <= in_memory:
        yield head
        return

    def chunks() -> Iterator[bytes]:
        size = len(head)
        yield head
        while chunk := stream.read(1024 * 1024):
            size += len(chunk)
            if size > limit:
                fail(f"a file to compare may be at most {limit // 2**30} GiB")
            yield chunk

    with memory(chunks(), "evidence-query") as path:
        yield path


COMMANDS = [similar]
