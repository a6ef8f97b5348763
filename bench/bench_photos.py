"""Photo throughput through the full ingest pipeline, against what two cores allow, in one run.

    python bench/bench_photos.py                       # 500 generated 12 MP photos, 2 workers
    python bench/bench_photos.py --count 100 --workers 1
    python bench/bench_photos.py --corpus              # the corpus's real JPEGs instead

The photos (4000 x 3000, JPEG quality 92, 3-4 MB, camera-like EXIF with date,
device and GPS) are generated once into bench/.cache/photos/. Each is distinct
(its own coarse colour field) so no two are near-duplicates. `--corpus` uses
../shared/corpus/media/jpg (real cameras, some broken files) instead.

Ingest: the real `evidence ingest --json --workers N` command in a fresh archive
home on the same disk: SHA-256, identify, metadata and fingerprint in a sandbox
child (with the near-duplicate search), age encryption, verified writes to both
replicas, catalog commit with custody events.

Limit, measured in the same run on one core: per photo, one reduced JPEG decode
(the draft decode the fingerprint needs), SHA-256 over the file and one fsync'd
copy into each replica root; two cores make 2 / that photos per second. Also the
serial floor of earlier runs (SHA-256 + fsync'd copies, no decode), the ingest's
CPU per photo, and a per-step CPU table of one process (bench/profile_steps.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

CACHE = Path(__file__).parent / ".cache" / "photos"
INGEST_CPU = 0.0  # CPU seconds (user + system) of the ingest command and its worker processes
WIDTH, HEIGHT = 4000, 3000


def _noise() -> object:
    import numpy as np

    rng = np.random.default_rng(12345)
    return rng.integers(-9, 10, (HEIGHT, WIDTH, 1), dtype=np.int16)


_NOISE: object = None


def make_photo(index: int) -> Path:
    """One camera-like photo: a smooth random colour field plus sensor-like noise, with EXIF."""
    import numpy as np
    from PIL import Image

    global _NOISE
    path = CACHE / f"IMG_{index:04d}.JPG"
    if path.exists():
        return path
    if _NOISE is None:
        _NOISE = _noise()
    rng = np.random.default_rng(index)
    coarse = Image.fromarray(rng.integers(0, 255, (9, 12, 3), dtype=np.uint8))
    field = np.asarray(coarse.resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR), dtype=np.int16)
    shift = int(rng.integers(0, WIDTH))
    pixels = (field + np.roll(_NOISE, shift, axis=1)).clip(0, 255).astype(np.uint8)  # type: ignore[call-overload]
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # Make
    exif[0x0110] = "Canon EOS 5D Mark IV"  # Model
    exif[0x0112] = 1  # Orientation
    exif[0x0132] = f"2025:03:{1 + index % 28:02d} 10:{index % 60:02d}:00"  # DateTime
    exif_ifd = exif.get_ifd(0x8769)
    exif_ifd[0x9003] = exif[0x0132]  # DateTimeOriginal
    exif_ifd[0x9011] = "+03:00"  # OffsetTimeOriginal
    exif_ifd[0x829A] = 1 / 250  # ExposureTime
    exif_ifd[0x8827] = 400  # ISO
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (36.0, 12.0, float(index % 60))
    gps[3], gps[4] = "E", (37.0, 9.0, 30.0)
    tmp = path.with_suffix(".tmp")
    Image.fromarray(pixels).save(tmp, "JPEG", quality=92, exif=exif)
    tmp.rename(path)
    return path


def make_photos(count: int, workers: int) -> list[Path]:
    CACHE.mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(count) if not (CACHE / f"IMG_{i:04d}.JPG").exists()]
    if missing:
        print(f"generating {len(missing)} photos into {CACHE} ...", file=sys.stderr)
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(make_photo, missing, chunksize=8))
        os.sync()
    return [CACHE / f"IMG_{i:04d}.JPG" for i in range(count)]


def copies(path: Path, data: bytes, roots: list[Path]) -> None:
    for root in roots:
        with open(root / path.name, "wb", buffering=0) as dst:
            dst.write(data)
            os.fsync(dst.fileno())


def floor(paths: list[Path], roots: list[Path]) -> float:
    """SHA-256 of every file plus one fsync'd copy per replica root, one after the other."""
    for root in roots:
        root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for path in paths:
        data = path.read_bytes()
        hashlib.sha256(data).digest()
        copies(path, data, roots)
    return time.perf_counter() - start


def limit_per_photo(paths: list[Path], roots: list[Path]) -> tuple[float, float, float, float]:
    """Seconds per photo on one core: reduced decode, SHA-256, fsync'd copies, and all three."""
    from io import BytesIO

    from PIL import Image

    from ingest.fingerprints.photo import WORK_SIDE

    for root in roots:
        root.mkdir(parents=True, exist_ok=True)
    decode = digest = write = 0.0
    for path in paths:
        data = path.read_bytes()
        t0 = time.perf_counter()
        try:
            with Image.open(BytesIO(data)) as im:
                im.draft("L", (WORK_SIDE * 2, WORK_SIDE * 2))
                im.load()
        except Exception:  # noqa: BLE001 - a broken corpus file decodes as far as it goes
            pass
        t1 = time.perf_counter()
        hashlib.sha256(data).digest()
        t2 = time.perf_counter()
        copies(path, data, roots)
        t3 = time.perf_counter()
        decode, digest, write = decode + t1 - t0, digest + t2 - t1, write + t3 - t2
    n = len(paths)
    return decode / n, digest / n, write / n, (decode + digest + write) / n


def ingest(paths: list[Path], home: Path, workers: int) -> tuple[float, list[dict[str, object]]]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = [sys.executable, "-m", "api.cli", "--home", str(home)]
    subprocess.run([*run, "init"], env=env, check=True, capture_output=True)
    folder = paths[0].parent
    args = [*run, "ingest", "--json", str(folder)]
    if workers > 1:
        args += ["--workers", str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    global INGEST_CPU
    INGEST_CPU = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return elapsed, reports


def corpus_photos() -> list[Path]:
    """The corpus's JPEGs, linked into one folder of their own (ingest takes the folder)."""
    corpus = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "media" / "jpg"
    folder = CACHE.parent / "corpus-jpg"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, path in enumerate(sorted(p for p in corpus.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))):
        target = folder / f"{i:03d}-{path.name}"
        if not target.exists():
            shutil.copyfile(path, target)
        out.append(target)
    return out


def step_table(paths: list[Path]) -> None:
    """Where one process's time goes, step by step (bench/profile_steps.py on these photos)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, str(Path(__file__).parent / "profile_steps.py"), *map(str, paths)],
                          env=env, capture_output=True, text=True)
    print(done.stdout.rstrip() or done.stderr[-2000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--corpus", action="store_true", help="the corpus's real JPEGs instead of generated ones")
    parser.add_argument("--profile", type=int, default=40, help="photos for the per-step table (0: none)")
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load average at start {os.getloadavg()[0]:.2f}")
    if args.corpus:
        paths = corpus_photos()
    else:
        paths = make_photos(args.count, args.workers)
        if len(list(CACHE.glob("*.JPG"))) != args.count:
            # ingest takes the folder: keep exactly `count` photos in a folder of their own
            subset = CACHE.parent / f"photos-{args.count}"
            subset.mkdir(exist_ok=True)
            for p in paths:
                if not (subset / p.name).exists():
                    os.link(p, subset / p.name)
            paths = [subset / p.name for p in paths]
    size = sum(p.stat().st_size for p in paths)
    n = len(paths)
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent / ".cache") as tmp:
        work = Path(tmp)
        roots = [work / "floor-a", work / "floor-b"]
        decode, digest, write, one = limit_per_photo(paths, roots)
        floor_s = floor(paths, roots)
        shutil.rmtree(roots[0])
        shutil.rmtree(roots[1])
        ingest_s, reports = ingest(paths, work / "home", args.workers)
    cores = 2
    limit_s = n * one / cores
    statuses: dict[str, int] = {}
    for r in reports:
        status = str(r["status"])
        statuses[status] = statuses.get(status, 0) + 1
    print(f"photos: {n} ({size / n / 1e6:.2f} MB each), workers {args.workers}")
    print(f"one core, per photo: reduced decode {decode * 1e3:.1f} ms + SHA-256 {digest * 1e3:.1f} ms "
          f"+ fsync'd copies {write * 1e3:.1f} ms = {one * 1e3:.1f} ms")
    print(f"limit  (2 cores: 2 / {one * 1e3:.1f} ms):              {limit_s:6.2f} s  {n / limit_s:7.1f} photos/s")
    print(f"serial floor (SHA-256 + fsync'd copies, no decode):  {floor_s:6.2f} s  {n / floor_s:7.1f} photos/s")
    print(f"ingest (full pipeline, --workers {args.workers}):             {ingest_s:6.2f} s  "
          f"{n / ingest_s:7.1f} photos/s")
    print(f"ingest / limit: {ingest_s / limit_s:.2f} (target <= 1.5)   ingest / serial floor: "
          f"{ingest_s / floor_s:.2f}   statuses: {statuses}")
    print(f"ingest CPU: {INGEST_CPU / n * 1e3:.0f} ms per photo (all processes), so at most "
          f"{n * (os.cpu_count() or 1) / INGEST_CPU:.0f} photos/s on {os.cpu_count()} idle cores; "
          f"load average now {os.getloadavg()[0]:.2f}")
    if args.profile:
        step_table(paths[: args.profile + 1])
    if statuses.get("preserved", 0) + statuses.get("degraded", 0) != n:
        sys.exit(1)


if __name__ == "__main__":
    main()
