"""Upload 1 GiB to a local S3 server: the archive's S3 driver against boto3's `upload_file`.

    python bench/bench_s3_upload.py [--size-mib 1024] [--rounds 2] [--endpoint URL --bucket B]

Without --endpoint it starts its own SeaweedFS (`weed`) on loopback, as the tests
do, a fresh one per round (its 100 volumes of 64 MiB hold only a few GiB), and
stops it afterwards. In each round both contenders upload the same file to the
same server, taking turns at going first, each into its own fresh object name. The
driver's time includes everything the archive needs: reading the file, the
caller's SHA-256 over it, the driver's own whole-object and per-part SHA-256,
the server-verified checksums and the final comparison. `upload_file` runs
with boto3's defaults (8 MiB parts, 10 threads, its default CRC32 checksums).
Two driver figures: with the caller hashing the file on the way (as ingest
does: three SHA-256 passes in all) and with the digest already known (as a
repair or back-fill copy from the catalog). The ratio is driver / upload_file;
the target is <= 1.0.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MIB = 1024 * 1024


def make_file(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with open(path, "wb") as stream:
        for i in range(size // MIB):
            # vary each block cheaply so nothing can deduplicate it
            stream.write(i.to_bytes(8, "little") + block[8:])


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as stream:
        while chunk := stream.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def upload_with_driver(backend: object, path: Path, known_sha256: str | None = None) -> float:
    """Stream the file through the driver; without `known_sha256` the caller hashes it on the way, as ingest does."""
    from storage.base import Backend

    assert isinstance(backend, Backend)
    start = time.perf_counter()
    writer = backend.open_writer(f"bench/driver-{uuid.uuid4()}", path.stat().st_size)
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as stream:
        while chunk := stream.read(4 * MIB):
            if known_sha256 is None:
                digest.update(chunk)
            writer.write(chunk)
    writer.commit(known_sha256 or digest.hexdigest())
    return time.perf_counter() - start


def upload_with_boto3(client: object, bucket: str, path: Path) -> float:
    start = time.perf_counter()
    client.upload_file(str(path), bucket, f"bench/boto3-{uuid.uuid4()}")  # type: ignore[attr-defined]
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--part-size-mib", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--endpoint", help="use this S3 server instead of starting weed")
    parser.add_argument("--bucket", default="bench")
    parser.add_argument("--workdir", help="where to put the test file and weed's data (default: a temp dir)")
    args = parser.parse_args()

    import boto3
    from botocore.config import Config

    from storage.s3 import S3Backend
    from storage.s3_common import Credentials, S3Options

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        path = work / "payload.bin"
        size = args.size_mib * MIB
        print(f"writing a {args.size_mib} MiB test file ...", flush=True)
        make_file(path, size)
        warm = work / "warm.bin"
        make_file(warm, 16 * MIB)
        known = file_sha256(path)
        driver_times: list[float] = []
        known_times: list[float] = []
        boto_times: list[float] = []
        for round_no in range(1, args.rounds + 1):
            server = None
            if args.endpoint:
                endpoint = args.endpoint
                access = os.environ["EVIDENCE_STORAGE_BENCH_ACCESS_KEY"]
                secret = os.environ["EVIDENCE_STORAGE_BENCH_SECRET_KEY"]
            else:
                # A fresh server per round: weed's 100 volumes of 64 MiB hold only a few GiB.
                from tests.servers import WeedServer

                (work / f"weed-{round_no}").mkdir()
                server = WeedServer(work / f"weed-{round_no}")
                server.start()
                endpoint, access, secret = server.endpoint, server.access_key, server.secret_key
            try:
                client = boto3.client(
                    "s3",
                    endpoint_url=endpoint,
                    aws_access_key_id=access,
                    aws_secret_access_key=secret,
                    region_name="us-east-1",
                    config=Config(s3={"addressing_style": "path"}),
                )
                try:
                    client.create_bucket(Bucket=args.bucket)
                except client.exceptions.BucketAlreadyOwnedByYou:
                    pass
                options = S3Options.from_dict(
                    "bench",
                    {
                        "endpoint": endpoint,
                        "bucket": args.bucket,
                        "part_size_mib": args.part_size_mib,
                        "concurrency": args.concurrency,
                    },
                )
                backend = S3Backend("bench", options, Credentials(access, secret))
                upload_with_driver(backend, warm)  # warm both paths (connections, volumes)
                upload_with_boto3(client, args.bucket, warm)
                # rotate who goes first, so no contender always meets a fresher server
                contenders = ["boto3", "driver", "known"]
                shift = (round_no - 1) % len(contenders)
                for contender in contenders[shift:] + contenders[:shift]:
                    if contender == "boto3":
                        boto_times.append(upload_with_boto3(client, args.bucket, path))
                    elif contender == "driver":
                        driver_times.append(upload_with_driver(backend, path))
                    else:
                        known_times.append(upload_with_driver(backend, path, known))
                print(
                    f"round {round_no}: upload_file {boto_times[-1]:.2f} s, driver + caller hash "
                    f"{driver_times[-1]:.2f} s, driver (digest known) {known_times[-1]:.2f} s",
                    flush=True,
                )
                if args.endpoint:
                    for page in client.get_paginator("list_objects_v2").paginate(Bucket=args.bucket, Prefix="bench/"):
                        for entry in page.get("Contents", []):
                            client.delete_object(Bucket=args.bucket, Key=entry["Key"])
            finally:
                if server is not None:
                    server.stop()
        driver, boto = statistics.median(driver_times), statistics.median(boto_times)
        known_median = statistics.median(known_times)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"size                 {args.size_mib} MiB, {args.rounds} round(s), medians")
        print(f"boto3 upload_file            {boto:.2f} s  ({size / boto / 1e6:.0f} MB/s)")
        print(
            f"driver + caller's hash       {driver:.2f} s  ({size / driver / 1e6:.0f} MB/s; "
            f"part {args.part_size_mib} MiB x {args.concurrency} in flight; part + whole SHA-256, verified)"
        )
        print(f"driver, SHA-256 known        {known_median:.2f} s  ({size / known_median / 1e6:.0f} MB/s)")
        print(f"ratio (caller hashes too)    {driver / boto:.2f}  (target <= 1.0)")
        print(f"ratio (digest known)         {known_median / boto:.2f}")
        print(f"peak RSS (process)   {rss:.0f} MiB (both contenders in one process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
