"""`evidence policy set|show` and `evidence status`: what the archive wants, and what it has."""

from __future__ import annotations

import click

from api.cli.main import CliState, emit_json, pass_state


@click.group()
def policy() -> None:
    """The replication policy: how many verified copies, on which backends."""


@policy.command("show")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def policy_show(state: CliState, as_json: bool) -> None:
    """Show the current policy."""
    from archive.services.policy import show_policy

    with state.archive() as archive:
        data = show_policy(archive)
    if as_json:
        emit_json(data)
        return
    click.echo(f"copies:   {data.copies}")
    click.echo(f"minimum:  {data.minimum}")
    named = ", ".join(data.backends) if data.backends else "(every storage site)"
    click.echo(f"backends: {named}")
    click.echo(f"in use:   {', '.join(data.effective_backends)}")


@policy.command("set")
@click.option("--copies", type=int, required=True, help="Target number of verified copies (preserved).")
@click.option("--minimum", type=int, required=True, help="Verified copies needed before an upload is acknowledged.")
@click.option("--backends", default=None, help="Comma-separated backend names (default: keep the current list).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def policy_set(state: CliState, copies: int, minimum: int, backends: str | None, as_json: bool) -> None:
    """Change the policy; added backends are back-filled by the worker."""
    from archive.services.policy import set_policy

    names = None if backends is None else [n.strip() for n in backends.split(",") if n.strip()]
    with state.archive() as archive:
        data = set_policy(archive, copies, minimum, names)
    if as_json:
        emit_json(data)
        return
    on = ", ".join(data.effective_backends)
    click.echo(f"policy: {data.copies} copies, minimum {data.minimum}, on {on}")
    if data.backfill_jobs:
        onto = ", ".join(data.backfill_backends)
        click.echo(f"back-fill queued for {data.backfill_jobs} items (onto {onto}); `evidence worker` runs it")
    if data.status_changes:
        click.echo(f"{data.status_changes} items changed status under the new target")


@click.command()
@click.option("--json", "as_json", is_flag=True)
@pass_state
def status(state: CliState, as_json: bool) -> None:
    """Items per state; per backend its objects, bytes and whether it answers."""
    from archive.custody.service import conflict_message
    from archive.services.status import archive_status

    with state.archive() as archive:
        result = archive_status(archive)
    if as_json:
        emit_json(result)
        return
    data = result.as_dict()
    items = data["items"]
    click.echo("items: " + ", ".join(f"{count} {name}" for name, count in items.items()))
    pol = data["policy"]
    click.echo(f"policy: {pol['copies']} copies (minimum {pol['minimum']}) on {', '.join(pol['backends'])}")
    for b in data["backends"]:
        answer = "answers" if b["answers"] else f"DOES NOT ANSWER ({b['error']})"
        extra = ""
        if b["missing"] or b["corrupt"]:
            extra = f", {b['missing']} missing, {b['corrupt']} corrupt"
        click.echo(f"  {b['name']:16} {b['kind'] or '?':6} {b['objects']:>8} objects "
                   f"{b['bytes']:>14} bytes{extra}  {answer}")
        if b["log_conflict"]:
            click.echo(f"    LOG CONFLICT: {conflict_message(b['name'], b['log_conflict'])}")
        if b["unpublished_records"]:
            click.echo(f"    warning: {b['unpublished_records']} record changes are not on it yet (not in its "
                       "journal): `evidence log checkpoint` publishes them")
    if data["jobs"]:
        click.echo("jobs: " + ", ".join(f"{count} {name}" for name, count in sorted(data["jobs"].items())))
    if data["pending"]:
        click.echo("pending (written while locked, not settled): "
                   + ", ".join(f"{count} {table}" for table, count in sorted(data["pending"].items())))
    for text in data["unsettled"]:
        click.echo(f"  unsettled: {text}")


COMMANDS = [policy, status]
