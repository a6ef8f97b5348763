"""Test support for the HTTP API: a real server as a subprocess, tokens, an in-process client.

`serve(home)` starts `evidence --home H serve --port P` on loopback and waits
for `/healthz`; `token_for(home, name, role)` adds a user and returns a fresh
token; the `api_home` fixture is a freshly initialised archive home and
`client(home)` an in-process `TestClient` over `create_app(home)` (no
in-process worker unless asked).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port free on loopback now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _evidence() -> list[str]:
    return [sys.executable, "-c", "from api.cli.main import main; main()"]


def run_cli(home: Path | str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run `evidence --home H ARGS…` as a subprocess; its stdout (fails the test on a non-zero exit)."""
    done = subprocess.run([*_evidence(), "--home", str(home), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=REPO, timeout=120)
    assert done.returncode == 0, f"evidence {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def token_for(home: Path | str, name: str, role: str, expires_days: float | None = None) -> str:
    """A new user `name` with `role` (reused if it exists) and a fresh token for it."""
    from click.testing import CliRunner

    from api.cli.main import cli

    runner = CliRunner()
    added = runner.invoke(cli, ["--home", str(home), "users", "add", name, "--role", role], catch_exceptions=False)
    if added.exit_code != 0 and "already" not in (added.stdout + added.stderr):
        raise AssertionError(f"users add {name}: exit {added.exit_code}\n{added.stdout}\n{added.stderr}")
    args = ["--home", str(home), "tokens", "create", name, "--json"]
    if expires_days is not None:
        args[-1:-1] = ["--expires", str(expires_days)]
    made = runner.invoke(cli, args, catch_exceptions=False)
    assert made.exit_code == 0, f"tokens create {name}: exit {made.exit_code}\n{made.stdout}\n{made.stderr}"
    return str(json.loads(made.stdout)["token"])


def token_record(home: Path | str, name: str, role: str, expires_days: float | None = None) -> dict[str, Any]:
    """Like `token_for`, the whole `tokens create --json` answer (id, user, role, token, expires_at)."""
    from click.testing import CliRunner

    from api.cli.main import cli

    runner = CliRunner()
    runner.invoke(cli, ["--home", str(home), "users", "add", name, "--role", role], catch_exceptions=False)
    args = ["--home", str(home), "tokens", "create", name, "--json"]
    if expires_days is not None:
        args[-1:-1] = ["--expires", str(expires_days)]
    made = runner.invoke(cli, args, catch_exceptions=False)
    assert made.exit_code == 0, f"tokens create {name}: exit {made.exit_code}\n{made.stdout}\n{made.stderr}"
    return dict(json.loads(made.stdout))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Server:
    """`evidence serve` as a subprocess on loopback; its output goes to a log file the test can read."""

    def __init__(self, home: Path | str, port: int | None = None, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.home = Path(home)
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {})}
        self.args = args
        self.log_path = self.home.parent / f"serve-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Server:
        import httpx

        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*_evidence(), "--home", str(self.home), "serve", "--host", "127.0.0.1", "--port", str(self.port),
             *self.args],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=REPO, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"evidence serve exited {self.proc.returncode}:\n{self.log_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"evidence serve did not answer /healthz within {timeout} s:\n{self.log_text()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then wait (SIGKILL after `timeout`); the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, timeout: float = 60.0) -> Server:
        self.stop()
        return self.start(timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def serve(home: Path | str, port: int | None = None, env: dict[str, str] | None = None,
          args: tuple[str, ...] = ()) -> Server:
    """Start `evidence serve` on loopback over `home` and wait until it answers; `.stop()` it after."""
    return Server(home, port, env, args).start()


def make_home(path: Path, operator: str = "tester") -> Path:
    """A freshly initialised archive home at `path` (as the `cli` fixture makes one)."""
    from click.testing import CliRunner

    from api.cli.main import cli

    done = CliRunner().invoke(cli, ["--home", str(path), "init", "--operator", operator], catch_exceptions=False)
    assert done.exit_code == 0, f"init: exit {done.exit_code}\n{done.stdout}\n{done.stderr}"
    return path


@pytest.fixture()
def api_home(tmp_path: Path) -> Path:
    """A freshly initialised archive home for API tests."""
    return make_home(tmp_path / "home")


def client(home: Path | str, *, worker: bool = False, raise_server_exceptions: bool = False) -> Any:
    """An in-process `TestClient` over `create_app(home)`; use it as a context manager to run the lifespan."""
    from fastapi.testclient import TestClient

    from api.http.app import create_app

    return TestClient(create_app(str(home), worker=worker), raise_server_exceptions=raise_server_exceptions)


@pytest.fixture()
def api_client(api_home: Path) -> Iterator[Any]:
    """An in-process client over a fresh home, lifespan running (no in-process worker)."""
    with client(api_home) as test_client:
        yield test_client
