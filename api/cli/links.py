"""`evidence link`, `unlink`, `links`, `candidates`, `search`: what items show, and finding them again."""

from __future__ import annotations

from typing import Any

import click

from api.cli.main import CliState, emit_json, fail, pass_state

CERTAINTY = click.Choice(["confirmed", "probable", "possible"])
CATEGORIES = click.Choice(["child", "woman", "civilian", "torture", "medical", "media", "civil_defence"])


def _other(incident: str | None, victim: str | None, source: str | None, item: str | None) -> tuple[str, str]:
    given = [(t, n) for t, n in (("incident", incident), ("victim", victim), ("source", source), ("item", item))
             if n is not None]
    if len(given) != 1:
        fail("name what to link it with: one of --incident REF, --victim REF, --source REF, --item ITEM")
    return given[0][1], given[0][0]


def _target_options(f: Any) -> Any:
    for option in reversed([
        click.option("--incident", default=None, help="An incident (ref or id)."),
        click.option("--victim", default=None, help="A victim (ref or id)."),
        click.option("--source", default=None, help="A source (ref or id)."),
        click.option("--item", default=None, help="An item (id or unique prefix): two items are the same footage."),
    ]):
        f = option(f)
    return f


def _line(link: dict[str, Any]) -> str:
    state = "" if link["active"] else f"  (unlinked {link['removed_at']})"
    return f"{link['id']}  {link['kind']}  {link['a']['name']} -> {link['b']['name']}  {link['certainty']}{state}"


@click.command("link")
@click.argument("name")
@_target_options
@click.option("--certainty", type=CERTAINTY, default=None,
              help="confirmed, probable or possible (a new link: probable; linking again changes it).")
@click.option("--note", default=None, help="Why it is relevant (sealed; never in the custody log).")
@click.option("--reason", default=None, help="Why the link is made or changed (kept in its history, sealed).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def link_command(state: CliState, name: str, incident: str | None, victim: str | None, source: str | None,
                 item: str | None, certainty: str | None, note: str | None, reason: str | None,
                 as_json: bool) -> None:
    """Link NAME (an item, or a victim or source ref) to an incident, a victim, a source or another item."""
    from archive.roles import Role
    from archive.services.links import link

    other, other_type = _other(incident, victim, source, item)
    with state.archive() as archive:
        shown = link(archive, name, other, b_type=other_type, certainty=certainty, note=note, reason=reason,
                     role=Role.CUSTODIAN)
    if as_json:
        emit_json(shown)
        return
    click.echo(("linked: " if shown["changed"] else "unchanged: ") + _line(shown))


@click.command("unlink")
@click.argument("name")
@_target_options
@click.option("--reason", default=None, help="Why the link is removed (kept in its history, sealed).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def unlink_command(state: CliState, name: str, incident: str | None, victim: str | None, source: str | None,
                   item: str | None, reason: str | None, as_json: bool) -> None:
    """Mark a link inactive: NAME and what it is linked with, or a link id (lnk-…) alone. History is kept."""
    from archive.roles import Role
    from archive.services.links import unlink

    if all(v is None for v in (incident, victim, source, item)):
        other, other_type = None, None
    else:
        other, other_type = _other(incident, victim, source, item)
    with state.archive() as archive:
        shown = unlink(archive, name, other, b_type=other_type, reason=reason, role=Role.CUSTODIAN)
    if as_json:
        emit_json(shown)
        return
    click.echo("unlinked: " + _line(shown))


@click.command("links")
@click.argument("name")
@click.option("--all", "include_inactive", is_flag=True, help="Also the links that were unlinked.")
@click.option("--history", is_flag=True, help="Each link's changes, with states before and after (JSON).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def links_command(state: CliState, name: str, include_inactive: bool, history: bool, as_json: bool) -> None:
    """What an item, incident, victim or source is linked to."""
    from archive.roles import Role
    from archive.services.links import links_of, show_link

    with state.archive() as archive:
        found = links_of(archive, name, role=Role.CUSTODIAN, include_inactive=include_inactive or history)
        if history:
            found["links"] = [show_link(archive, link["id"], role=Role.CUSTODIAN, history=True)
                              for link in found["links"]]
    if as_json or history:
        emit_json(found)
        return
    if not found["links"]:
        click.echo(f"{found['target']['type']} {found['target']['name']}: no links")
    for link in found["links"]:
        note = f"  note: {link['note']}" if link["note"] else ""
        click.echo(_line(link) + note)


@click.group("candidates")
def candidates() -> None:
    """Near-duplicates suggested at ingest: confirm (the same footage, a link, never a merge) or reject."""


@candidates.command("list")
@click.option("--state", "state_", type=click.Choice(["candidate", "confirmed", "rejected"]), default=None)
@click.option("--json", "as_json", is_flag=True)
@pass_state
def candidates_list(state: CliState, state_: str | None, as_json: bool) -> None:
    """Suggested pairs, closest first."""
    from archive.roles import Role
    from archive.services.links import list_candidates

    with state.archive() as archive:
        pairs = list_candidates(archive, role=Role.CUSTODIAN, state=state_)
    if as_json:
        emit_json(pairs)
        return
    if not pairs:
        click.echo("no candidates")
    for p in pairs:
        share = "" if p["frame_match_share"] is None else f"  frames {p['frame_match_share']:.0%}"
        click.echo(f"{p['item_id']}  {p['other_id']}  distance {p['distance']}{share}  {p['state']}")


def _decide(state: CliState, item: str, other: str, note: str | None, reason: str | None, as_json: bool,
            confirm: bool) -> None:
    from archive.roles import Role
    from archive.services.links import confirm_candidate, reject_candidate

    decide = confirm_candidate if confirm else reject_candidate
    with state.archive() as archive:
        shown = decide(archive, item, other, note=note, reason=reason, role=Role.CUSTODIAN)
    if as_json:
        emit_json(shown)
        return
    click.echo(("confirmed: " if confirm else "rejected: ") + _line(shown))


@candidates.command("confirm")
@click.argument("item")
@click.argument("other")
@click.option("--note", default=None, help="A note kept with the link (sealed).")
@click.option("--reason", default=None, help="Why (kept in the link's history, sealed).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def candidates_confirm(state: CliState, item: str, other: str, note: str | None, reason: str | None,
                       as_json: bool) -> None:
    """ITEM and OTHER are the same footage: a confirmed `same_footage` link."""
    _decide(state, item, other, note, reason, as_json, confirm=True)


@candidates.command("reject")
@click.argument("item")
@click.argument("other")
@click.option("--note", default=None, help="A note kept with the decision (sealed).")
@click.option("--reason", default=None, help="Why (kept in the decision's history, sealed).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def candidates_reject(state: CliState, item: str, other: str, note: str | None, reason: str | None,
                      as_json: bool) -> None:
    """ITEM and OTHER are not the same footage: never suggested as such again."""
    _decide(state, item, other, note, reason, as_json, confirm=False)


@click.command("search")
@click.option("--from", "date_from", default=None, help="Incidents that started on or after this day (YYYY-MM-DD).")
@click.option("--to", "date_to", default=None, help="Incidents that started on or before this day.")
@click.option("--governorate", default=None, help="Incidents in this governorate (a vocabulary key).")
@click.option("--box", default=None, help="LAT1,LON1,LAT2,LON2 (LON1 the western edge): items captured inside "
              "it, and incidents placed inside it.")
@click.option("--party", default=None, help="Incidents attributed to this party (alone or jointly).")
@click.option("--type", "type_", default=None, help="Incidents of this type.")
@click.option("--victim", "category", type=CATEGORIES, default=None,
              help="Incidents with a victim of this category.")
@click.option("--source-kind", default=None,
              help="Items and incidents from a source of this kind (survivor, eyewitness, filmer, …).")
@click.option("--linked/--unlinked", "linked", default=None,
              help="Only items linked to an incident, or only items linked to none.")
@click.option("--captured-from", default=None, help="Items captured on or after this day.")
@click.option("--captured-to", default=None, help="Items captured on or before this day.")
@click.option("--device", default=None, help="Items whose camera make or model contains this text.")
@click.option("--sha256", default=None, help="The item holding exactly these bytes.")
@click.option("--similar-to", default=None, help="Items that look like this item (id or unique prefix).")
@click.option("--json", "as_json", is_flag=True, help='{"items": [...], "incidents": [...]}')
@pass_state
def search(state: CliState, as_json: bool, **options: Any) -> None:
    """Items and incidents matching every option given (they combine with AND).

    Incident options (dates, governorate, party, type, victim) also select
    the items linked to those incidents; item options (capture, device,
    hash, similar, linked) also select the incidents their items are linked
    to; --box and --source-kind apply to both directly.
    """
    from archive.roles import Role
    from archive.services.record_search import Query, search_records

    with state.archive() as archive:
        found = search_records(archive, Query(**options), role=Role.CUSTODIAN)
    if as_json:
        emit_json(found)
        return
    for item in found["items"]:
        incidents = ",".join(item["incidents"]) or "-"
        click.echo(f"item {item['id']}  {item['captured_day'] or '-'}  {item['media_type'] or '-'}  "
                   f"incidents {incidents}")
    for incident in found["incidents"]:
        click.echo(f"incident {incident['ref']}  {incident['started_at']}  {incident['type']}  "
                   f"{incident['governorate']}  {incident['attribution']}  items {incident['items']}")
    if not found["items"] and not found["incidents"]:
        click.echo("nothing matches")


COMMANDS: list[Any] = [link_command, unlink_command, links_command, candidates, search]
