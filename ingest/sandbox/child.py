"""The sandbox child: serves analysis requests from its parent until the pipe closes.

Run as `python -m ingest.sandbox.child` by `ingest.sandbox`; see there for the
protocol, the limits and the test hooks (`EVIDENCE_SANDBOX_TEST_FAULT`).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ingest.sandbox import _HEADER, FAULT_ENV, HARD_MEMORY, MIB

if TYPE_CHECKING:
    from ingest.sandbox.tasks import Task

def _tasks() -> dict[str, Task]:
    from ingest.sandbox.tasks import TASKS

    return TASKS


def _faults() -> list[tuple[str, str | None, bytes]]:
    spec = os.environ.get(FAULT_ENV, "")
    out: list[tuple[str, str | None, bytes]] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        fault, _, marker = part.partition(":")
        fault, _, task = fault.partition("@")
        if fault in ("hang", "oom", "segv", "cpu") and marker:
            out.append((fault, task or None, marker.encode()))
    return out


def _head(source: bytes | Path) -> bytes:
    if isinstance(source, bytes):
        return source[:65536]
    with open(source, "rb") as stream:
        return stream.read(65536)


def _misbehave(fault: str) -> None:
    """The test hooks: behave as a hostile file can make a native parser behave."""
    if fault == "hang":
        while True:
            time.sleep(1)
    if fault == "cpu":
        while True:
            pass
    if fault == "oom":
        hog = []
        while True:
            hog.append(bytearray(64 * MIB))
    if fault == "segv":
        import ctypes

        ctypes.string_at(0)


def _set_limits(limits: dict[str, Any]) -> None:
    memory = min(int(limits["memory"]), HARD_MEMORY)
    resource.setrlimit(resource.RLIMIT_AS, (memory, HARD_MEMORY))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used) + 1 + int(limits["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _plain(value: Any) -> Any:
    """JSON's fallback for what parsers return beyond plain values."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def _reply(out: IO[bytes], message: dict[str, Any]) -> None:
    body = json.dumps(message, default=_plain).encode()
    out.write(_HEADER.pack(len(body)) + body)
    out.flush()


def _read_exact(stream: IO[bytes], count: int) -> bytes | None:
    data = stream.read(count)
    return data if len(data) == count else None


def child_main() -> None:
    """Serve requests on stdin/stdout until the parent closes the pipe (or dies)."""
    from archive.lifetime import die_with_parent

    die_with_parent()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a library printing must not corrupt the protocol
    tasks = _tasks()  # imports the parsers once, before the first file
    faults = _faults()
    while True:
        raw = _read_exact(stdin, 4)
        if raw is None:
            return
        header = json.loads(_read_exact(stdin, _HEADER.unpack(raw)[0]) or b"{}")
        source: bytes | Path
        if "size" in header:
            data = _read_exact(stdin, int(header["size"]))
            if data is None:
                return
            source = data
        else:
            source = Path(header["path"])
        # One task (older callers) or several over the same file, answered one reply each, in order.
        requests = header.get("tasks") or [header]
        for request in requests:
            if not _serve(stdout, tasks, faults, source, request):
                return  # retired: a fresh child for the rest


def _serve(
    out: IO[bytes], tasks: dict[str, Task], faults: list[tuple[str, str | None, bytes]],
    source: bytes | Path, request: dict[str, Any],
) -> bool:
    """Run one task and reply; False when this child must retire (its heap may be torn)."""
    name = str(request.get("task", ""))
    task = tasks.get(name)
    if task is None:
        _reply(out, {"ok": False, "kind": "error", "message": f"no sandbox task {name!r}"})
        return True
    try:
        _set_limits(request["limits"])
        if faults:
            head = _head(source)
            for fault, only, marker in faults:
                if (only is None or only == name) and marker in head:
                    _misbehave(fault)
        result = task(source, request.get("options") or {})
    except MemoryError:
        _reply(out, {"ok": False, "kind": "memory", "retire": True})
        return False
    except Exception as exc:  # noqa: BLE001 - reported to the parent as the task's failure
        _reply(out, {"ok": False, "kind": "error", "message": f"{type(exc).__name__}: {exc}"})
        return True
    try:
        _reply(out, {"ok": True, "result": result})
    except MemoryError:
        _reply(out, {"ok": False, "kind": "memory", "retire": True})
        return False
    return True

if __name__ == "__main__":
    child_main()
