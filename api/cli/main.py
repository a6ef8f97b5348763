"""The `evidence` command: global options, and the command groups.

Each group lives in its own module here and only parses arguments, calls a
service function and prints; heavy libraries are imported inside commands, so
`evidence --help` starts fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import click

from archive.config import ConfigError


@dataclass
class CliState:
    home: str | None
    as_name: str | None

    @contextmanager
    def archive(self) -> Iterator[Any]:
        from archive.context import Archive

        archive = Archive.open(self.home, self.as_name)
        try:
            yield archive
        finally:
            try:
                warning = archive.runtime.finish()
                for text in [*archive.runtime.warnings, *([warning] if warning else [])]:
                    click.echo(f"warning: {text}", err=True)
            finally:
                archive.close()


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def plain(data: Any) -> Any:
    """A service's typed result as JSON-ready data (the same shape the HTTP API serializes)."""
    if hasattr(data, "as_dict"):
        return data.as_dict()
    if isinstance(data, list):
        return [plain(entry) for entry in data]
    return data


def echo_tree(data: Any, indent: int = 0) -> None:
    """A nested result as indented lines (what `show` commands print without --json)."""
    pad = "  " * indent
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, (dict, list)) and value:
                click.echo(f"{pad}{key}:")
                echo_tree(value, indent + 1)
            else:
                click.echo(f"{pad}{key}: {value}")
    elif isinstance(data, list):
        for value in data:
            if isinstance(value, dict):
                click.echo(f"{pad}-")
                echo_tree(value, indent + 1)
            else:
                click.echo(f"{pad}- {value}")


def emit_json(data: Any) -> None:
    click.echo(json.dumps(plain(data), ensure_ascii=False, indent=None, default=str))


class ArchiveGroup(click.Group):
    """Exit codes for every command: 0 ok, 1 a check failed (verification, fixity, a refusal), 2 an error.

    The archive's own errors become one clear line and exit code 2; so does
    anything unexpected (set EVIDENCE_DEBUG=1 for the traceback).
    """

    def invoke(self, ctx: click.Context) -> Any:
        from archive.age import AgeError
        from archive.services.errors import CheckFailed, Locked, ServiceError
        from storage.base import StorageError

        try:
            return super().invoke(ctx)
        except (CheckFailed, Locked) as exc:  # stored bytes do not match, a key is locked here …
            fail(str(exc), code=1)
        except (ConfigError, ServiceError, StorageError, AgeError) as exc:
            fail(str(exc))
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except BrokenPipeError:  # `evidence list | head`: the reader has all it wanted
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail again
            sys.exit(0)
        except Exception as exc:  # an error in the environment (disk, database): exit 2, never 1 ("a check failed")
            if os.environ.get("EVIDENCE_DEBUG"):
                raise
            fail(f"internal error ({type(exc).__name__}): {exc}")


@click.group(cls=ArchiveGroup)
@click.option("--home", envvar="EVIDENCE_HOME", default=None, help="Archive home (default ./evidence-data).")
@click.option("--as", "as_name", default=None, help="Operator name recorded in custody events.")
@click.pass_context
def cli(ctx: click.Context, home: str | None, as_name: str | None) -> None:
    """Evidence-preserving media archive."""
    ctx.obj = CliState(home=home, as_name=as_name)


pass_state: Callable[..., Any] = click.make_pass_decorator(CliState)


def _register() -> None:
    from api.cli import (
        analysis,
        cases,
        encrypt_to,
        export,
        fixity,
        incidents,
        items,
        keys,
        links,
        log,
        media,
        policy,
        previews,
        push,
        receipt,
        recipients,
        records_io,
        serve,
        sources,
        stats,
        storage,
        users,
        verify_bundle,
        victims,
        worker,
    )

    for module in (items, log, policy, fixity, worker, media, storage, encrypt_to, analysis, keys,
                   incidents, victims, sources, links, records_io, stats, users, serve, cases, receipt, push,
                   export, recipients, verify_bundle, previews):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    cli()
