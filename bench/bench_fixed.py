"""Fixed costs: what a command, a process and a file cost before any real work, measured in one run.

    python bench/bench_fixed.py

- per command (a fresh process each, median of several runs): `evidence --help`,
  and `list`, `show`, `status` on a 40-item archive, with how many modules each imports;
- per process: a sandbox child's start-up (its parsers imported) against a request
  to a child already running, and building the storage clients against reusing them
  (an S3 client built with boto3, as the S3 driver does, beside the local roots);
- per file: a tiny file's ingest in a running process (all of the pipeline, none of
  the start-up), against the whole `evidence ingest` command for it.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT.parent / "shared" / "corpus" / "media" / "jpg"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
RUNS = 5


def command(*args: str) -> tuple[float, int]:
    """Median wall time of `evidence ARGS` over RUNS fresh processes, and the modules it imports."""
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "api.cli", *args], env=ENV, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    report = subprocess.run([sys.executable, "-X", "importtime", "-m", "api.cli", *args], env=ENV,
                            capture_output=True, text=True).stderr
    modules = sum(1 for line in report.splitlines() if re.match(r"import time:\s+\d+ \|", line))
    return statistics.median(times), modules


def fill(home: Path, count: int) -> str:
    """A fresh archive with `count` items (corpus photos, then small distinct files); one item's id."""
    subprocess.run([sys.executable, "-m", "api.cli", "--home", str(home), "init"], env=ENV, check=True,
                   capture_output=True)
    folder = home.parent / "items"
    folder.mkdir()
    photos = sorted(p for p in CORPUS.rglob("*.jpg") if p.stat().st_size > 0)[:count]
    for i, photo in enumerate(photos):
        (folder / f"{i:03d}.jpg").write_bytes(photo.read_bytes() + i.to_bytes(4, "big"))
    for i in range(len(photos), count):
        (folder / f"{i:03d}.bin").write_bytes(os.urandom(1000))
    out = subprocess.run([sys.executable, "-m", "api.cli", "--home", str(home), "ingest", str(folder), "--json"],
                         env=ENV, capture_output=True, text=True)
    import json

    reports = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return str(next(r["id"] for r in reports if r["id"]))


def sandbox_costs() -> tuple[float, float]:
    """A cold child's first reply (start-up plus one tiny request) and a warm child's reply."""
    from ingest import sandbox

    tiny = (CORPUS / "Canon_40D.jpg").read_bytes()
    sandbox.shutdown()
    start = time.perf_counter()
    sandbox.run("metadata", tiny, {}, sandbox.METADATA)
    cold = time.perf_counter() - start
    warm = []
    for _ in range(20):
        start = time.perf_counter()
        sandbox.run("metadata", tiny, {}, sandbox.METADATA)
        warm.append(time.perf_counter() - start)
    sandbox.shutdown()
    return cold, statistics.median(warm)


def client_costs(home: Path) -> tuple[float, float, float | None]:
    """Building this archive's backends the first time, reusing them for the next use case, one boto3 S3 client."""
    from archive.context import Runtime

    runtime = Runtime.open(home)
    first = runtime.archive("bench")
    _ = first.config  # the catalog's configuration (engine, imports) is not the clients' cost
    start = time.perf_counter()
    _ = first.backends
    built = time.perf_counter() - start
    again = runtime.archive("bench")
    _ = again.config  # read fresh for every use case
    start = time.perf_counter()
    _ = again.backends
    reused = time.perf_counter() - start
    runtime.close()
    try:
        import boto3

        start = time.perf_counter()
        boto3.session.Session().client("s3", endpoint_url="http://127.0.0.1:1", region_name="us-east-1",
                                       aws_access_key_id="x", aws_secret_access_key="y")
        s3 = time.perf_counter() - start
    except ImportError:
        s3 = None
    return built, reused, s3


def tiny_file_costs(home: Path, count: int = 30) -> tuple[float, float]:
    """Per tiny file: in a running process (median), and the whole `evidence ingest` command (median)."""
    from archive.context import Archive
    from archive.services.ingest import ingest_file

    folder = home.parent / "tiny"
    folder.mkdir()
    archive = Archive.open(home, "bench")
    ingest_file(archive, _tiny(folder, "warm"))
    times = []
    for i in range(count):
        path = _tiny(folder, str(i))
        start = time.perf_counter()
        ingest_file(archive, path)
        times.append(time.perf_counter() - start)
    archive.runtime.finish()
    archive.close()
    commands = []
    for i in range(RUNS):
        path = _tiny(folder, f"cmd{i}")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "api.cli", "--home", str(home), "ingest", str(path)], env=ENV,
                       check=True, capture_output=True)
        commands.append(time.perf_counter() - start)
    return statistics.median(times), statistics.median(commands)


def _tiny(folder: Path, name: str) -> Path:
    path = folder / f"{name}.bin"
    path.write_bytes(os.urandom(100))
    return path


def main() -> None:
    print(f"cores {os.cpu_count()}, load average at start {os.getloadavg()[0]:.2f}")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - start
    with tempfile.TemporaryDirectory(dir=ROOT / "bench" / ".cache") as tmp:
        home = Path(tmp) / "home"
        item = fill(home, 40)
        print(f"{'per command (median of ' + str(RUNS) + ' fresh processes)':<52} {'wall':>8} {'modules':>8}")
        print(f"{'  python -c pass (the interpreter alone)':<52} {bare:>7.3f}s")
        for label, args in (("evidence --help", ["--help"]),
                            ("evidence list (40 items)", ["--home", str(home), "list"]),
                            ("evidence show ITEM", ["--home", str(home), "show", item]),
                            ("evidence status", ["--home", str(home), "status"])):
            wall, modules = command(*args)
            print(f"  {label:<50} {wall:>7.3f}s {modules:>8}")
        cold, warm = sandbox_costs()
        print("per process")
        print(f"  {'sandbox child: start-up + first reply':<50} {cold:>7.3f}s")
        print(f"  {'sandbox child: a reply when running (reused)':<50} {warm * 1e3:>6.1f}ms")
        built, reused, s3 = client_costs(home)
        print(f"  {'storage backends (2 local roots): first use case':<50} {built * 1e3:>6.1f}ms")
        print(f"  {'storage backends: next use case (reused)':<50} {reused * 1e3:>6.2f}ms")
        if s3 is not None:
            print(f"  {'one boto3 S3 client, built (what reuse saves)':<50} {s3 * 1e3:>6.1f}ms")
        in_process, whole = tiny_file_costs(home)
        print("per file (100-byte file)")
        print(f"  {'ingest_file in a running process':<50} {in_process * 1e3:>6.1f}ms")
        print(f"  {'evidence ingest FILE (the whole command)':<50} {whole:>7.3f}s")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
