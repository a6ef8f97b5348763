"""`evidence import`, `export-records`, `vocab load|show`: the interchange files and the vocabularies."""

from __future__ import annotations

import sys
from typing import Any

import click

from api.cli.main import CliState, emit_json, fail, pass_state

FORMAT = click.Choice(["csv", "jsonl"])


@click.command("import")
@click.option("--incidents", "incidents", default=None, metavar="FILE", help="An incidents file.")
@click.option("--victims", "victims", default=None, metavar="FILE", help="A victims file.")
@click.option("--format", "fmt", type=FORMAT, default="csv", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_state
def import_(state: CliState, incidents: str | None, victims: str | None, fmt: str, as_json: bool) -> None:
    """Import incidents and victims in one transaction: any bad row, and nothing is imported (exit 1).

    A column the file does not have leaves that field of existing records as it is."""
    from archive.roles import Role
    from archive.services.records_io import import_records

    if incidents is None and victims is None:
        fail("give --incidents FILE, --victims FILE or both")
    with state.archive() as archive:
        report = import_records(archive, incidents=incidents, victims=victims, format=fmt, role=Role.CUSTODIAN)
    if as_json:
        emit_json(report)
    files = [report[what] for what in ("incidents", "victims") if what in report]
    if not report["imported"]:
        for entry in files:
            for problem in entry["errors"]:
                click.echo(f"{problem['file']}:{problem['line']}: {problem['reason']}", err=True)
            if entry["error_count"] > len(entry["errors"]):
                click.echo(f"{entry['file']}: … and {entry['error_count'] - len(entry['errors'])} more", err=True)
        bad = sum(entry["error_count"] for entry in files)
        click.echo(f"error: nothing imported: {bad} bad row(s)", err=True)
        sys.exit(1)
    if not as_json:
        for what in ("incidents", "victims"):
            if what in report:
                click.echo(_summary(what, report[what]))


def _summary(what: str, entry: dict[str, Any]) -> str:
    line = (f"{what} {entry['file']}: {entry['rows']} rows, {entry['created']} created, {entry['updated']} updated, "
            f"{entry['unchanged']} unchanged")
    event = entry.get("event")
    return line + (f" (event #{event['seq']}, merkle root {event['merkle_root']})" if event else " (no event)")


@click.command("export-records")
@click.option("--incidents", "incidents", default=None, metavar="FILE", help="Write incidents to FILE.")
@click.option("--victims", "victims", default=None, metavar="FILE", help="Write victims to FILE.")
@click.option("--format", "fmt", type=FORMAT, default="csv", show_default=True)
@click.option("--force", is_flag=True, help="Replace a file that exists already.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def export_records(state: CliState, incidents: str | None, victims: str | None, fmt: str, force: bool,
                   as_json: bool) -> None:
    """Write incidents and victims in the import format (withheld names never; formula-like cells start with
    an apostrophe, which import drops again). Files are readable by their owner only."""
    from archive.roles import Role
    from archive.services.records_io import export_records as export

    if incidents is None and victims is None:
        fail("give --incidents FILE, --victims FILE or both")
    with state.archive() as archive:
        report = export(archive, incidents=incidents, victims=victims, format=fmt, role=Role.CUSTODIAN, force=force)
    if as_json:
        emit_json(report)
        return
    for what, entry in report.items():
        click.echo(f"{what}: {entry['rows']} rows written to {entry['file']}")


@click.group()
def vocab() -> None:
    """The vocabularies (parties, incident types, governorates, professions, weapons): data, not code."""


@vocab.command("load")
@click.argument("path", metavar="FILE")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def vocab_load(state: CliState, path: str, as_json: bool) -> None:
    """Load a vocabulary file (evidence-vocab/1): terms are added or relabelled, never removed."""
    from archive.roles import Role
    from archive.services.records_io import load_vocab

    with state.archive() as archive:
        report = load_vocab(archive, path, role=Role.CUSTODIAN)
    if as_json:
        emit_json(report)
        return
    click.echo(f"loaded {report['file']}" + (f" ({report['name']})" if report["name"] else ""))
    for name, counts in report["vocabularies"].items():
        click.echo(f"  {name}: {counts['added']} added, {counts['updated']} updated")


@vocab.command("show")
@click.argument("vocabulary", required=False)
@click.option("--json", "as_json", is_flag=True)
@pass_state
def vocab_show(state: CliState, vocabulary: str | None, as_json: bool) -> None:
    """Show the vocabularies, or one (parties, incident_types, governorates, professions, weapons)."""
    from archive.roles import Role
    from archive.services.records_io import show_vocab

    with state.archive() as archive:
        shown = show_vocab(archive, vocabulary, role=Role.CUSTODIAN)
    if as_json:
        emit_json(shown)
        return
    for name, terms in shown.items():
        click.echo(f"{name}:")
        for term in terms:
            group = f" [{term['group']}]" if term["group"] else ""
            former = f" (formerly: {'; '.join(term['former_names'])})" if term["former_names"] else ""
            click.echo(f"  {term['key']:28} {term['label']}{group}{former}")


COMMANDS: list[Any] = [import_, export_records, vocab]
