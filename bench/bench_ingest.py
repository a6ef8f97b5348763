"""Ingest of one large file against what the hardware allows, measured side by side in one run.

    python bench/bench_ingest.py                     # 1 GiB and 4 GiB, 3 rounds each
    python bench/bench_ingest.py --sizes 1 --rounds 1

Three contenders per round, alternating, on the same disk:

- physical limit: max(SHA-256 over the file, writing every copy concurrently
  with fsync). Nothing that hashes the file and keeps that many durable copies
  can be faster; the two halves are timed separately so the output says which
  one binds.
- serial floor: SHA-256 over the file, then a plain fsync'd copy into each
  root, one after the other (the naive way; kept for comparison with older runs).
- ingest: the real `evidence ingest` command in a fresh archive home (process
  start, catalog, hash, age encryption, verified writes to both roots,
  manifests, custody events, checkpoint). Peak RSS is that process's own.

The load average is printed with each round: the machine is shared, and a
round under load says little.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

GIB = 1 << 30
MIB = 1 << 20
CACHE = Path(__file__).parent / ".cache"
BLOCK = 1 << 20


def make_file(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    block = os.urandom(16 << 20)
    with open(path, "wb") as out:
        for _ in range(size // len(block)):
            out.write(block[:8] + os.urandom(8) + block[16:])  # incompressible, not repeating
    os.sync()


def sha256_seconds(path: Path) -> float:
    """SHA-256 over the file as ingest reads it (1 MiB reads)."""
    start = time.perf_counter()
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as stream:
        while chunk := stream.read(BLOCK):
            digest.update(chunk)
    return time.perf_counter() - start


def _copy(path: Path, target: Path) -> None:
    with open(path, "rb", buffering=0) as src, open(target, "wb", buffering=0) as dst:
        while chunk := src.read(BLOCK):
            dst.write(chunk)
        os.fsync(dst.fileno())


def concurrent_write_seconds(path: Path, roots: list[Path]) -> float:
    """Every copy written at once (one thread each, as ingest does), each fsync'd."""
    targets = [root / "limit-copy" for root in roots]
    threads = [threading.Thread(target=_copy, args=(path, t)) for t in targets]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    for target in targets:
        target.unlink()
    return elapsed


def serial_floor(path: Path, roots: list[Path]) -> float:
    start = time.perf_counter()
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(BLOCK):
            digest.update(chunk)
    for root in roots:
        target = root / "floor-copy"
        with open(path, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, BLOCK)
            dst.flush()
            os.fsync(dst.fileno())
    elapsed = time.perf_counter() - start
    for root in roots:
        (root / "floor-copy").unlink()
    return elapsed


def ingest(path: Path, home: Path) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-m", "api.cli", "--home", str(home), "init"], env=env, check=True,
                   capture_output=True)
    os.sync()  # init's writes must not be flushed on ingest's clock
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "--home", str(home), "ingest", "--json", str(path)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, nobody else's
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            out.seek(0)
            raise SystemExit(f"ingest failed: {out.read()}")
    return elapsed, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,4", help="file sizes in GiB, comma-separated")
    parser.add_argument("--dir", default=str(CACHE), help="where to put the test files (same disk as the homes)")
    parser.add_argument("--rounds", type=int, default=3, help="the contenders alternate this many times per size")
    args = parser.parse_args()
    workdir = Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"cores {os.cpu_count()}, load average at start {os.getloadavg()[0]:.2f}")
    print(f"{'size':>5} {'sha256':>7} {'writes':>7} {'limit':>6} {'serial':>7} {'ingest':>7} "
          f"{'/limit':>7} {'/serial':>8} {'RSS MiB':>8} {'load':>5}")
    for size_gib in (int(s) for s in args.sizes.split(",")):
        source = workdir / f"bench-{size_gib}g.bin"
        make_file(source, size_gib * GIB)
        rows = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory(dir=workdir) as tmp:
                home = Path(tmp) / "home"
                roots = [Path(tmp) / "root-a", Path(tmp) / "root-b"]
                for root in roots:
                    root.mkdir()
                hash_s = sha256_seconds(source)
                write_s = concurrent_write_seconds(source, roots)
                serial_s = serial_floor(source, roots)
                ingest_s, rss = ingest(source, home)
            limit_s = max(hash_s, write_s)
            load = os.getloadavg()[0]
            rows.append((ingest_s / limit_s, ingest_s / serial_s, limit_s, serial_s, ingest_s, rss))
            print(f"{size_gib:>3}Gi {hash_s:>7.2f} {write_s:>7.2f} {limit_s:>6.2f} {serial_s:>7.2f} {ingest_s:>7.2f} "
                  f"{ingest_s / limit_s:>7.2f} {ingest_s / serial_s:>8.2f} {rss / MIB:>8.1f} {load:>5.2f}")
            sys.stdout.flush()
        mid = sorted(rows)[len(rows) // 2]
        print(f"median {size_gib} GiB: ingest / physical limit {mid[0]:.2f} (limit {mid[2]:.2f} s, ingest "
              f"{mid[4]:.2f} s), ingest / serial floor {sorted(r[1] for r in rows)[len(rows) // 2]:.2f}, "
              f"peak RSS {max(r[5] for r in rows) / MIB:.1f} MiB")


if __name__ == "__main__":
    main()
