"""`evidence push`: the field client. Files go to an archive's HTTP API over tus, resumably.

Each file is hashed first (its SHA-256 goes with the upload, so the archive
refuses a file that changed on the way), then queued on the device, then sent
in chunks, each with its own SHA-256 checksum. An interrupted upload resumes
where the server stands, also after a restart of the command; while the
server cannot be reached the files stay queued and the next `evidence push`
(with or without paths) sends them. Every receipt is checked against the
archive's receipt key before a file leaves the queue.

Over Tor, run it under `torsocks` (`torsocks evidence push --server
http://<onion>.onion …`): the client makes plain TCP connections, which
torsocks routes through the Tor daemon (a SOCKS proxy of its own would need
httpx's optional `socksio`).

Exit codes: 0 every file sent and its receipt verified; 1 the server refused
a file, or a receipt did not verify; 2 an error (a path that cannot be read,
a token the server does not accept, a receipt key that changed); 75 files are
still queued (the server could not be reached): run `evidence push` again later.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import click

EXIT_QUEUED = 75  # sysexits EX_TEMPFAIL: try again later
_SIZE = re.compile(r"(\d+)\s*([kmg]?)(i?b)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`4M`, `512K`, `1MiB`, `65536`: a chunk size in bytes (binary units)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a size (e.g. 4M, 512K)")
    value = int(match.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2).lower()]
    if not (1 << 10) <= value <= (1 << 30):
        raise click.BadParameter("a chunk is between 1K and 1G")
    return value


def _server(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{url!r} is not an http(s) URL", param_hint="--server")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise click.BadParameter("give the server as scheme://host[:port][/path] only", param_hint="--server")
    return url.rstrip("/")


def _plain_http_warning(server: str) -> str | None:
    host = urlsplit(server).hostname or ""
    if urlsplit(server).scheme == "https" or host in ("127.0.0.1", "::1", "localhost") or host.endswith(".onion"):
        return None
    return ("warning: plain http to a host that is neither loopback nor a Tor onion service: "
            "the token and the files can be read on the way")


class RichProgress:
    """Bars on stderr: one per file (hashing, then sending) and one overall."""

    def __init__(self, enabled: bool, report: Callable[[Any], None]) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.console = Console(stderr=True)
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                             TimeRemainingColumn(), console=self.console, disable=not enabled, transient=False)
        self.overall: Any = None
        self.tasks: dict[str, Any] = {}
        self.finished = 0
        self.report = report  # each outcome as soon as it is known (a receipt printed is a receipt kept)

    def __enter__(self) -> RichProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    @staticmethod
    def _name(path: str) -> str:
        name = path.rsplit("/", 1)[-1]
        return name if len(name) <= 32 else name[:29] + "…"

    def hashing(self, path: str, size: int) -> Callable[[int], None]:
        task = self.bars.add_task(f"hashing {self._name(path)}", total=size)
        return lambda n: self.bars.advance(task, n)

    def set_total(self, total: int) -> None:
        self.overall = self.bars.add_task("all files", total=total)

    def start(self, entry: Any) -> None:
        self.tasks[entry.id] = self.bars.add_task(f"sending {self._name(entry.path)}", total=entry.size)

    def advance(self, entry: Any, offset: int) -> None:
        task = self.tasks.get(entry.id)
        if task is not None:
            self.bars.update(task, completed=offset)
        if self.overall is not None:
            self.bars.update(self.overall, completed=self.finished + offset)

    def done(self, entry: Any, outcome: Any) -> None:
        if outcome.status in ("sent", "refused", "unverified"):
            self.finished += entry.size
        if self.overall is not None:
            self.bars.update(self.overall, completed=self.finished)
        self.report(outcome)


def _describe(outcome: Any) -> str:
    name = outcome.path
    if outcome.status == "sent":
        resumed = f", resumed at byte {outcome.resumed_from}" if outcome.resumed_from else ""
        return (f"sent {name}: item {outcome.item}, sha256 {outcome.sha256}, event {outcome.event}, "
                f"upload {outcome.upload} (receipt verified{resumed})")
    if outcome.status == "queued":
        return f"queued {name}: {outcome.reason}"
    if outcome.status == "missing":
        return f"kept in the queue {name}: {outcome.reason}"
    return f"{outcome.status} {name}: {outcome.reason}"


def _forget(queue_dir: str | None, server: str | None, token: str | None) -> None:
    from api.push.queue import Queue, QueueError
    from api.push.tus import TusClient

    queue = Queue.open(queue_dir)
    try:
        with queue.lock():
            told = 0
            if server and token:  # best effort: the server drops the half-sent bytes too
                with TusClient(server, token, retries=1) as client:
                    for entry in queue.entries(server):
                        if entry.upload_url and client.terminate(entry.upload_url):
                            told += 1
            count = queue.wipe()
    except QueueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"forgot {count} queued file(s) in {queue.dir} (entries and pinned keys unlinked"
               + (f"; {told} upload(s) terminated on the server" if told else "") + ")")


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--server", envvar="EVIDENCE_PUSH_SERVER", default=None, metavar="URL",
              help="The archive's base URL (env EVIDENCE_PUSH_SERVER).")
@click.option("--token", envvar="EVIDENCE_PUSH_TOKEN", default=None, metavar="TOKEN",
              help="A contributor token (prefer env EVIDENCE_PUSH_TOKEN: a command line is visible to others).")
@click.option("--source", default=None, help="Where the files came from (sent as provenance).")
@click.option("--incident", default=None, help="The incident the files document (a ref).")
@click.option("--channel", default=None, help="How the files came (upload, email, messaging …).")
@click.option("--note", default=None, help="A note sent with each file.")
@click.option("--queue", "queue_dir", envvar="EVIDENCE_PUSH_QUEUE", default=None, metavar="DIR",
              help="The local queue (default $XDG_DATA_HOME/evidence-push or ~/.local/share/evidence-push).")
@click.option("--vkey", default=None, metavar="FILE",
              help="The archive's receipt verifier key, given out of band (else fetched and pinned on first use).")
@click.option("--forget", is_flag=True,
              help="Wipe the queue (entries with their upload secrets, pinned keys) by unlinking its files.")
@click.option("--chunk-size", default="4M", show_default=True, metavar="SIZE", help="Bytes per PATCH (e.g. 512K).")
@click.option("--retries", type=click.IntRange(1, 100), default=6, show_default=True,
              help="Attempts, with backoff, before the server counts as unreachable for this run.")
@click.option("--move-queued", is_flag=True,
              help="Send files queued for other servers to this --server too (the same archive under another "
                   "address: a half-sent file resumes only if both gave the same receipt key, else starts over).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file, per line.")
def push(paths: tuple[str, ...], server: str | None, token: str | None, source: str | None, incident: str | None,
         channel: str | None, note: str | None, queue_dir: str | None, vkey: str | None, forget: bool,
         chunk_size: str, retries: int, move_queued: bool, as_json: bool) -> None:
    """Upload files to an archive over tus, resumably; drain the local queue.

    Files queued for another --server are not sent to this one (they are
    listed, and the exit is 75) unless --move-queued says so.

    Exit codes: 0 all sent, receipts verified; 1 a refusal or a receipt that
    does not verify; 2 an error; 75 files still queued (server unreachable,
    or queued for another server).
    """
    if forget:
        if paths:
            raise click.UsageError("--forget takes no paths")
        _forget(queue_dir, _server(server) if server else None, token)
        return
    if not server or not token:
        raise click.UsageError("--server and --token (or EVIDENCE_PUSH_SERVER and EVIDENCE_PUSH_TOKEN) are needed")
    server = _server(server)
    size = parse_size(chunk_size)
    if channel:
        from archive.records.vocab import CHANNELS

        if channel not in CHANNELS:  # checked before any file is hashed or queued: a typo sends nothing
            raise click.BadParameter(f"one of {', '.join(CHANNELS)}", param_hint="--channel")
    code = _run(paths, server, token, {"source": source or "", "incident": incident or "", "channel": channel or "",
                                       "note": note or ""}, queue_dir, vkey, size, retries, as_json, move_queued)
    sys.exit(code)


def _elsewhere(queue: Any, server: str) -> list[Any]:
    """Entries queued for another server than this run's."""
    return [entry for entry in queue.entries() if entry.server != server]


def _run(paths: tuple[str, ...], server: str, token: str, metadata: dict[str, str], queue_dir: str | None,
         vkey_file: str | None, chunk_size: int, retries: int, as_json: bool, move_queued: bool = False) -> int:
    from api.push.drain import Outcome, drain, enqueue, files_of, move_entries
    from api.push.queue import Queue, QueueError
    from api.push.receipts import ReceiptProblem, receipt_key
    from api.push.tus import Denied, Offline, Refused, TusClient

    warning = _plain_http_warning(server)
    if warning:
        click.echo(warning, err=True)
    files, problems = files_of(paths)
    for path, problem in problems:
        click.echo(f"error: {path}: {problem}", err=True)
    queue = Queue.open(queue_dir)

    def report(outcome: Outcome) -> None:
        if as_json:
            click.echo(json.dumps(outcome.as_dict(), ensure_ascii=False))
            return
        click.echo(_describe(outcome))
        if outcome.receipt and outcome.status == "sent":
            click.echo(outcome.receipt.rstrip("\n"))

    progress = RichProgress(enabled=sys.stderr.isatty(), report=report)
    outcomes: list[Outcome] = []
    try:
        with queue.lock(), progress:
            enqueue(queue, files, server, metadata, progress)
            pending = queue.entries(server)
            with TusClient(server, token, retries=retries) as client:
                try:
                    vkey = receipt_key(queue, client, server, vkey_file)
                    if move_queued:
                        for entry, old, resumed in move_entries(queue, _elsewhere(queue, server), server, vkey):
                            how = "resuming (same receipt key)" if resumed else "from the start"
                            click.echo(f"moved {entry.path} from {old} to {server}, {how}", err=True)
                        pending = queue.entries(server)
                    progress.set_total(sum(entry.size for entry in pending))
                except Offline as exc:
                    outcomes = [Outcome(path=e.path, status="queued", size=e.size, sha256=e.sha256,
                                        reason=str(exc), offline=True) for e in pending]
                    for outcome in outcomes:
                        report(outcome)
                else:
                    outcomes = drain(queue, client, vkey, server=server, chunk_size=chunk_size, progress=progress)
    except (QueueError, ReceiptProblem, Denied, Refused) as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    if not as_json:
        left = len(queue.entries(server))
        if left:
            click.echo(f"{left} file(s) still queued in {queue.dir}: run `evidence push` again to send them", err=True)
    for entry in _elsewhere(queue, server):  # never silent: a run that sent nothing of them is no success
        outcome = Outcome(path=entry.path, status="queued", size=entry.size, sha256=entry.sha256,
                          reason=f"queued for {entry.server}, not sent to {server}: run `evidence push --server "
                                 f"{entry.server}`, or add --move-queued if that is this same archive")
        outcomes.append(outcome)
        if as_json:
            report(outcome)
        else:
            click.echo(_describe(outcome), err=True)
    statuses = {o.status for o in outcomes}
    if problems:
        return 2
    if statuses & {"refused", "unverified"}:
        return 1
    if statuses & {"queued", "missing"}:
        return EXIT_QUEUED
    return 0


COMMANDS = [push]
