"""`evidence serve`: the HTTP API under uvicorn, one runtime, the worker's duties in-process by default on SQLite.

The access log never holds an upload secret, a WebDAV file name, a query
string (a search for a name is personal data), nor any header: uvicorn logs
no headers, and every log line passes `redact` before it is written. Slow
clients are bounded three ways: idle keep-alive connections close after
`[api] keep_alive_seconds`, at most `[api] max_connections` are served at
once (503 beyond), and a request body silent for `[api] body_idle_seconds`
is cut off (`api.http.app.BodyIdleTimeout`).
"""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import click

from api.cli.main import CliState, pass_state
from api.http.access_log import RedactFilter, configure_logging

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_KEEP_ALIVE_SECONDS = 5
DEFAULT_MAX_CONNECTIONS = 256

def uvicorn_options(settings: dict[str, Any]) -> dict[str, Any]:
    """The slow-client guards, from `[api]` in config.toml."""
    return {
        "timeout_keep_alive": int(settings.get("keep_alive_seconds", DEFAULT_KEEP_ALIVE_SECONDS)),
        "limit_concurrency": int(settings.get("max_connections", DEFAULT_MAX_CONNECTIONS)),
        "h11_max_incomplete_event_size": int(settings.get("max_header_bytes", 16 * 1024)),  # request line, headers
        "timeout_graceful_shutdown": 30,
        "server_header": False,
        "date_header": True,
        "proxy_headers": False,  # client addresses are not logged from X-Forwarded-For either
    }


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, stopping on SIGTERM/SIGINT without re-raising the signal: a clean stop exits 0."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            held = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in held.items():
                    signal.signal(sig, handler)

    return Server


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts (a busy port must not run a second worker first).

    Raises OSError with a message for the operator.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise OSError(f"cannot listen on {host!r}: {exc.strerror}") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart may reuse the port
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(f"{host}:{port} is in use (another `evidence serve`?); stop it or choose --port") from exc
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


@click.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--worker/--no-worker", "worker", default=None,
              help="Run the worker's duties in this process (default: yes on SQLite, no on PostgreSQL).")
@click.option("--unlock", "unlock_here", is_flag=True,
              help="Ask for the passphrase and unlock the keys for this server only (or $EVIDENCE_PASSPHRASE_FILE).")
@click.option("-v", "--verbose", is_flag=True)
@pass_state
def serve(state: CliState, host: str, port: int, worker: bool | None, unlock_here: bool, verbose: bool) -> None:
    """Serve the HTTP API (SIGTERM or Ctrl-C stops after the requests and the job in progress)."""
    import uvicorn

    from api.http.app import create_app

    handler = configure_logging(verbose)
    app = create_app(state.home, worker=worker)
    runtime = app.state.runtime
    runtime.config()  # an uninitialised or lost catalog: say so now (ConfigError, exit 2), not at each request
    settings = dict(runtime.settings.section("api") or {})
    if settings.get("log_client_addresses"):
        handler.filters[:] = [RedactFilter(client_addresses=True)]
    if unlock_here:
        from api.cli.keys import ask_passphrase
        from archive.services.keys import unlock

        unlock(runtime.archive("archive"), ask_passphrase(None), share=False)
    try:
        sock = listen(host, port)
    except OSError as exc:  # exit 2, an error in the environment, before any worker duty has started
        runtime.close()
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    where = "in this process" if app.state.in_process_worker else "in separate `evidence worker` processes"
    click.echo(f"serving {runtime.home} on http://{host}:{port} (worker duties {where})", err=True)
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=True,
                            **uvicorn_options(settings))
    with sock:
        _server_class()(config).run(sockets=[sock])


COMMANDS = [serve]
