"""`evidence incident add|edit|show|list|attribute`: incidents, as the monthly reports document them.

Options are the interchange columns (`--started-at 2023-12-09T14:30`,
`--governorate idlib`, `--attribution syrian_regime+russian_forces` …). The
CLI acts as a custodian; the HTTP API passes each caller's own role.
"""

from __future__ import annotations

from typing import Any

import click

from api.cli.main import CliState, emit_json, pass_state

_FIELD_OPTIONS = (
    ("type", "Incident type (a key of the incident_types vocabulary)."),
    ("started-at", "Local start: YYYY-MM-DD or YYYY-MM-DDTHH:MM."),
    ("started-precision", "day, hour, minute, or about (an estimate)."),
    ("governorate", "Governorate key."),
    ("district", "District (sealed)."),
    ("place", "City or village (sealed)."),
    ("neighbourhood", "Neighbourhood (sealed)."),
    ("latitude", "Decimal degrees (sealed)."),
    ("longitude", "Decimal degrees (sealed)."),
    ("controlled-by", "The party that controlled the area at the time."),
    ("weapon", "Weapon or method (a key of the weapons vocabulary)."),
    ("facility-damage", "slight, moderate, heavy, or out_of_service."),
    ("narrative", "What happened (sealed)."),
)


def _field_options(func: Any) -> Any:
    for name, text in reversed(_FIELD_OPTIONS):
        func = click.option(f"--{name}", name.replace("-", "_"), default=None, help=text)(func)
    return func


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _print(incident: dict[str, Any]) -> None:
    for key in ("id", "ref", "type", "started_at", "started_precision", "governorate", "district", "place",
                "neighbourhood", "latitude", "longitude", "controlled_by", "attribution", "weapon", "facility_damage",
                "victims", "civilian_victims", "massacre", "narrative"):
        if incident.get(key) not in (None, ""):
            click.echo(f"{key:18} {incident[key]}")
    for a in incident.get("attributions", []):
        evidence = f" on {', '.join(a['evidence'])}" if a.get("evidence") else ""
        click.echo(f"attributed         {a['at'][:19]} {a['parties']} ({a['kind']}) by {a['by']}: "
                   f"{a.get('reason') or '-'}{evidence}")
    for change in incident.get("history", []):
        click.echo(f"change             {change['at'][:19]} {change['change']} by {change['by']}"
                   f"{': ' + change['reason'] if change.get('reason') else ''}")


@click.group()
def incident() -> None:
    """Incidents: what happened, where and when, and who is responsible (with its history)."""


@incident.command("add")
@click.argument("ref")
@_field_options
@click.option("--attribution", required=True, help="A party key, keys joined by '+' (joint), or an other-parties key.")
@click.option("--reason", default=None, help="Why (kept in the history).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def add(state: CliState, ref: str, reason: str | None, as_json: bool, **fields: Any) -> None:
    """Record a new incident REF."""
    from archive.roles import Role
    from archive.services.incidents import add_incident

    with state.archive() as archive:
        shown = add_incident(archive, {"ref": ref, **_given(fields)}, role=Role.CUSTODIAN, reason=reason)
    emit_json(shown) if as_json else _print(shown)


@incident.command("edit")
@click.argument("name")
@click.option("--ref", default=None, help="A new ref.")
@_field_options
@click.option("--clear", "cleared", multiple=True, help="Clear an optional field (e.g. --clear weapon).")
@click.option("--reason", default=None, help="Why (kept in the history).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def edit(state: CliState, name: str, cleared: tuple[str, ...], reason: str | None, as_json: bool,
         **fields: Any) -> None:
    """Change fields of incident NAME (a ref or an id); the old state stays in its history."""
    from archive.roles import Role
    from archive.services.incidents import edit_incident

    changes = {**_given(fields), **{c.replace("-", "_"): None for c in cleared}}
    with state.archive() as archive:
        shown = edit_incident(archive, name, changes, role=Role.CUSTODIAN, reason=reason)
    emit_json(shown) if as_json else _print(shown)


@incident.command("attribute")
@click.argument("name")
@click.argument("parties")
@click.option("--reason", required=True, help="Why the attribution is made or changed.")
@click.option("--evidence", multiple=True, help="What it rests on (an item id, a source ref …); repeatable.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def attribute_command(state: CliState, name: str, parties: str, reason: str, evidence: tuple[str, ...],
                      as_json: bool) -> None:
    """Attribute incident NAME to PARTIES (a key, keys joined by '+' while unsettled, or an other-parties key)."""
    from archive.roles import Role
    from archive.services.incidents import attribute

    with state.archive() as archive:
        shown = attribute(archive, name, parties, role=Role.CUSTODIAN, reason=reason, evidence=list(evidence))
    emit_json(shown) if as_json else _print(shown)


@incident.command("show")
@click.argument("name")
@click.option("--history", is_flag=True, help="Every change, with the state before and after it.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def show(state: CliState, name: str, history: bool, as_json: bool) -> None:
    """Everything about incident NAME (a ref or an id)."""
    from archive.roles import Role
    from archive.services.incidents import show_incident

    with state.archive() as archive:
        shown = show_incident(archive, name, role=Role.CUSTODIAN, history=history)
    emit_json(shown) if as_json else _print(shown)


@incident.command("list")
@click.option("--type", "type_", default=None)
@click.option("--governorate", default=None)
@click.option("--party", default=None, help="Incidents attributed to this party, alone or jointly.")
@click.option("--from", "date_from", default=None, help="Started on or after (YYYY-MM-DD).")
@click.option("--to", "date_to", default=None, help="Started on or before (YYYY-MM-DD).")
@click.option("--massacres", is_flag=True, help="Only incidents with five or more civilian victims.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per incident, per line.")
@pass_state
def list_command(state: CliState, type_: str | None, governorate: str | None, party: str | None,
                 date_from: str | None, date_to: str | None, massacres: bool, as_json: bool) -> None:
    """Incidents by start date (clear fields only: no key needed)."""
    from archive.roles import Role
    from archive.services.incidents import list_incidents

    with state.archive() as archive:
        rows = list_incidents(archive, role=Role.CUSTODIAN, type=type_, governorate=governorate, party=party,
                              date_from=date_from, date_to=date_to, massacres=massacres)
    for row in rows:
        if as_json:
            emit_json(row)
        else:
            mark = " massacre" if row["massacre"] else ""
            click.echo(f"{row['ref']:20} {row['started_at']:16} {row['type']:24} {row['governorate']:14} "
                       f"{row['attribution']} ({row['civilian_victims']} civilians{mark})")


COMMANDS: list[Any] = [incident]
