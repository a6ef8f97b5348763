"""`evidence fixity` and `evidence rebuild-catalog`: checking the copies, and recovering from them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from api.cli.main import CliState, emit_json, pass_state
from archive.services.errors import ServiceError


@click.command()
@click.option("--all", "all_items", is_flag=True, help="The full pass (resumes where an interrupted one stopped).")
@click.option("--sample", type=click.IntRange(max=2**31 - 1), default=None,  # bounded: a SQL LIMIT
              help="Check N items chosen at random.")
@click.option("--item", default=None, help="Check one item (id or unique prefix).")
@click.option("--repair", is_flag=True, help="Rewrite missing or corrupt copies from a verified one now.")
@click.option("--restart", is_flag=True, help="With --all: start a new pass instead of resuming.")
@click.option("--rate", type=int, default=None, help="Read at most this many bytes/s (default: [fixity] setting).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def fixity(
    state: CliState,
    all_items: bool,
    sample: int | None,
    item: str | None,
    repair: bool,
    restart: bool,
    rate: int | None,
    as_json: bool,
) -> None:
    """Re-read stored copies and compare their SHA-256 with the custody log's (no key needed).

    Exits 1 when any copy is missing, corrupt, could not be read, or is not recorded by the log.
    """
    from archive.services.fixity import run_fixity

    with state.archive() as archive:
        report = run_fixity(archive, all_items=all_items, sample=sample, item=item, repair=repair,
                            rate_bytes_per_second=rate, restart=restart)
    if as_json:
        emit_json(report.as_dict())
    else:
        if report.resumed_from:
            click.echo(f"resumed the full pass after item {report.resumed_from}")
        click.echo(
            f"{report.items} items, {report.copies} copies: {report.ok} ok, {report.missing} missing, "
            f"{report.corrupt} corrupt, {report.unavailable} unavailable, {report.unlogged} not in the custody log"
        )
        for problem in report.problems:
            click.echo(f"  {problem.result:11} {problem.item} {problem.role:8} {problem.backend}:{problem.object}"
                       + (f"  ({problem.detail})" if problem.detail else ""))
        for repaired in report.repaired:
            written = ", ".join(repaired["written"] + [f"{b} (manifest)" for b in repaired["manifests"]]) or "nothing"
            click.echo(f"  repaired  {repaired['item']}: wrote {written}; now {repaired['status']}")
            for backend, why in repaired["failures"].items():
                click.echo(f"    failed on {backend}: {why}")
    sys.exit(1 if report.found_problems else 0)


@click.command("rebuild-catalog")
@click.option("--from", "site", required=True,
              help="The storage site to read: a site name of the current home, or with --kind a new description.")
@click.option("--kind", type=click.Choice(["local", "s3", "minio"]), default=None,
              help="Describe the site here instead of looking it up (needs no old home at all).")
@click.option("--path", default=None, help="local: the folder of the site.")
@click.option("--endpoint", default=None, help="s3/minio: the server.")
@click.option("--bucket", default=None, help="s3/minio: the bucket.")
@click.option("--region", default=None, help="s3/minio: the region.")
@click.option("--prefix", default=None, help="s3/minio: the folder inside the bucket.")
@click.option("--identity", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The custodian's age identity file (decrypts the manifests).")
@click.option("--into", "--home", "new_home", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A new, empty home for the rebuilt catalog.")
@click.option("--vkey", "vkey_file", type=click.File("r"), default=None,
              help="The log's verifier key as your witnesses hold it (default: the one the site keeps).")
@click.option("--checkpoint", "checkpoint_file", type=click.File("r"), default=None,
              help="A checkpoint a witness kept (needs --vkey): the site's log must extend it.")
@click.option("--accept-unchecked", is_flag=True,
              help="With --vkey or --checkpoint: recover the items even if the site's log is missing or does not "
                   "verify, from their manifests alone, each marked unchecked (otherwise refused).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def rebuild_catalog(
    state: CliState,
    site: str,
    kind: str | None,
    path: str | None,
    endpoint: str | None,
    bucket: str | None,
    region: str | None,
    prefix: str | None,
    identity: Path,
    new_home: Path,
    vkey_file: Any,
    checkpoint_file: Any,
    accept_unchecked: bool,
    as_json: bool,
) -> None:
    """Recreate the catalog from the manifests on one storage site, in a new home.

    With --kind (and --path, or --endpoint and --bucket) the site is described
    on the command line and nothing of the old home is needed; the archive id
    is taken from the site's marker, and the custody log the site keeps is
    checked and continued (with the signing key it keeps sealed to the
    custodian). Credentials for a remote site come from the new home's
    keys/storage-secrets.toml or the environment.

    With --vkey or --checkpoint, a site whose log is missing or does not
    verify is refused (exit 1, nothing created) unless --accept-unchecked.
    """
    vkey = vkey_file.read() if vkey_file else None
    witnessed = checkpoint_file.read() if checkpoint_file else None
    from archive.config import StorageSpec
    from archive.services.rebuild import rebuild_catalog as rebuild
    from archive.services.storage_admin import build_options

    if kind is not None:
        options = build_options(kind, path=path, endpoint=endpoint, bucket=bucket, region=region, prefix=prefix)
        spec = StorageSpec(site, kind, options)
        actor = state.as_name or "recovery"
        report = rebuild(spec, identity, new_home, actor, vkey=vkey, witnessed=witnessed,
                         accept_unchecked=accept_unchecked)
    else:
        with state.archive() as archive:
            found = archive.config.site(site)
            if found is None:
                known = ", ".join(archive.config.site_names()) or "none"
                raise ServiceError(f"no storage site named {site!r} in {archive.home} (sites: {known}); "
                                   "describe it with its kind instead")
            spec = StorageSpec(found.name, found.kind, dict(found.options))
            if spec.kind == "local" and not Path(spec.options["path"]).is_absolute():
                spec.options["path"] = str(archive.home / spec.options["path"])
            report = rebuild(spec, identity, new_home, archive.actor, recipients=archive.config.recipients,
                             secrets_home=archive.home, vkey=vkey, witnessed=witnessed,
                             accept_unchecked=accept_unchecked)
    if as_json:
        emit_json(report.as_dict())
    else:
        if report.log_events:
            earlier = (f": {report.log_events - report.rebuild_events} of the archive, {report.rebuild_events} "
                       f"written by {report.rebuilds} earlier rebuild(s) of this site" if report.rebuilds else "")
            taken = f"{report.log_events} custody events taken over{earlier}"
        else:
            taken = "no custody events taken over"
        if report.log_key == "none":
            key = "no log was checked"
        elif report.log_key == "given":
            key = "checked with the log key given"
        else:
            key = f"log key {report.log_key}"
        click.echo(f"rebuilt {report.items} items ({report.replicas} copies) from {report.manifests} manifests "
                   f"on {report.backend} into {report.home}; {taken} ({key})")
        if report.unchecked:
            click.echo(f"WARNING: {len(report.unchecked)} of {report.items} items were NOT CHECKED against any "
                       "custody log: recovered from their manifests alone, which anyone with the public recipient "
                       "can write. They are listed as unchecked in the catalog and in the log.")
        for problem in report.problems:
            where = ", ".join(f"{k} {v}" for k, v in problem.items() if k != "problem" and k != "log")
            text = problem.get("problem") or problem.get("log", "")
            click.echo(f"  problem: {where + ': ' if where else ''}{text}")
        if report.journal_objects or report.records:
            vocab = (f"; {report.vocab_terms} vocabulary terms, checked against the log" if report.vocab_checked
                     else "")
            click.echo(f"restored {report.records} records ({report.record_changes} changes) from "
                       f"{report.journal_objects} journal objects{vocab}")
        for rejected in report.rejected:  # never entered in the catalog; left untouched on the site
            if "record" in rejected:  # a journal entry (archive.records.replay)
                click.echo(f"  rejected: record {rejected['record']} (journal object {rejected.get('journal')}): "
                           f"{rejected['problem']}")
                continue
            what = rejected.get("manifest") or rejected.get("arrival")
            click.echo(f"  rejected: {what} (item {rejected.get('item')}): {rejected['problem']}")
    sys.exit(1 if report.problems or report.rejected else 0)


COMMANDS = [fixity, rebuild_catalog]
