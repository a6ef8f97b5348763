"""`evidence storage add|list|remove`: the places that keep the encrypted copies.

Thin: parse, call `archive.services.storage_admin`, print. Credentials are
never options here; they come from `keys/storage-secrets.toml` (mode 0600) or
`EVIDENCE_STORAGE_<NAME>_ACCESS_KEY` / `_SECRET_KEY` (and `_SSE_C_KEY` for SSE-C).
"""

from __future__ import annotations

import click

from api.cli.main import CliState, emit_json, pass_state


@click.group()
def storage() -> None:
    """Storage backends: local folders and S3 buckets (credentials from the environment)."""


@storage.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice(["local", "s3", "minio"]), required=True)
@click.option("--path", help="local: the folder that keeps the objects.")
@click.option("--endpoint", help="s3/minio: the server, e.g. https://s3.example.org (omit for AWS with s3).")
@click.option("--bucket", help="s3/minio: the bucket (it must exist).")
@click.option("--region", help="s3/minio: the region (default us-east-1).")
@click.option("--prefix", help="s3/minio: a folder inside the bucket.")
@click.option("--object-lock", type=click.Choice(["GOVERNANCE", "COMPLIANCE"], case_sensitive=False),
              help="Write every object with this Object Lock retention mode.")
@click.option("--retention-days", type=int, help="With --object-lock: days each object is retained.")
@click.option("--sse", type=click.Choice(["sse-c", "aws:kms", "sse-s3"]),
              help="Server-side encryption (sse-c takes its key from EVIDENCE_STORAGE_<NAME>_SSE_C_KEY).")
@click.option("--kms-key-id", help="With --sse aws:kms: the key id.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def storage_add(
    state: CliState,
    name: str,
    kind: str,
    path: str | None,
    endpoint: str | None,
    bucket: str | None,
    region: str | None,
    prefix: str | None,
    object_lock: str | None,
    retention_days: int | None,
    sse: str | None,
    kms_key_id: str | None,
    as_json: bool,
) -> None:
    """Add a backend after checking that it answers."""
    from archive.services.storage_admin import add_storage, build_options

    options = build_options(
        kind,
        path=path,
        endpoint=endpoint,
        bucket=bucket,
        region=region,
        prefix=prefix,
        object_lock=object_lock,
        retention_days=retention_days,
        sse=sse,
        kms_key_id=kms_key_id,
    )
    with state.archive() as archive:
        entry = add_storage(archive, name, kind, options)
    if as_json:
        emit_json(entry)
        return
    click.echo(f"added storage {entry.name} ({entry.kind}): it answers, marked for this archive")


@storage.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--no-check", is_flag=True, help="Do not contact the backends.")
@pass_state
def storage_list(state: CliState, as_json: bool, no_check: bool) -> None:
    """List backends, their options (never secrets) and whether each answers."""
    from archive.services.storage_admin import list_storage

    with state.archive() as archive:
        entries = list_storage(archive, check=not no_check)
    if as_json:
        emit_json(entries)
        return
    for entry in entries:
        options = entry.options
        where = options.get("path") or f"{options.get('endpoint', 'AWS')}/{options.get('bucket')}"
        lock = options.get("object_lock")
        extra = f" [{lock} {options.get('retention_days')}d]" if lock else ""
        if entry.answers is None:
            status = ""
        elif entry.answers:
            status = "  answers"
        else:
            reason = str(entry.reason or "").removeprefix("unavailable: ")
            status = f"  UNAVAILABLE: {reason}"
        click.echo(f"{entry.name:<16} {entry.kind:<6} {where}{extra}{status}")


@storage.command("remove")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def storage_remove(state: CliState, name: str, as_json: bool) -> None:
    """Forget a backend (its data is left in place); refused while it holds the only copy of anything."""
    from archive.services.storage_admin import remove_storage

    with state.archive() as archive:
        entry = remove_storage(archive, name)
    if as_json:
        emit_json(entry)
        return
    click.echo(f"removed storage {entry.name}; its objects were left in place")


@storage.command("claim")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def storage_claim(state: CliState, name: str, as_json: bool) -> None:
    """Write the marker on a site that holds this archive's copies but has none (a disk from an older version)."""
    from archive.services.storage_admin import claim_storage

    with state.archive() as archive:
        entry = claim_storage(archive, name)
    if as_json:
        emit_json(entry)
        return
    click.echo(f"storage {entry.name} carries this archive's marker" + ("" if entry.answers else f"; {entry.reason}"))


COMMANDS = [storage]
