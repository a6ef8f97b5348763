"""Driving the real `age` tool's passphrase prompts through a pseudo-terminal (it reads passphrases only
from a terminal, never from a pipe)."""

from __future__ import annotations

import os
import select
import subprocess
import time


def run_age(args: list[str], passphrase: str, *, answers: int = 1, timeout: float = 120.0) -> tuple[int, bytes, bytes]:
    """Run `age ARGS` with its terminal on a pty, typing `passphrase` at each of `answers` prompts.

    Returns (exit code, stdout, what it wrote on the terminal).
    """
    master, slave = os.openpty()
    proc = subprocess.Popen(["age", *args], stdin=slave, stdout=subprocess.PIPE, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    terminal, typed, deadline = b"", 0, time.monotonic() + timeout
    stdout = bytearray()
    assert proc.stdout is not None
    out_fd = proc.stdout.fileno()
    open_fds = {master, out_fd}
    try:
        while open_fds and time.monotonic() < deadline:
            ready, _, _ = select.select(list(open_fds), [], [], 0.2)
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    open_fds.discard(fd)
                    continue
                if fd == out_fd:
                    stdout += data
                    continue
                terminal += data
                if typed < answers and terminal.count(b"assphrase") > typed:
                    os.write(master, passphrase.encode() + b"\r")
                    typed += 1
            if proc.poll() is not None and not ready:
                break
        stdout += proc.stdout.read()
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        proc.stdout.close()
    return code, bytes(stdout), terminal
