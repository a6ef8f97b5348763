"""`evidence log …`: checkpoints, an item's custody timeline, proofs, and verification."""

from __future__ import annotations

import sys
from typing import Any

import click

from api.cli.main import CliState, emit_json, fail, pass_state

# The largest sequence number the events table holds (a 32-bit column), and so the largest tree:
# beyond them a usage error, not an overflow deep inside.
MAX_SEQ = 2**31 - 1
MAX_SIZE = MAX_SEQ + 1


@click.group()
def log() -> None:
    """The tamper-evident custody log (RFC 9162 Merkle tree, C2SP signed checkpoints)."""


@log.command("checkpoint")
@click.option("--json", "as_json", is_flag=True, help="tree_size, root_hash and the signed note as JSON.")
@pass_state
def checkpoint_cmd(state: CliState, as_json: bool) -> None:
    """Sign and print a checkpoint of the log as it stands now."""
    from archive.custody.service import checkpoint, conflict_message

    with state.archive() as archive:
        result = checkpoint(archive)
    if as_json:
        emit_json(result)
    else:
        if not result["new"]:
            click.echo(f"no new events since checkpoint {result['tree_size']}; it still stands:", err=True)
        click.echo(result["note"], nl=False)
    for site, why in result["conflicts"].items():  # the site's copy is left as it is
        click.echo(conflict_message(site, why), err=True)
    if result["conflicts"]:
        sys.exit(1)


@log.command("show")
@click.argument("item")
@click.option("--json", "as_json", is_flag=True, help="The timeline as one JSON object.")
@pass_state
def show(state: CliState, item: str, as_json: bool) -> None:
    """The custody timeline of ITEM (an id, or a unique prefix of at least 8 characters), or of a record (an
    incident, victim or source ref, or any record id)."""
    from archive.custody.service import item_timeline
    from archive.roles import Role
    from archive.services.record_timeline import is_record, record_timeline

    with state.archive() as archive:
        if is_record(archive, item):
            timeline = record_timeline(archive, item, role=Role.CUSTODIAN)
        else:
            timeline = item_timeline(archive, item)
    if as_json:
        emit_json(timeline)
        return
    if "record" in timeline:
        click.echo(f"record {timeline['record']}: {len(timeline['events'])} events")
        for event in timeline["events"]:
            mark = " " if event["checkpointed"] else "*"
            leaf = f" leaf {event['batch_index']}" if event["batch_index"] is not None else ""
            click.echo(f"{mark}{event['seq']:>8}  {event['time']}  {event['change']:<12} {event['actor']}"
                       f"  commitment {event['commitment'][:16]}…{leaf}")
        if any(not e["checkpointed"] for e in timeline["events"]):
            click.echo("* not yet covered by a checkpoint", err=True)
        return
    click.echo(f"item {timeline['item']}: {len(timeline['events'])} events")
    for event in timeline["events"]:
        mark = " " if event["checkpointed"] else "*"
        objects = f" [{', '.join(event['objects'])}]" if event["objects"] else ""
        click.echo(f"{mark}{event['seq']:>8}  {event['time']}  {event['type']:<28} {event['outcome']:<8} "
                   f"{event['actor']}{objects}")
    if any(not e["checkpointed"] for e in timeline["events"]):
        click.echo("* not yet covered by a checkpoint", err=True)


def _print_hashes(title: str, hashes: list[str]) -> None:
    click.echo(f"{title} ({len(hashes)} hashes):")
    for value in hashes:
        click.echo(f"  {value}")


@log.command("prove")
@click.argument("seq", type=click.IntRange(min=0, max=MAX_SEQ))
@click.option("--checkpoint", "size", type=click.IntRange(min=1, max=MAX_SIZE), default=None,
              help="Prove against the checkpoint of this tree size (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="The event, its leaf hash, the proof and the signed note.")
@pass_state
def prove(state: CliState, seq: int, size: int | None, as_json: bool) -> None:
    """Inclusion proof of event SEQ (= leaf index) in a signed checkpoint."""
    from archive.custody.service import prove_inclusion

    with state.archive() as archive:
        result = prove_inclusion(archive, seq, size)
    if as_json:
        emit_json(result)
        return
    click.echo(f"event {seq}: {result['entry']}")
    click.echo(f"leaf hash {result['leaf_hash']}")
    click.echo(f"tree size {result['tree_size']}, root {result['root_hash']}")
    _print_hashes("inclusion proof", result["inclusion_proof"])
    click.echo(result["note"], nl=False)


@log.command("consistency")
@click.argument("old_size", type=click.IntRange(min=0, max=MAX_SIZE))
@click.argument("new_size", type=click.IntRange(min=0, max=MAX_SIZE))
@click.option("--json", "as_json", is_flag=True, help="Both roots and the proof as JSON.")
@pass_state
def consistency(state: CliState, old_size: int, new_size: int, as_json: bool) -> None:
    """Consistency proof between the checkpoints of OLD_SIZE and NEW_SIZE."""
    from archive.custody.service import prove_consistency

    with state.archive() as archive:
        result = prove_consistency(archive, old_size, new_size)
    if as_json:
        emit_json(result)
        return
    click.echo(f"old: size {old_size}, root {result['old_root_hash']}")
    click.echo(f"new: size {new_size}, root {result['new_root_hash']}")
    _print_hashes("consistency proof", result["consistency_proof"])


@log.command("verify")
@click.option("--vkey", "vkey_file", type=click.File("r"), default=None,
              help="Verifier key to trust (default: the home's keys/log.vkey).")
@click.option("--json", "as_json", is_flag=True, help="ok, checked_size, uncovered, first_bad_seq, problems.")
@click.option("--copies-only", is_flag=True,
              help="With the catalog key locked: accept checking the log and the copies only (the items' "
                   "commitments cannot be checked); without it a locked run exits 1, not fully verified.")
@pass_state
def verify(state: CliState, vkey_file: Any, as_json: bool, copies_only: bool) -> None:
    """Recompute the tree from every stored event and check it against every signed checkpoint, then the
    catalog against the log. Exit 0 only when everything was checked and holds."""
    from archive.config import ConfigError
    from archive.custody.service import verify_log

    with state.archive() as archive:
        try:
            _ = archive.config  # an empty catalog (a wrong database_url, say) holds no log to vouch for
        except ConfigError as exc:
            fail(str(exc), code=1)
        report = verify_log(archive, vkey_file.read() if vkey_file else None)
    incomplete = report.catalog is not None and not report.catalog.commitments_checked and not copies_only
    if as_json:
        emit_json({**report.to_json(), "fully_verified": report.ok and not incomplete})
    elif report.ok and incomplete:
        click.echo("not fully verified: commitments not checked (catalog key locked; run it unlocked, or pass "
                   "--copies-only to accept checking the log and the copies only)", err=True)
    else:
        for problem in report.problems:
            click.echo(f"FAIL {problem.kind}: {problem}", err=True)
        if report.more_problems:
            click.echo(f"… and {report.more_problems} more altered or missing events", err=True)
        catalog = report.catalog
        if catalog is not None:
            for mismatch in catalog.mismatches:
                click.echo(f"FAIL catalog: {mismatch}", err=True)
            if catalog.more:
                click.echo(f"… and {catalog.more} more catalog mismatches", err=True)
            if not catalog.commitments_checked:
                click.echo("commitments were NOT checked: the catalog key is locked here (`evidence unlock`); "
                           "copies were checked", err=True)
            elif catalog.commitments_unchecked:
                click.echo(f"{catalog.commitments_unchecked} items' commitments were not checked (pending rows "
                           "need the access identity)", err=True)
        if report.ok:
            click.echo(f"ok: {report.checked_size} events verified against {report.checkpoints} checkpoints")
            if catalog is not None:
                click.echo(f"ok: the catalog follows from the log ({catalog.items} items, {catalog.replicas} copies)")
        elif report.problems:
            click.echo(f"log verification FAILED; first bad sequence number: {report.first_bad_seq}")
        else:
            first = catalog.mismatches[0] if catalog and catalog.mismatches else None
            click.echo("log verification FAILED: the catalog does not follow from the log; first mismatch: "
                       f"{f'{first.what} {first.item}' if first else '?'}")
        if report.uncovered:
            click.echo(f"{report.uncovered} events after the latest checkpoint cannot be proven yet")
        if catalog is not None:
            for site, count in sorted(catalog.unpublished.items()):
                click.echo(f"warning: {count} record changes are not on site {site} yet (not in its journal): "
                           "`evidence log checkpoint` publishes them", err=True)
    sys.exit(0 if report.ok and not incomplete else 1)


@log.command("check")
@click.argument("document", type=click.File("r"))
@click.option("--vkey", "vkey_file", type=click.File("r"), required=True,
              help="The archive's verifier key, as you received it (C2SP vkey).")
@click.option("--json", "as_json", is_flag=True, help="ok, and what was proven, as JSON.")
def check(document: Any, vkey_file: Any, as_json: bool) -> None:
    """Check offline a proof saved from `log prove --json` or `log consistency --json` (no archive needed)."""
    import json

    from archive.custody.verify import VerificationError, Verifier, check_document

    try:
        checked = check_document(json.load(document), Verifier.decode(vkey_file.read()))
    except (VerificationError, ValueError) as exc:  # ValueError: not JSON at all
        if as_json:
            emit_json({"ok": False, "error": str(exc)})
        else:
            click.echo(f"FAILED: {exc}", err=True)
        sys.exit(1)
    if as_json:
        emit_json(checked)
    else:
        click.echo(f"ok: {checked.message}")


@log.command("key")
@pass_state
def key(state: CliState) -> None:
    """Print the verifier key (C2SP vkey) that checkpoints are signed with, for witnesses."""
    from archive.custody.service import log_signer

    with state.archive() as archive:
        click.echo(log_signer(archive).verifier.encode())


COMMANDS = [log]
