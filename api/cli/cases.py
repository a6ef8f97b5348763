"""`evidence cases …`: restricted cases (compartments) — which incidents, and who may see them."""

from __future__ import annotations

from typing import Any

import click

from api.cli.main import CliState, emit_json, pass_state


@click.group("cases")
def cases() -> None:
    """Restricted cases: their incidents (and what is linked to them) are seen by their members only."""


@cases.command("add")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def cases_add(state: CliState, name: str, as_json: bool) -> None:
    """Create a restricted case NAME (the name is sealed in the catalog)."""
    from archive.roles import Role
    from archive.services.cases import create_case

    with state.archive() as archive:
        result = create_case(archive, name, role=Role.CUSTODIAN)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{result['id']}  {result['name']}")


@cases.command("member")
@click.argument("case")
@click.argument("user")
@click.option("--remove", is_flag=True, help="Take USER out of the case.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def cases_member(state: CliState, case: str, user: str, remove: bool, as_json: bool) -> None:
    """Let USER (a name or u- id with an account) see CASE (an id or name), or with --remove no longer."""
    from archive.roles import Role
    from archive.services.cases import add_member, remove_member

    with state.archive() as archive:
        change = remove_member if remove else add_member
        result = change(archive, case, user, role=Role.CUSTODIAN)
    _report(result, as_json, f"{result['user']} {'in' if result['member'] else 'not in'} {result['case']}")


@cases.command("incident")
@click.argument("case")
@click.argument("incident")
@click.option("--remove", is_flag=True, help="Take INCIDENT out of the case.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def cases_incident(state: CliState, case: str, incident: str, remove: bool, as_json: bool) -> None:
    """Put INCIDENT (a ref or id) into CASE, or with --remove take it out."""
    from archive.roles import Role
    from archive.services.cases import add_incident, remove_incident

    with state.archive() as archive:
        change = remove_incident if remove else add_incident
        result = change(archive, case, incident, role=Role.CUSTODIAN)
    where = "in" if result["in_case"] else "not in"
    _report(result, as_json, f"incident {result['incident_ref']} {where} {result['case']}")


def _report(result: dict[str, Any], as_json: bool, text: str) -> None:
    if as_json:
        emit_json(result)
    else:
        click.echo(text + ("" if result["changed"] else " (unchanged)"))


@cases.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def cases_list(state: CliState, as_json: bool) -> None:
    """List the cases: name, members and incidents."""
    from archive.roles import Role
    from archive.services.cases import list_cases

    with state.archive() as archive:
        rows = list_cases(archive, role=Role.CUSTODIAN)
    if as_json:
        for row in rows:
            emit_json(row)
        return
    for row in rows:
        incidents = ", ".join(i["ref"] for i in row["incidents"]) or "no incidents"
        click.echo(f"{row['id']}  {row['name'] or '(name locked)'}  members: {len(row['members'])}  {incidents}")


COMMANDS = [cases]
