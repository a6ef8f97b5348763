"""`evidence users …` and `evidence tokens …`: who may call the HTTP API, and as what role."""

from __future__ import annotations

from typing import Any

import click

from api.cli.main import CliState, emit_json, pass_state

ROLES = "custodian, investigator, contributor or auditor"


@click.group("users")
def users() -> None:
    """Accounts for the HTTP API: a person (name sealed in the catalog) and a role."""


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, help=f"The account's role: {ROLES}.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def users_add(state: CliState, name: str, role: str, as_json: bool) -> None:
    """Give NAME an account with ROLE (needs the catalog key: names are sealed)."""
    from archive.services.accounts import add_user

    with state.archive() as archive:
        result = add_user(archive, name, role)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{result['id']}  {result['role']}  {result['name']}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def users_list(state: CliState, as_json: bool) -> None:
    """List the accounts (names shown only where this process can open them)."""
    from archive.services.accounts import list_users

    with state.archive() as archive:
        rows = list_users(archive)
    if as_json:
        for row in rows:
            emit_json(row)
        return
    for row in rows:
        state_text = f"disabled {row['disabled_at']}" if row["disabled_at"] else f"{row['active_tokens']} tokens"
        click.echo(f"{row['id']}  {row['role']:<12}  {state_text:<24}  {row['name'] or '(name locked)'}")


@users.command("disable")
@click.argument("user")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def users_disable(state: CliState, user: str, as_json: bool) -> None:
    """Close USER's account (a name or a u- id): every token of it stops working."""
    from archive.services.accounts import disable_user

    with state.archive() as archive:
        result = disable_user(archive, user)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{result['id']} disabled; tokens revoked: {', '.join(result['revoked']) or 'none'}")


@users.command("setup")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def users_setup(state: CliState, name: str, as_json: bool) -> None:
    """A one-time code with which NAME sets up their web sign-in (password and authenticator app).

    Printed once; valid 72 hours. Running it again resets the account's web sign-in (a lost phone, a
    leaked password): the old password and authenticator stop working and its browsers are signed out.
    """
    from archive.services.web_signin import issue_setup

    with state.archive() as archive:
        result = issue_setup(archive, name)
    if as_json:
        emit_json(result)
        return
    click.echo(result["code"])
    click.echo(f"setup code for {result['id']}, valid until {result['expires_at']}: give it to the person "
               "in person or over a channel you trust; it will not be shown again. They open the archive's "
               "/signin page, type their user name and this code as the password, then choose a password "
               "and add the archive to an authenticator app.", err=True)


@click.group("tokens")
def tokens() -> None:
    """API tokens (Authorization: Bearer TOKEN): shown once when made, only their SHA-256 kept."""


@tokens.command("create")
@click.argument("user")
@click.option("--expires", "expires_days", type=float, default=None, metavar="DAYS",
              help="Stop working after DAYS days (default: until revoked).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def tokens_create(state: CliState, user: str, expires_days: float | None, as_json: bool) -> None:
    """A new token for USER (a name or a u- id); it is printed once and never again."""
    from archive.services.accounts import create_token

    with state.archive() as archive:
        result = create_token(archive, user, expires_days)
    if as_json:
        emit_json(result)
        return
    click.echo(result["token"])
    expires = f", expires {result['expires_at']}" if result["expires_at"] else ""
    click.echo(f"token {result['id']} for {result['user']} ({result['role']}{expires}): "
               "it will not be shown again; keep it now", err=True)


@tokens.command("revoke")
@click.argument("token_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def tokens_revoke(state: CliState, token_id: str, as_json: bool) -> None:
    """Stop token ID (tok-…) from working, at once."""
    from archive.services.accounts import revoke_token

    with state.archive() as archive:
        result = revoke_token(archive, token_id)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{result['id']} revoked at {result['revoked_at']}")


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def tokens_list(state: CliState, as_json: bool) -> None:
    """List the tokens by id, user and state (the tokens themselves are nowhere to show)."""
    from archive.services.accounts import list_tokens

    with state.archive() as archive:
        rows = list_tokens(archive)
    if as_json:
        for row in rows:
            emit_json(row)
        return
    for row in rows:
        click.echo(_token_line(row))


def _token_line(row: dict[str, Any]) -> str:
    expires = row["expires_at"] or "never"
    return f"{row['id']}  {row['user']}  {row['role'] or '-':<12}  {row['state']:<8}  expires {expires}"


COMMANDS = [users, tokens]
