"""`evidence worker`: runs repairs, back-fills and the scheduled fixity pass."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import click

from api.cli.main import CliState, pass_state


@click.command()
@click.option("--once", is_flag=True, help="Run every job that is due now, then exit.")
@click.option("--max-jobs", type=int, default=None, help="Stop after this many jobs.")
@click.option("-v", "--verbose", is_flag=True)
@click.option("--unlock", "unlock_here", is_flag=True,
              help="Ask for the passphrase and unlock the keys for this worker only (or $EVIDENCE_PASSPHRASE_FILE).")
@pass_state
def worker(state: CliState, once: bool, max_jobs: int | None, verbose: bool, unlock_here: bool) -> None:
    """Run the durable job queue (SIGTERM or Ctrl-C stops after the current job)."""
    from archive.services.worker import Worker

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("archive").setLevel(logging.INFO if verbose else logging.WARNING)
    stop = threading.Event()

    def _stop(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with state.archive() as archive:
        if unlock_here:
            from api.cli.keys import ask_passphrase
            from archive.services.keys import unlock

            unlock(archive, ask_passphrase(None), share=False)
        runner = Worker(archive)
        count = runner.run(once=once, stop=stop, max_jobs=max_jobs)
    outcomes: dict[str, int] = {}
    for _, _, outcome in runner.ran:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) or "nothing due"
    click.echo(f"worker {runner.owner}: {count} jobs ({summary})")


COMMANDS = [worker]
