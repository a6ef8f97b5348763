"""An evidence bundle's writing against copying the files and bagging them with bagit.py, in one run.

    python bench/bench_export.py                       # 2 GiB (and 5 GiB with BENCH_EXPORT_5G=1)
    python bench/bench_export.py --sizes-mib 256 --rounds 1

Per size, the same generated originals (random, incompressible, 256 MiB each
and the remainder) in two forms: plaintext files, and age files as the
archive stores them. Contenders, alternating, each in its own process (peak
RSS is that process's own):

- baseline: `cp` of the plaintext files into a folder, then the Library of
  Congress `bagit.make_bag(checksums=["sha256", "sha512"])` over it, then
  `sync` (the bag made durable, as the bundle is fsync'd).
- bundle (zip / zip+age): the real writer of `evidence export`
  (`archive.exports.bag.write_bag` into `archive.exports.output.open_output`):
  each original decrypted from its age file with the access identity and its
  SHA-256 checked (as `open_original` does), hashed SHA-256 and SHA-512, written
  into a ZIP_STORED zip64 stream with generated records, custody files and tag
  files, the output hashed (the transfer event's SHA-256), optionally
  age-encrypted to one recipient, fsync'd and renamed into place.

With `--real`, a fourth contender: the same files ingested into a fresh home
(once, not timed), then the real `evidence export --item … --purpose internal
--plaintext --out` (process start, selection, records, proofs, certificates,
the custody events), timed as a whole; its peak RSS is the child's own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MIB = 1 << 20
GIB = 1 << 30
CACHE = Path(__file__).parent / ".cache"
FILE = 256 * MIB


def _sizes(total: int) -> list[int]:
    sizes = [FILE] * (total // FILE)
    if total % FILE:
        sizes.append(total % FILE)
    return sizes


def prepare(workdir: Path, total: int) -> tuple[Path, Path, Path]:
    """Plaintext originals, the same as age files, and the identity file (made once, cached)."""
    from archive.age import Encryptor, Identity

    base = workdir / f"export-{total // MIB}m"
    plain, sealed, key = base / "plain", base / "sealed", base / "identity.txt"
    done = base / "ready"
    if done.exists():
        return plain, sealed, key
    shutil.rmtree(base, ignore_errors=True)
    plain.mkdir(parents=True)
    sealed.mkdir()
    identity = Identity.generate()
    key.write_text(str(identity) + "\n")
    block = os.urandom(16 * MIB)
    for index, size in enumerate(_sizes(total)):
        name = f"itm-{index:04d}"
        encryptor = Encryptor([identity.recipient])
        with open(plain / f"{name}.mp4", "wb") as p, open(sealed / f"{name}.age", "wb") as s:
            s.write(encryptor.header())
            left = size
            while left:
                n = min(left, len(block))
                piece = os.urandom(16) + block[16:n]  # incompressible, not repeating
                p.write(piece)
                s.write(encryptor.update(piece))
                left -= n
            s.write(encryptor.finalize())
    done.write_text("ok\n")
    os.sync()
    return plain, sealed, key


def baseline(plain: Path, target: Path) -> None:
    import bagit

    target.mkdir()
    for source in sorted(plain.iterdir()):
        subprocess.run(["cp", str(source), str(target / source.name)], check=True)
    bagit.make_bag(str(target), {"Source-Organization": "bench"}, checksums=["sha256", "sha512"])
    os.sync()


def bundle(plain: Path, sealed: Path, key: Path, out: Path, encrypted: bool) -> dict[str, object]:
    from archive.age import Identity, decrypt_stream
    from archive.custody.checkpoint import Signer
    from archive.exports.bag import BagFile, write_bag
    from archive.exports.output import open_output

    identities = Identity.read(key)
    expected = {}
    for source in sorted(plain.iterdir()):  # what the log commits to (read before the clock, as the catalog holds it)
        expected[source.stem] = source.stat().st_size

    digests: dict[str, str] = {}

    def chunks(name: str) -> Iterator[bytes]:
        digest = hashlib.sha256()
        with open(sealed / f"{name}.age", "rb") as stream:
            for chunk in decrypt_stream(stream, identities):
                digest.update(chunk)
                yield chunk
        digests[name] = digest.hexdigest()  # compared with the commitment in the real export (open_original)

    small = {f"data/custody/events/{i}.json": json.dumps({"seq": i, "pad": "x" * 300}).encode() for i in range(200)}
    small["data/records/items.json"] = json.dumps([{"id": n, "size": s} for n, s in expected.items()]).encode()
    payload = [BagFile(f"data/originals/{n}.mp4", s, lambda n=n: chunks(n), sha256=lambda n=n: digests[n])  # type: ignore[misc]
               for n, s in expected.items()]
    payload += [BagFile(p, len(d), lambda d=d: iter((d,))) for p, d in sorted(small.items())]  # type: ignore[misc]
    tags = {"README.txt": b"bench\n" * 2000, "verify.py": (ROOT / "archive/exports/verify_script.py").read_bytes(),
            "withheld.txt": b"nothing\n", "bagit-profile.json": b"{}\n"}
    signer = Signer.generate("bench/bundles")
    info = {"Source-Organization": "bench", "Evidence-Export-Id": "exp-0000000000000000", "Evidence-Origin": "bench"}
    recipients = [identities[0].recipient] if encrypted else None
    with open_output(out, recipients=recipients) as sink:
        result = write_bag(sink, name="evidence-bundle-exp-0000000000000000", fmt="zip", payload=payload,
                           bag_info=info, tag_files=tags, sign=signer.sign_note)
    return {"oxum": result.payload_oxum, "sha256": sink.sha256, "size": sink.size}


def _cli(home: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "api.cli", "--home", str(home), *args], env=env, check=True,
                          capture_output=True, text=True)
    return done.stdout


def real_home(workdir: Path, plain: Path) -> tuple[Path, list[str]]:
    """A fresh home holding the plaintext files (made once, cached): the item ids to export."""
    home = workdir / f"home-{plain.parent.name}"
    ids = home / "bench-ids.json"
    if ids.exists():
        return home, json.loads(ids.read_text())
    shutil.rmtree(home, ignore_errors=True)
    _cli(home, "init")
    items = []
    for source in sorted(plain.iterdir()):
        items.append(json.loads(_cli(home, "ingest", "--json", str(source)).strip().splitlines()[-1])["id"])
    ids.write_text(json.dumps(items))
    return home, items


def real_export(home: Path, items: list[str], out: Path) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "api.cli", "--home", str(home), "export", "--purpose", "internal", "--plaintext",
            "--out", str(out), "--json"]
    for item in items:
        args += ["--item", item]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # ru_maxrss: this child's (the parent here stays small)
        elapsed = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            log.seek(0)
            raise SystemExit(f"export failed: {log.read()[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024


def _hwm() -> int:
    """This process's peak RSS (VmHWM starts afresh at exec; ru_maxrss would keep the forking parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _child(args: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE, check=True)
    elapsed = time.perf_counter() - start
    return elapsed, int(done.stdout.decode().split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes-mib", default="", help="sizes in MiB, comma-separated (default 2048, +5120 "
                        "with BENCH_EXPORT_5G=1)")
    parser.add_argument("--dir", default=str(CACHE))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--real", action="store_true", help="also time the real `evidence export` (ingests first)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "baseline":
            baseline(Path(rest[0]), Path(rest[1]))
        else:
            print(json.dumps(bundle(Path(rest[0]), Path(rest[1]), Path(rest[2]), Path(rest[3]), kind == "age")))
        print(_hwm())
        return
    sizes = [int(s) for s in args.sizes_mib.split(",")] if args.sizes_mib else \
        [2048] + ([5120] if os.environ.get("BENCH_EXPORT_5G") else [])
    workdir = Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"cores {os.cpu_count()}, load average at start {os.getloadavg()[0]:.2f}")
    print(f"{'size':>8} {'baseline':>9} {'zip':>7} {'zip+age':>8} {'zip/base':>9} {'age/base':>9} "
          f"{'RSS base':>9} {'RSS zip':>8} {'RSS age':>8} {'load':>5}"
          + (f" {'export':>7} {'exp/base':>9} {'RSS exp':>8}" if args.real else ""))
    for size_mib in sizes:
        plain, sealed, key = prepare(workdir, size_mib * MIB)
        home, items = real_home(workdir, plain) if args.real else (workdir, [])
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory(dir=workdir) as tmp:
                base_s, base_rss = _child(["baseline", str(plain), str(Path(tmp) / "bag")])
                shutil.rmtree(Path(tmp) / "bag")
                os.sync()
                zip_s, zip_rss = _child(["zip", str(plain), str(sealed), str(key), str(Path(tmp) / "b.zip")])
                (Path(tmp) / "b.zip").unlink()
                os.sync()
                age_s, age_rss = _child(["age", str(plain), str(sealed), str(key), str(Path(tmp) / "b.zip.age")])
                (Path(tmp) / "b.zip.age").unlink()
                extra = ""
                if args.real:
                    os.sync()
                    exp_s, exp_rss = real_export(home, items, Path(tmp) / "real.zip")
                    extra = f" {exp_s:>7.2f} {exp_s / base_s:>9.2f} {exp_rss / MIB:>8.1f}"
            print(f"{size_mib:>5}Mi {base_s:>9.2f} {zip_s:>7.2f} {age_s:>8.2f} {zip_s / base_s:>9.2f} "
                  f"{age_s / base_s:>9.2f} {base_rss / MIB:>9.1f} {zip_rss / MIB:>8.1f} {age_rss / MIB:>8.1f} "
                  f"{os.getloadavg()[0]:>5.2f}" + extra)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
