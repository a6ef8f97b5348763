"""Where one ingest's time goes, step by step, in this process (a profiling aid for the benchmarks).

    python bench/profile_steps.py FILE [FILE ...] [--home DIR]

Each pipeline step's `run` (and each `save`, which runs inside the catalog
transaction) is timed: wall time, CPU of this process (every thread), and CPU
of the sandbox children (read from /proc, since they outlive the step). The
first file warms the process (imports, sandbox child start) and is reported
apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TICK = os.sysconf("SC_CLK_TCK")


def sandbox_cpu() -> float:
    """CPU seconds used so far by this process's live sandbox children."""
    from ingest import sandbox

    current = sandbox._pool
    total = 0.0
    if current is None:
        return 0.0
    for child in list(current.idle):
        try:
            fields = Path(f"/proc/{child.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
        except OSError:
            pass
    return total


Totals = dict[str, list[float]]  # step -> [wall, cpu, sandbox cpu, calls]


def wrap(totals: Totals, label: str, func: Callable[..., Any], children: bool = True,
         thread_cpu: bool = False) -> Callable[..., Any]:
    """`func`, timed into `totals[label]`: CPU of the whole process, or of the calling thread only."""
    clock = time.thread_time if thread_cpu else time.process_time

    def timed(*args: Any, **kwargs: Any) -> Any:
        wall, cpu, child = time.perf_counter(), clock(), sandbox_cpu() if children else 0.0
        try:
            return func(*args, **kwargs)
        finally:
            row = totals[label]
            row[0] += time.perf_counter() - wall
            row[1] += clock() - cpu
            row[2] += (sandbox_cpu() - child) if children else 0.0
            row[3] += 1

    return timed


def instrument(totals: Totals) -> None:
    """Time every step, and inside them the custody events, the fsyncs and the sandbox requests."""
    import archive.custody.log as log
    import storage.local as local
    from ingest import sandbox
    from ingest.pipeline import default_steps

    for step in default_steps():
        cls = type(step)
        if "run" in cls.__dict__:
            cls.run = wrap(totals, f"{step.name}", cls.run)  # type: ignore[method-assign]
        if "save" in cls.__dict__:
            cls.save = wrap(totals, f"  {step.name}.save (in commit)", cls.save)  # type: ignore[method-assign]
    sandbox.Pool.run_many = wrap(totals, "    sandbox requests (all)", sandbox.Pool.run_many)  # type: ignore[method-assign]
    import ingest.steps.catalog as catalog

    append = wrap(totals, "    custody events (append_event)", log.append_event, children=False)
    log.append_event = catalog.append_event = append  # type: ignore[assignment]
    # local.py calls os.fsync through the os module: objects, staging files and folders
    # (some run in a background thread, overlapping the steps: their wall time is not the step's)
    os.fsync = wrap(totals, "    fsync of stored objects and folders", os.fsync, children=False, thread_cpu=True)
    _ = local


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--home")
    args = parser.parse_args()
    from archive.context import Archive
    from archive.services.ingest import ingest_file
    from archive.services.setup import init_home

    tmp = None
    home = args.home
    if home is None:
        tmp = tempfile.TemporaryDirectory(dir=Path(__file__).parent / ".cache")
        home = str(Path(tmp.name) / "home")
    if not Path(home, "config.toml").exists():
        init_home(Path(home))
    archive = Archive.open(home, "bench")
    totals: Totals = defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    files = [Path(f) for f in args.files]
    ingest_file(archive, files[0])  # warm: imports, engine, sandbox child
    instrument(totals)
    wall, cpu = time.perf_counter(), time.process_time()
    for path in files[1:] or files[:1]:
        ingest_file(archive, path)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = max(1, len(files) - 1)
    print(f"{n} file(s) after one warm-up; ms per file; load average {os.getloadavg()[0]:.2f}")
    print("CPU: this process, all threads (a step's figure includes background fsync threads running meanwhile)")
    print(f"{'step':<38} {'wall':>8} {'CPU':>8} {'sandbox CPU':>12}")
    for label, (w, c, s, calls) in totals.items():
        print(f"{label:<38} {w / n * 1e3:>8.1f} {c / n * 1e3:>8.1f} {s / n * 1e3:>12.1f}   ({calls / n:.1f} calls)")
    print(f"{'whole ingest_file':<38} {wall / n * 1e3:>8.1f} {cpu / n * 1e3:>8.1f}")
    if "    sandbox requests (all)" in totals:
        w, c, s, _ = totals["    sandbox requests (all)"]
        print(f"sandbox IPC (request wall - child CPU, parent side): {(w - s) / n * 1e3:.1f} ms per file, "
              f"of which the parent's own CPU {c / n * 1e3:.1f} ms")
    archive.runtime.finish()
    archive.close()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
