"""Ingest of one large file against its floor, measured side by side in one run.

    python bench/bench_ingest.py            # 1 GiB and 4 GiB
    python bench/bench_ingest.py --sizes 1  # 1 GiB only

Floor: `hashlib.sha256` over the file, plus a plain copy with fsync into each
storage root, one after the other. Ingest: the real `evidence ingest` command in
a fresh archive home on the same disk (hash + age encryption + verified writes
to both roots). Peak RSS is the ingest process's maximum resident set.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GIB = 1 << 30
CACHE = Path(__file__).parent / ".cache"


def make_file(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    block = os.urandom(16 << 20)
    with open(path, "wb") as out:
        for _ in range(size // len(block)):
            out.write(block[:8] + os.urandom(8) + block[16:])  # incompressible, not repeating
    os.sync()


def floor(path: Path, roots: list[Path]) -> float:
    start = time.perf_counter()
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    for root in roots:
        target = root / "floor-copy"
        with open(path, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
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
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,4", help="file sizes in GiB, comma-separated")
    parser.add_argument("--dir", default=str(CACHE), help="where to put the test files (same disk as the homes)")
    parser.add_argument("--rounds", type=int, default=3, help="floor and ingest alternate this many times per size")
    args = parser.parse_args()
    workdir = Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"{'size':>6} {'floor s':>8} {'ingest s':>9} {'ratio':>6} {'peak RSS MiB':>13}")
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
                floor_s = floor(source, roots)
                ingest_s, rss = ingest(source, home)
            rows.append((ingest_s / floor_s, floor_s, ingest_s, rss))
            ratio = ingest_s / floor_s
            print(f"{size_gib:>4}Gi {floor_s:>8.2f} {ingest_s:>9.2f} {ratio:>6.2f} {rss / (1 << 20):>13.1f}")
            sys.stdout.flush()
        ratio, floor_s, ingest_s, rss = sorted(rows)[len(rows) // 2]
        print(f"median {size_gib}Gi: floor {floor_s:.2f} s, ingest {ingest_s:.2f} s, ratio {ratio:.2f}, "
              f"peak RSS {max(r[3] for r in rows) / (1 << 20):.1f} MiB")


if __name__ == "__main__":
    main()
