"""`evidence victim add|edit|show|list|identify|consent|match`: victims, their families' consent, and
reports of one person merged. Options are named as the interchange columns; the CLI acts as a custodian."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from api.cli.main import CliState, echo_tree, emit_json, pass_state

_FIELDS: list[tuple[str, str, str]] = [  # (option, interchange column, help)
    ("--ref", "ref", "A new reference for the victim (how it is named in commands and files)."),
    ("--incident", "incident_ref", "The incident (ref or id) the victim died in."),
    ("--name", "name", "The name (leave out for an anonymous victim)."),
    ("--name-withheld", "name_withheld", "true: the family asked that the name be withheld (custodians only)."),
    ("--sex", "sex", "male, female or unknown."),
    ("--age", "age", "Age in whole years."),
    ("--age-group", "age_group", "child, adult or unknown (must agree with --age)."),
    ("--civilian", "civilian", "true or false."),
    ("--professions", "professions", "Profession keys separated by ';' (medical;media)."),
    ("--died-under-torture", "died_under_torture", "true or false."),
    ("--governorate-of-death", "governorate_of_death", "A governorate key."),
    ("--governorate-of-origin", "governorate_of_origin", "A governorate key."),
    ("--date-of-death", "date_of_death", "YYYY-MM-DD."),
    ("--date-documented", "date_documented", "YYYY-MM-DD."),
]
_CONSENT: list[tuple[str, str, str]] = [
    ("--family-consent", "family_consent", "The family's consent for UN bodies: yes, no or not_asked."),
    ("--consent-date", "consent_date", "When the family answered (YYYY-MM-DD)."),
    ("--consent-recorded-by", "consent_recorded_by", "Who took the family's answer."),
]


def _field_options(specs: list[tuple[str, str, str]]) -> Callable[[Any], Any]:
    def decorate(command: Any) -> Any:
        for option, column, text in reversed(specs):
            command = click.option(option, column, default=None, help=text)(command)
        return command
    return decorate


def _fields(values: dict[str, Any], specs: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {column: values[column] for _, column, _ in specs if values.get(column) is not None}


def _out(data: Any, as_json: bool) -> None:
    if as_json:
        emit_json(data)
    else:
        echo_tree(data)


def _role() -> Any:
    from archive.roles import Role

    return Role.CUSTODIAN


@click.group()
def victim() -> None:
    """Victims: add, edit, show, list, identify, family consent, and matching reports of one person."""


@victim.command("add")
@click.argument("ref")
@_field_options(_FIELDS[1:] + _CONSENT)
@click.option("--reason", default=None, help="Why (kept, sealed, in the record's history).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def add(state: CliState, ref: str, reason: str | None, as_json: bool, **values: Any) -> None:
    """Record victim REF (required: --incident --sex --civilian --date-documented)."""
    from archive.services.victims import add_victim

    fields = {"ref": ref, **_fields(values, _FIELDS[1:] + _CONSENT)}
    with state.archive() as archive:
        shown = add_victim(archive, fields, role=_role(), reason=reason)
    _out(shown, as_json) if as_json else click.echo(f"{shown['id']}  {shown['ref']}")


@victim.command("edit")
@click.argument("victim_name", metavar="VICTIM")
@_field_options(_FIELDS)
@click.option("--reason", default=None, help="Why (kept, sealed, in the record's history).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def edit(state: CliState, victim_name: str, reason: str | None, as_json: bool, **values: Any) -> None:
    """Change some fields of VICTIM (ref or id); an option given as "" clears its field."""
    from archive.services.victims import edit_victim

    with state.archive() as archive:
        shown = edit_victim(archive, victim_name, _fields(values, _FIELDS), role=_role(), reason=reason)
    _out(shown, as_json) if as_json else click.echo(f"{shown['id']}  {shown['ref']}")


@victim.command("show")
@click.argument("victim_name", metavar="VICTIM")
@click.option("--history", is_flag=True, help="Every change, with the state before and after.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def show(state: CliState, victim_name: str, history: bool, as_json: bool) -> None:
    """Everything about VICTIM (ref or id): fields, consent per scope, merged reports."""
    from archive.services.victims import show_victim

    with state.archive() as archive:
        _out(show_victim(archive, victim_name, role=_role(), history=history), as_json)


def _flag(value: str | None, what: str) -> bool | None:
    from archive.records.rules import check_bool

    return None if value is None else check_bool(value, what)


@victim.command("list")
@click.option("--incident", default=None, help="Victims of this incident (ref or id).")
@click.option("--status", type=click.Choice(["active", "merged", "all"]), default="active", show_default=True)
@click.option("--sex", default=None)
@click.option("--child", default=None, help="true: children only; false: adults and unknown ages.")
@click.option("--civilian", default=None, help="true or false.")
@click.option("--governorate", default=None, help="Governorate of death.")
@click.option("--from", "date_from", default=None, help="Documented on or after (YYYY-MM-DD).")
@click.option("--to", "date_to", default=None, help="Documented on or before (YYYY-MM-DD).")
@click.option("--names", is_flag=True, help="Open each record for its name (withheld names: custodians only).")
@click.option("--limit", type=int, default=None)
@click.option("--json", "as_json", is_flag=True)
@pass_state
def list_(state: CliState, incident: str | None, status: str, sex: str | None, child: str | None,
          civilian: str | None, governorate: str | None, date_from: str | None, date_to: str | None, names: bool,
          limit: int | None, as_json: bool) -> None:
    """Victims by date documented, from their clear columns (with --names, their names too)."""
    from archive.services.victims import list_victims

    with state.archive() as archive:
        rows = list_victims(archive, role=_role(), incident=incident, status=None if status == "all" else status,
                            sex=sex, child=_flag(child, "child"), civilian=_flag(civilian, "civilian"),
                            governorate=governorate, date_from=date_from, date_to=date_to, names=names,
                            limit=limit)
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        kinds = [k for k in ("child", "woman") if row[k]] + ([] if row["civilian"] else ["non-civilian"])
        line = (f"{row['ref']:20} {row['incident_ref'] or '-':16} {row['sex']:7} {row['date_documented']}  "
                f"{row['governorate_of_death'] or '-':14} {','.join(kinds) or '-':18} {row['status']}")
        if names:
            line += f"  {row.get('name') or '(anonymous)'}"
        click.echo(line)


@victim.command("identify")
@click.argument("victim_name", metavar="VICTIM")
@click.option("--name", "person", required=True, help="The name the victim was identified by.")
@click.option("--reason", required=True, help="How the victim was identified (kept, sealed).")
@click.option("--name-withheld", default=None, help="true: the family asks that the name be withheld.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def identify(state: CliState, victim_name: str, person: str, reason: str, name_withheld: str | None,
             as_json: bool) -> None:
    """Give anonymous VICTIM (ref or id) the name it was identified by."""
    from archive.services.victims import identify_victim

    with state.archive() as archive:
        shown = identify_victim(archive, victim_name, person, role=_role(), reason=reason,
                                withheld=_flag(name_withheld, "name_withheld"))
    _out(shown, as_json) if as_json else click.echo(f"{shown['id']}  {shown['ref']}  identified")


@victim.command("consent")
@click.argument("victim_name", metavar="VICTIM")
@click.argument("answer", type=click.Choice(["yes", "no", "not_asked", "withdrawn"]))
@click.option("--scope", type=click.Choice(["un_bodies", "courts", "publication"]), required=True)
@click.option("--date", "given_on", default=None, help="When the family answered or withdrew (YYYY-MM-DD).")
@click.option("--recorded-by", default=None, help="Who took the family's answer.")
@click.option("--document", default=None, help="The document the answer rests on (a form, an item id …).")
@click.option("--note", default=None)
@click.option("--json", "as_json", is_flag=True)
@pass_state
def consent(state: CliState, victim_name: str, answer: str, scope: str, given_on: str | None, recorded_by: str | None,
            document: str | None, note: str | None, as_json: bool) -> None:
    """Record the family's ANSWER for one scope for VICTIM (`withdrawn` withdraws a consent given)."""
    from archive.services.victims import record_consent, withdraw_consent

    with state.archive() as archive:
        if answer == "withdrawn":
            shown = withdraw_consent(archive, victim_name, scope, given_on or "", recorded_by, document, note,
                                     role=_role())
        else:
            shown = record_consent(archive, victim_name, scope, answer, given_on, recorded_by, document, note,
                                   role=_role())
    _out(shown, as_json) if as_json else click.echo(f"{shown['ref']}  {scope}: {shown['consent'][scope]}")


@victim.group("match")
def match() -> None:
    """Reports of one person from several sources: suggest, list, confirm (merge) or reject pairs."""


def _echo_matches(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        a, b = row["a"], row["b"]
        click.echo(f"{row['score']:.3f}  {row['state']:9}  {a['ref']} ({a.get('name') or '-'})  ~  "
                   f"{b['ref']} ({b.get('name') or '-'})  {'; '.join(row['clues'])}")


@match.command("suggest")
@click.argument("victim_name", metavar="[VICTIM]", required=False)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_state
def suggest(state: CliState, victim_name: str | None, limit: int, as_json: bool) -> None:
    """Look for new candidate pairs (all victims, or VICTIM against the rest) and list the pending ones."""
    from archive.services.victims import suggest_matches

    with state.archive() as archive:
        _echo_matches(suggest_matches(archive, role=_role(), victim=victim_name, limit=limit), as_json)


@match.command("list")
@click.option("--state", "wanted", type=click.Choice(["candidate", "confirmed", "rejected", "all"]),
              default="candidate", show_default=True)
@click.option("--victim", default=None, help="Only pairs with this victim (ref or id).")
@click.option("--limit", type=int, default=None)
@click.option("--json", "as_json", is_flag=True)
@pass_state
def list_matches_(state: CliState, wanted: str, victim: str | None, limit: int | None, as_json: bool) -> None:
    """Pairs already suggested (pending candidates by default), best first."""
    from archive.services.victims import list_matches

    with state.archive() as archive:
        rows = list_matches(archive, role=_role(), state=None if wanted == "all" else wanted, victim=victim,
                            limit=limit)
    _echo_matches(rows, as_json)


@match.command("confirm")
@click.argument("a")
@click.argument("b")
@click.option("--reason", required=True, help="Why these reports are one person (kept, sealed).")
@click.option("--keep", default=None, help="The record to keep (default: the one recorded first).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def confirm(state: CliState, a: str, b: str, reason: str, keep: str | None, as_json: bool) -> None:
    """A and B are one person: merge the later record into the earlier (or into --keep)."""
    from archive.services.victims import confirm_match

    with state.archive() as archive:
        shown = confirm_match(archive, a, b, role=_role(), reason=reason, keep=keep)
    if as_json:
        emit_json(shown)
    else:
        merged = ", ".join(m["ref"] for m in shown["merged"])
        click.echo(f"kept {shown['ref']}; merged into it: {merged}")


@match.command("reject")
@click.argument("a")
@click.argument("b")
@click.option("--reason", default=None, help="Why they are different people (kept, sealed).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def reject(state: CliState, a: str, b: str, reason: str | None, as_json: bool) -> None:
    """A and B are different people: the pair is never suggested again."""
    from archive.services.victims import reject_match

    with state.archive() as archive:
        shown = reject_match(archive, a, b, role=_role(), reason=reason)
    _out(shown, as_json) if as_json else click.echo(f"{shown['a']['ref']} and {shown['b']['ref']}: different people")


COMMANDS: list[Any] = [victim]
