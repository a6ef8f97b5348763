"""Uploads through the HTTP API (tus) against `evidence ingest` of the same bytes, side by side in one run.

    python bench/bench_api_upload.py                           # 1 GiB, then 50 parallel 20 MB uploads
    python bench/bench_api_upload.py --size-mib 256 --parallel 10 --parallel-mb 5    # a quick run
    python bench/bench_api_upload.py --skip-parallel           # only the large file

One large file: the baseline is what the same work costs without HTTP:
`evidence ingest` of the file in a fresh home, plus one fsync'd copy of it
(the upload landing on the server's disk). The contender is `evidence serve`
in a fresh home on loopback and a client doing what `evidence push` does: the
file hashed first (its SHA-256 goes in `Upload-Metadata`), then PATCHes of
8 MiB, each with `Upload-Checksum: sha256`, on one kept-alive connection,
until the completing PATCH answers with the receipt (the whole ingest runs
inside it). Target: upload ≤ 1.3 × baseline. Printed: each part's time,
the ratio, and the server's peak RSS.

Many at once: N threads each upload their own file of M MB (the same client,
one thread per upload, each its own token so no per-user limit applies) to
one server; uploads/s, p50 and p95 latency (creation to receipt), against
`evidence ingest` of the same N files as one batch (files/s) in the same run.

The load average is printed: the machine is shared, and a figure taken under
load says little.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(__file__).parent / ".cache"
MIB = 1 << 20
MB = 1_000_000
READ = 1 << 20
sys.path.insert(0, str(REPO))


def evidence(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "api.cli", "--home", str(home), *args], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    if done.returncode != 0:
        raise SystemExit(f"evidence {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def make_file(path: Path, size: int) -> None:
    """Incompressible, non-repeating bytes (kept in the cache between runs)."""
    if path.exists() and path.stat().st_size == size:
        return
    block = os.urandom(16 * MIB)
    with open(path, "wb") as out:
        left = size
        while left > 0:
            piece = block[:8] + os.urandom(8) + block[16:]
            out.write(piece[:left])
            left -= len(piece)
    os.sync()


def fresh_home(parent: Path, name: str, api: dict[str, Any] | None = None) -> Path:
    home = parent / name
    evidence(home, "init", "--operator", "bench")
    if api:
        sys.path.insert(0, str(REPO))
        from archive.config import load_settings

        settings = load_settings(home)
        settings.extra["api"] = {**settings.extra.get("api", {}), **api}
        settings.save()
    os.sync()
    return home


def token(home: Path, name: str) -> str:
    evidence(home, "users", "add", name, "--role", "contributor")
    return str(json.loads(evidence(home, "tokens", "create", name, "--json"))["token"])


def fsync_copy_seconds(path: Path, target: Path) -> float:
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as src, open(target, "wb", buffering=0) as dst:
        while chunk := src.read(READ):
            dst.write(chunk)
        os.fsync(dst.fileno())
    elapsed = time.perf_counter() - start
    target.unlink()
    return elapsed


def ingest_seconds(home: Path, *paths: Path) -> float:
    start = time.perf_counter()
    evidence(home, "ingest", "--json", *map(str, paths))
    return time.perf_counter() - start


class Served:
    """`evidence serve` on a free loopback port."""

    def __init__(self, home: Path) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.log = (home.parent / f"serve-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "--home", str(home), "serve", "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit(f"evidence serve did not start; see {self.log.name}")

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def b64(value: str | bytes) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode("ascii")


def tus_upload(base: str, bearer: str, path: Path, chunk: int, offset: int = 0, size: int | None = None,
               name: str | None = None) -> dict[str, float]:
    """What `evidence push` does for one file (or a slice of one): hash, create, PATCH chunks, the receipt."""
    size = size if size is not None else path.stat().st_size - offset
    timings: dict[str, float] = {}
    start = time.perf_counter()
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        src.seek(offset)
        left = size
        while left and (block := src.read(min(READ, left))):
            digest.update(block)
            left -= len(block)
    timings["hash"] = time.perf_counter() - start
    headers = {"Authorization": f"Bearer {bearer}", "Tus-Resumable": "1.0.0"}
    with httpx.Client(timeout=httpx.Timeout(600.0), headers=headers) as client:
        made = client.post(f"{base}/v1/uploads", headers={
            "Upload-Length": str(size),
            "Upload-Metadata": f"filename {b64(name or path.name)},sha256 {b64(digest.hexdigest())}"})
        if made.status_code != 201:
            raise SystemExit(f"creation refused: {made.status_code} {made.text}")
        url = str(httpx.URL(base).join(made.headers["location"]))
        sent = 0
        last_start = time.perf_counter()
        answer = None
        with open(path, "rb") as src:
            src.seek(offset)
            while sent < size:
                piece = src.read(min(chunk, size - sent))
                last_start = time.perf_counter()
                answer = client.patch(url, content=piece, headers={
                    "Upload-Offset": str(sent), "Content-Type": "application/offset+octet-stream",
                    "Upload-Checksum": f"sha256 {b64(hashlib.sha256(piece).digest())}"})
                if answer.status_code != 204:
                    raise SystemExit(f"PATCH refused: {answer.status_code} {answer.text}")
                sent += len(piece)
        assert answer is not None and answer.headers.get("upload-receipt"), "no receipt"
    end = time.perf_counter()
    timings["complete"] = end - last_start  # the last PATCH: its bytes and the whole ingest
    timings["transfer"] = last_start - start - timings["hash"]
    timings["total"] = end - start
    return timings


def push_upload(base: str, bearer: str, path: Path, queue: Path, chunk_mib: int) -> dict[str, float]:
    """The real `evidence push` command (process start, hashing, queue, progress, receipt check included)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "api.cli", "push", "--server", base, "--token", bearer,
                           "--queue", str(queue), "--chunk-size", f"{chunk_mib}M", str(path)],
                          capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        raise SystemExit(f"evidence push failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return {"total": time.perf_counter() - start}


def large(args: argparse.Namespace, workdir: Path) -> None:
    size = args.size_mib * MIB
    source = workdir / f"api-bench-{args.size_mib}m.bin"
    make_file(source, size)
    print(f"\none file of {args.size_mib} MiB, tus PATCHes of {args.chunk_mib} MiB, client: {args.client}")
    print(f"{'round':>5} {'ingest':>7} {'copy':>6} {'base':>6} {'hash':>6} {'xfer':>6} {'complete':>8} "
          f"{'upload':>7} {'ratio':>6} {'srv RSS':>8} {'load':>5}")
    ratios = []
    for n in range(args.rounds):
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            scratch = Path(tmp)
            copy_s = fsync_copy_seconds(source, scratch / "copy")
            base_home = fresh_home(scratch, "ingest-home")
            ingest_s = ingest_seconds(base_home, source)
            shutil.rmtree(base_home)
            api_home = fresh_home(scratch, "api-home")
            bearer = token(api_home, "bench")
            server = Served(api_home)
            try:
                if args.client == "push":
                    timings = push_upload(server.url, bearer, source, scratch / "queue", args.chunk_mib)
                else:
                    timings = tus_upload(server.url, bearer, source, args.chunk_mib * MIB)
                rss = server.peak_rss_mib()
            finally:
                server.stop()
        baseline = ingest_s + copy_s
        ratio = timings["total"] / baseline
        ratios.append(ratio)
        print(f"{n + 1:>5} {ingest_s:>7.2f} {copy_s:>6.2f} {baseline:>6.2f} {timings.get('hash', 0):>6.2f} "
              f"{timings.get('transfer', 0):>6.2f} {timings.get('complete', 0):>8.2f} {timings['total']:>7.2f} "
              f"{ratio:>6.2f} {rss:>8.1f} {os.getloadavg()[0]:>5.2f}")
        sys.stdout.flush()
    print(f"median upload / (ingest + fsync'd copy): {statistics.median(ratios):.2f} (target <= 1.3)")


def parallel(args: argparse.Namespace, workdir: Path) -> None:
    count, each = args.parallel, args.parallel_mb * MB
    source = workdir / f"api-bench-parallel-{count}x{args.parallel_mb}.bin"
    make_file(source, count * each)
    print(f"\n{count} parallel uploads of {args.parallel_mb} MB each (one thread and one token per upload)")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        scratch = Path(tmp)
        folder = scratch / "files"
        folder.mkdir()
        with open(source, "rb") as src:
            for n in range(count):
                (folder / f"f{n:03d}.bin").write_bytes(src.read(each))
        os.sync()
        base_home = fresh_home(scratch, "ingest-home")
        ingest_s = ingest_seconds(base_home, folder)
        shutil.rmtree(base_home)
        shutil.rmtree(folder)
        api_home = fresh_home(scratch, "api-home", api={"max_open_uploads": max(8, count)})
        bearers = [token(api_home, f"bench{n}") for n in range(count)]
        server = Served(api_home)
        try:
            def one(n: int) -> float:
                return tus_upload(server.url, bearers[n], source, args.chunk_mib * MIB, offset=n * each,
                                  size=each, name=f"f{n:03d}.bin")["total"]

            start = time.perf_counter()
            with ThreadPoolExecutor(count) as pool:
                latencies = sorted(pool.map(one, range(count)))
            wall = time.perf_counter() - start
            rss = server.peak_rss_mib()
        finally:
            server.stop()
    p95 = latencies[min(len(latencies) - 1, max(0, round(0.95 * len(latencies)) - 1))]
    ingest_rate, api_rate = count / ingest_s, count / wall
    print(f"ingest of the {count} files as one batch: {ingest_s:.2f} s = {ingest_rate:.2f} files/s")
    print(f"API: {wall:.2f} s = {api_rate:.2f} uploads/s ({count * each / MB / wall:.0f} MB/s), latency p50 "
          f"{statistics.median(latencies):.2f} s, p95 {p95:.2f} s, max {latencies[-1]:.2f} s; server peak RSS "
          f"{rss:.0f} MiB; load {os.getloadavg()[0]:.2f}")
    print(f"ratio uploads/s : ingest files/s = {api_rate / ingest_rate:.2f} (wall API / ingest "
          f"{wall / ingest_s:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="the large file's size in MiB")
    parser.add_argument("--chunk-mib", type=int, default=8, help="tus PATCH size in MiB")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the large-file comparison")
    parser.add_argument("--parallel", type=int, default=50, help="uploads at once")
    parser.add_argument("--parallel-mb", type=int, default=20, help="size of each parallel upload in MB")
    parser.add_argument("--client", choices=("httpx", "push"), default="httpx",
                        help="httpx: the push protocol inline; push: the real `evidence push` command")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-parallel", action="store_true")
    parser.add_argument("--dir", default=str(CACHE), help="scratch space (the homes go there too: same disk)")
    args = parser.parse_args()
    workdir = Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"cores {os.cpu_count()}, load average at start {os.getloadavg()[0]:.2f}")
    if not args.skip_large:
        large(args, workdir)
    if not args.skip_parallel:
        parallel(args, workdir)


if __name__ == "__main__":
    main()
