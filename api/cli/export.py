"""`evidence export`: an evidence bundle (BagIt, custody proofs, signed) for a UN mechanism, a court or a partner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from api.cli.main import CliState, emit_json, fail, pass_state
from archive.exports.formats import FORMATS, PURPOSES


def _query(text: str) -> Any:
    """`--query "--party x --from 2023-01-01"`: the options of `evidence search`, parsed by its own parser."""
    import shlex

    from api.cli.links import search
    from archive.services.record_search import Query

    try:
        context = search.make_context("search", shlex.split(text))
    except (click.UsageError, ValueError) as exc:
        fail(f"--query: {exc}")
    options = {k: v for k, v in context.params.items() if k != "as_json"}
    return Query(**options)


@click.command("export")
@click.option("--incident", "incidents", multiple=True, metavar="REF",
              help="An incident: it, its victims, the items linked to it, their sources (repeatable).")
@click.option("--item", "items", multiple=True, metavar="ID",
              help="An item (id or unique prefix), with the incidents and victims it is linked to (repeatable).")
@click.option("--query", default=None, metavar="SEARCH-FLAGS",
              help='The items `evidence search` finds with these options, e.g. "--party x --from 2023-01-01".')
@click.option("--purpose", required=True, type=click.Choice(PURPOSES),
              help="un and court withhold victims without the family's consent for that scope, and their items.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The bundle file (never overwritten); parts of a split export go beside it (NAME-2-of-3.zip).")
@click.option("--to", default=None, metavar="NAME", help="A registered recipient (`evidence recipients`).")
@click.option("--recipient", "recipients", multiple=True, metavar="AGE_RECIPIENT",
              help="An ad-hoc age recipient (age1…), for custodians (repeatable).")
@click.option("--plaintext", is_flag=True, help="Write the bundle unencrypted (no recipient).")
@click.option("--split-size", default=None, metavar="SIZE",
              help="Cut into several bags of at most SIZE each (K, M, G: powers of 1024).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="zip", show_default=True,
              help="How the bag is serialized.")
@click.option("--override", "overrides", multiple=True, metavar="ITEM",
              help="Custodians: include this item although a victim it shows is withheld (needs --reason).")
@click.option("--reason", "override_reason", default=None, help="Why the overrides are justified (kept sealed).")
@click.option("--json", "as_json", is_flag=True, help="The result as JSON.")
@pass_state
def export(state: CliState, incidents: tuple[str, ...], items: tuple[str, ...], query: str | None, purpose: str,
           out: Path, to: str | None, recipients: tuple[str, ...], plaintext: bool, split_size: str | None, fmt: str,
           overrides: tuple[str, ...], override_reason: str | None, as_json: bool) -> None:
    """Write an evidence bundle that its recipient verifies with standard tools.

    Exit codes: 0 written, 1 a check failed (an original that does not match
    the log), 2 an error.
    """
    from archive.exports.formats import parse_size
    from archive.exports.selection import ExportRequest
    from archive.exports.service import export_bundle
    from archive.roles import Role

    if not (incidents or items or query):
        fail("choose what to export: --incident REF, --item ID or --query SEARCH-FLAGS")
    limit = None
    if split_size is not None:
        try:
            limit = parse_size(split_size)
        except ValueError as exc:
            fail(f"--split-size: {exc}")
    request = ExportRequest(purpose=purpose, incidents=incidents, items=items,
                            query=_query(query) if query is not None else None, overrides=overrides,
                            override_reason=override_reason)
    import signal

    from archive.services.errors import ServiceError

    def stop(signum: int, _frame: object) -> None:
        # Unwinds like any error: no partial file is left, a failed transfer is logged, exit 2.
        raise ServiceError(f"stopped by signal {signum}; nothing was written")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with state.archive() as archive:
        result = export_bundle(archive, request, role=Role.CUSTODIAN, out=out, to=to, recipients=recipients,
                               plaintext=plaintext, fmt=fmt, split_size=limit)
    if as_json:
        emit_json(result)
        return
    click.echo(f"export {result.export_id} ({result.purpose}), "
               + ("encrypted to " + ", ".join(r[:16] for r in result.recipients) if result.encrypted
                  else "NOT encrypted (--plaintext)"))
    for written in result.files:
        click.echo(f"  {written['path']}  sha256 {written['sha256']}  {written['size']} bytes")
    click.echo("  " + ", ".join(f"{n} {k}" for k, n in result.counts.items()))
    for withheld in result.withheld:
        click.echo(f"  withheld: {withheld.count} {withheld.what} ({withheld.why})")
    click.echo(f"  custody events {result.started_seq} (export started) and {result.transfer_seq} (transfer); "
               f"checkpoint {result.checkpoint_size}")


COMMANDS: list[Any] = [export]
