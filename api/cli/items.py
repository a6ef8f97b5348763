"""`evidence init`, `ingest`, `list`, `show`, `get`: the everyday commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from api.cli.main import CliState, echo_tree, emit_json, fail, pass_state


@click.command()
@click.option("--operator", default=None, help="Operator name recorded in custody events.")
@click.option("--recipient", "recipients", multiple=True, help="A further age recipient (second custodian, escrow).")
@click.option(
    "--custodian-recipient",
    default=None,
    help="Use this custodian public key (age1…) instead of generating a key pair here.",
)
@pass_state
def init(state: CliState, operator: str | None, recipients: tuple[str, ...], custodian_recipient: str | None) -> None:
    """Create an archive home: config, catalog, two local storage roots and keys."""
    from archive.config import resolve_home
    from archive.services.setup import OFFLINE_WARNING, UNWRAPPED_NOTE, init_home

    info = init_home(
        resolve_home(state.home),
        operator=operator,
        extra_recipients=list(recipients),
        custodian_recipient=custodian_recipient,
    )
    click.echo(f"archive created at {info['home']}")
    click.echo(f"recipients: {', '.join(info['recipients'])}")
    click.echo(f"custody log verifier key (give it to your witnesses): {info['log_verifier_key']}")
    if info["custodian_identity"]:
        click.echo(OFFLINE_WARNING.format(path=info["custodian_identity"]), err=True)
    click.echo(UNWRAPPED_NOTE.format(access=info["access_identity"], catalog=info["catalog_key"]), err=True)


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--source", default=None, help="Where the files came from (kept as provenance).")
@click.option("--note", default=None, help="A note kept with the provenance record.")
@click.option("--channel", default=None,
              help="How the files came: upload, email, messaging, social_media, field_researcher, legacy_disk.")
@click.option("--source-record", default=None, metavar="REF",
              help="The source record (`evidence source add`) that handed the files over: a ref or an id.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file, per line.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Ingest files in N processes at once (default: one per core for batches of 8 files or more).",
)
@pass_state
def ingest(
    state: CliState, paths: tuple[str, ...], source: str | None, note: str | None, channel: str | None,
    source_record: str | None, as_json: bool, workers: int | None
) -> None:
    """Hash, encrypt and replicate files and folders (recursively)."""
    from archive.services.batch import ingest_files
    from archive.services.ingest import batch_workers, expand

    any_refused = False
    with state.archive() as archive:
        source_id = None
        if channel is not None or source_record is not None:
            from archive.services.sources import check_channel, source_id_for

            channel = check_channel(channel)  # checked before any file is read: a typo ingests nothing
            source_id = source_id_for(archive, source_record) if source_record is not None else None
        files = list(expand(list(paths)))
        workers = batch_workers(len(files), workers)
        progress = None
        if not as_json and len(files) > 1 and sys.stderr.isatty():
            from rich.progress import Progress

            progress = Progress(transient=True)
            progress.start()
            task = progress.add_task("ingesting", total=len(files))
        try:
            for (path, _), report in zip(
                files, ingest_files(archive, files, workers=workers, source=source, note=note,
                                      channel=channel, source_id=source_id), strict=True
            ):
                any_refused |= report.status == "refused"
                if as_json:
                    emit_json(report.as_dict())
                else:
                    line = f"{report.status:9} {report.id or '-':36} {path}"
                    if report.duplicate:
                        line += "  (duplicate)"
                    if report.error:
                        line += f"  {report.error}"
                    (progress.console.print if progress else click.echo)(line)
                if progress:
                    progress.advance(task)
        finally:
            if progress:
                progress.stop()
    sys.exit(1 if any_refused else 0)


@click.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--box", metavar="LAT1,LON1,LAT2,LON2",
              help="Only items captured inside this GPS box (LON1 its western edge, LON2 its eastern).")
@pass_state
def list_(state: CliState, as_json: bool, box: str | None) -> None:
    """List every item (or those captured inside a GPS box)."""
    from archive.services.items import list_items

    with state.archive() as archive:
        items = list_items(archive)
        if box is not None:
            from archive.services.search import AcrossAntimeridian, Box, items_in_box

            try:
                inside = set(items_in_box(archive, Box.parse(box)))
            except AcrossAntimeridian as exc:
                fail(str(exc), code=1)
            items = [item for item in items if item.id in inside]
    if as_json:
        emit_json(items)
        return
    for item in items:
        size = str(item.size) if item.size is not None else f"~{item.size_bucket or '?'}"
        click.echo(f"{item.id}  {item.status:9}  {size:>12}  {item.sha256 or '(sealed: locked)'}")


@click.command()
@click.argument("item")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def show(state: CliState, item: str, as_json: bool) -> None:
    """Everything known about one item (ITEM: an id or a unique prefix of 8+ characters)."""
    from archive.services.items import show_item

    with state.archive() as archive:
        data = show_item(archive, item)
    if as_json:
        emit_json(data)
    else:
        echo_tree(data.as_dict())


@click.command()
@click.argument("item")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--identity", type=click.Path(dir_okay=False, path_type=Path), default=None, help="age identity file.")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@pass_state
def get(state: CliState, item: str, output: Path, identity: Path | None, force: bool) -> None:
    """Decrypt an original to a file, verifying its SHA-256 against the custody log's commitment to the item."""
    from archive.services.errors import IntegrityError
    from archive.services.items import get_item

    with state.archive() as archive:
        try:
            result = get_item(archive, item, output, identity, overwrite=force)
        except IntegrityError as exc:
            fail(f"REFUSED: {exc}", code=1)  # a check failed: nothing was written under that name
    for failure in result.failures:
        click.echo(f"warning: a copy failed and was skipped: {failure}", err=True)
    click.echo(f"{output}: {result.size} bytes, SHA-256 {result.sha256} verified (from {result.backend})")


COMMANDS = [init, ingest, list_, show, get]
