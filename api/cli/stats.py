"""`evidence stats`: civilian deaths counted like a monthly report, by party, month, governorate or type.

Reads clear columns only, so it runs on a locked server too. The CLI acts
as a custodian; the HTTP API passes each caller's own role.
"""

from __future__ import annotations

from typing import Any

import click

from api.cli.main import CliState, emit_json, pass_state

COLUMNS = (("civilians", "civilians"), ("children", "children"), ("women", "women"), ("torture", "torture"),
           ("medical", "medical"), ("media", "media"), ("civil_defence", "civ.def."), ("massacres", "massacres"),
           ("facility_attacks", "facilities"))


def _line(label: str, counts: dict[str, Any], width: int) -> str:
    return f"{label:<{width}}" + "".join(f" {counts[key]:>{max(len(head), 6)}}" for key, head in COLUMNS)


def render(result: dict[str, Any]) -> list[str]:
    """The result as a table: a row per key, then each group's subtotal (by party), then the total."""
    by = result["by"]
    labels = [f"{r[by] or '(unknown)'}" + (f" [{r['group']}]" if by == "party" else "") for r in result["rows"]]
    width = max([len(by), len("total"), *(len(f"group {g['group']}") for g in result["groups"]), *map(len, labels)])
    days = "date documented" if result["date"] == "documented" else "date of death"
    start, end = result["from"], result["to"]
    period = (f"{start} to {end}" if start and end else f"from {start}" if start else f"up to {end}" if end
              else "all dates")
    header = f"{by:<{width}}" + "".join(f" {head:>{max(len(head), 6)}}" for _, head in COLUMNS)
    lines = [f"Civilian deaths by {by}, {period} (by {days})", "", header, "-" * len(header)]
    lines += [_line(label, row, width) for label, row in zip(labels, result["rows"], strict=True)]
    if result["groups"]:
        lines.append("-" * len(header))
        lines += [_line(f"group {g['group']}", g, width) for g in result["groups"]]
    lines += ["-" * len(header), _line("total", result["total"], width)]
    left_out = result["excluded"]["no_date_of_death"]
    if left_out:
        lines += ["", f"{left_out} civilian victim(s) without a date of death are not counted (--date death)."]
    lines += ["", "Counts are of active civilian victims; a massacre (5 or more civilians killed in one incident) "
                  "and a facility attack count once, by the incident's start."]
    return lines


@click.command("stats")
@click.option("--from", "date_from", default=None, help="First day counted (YYYY-MM-DD, inclusive).")
@click.option("--to", "date_to", default=None, help="Last day counted (YYYY-MM-DD, inclusive).")
@click.option("--date", "date", type=click.Choice(["documented", "death"]), default="documented", show_default=True,
              help="Which date of a victim the period and --by month use.")
@click.option("--by", "by", type=click.Choice(["party", "month", "governorate", "type"]), default="party",
              show_default=True, help="One row per party (joint attributions their own), month, governorate "
                                      "of death, or incident type.")
@click.option("--json", "as_json", is_flag=True, help='{"rows": [...], "groups": [...], "total": {...}}')
@pass_state
def stats(state: CliState, date_from: str | None, date_to: str | None, date: str, by: str, as_json: bool) -> None:
    """Civilian deaths, children, women, torture, professions, massacres and facility attacks in a period."""
    from archive.roles import Role
    from archive.services.stats import statistics

    with state.archive() as archive:
        result = statistics(archive, role=Role.CUSTODIAN, date_from=date_from, date_to=date_to, date=date, by=by)
    if as_json:
        emit_json(result)
    else:
        click.echo("\n".join(render(result)))


COMMANDS: list[Any] = [stats]
