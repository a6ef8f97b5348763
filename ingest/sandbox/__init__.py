"""The sandbox: untrusted media is parsed and decoded in long-lived, limited child processes.

Why: parsers and decoders (exifread, expat, Pillow, libheif, FFmpeg, MediaInfo,
c2pa-rs) walk whatever a file claims. A crash, a hang, a memory bomb or a CPU
loop in one of them must cost one child process, never the ingest process or
the batch around it, and never the evidence: the caller records the failure on
the item (`ingestion.fail`) and the file is kept.

Why children are reused: a fresh interpreter with Pillow, NumPy, PyAV and
friends imported costs about half a second; a photo's whole analysis costs
tens of milliseconds. So each process keeps a small pool of children, started
lazily and replaced when one dies or is killed; a file costs one request and
one reply on a pipe.

Limits per request: the address space (RLIMIT_AS, set per task inside the
child), CPU time (RLIMIT_CPU, moved forward before each task: the limit is
cumulative per process) and wall-clock time (the parent waits that long, then
kills the child). The hard limits are set by the parent before the child runs
any code.

The protocol is plain data both ways: a 4-byte length and a JSON header, then
the file's bytes (small files) or nothing (the child opens the path). The
reply is JSON only, so a child subverted by a hostile file can lie about what
it found but cannot hand the parent an object to execute (no pickle).

One request may name several tasks over the same file (`run_many`: a photo's
metadata and its fingerprint): the bytes cross the pipe once, and the child
replies once per task as each finishes, so every task keeps its own limits
and a crash or a hang is still blamed on the task that was running.

Test hooks: `EVIDENCE_SANDBOX_TEST_FAULT` (read only in the child, never from
a file) holds `fault[@task]:marker` pairs separated by commas, fault one of
hang | oom | segv | cpu; a file whose first 64 KiB contain the marker makes
the child misbehave that way. Without the variable no content can trigger it.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import resource
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

FAULT_ENV = "EVIDENCE_SANDBOX_TEST_FAULT"
MIB = 1024 * 1024
HARD_MEMORY = 4096 * MIB  # the most any task may ask for; the child cannot raise its limit past it
MAX_REPLY = 256 * MIB  # a reply larger than this is treated as a misbehaving child
MAX_USES = 500  # requests one child serves before it is retired (bounds slow leaks in native code)
_HEADER = struct.Struct(">I")
PIPE_SIZE = 1024 * 1024  # Linux's default pipe-max-size
_PROJECT_ROOT = str(Path(__file__).resolve().parents[1])


@dataclass(frozen=True)
class Limits:
    """What one request may cost the child."""

    memory: int  # bytes of address space (RLIMIT_AS); the interpreter and libraries take ~450 MiB of it
    cpu_seconds: int  # CPU time (all threads)
    wall_seconds: float  # elapsed time before the parent kills the child


PREFETCHED = "sandbox:prefetched"  # in `Ingestion.results`: task name -> its outcome, run with an earlier request

# A file's whole analysis at ingest must end within 30 s whatever the file does (each task below
# can run once per file: 10 + 10 s for a photo, 10 + 11 s for a video). Real files need a
# fraction of this: a 12 MP photo's metadata and reduced decode take tens of milliseconds.
METADATA = Limits(memory=1024 * MIB, cpu_seconds=8, wall_seconds=10.0)
PHOTO_DECODE = Limits(memory=1536 * MIB, cpu_seconds=8, wall_seconds=10.0)


def video_decode(budget_seconds: float) -> Limits:
    """Limits for decoding video frames for `budget_seconds` (decoders use several threads)."""
    return Limits(memory=2048 * MIB, cpu_seconds=int(budget_seconds * 2 + 5), wall_seconds=budget_seconds + 5)


class SandboxFailure(Exception):
    """The child could not finish the request; `reason` says why in words fit for the item's record.

    `kind` is one of memory | cpu | timeout | crash | error.
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


# --------------------------------------------------------------------------- parent side


def _child_limits() -> None:
    """Runs in the child before exec: hard ceilings the child's own code cannot raise."""
    resource.setrlimit(resource.RLIMIT_AS, (HARD_MEMORY, HARD_MEMORY))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["MALLOC_ARENA_MAX"] = "2"  # glibc reserves 64 MiB of address space per thread arena otherwise
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PROJECT_ROOT, env.get("PYTHONPATH")) if p)
    env.pop("PYTHONFAULTHANDLER", None)
    from archive.lifetime import PARENT_ENV

    env[PARENT_ENV] = str(os.getpid())  # the child ends with us, even if we die before it looks
    return env


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class _Child:
    """One sandbox process and its pipes."""

    def __init__(self) -> None:
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - kept for the child's life
        self.process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "ingest.sandbox.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=_child_env(),
            preexec_fn=_child_limits,  # noqa: PLW1509 - only setrlimit, no locks taken
            close_fds=True,
        )
        self.uses = 0
        for stream in (self.process.stdin, self.process.stdout):
            try:  # a photo crosses in a few large writes instead of sixty 64 KiB ones, each a wake-up
                assert stream is not None
                fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            except (OSError, AttributeError):
                pass  # not Linux, or above /proc/sys/fs/pipe-max-size: the default size works too

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL not delivered yet
            pass
        for stream in (self.process.stdin, self.process.stdout, self.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    def request(self, header: dict[str, Any], payload: bytes | None, limits: Limits) -> dict[str, Any]:
        """Send one request and wait for its (first) reply; raises SandboxFailure (the child is then dead)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.uses += 1
        body = json.dumps(header).encode()
        try:
            self.process.stdin.write(_HEADER.pack(len(body)) + body)
            if payload is not None:
                self.process.stdin.write(payload)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died(limits) from None
        return self.reply(limits)

    def reply(self, limits: Limits) -> dict[str, Any]:
        """The next reply, within `limits.wall_seconds` from now; raises SandboxFailure (the child is then dead)."""
        deadline = time.monotonic() + limits.wall_seconds
        size_bytes = self._read(4, deadline, limits)
        (size,) = _HEADER.unpack(size_bytes)
        if size > MAX_REPLY:
            self.kill()
            raise SandboxFailure("error", f"the parser sent a reply of {size} bytes (refused)")
        reply: dict[str, Any] = json.loads(self._read(size, deadline, limits))
        return reply

    def _read(self, count: int, deadline: float, limits: Limits) -> bytes:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        chunks: list[bytes] = []
        remaining = count
        while remaining:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                self.kill()
                raise SandboxFailure(
                    "timeout", f"parser exceeded its time limit ({limits.wall_seconds:.0f} s) and was stopped"
                )
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                raise self._died(limits)
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _died(self, limits: Limits) -> SandboxFailure:
        """Why the child ended before replying, from its exit status."""
        try:
            code = self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.returncode
        tail = ""
        try:
            self.stderr.seek(0, 2)
            self.stderr.seek(max(0, self.stderr.tell() - 2000))
            lines = self.stderr.read().decode("utf-8", "replace").strip().splitlines()
            tail = lines[-1][:200] if lines else ""
        except OSError:
            pass
        self.kill()
        if code == -signal.SIGXCPU:
            return SandboxFailure("cpu", f"parser exceeded its CPU-time limit ({limits.cpu_seconds} s)")
        if any(sign in tail for sign in ("MemoryError", "bad_alloc", "Cannot allocate memory", "out of memory")):
            return SandboxFailure("memory", f"parser exceeded its memory limit ({limits.memory // MIB} MiB)")
        if code is not None and code < 0:
            return SandboxFailure("crash", f"parser crashed ({_signal_name(-code)})")
        return SandboxFailure("crash", f"parser exited with status {code}" + (f": {tail}" if tail else ""))


class Pool:
    """Up to `size` long-lived children shared by the threads of one process."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.idle: list[_Child] = []
        self.slots = threading.BoundedSemaphore(size)
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.started = 0  # children started, for tests and benchmarks

    def _take(self) -> _Child:
        with self.lock:
            while self.idle:
                child = self.idle.pop()
                if child.alive():
                    return child
                child.kill()
            self.started += 1
        return _Child()

    def _give_back(self, child: _Child) -> None:
        if child.alive() and child.uses < MAX_USES:
            with self.lock:
                self.idle.append(child)
        else:
            child.kill()

    def run(self, task: str, source: bytes | Path, options: dict[str, Any], limits: Limits) -> dict[str, Any]:
        """Run `task` on `source` in a child; its result, or SandboxFailure."""
        outcome = self.run_many([(task, options, limits)], source)[0]
        if isinstance(outcome, SandboxFailure):
            raise outcome
        return outcome

    def run_many(
        self, tasks: list[tuple[str, dict[str, Any], Limits]], source: bytes | Path
    ) -> list[dict[str, Any] | SandboxFailure]:
        """Run several tasks on `source` in one child, the bytes sent once; each task's result or failure.

        Each task has its own limits (its wall-clock time counts from the previous
        task's reply). A task the child did not reach because it died or retired
        runs again alone, in a fresh child.
        """
        header: dict[str, Any] = {
            "tasks": [{"task": task, "options": options, "limits": limits.__dict__} for task, options, limits in tasks]
        }
        payload: bytes | None = None
        if isinstance(source, bytes):
            header["size"] = len(source)
            payload = source
        else:
            header["path"] = str(source)
        outcomes: list[dict[str, Any] | SandboxFailure] = []
        with self.slots:
            child = self._take()
            alive = True
            try:
                for index, (_, _, limits) in enumerate(tasks):
                    try:
                        reply = child.request(header, payload, limits) if index == 0 else child.reply(limits)
                    except SandboxFailure as failure:
                        child.kill()
                        outcomes.append(failure)
                        alive = False
                        break
                    outcomes.append(_outcome(reply, limits))
                    if reply.get("retire"):
                        child.kill()
                        alive = False
                        break
            except BaseException:
                child.kill()  # interrupted mid-request: the pipe's state is unknown
                raise
            if alive:
                self._give_back(child)
        for task, options, limits in tasks[len(outcomes):]:  # not reached: the child ended on an earlier task
            try:
                outcomes.append(self.run(task, source, options, limits))
            except SandboxFailure as failure:
                outcomes.append(failure)
        return outcomes

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for child in idle:
            child.kill()


def _outcome(reply: dict[str, Any], limits: Limits) -> dict[str, Any] | SandboxFailure:
    if reply.get("ok"):
        result: dict[str, Any] = reply["result"]
        return result
    kind = str(reply.get("kind", "error"))
    if kind == "memory":
        return SandboxFailure("memory", f"parser exceeded its memory limit ({limits.memory // MIB} MiB)")
    return SandboxFailure(kind, str(reply.get("message", "unknown error"))[:500])


_pool: Pool | None = None
_pool_lock = threading.Lock()


def pool() -> Pool:
    """This process's pool (a forked process gets its own, never its parent's children)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():
            _pool = Pool(max(1, min(2, os.cpu_count() or 1)))
        return _pool


def run(task: str, source: bytes | Path, options: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """Run a registered task on untrusted `source` in a sandbox child (see the module docstring)."""
    return pool().run(task, source, options, limits)


def run_many(
    tasks: list[tuple[str, dict[str, Any], Limits]], source: bytes | Path
) -> list[dict[str, Any] | SandboxFailure]:
    """Several registered tasks on the same untrusted `source`, in one child request (see `Pool.run_many`)."""
    return pool().run_many(tasks, source)


def warm() -> None:
    """Start one child now, so its imports overlap the first file's hashing and encryption."""
    current = pool()
    with current.slots:
        current._give_back(current._take())


def shutdown() -> None:
    """Stop this process's idle children (they are started again when next needed)."""
    global _pool
    with _pool_lock:
        current, _pool = _pool, None
    if current is not None and current.pid == os.getpid():
        current.close()


atexit.register(shutdown)
