"""Custody-log benchmark: append rate, inclusion-proof time and full `log verify` time at 1,000,000 events.

    python bench/bench_log.py                 # SQLite in a temporary home, 1,000,000 events
    python bench/bench_log.py --events 200000 --database-url postgresql://postgres@127.0.0.1:5432/bench

Appends are measured through the real `append_event`, both in batches (many
events in one transaction, as an ingest step or a repair pass writes them)
and one event per transaction (each commit waits for the disk: SQLite runs
with synchronous=FULL). The million-event log is then filled with a bulk
insert of properly encoded and hashed events (the slow path would only
measure the disk), checkpointed in several steps, and the proofs and the
verification are timed through the same service functions the CLI calls.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from archive.catalog.events import Event
from archive.config import Settings
from archive.context import Archive, Runtime
from archive.custody import service
from archive.custody.entry import canonical, entry_fields, leaf_hash
from archive.custody.log import ACCESS, FIXITY_CHECK, REPLICATION, append_event, utc_now
from archive.db import transaction

TYPES = (REPLICATION, FIXITY_CHECK, ACCESS)


def event_values(seq: int, now: str) -> dict[str, Any]:
    item = f"{seq // 7:08x}-0000-4000-8000-{seq:012x}"
    values: dict[str, Any] = {
        "seq": seq, "occurred_at": now, "actor": "bench", "event_type": TYPES[seq % 3], "item_id": item,
        "objects": [f"site-a:o/{seq % 256:02x}/{seq:032x}"], "outcome": "success",
        "details": {"sha256": f"{seq:064x}", "size": seq * 1000},
    }
    entry = entry_fields(**{k: v for k, v in values.items() if k != "seq"}, seq=seq)
    values["leaf_hash"] = leaf_hash(canonical(entry)).hex()
    return values


def measure_appends(archive: Archive, batches: int, batch_size: int, singles: int) -> tuple[float, float]:
    def one(session: Any, i: int) -> None:
        append_event(session, ACCESS, actor="bench", item_id=f"{i:08x}-0000-4000-8000-000000000000",
                     objects=[f"site-a:o/{i:032x}"], details={"n": i})

    start = time.perf_counter()
    for b in range(batches):
        with transaction(archive.engine) as session:
            for i in range(batch_size):
                one(session, b * batch_size + i)
    batched = batches * batch_size / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(singles):
        with transaction(archive.engine) as session:
            one(session, i)
    single = singles / (time.perf_counter() - start)
    return batched, single


def bulk_fill(archive: Archive, total: int, checkpoints: int) -> list[float]:
    """Insert encoded events up to `total`, checkpointing `checkpoints` times; the checkpoint timings."""
    table = Event.__table__  # type: ignore[attr-defined]
    with transaction(archive.engine) as session:
        size = session.execute(text("SELECT size FROM log_head")).scalar_one()
    now = utc_now()
    step = max(1, (total - size) // checkpoints)
    timings = []
    while size < total:
        target = min(total, size + step) if checkpoints > 1 else total
        while size < target:
            chunk = min(50_000, target - size)
            with transaction(archive.engine) as session:
                session.execute(insert(table), [event_values(seq, now) for seq in range(size, size + chunk)])
                session.execute(text("UPDATE log_head SET size = :n"), {"n": size + chunk})
            size += chunk
        start = time.perf_counter()
        service.checkpoint(archive)
        timings.append(time.perf_counter() - start)
        print(f"  {size:>9,} events, checkpoint in {timings[-1]:.2f} s", flush=True)
    return timings


def summary(ms: list[float]) -> str:
    ms = sorted(ms)
    return (f"median {statistics.median(ms):.2f} ms, p99 {ms[max(0, int(len(ms) * 0.99) - 1)]:.2f} ms, "
            f"max {ms[-1]:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--checkpoints", type=int, default=10, help="checkpoints issued while filling")
    parser.add_argument("--proofs", type=int, default=1000, help="inclusion proofs to time")
    parser.add_argument("--database-url", default=None, help="default: SQLite in the temporary home")
    parser.add_argument("--home", default=None, help="keep the home here instead of a temporary folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-log-") as scratch:
        home = Path(args.home or scratch)
        home.mkdir(parents=True, exist_ok=True)
        settings = Settings(home=home, database_url=args.database_url)
        settings.save()
        archive = Runtime(settings).archive("bench")
        dialect = archive.engine.dialect.name
        print(f"custody log benchmark on {dialect}, home {home}, load average {os.getloadavg()[0]:.1f}")

        batched, single = measure_appends(archive, batches=20, batch_size=1000, singles=1000)
        print(f"append, 1,000 events per transaction: {batched:,.0f} events/s")
        print(f"append, one event per transaction:    {single:,.0f} events/s")

        print(f"filling to {args.events:,} events (bulk insert) with {args.checkpoints} checkpoints:")
        fill_start = time.perf_counter()
        bulk_fill(archive, args.events, args.checkpoints)
        print(f"  filled in {time.perf_counter() - fill_start:.1f} s")

        size = service.latest_checkpoint(archive)["tree_size"]  # type: ignore[index]
        rng = random.Random(1)
        timings, cpu = [], []
        for seq in (rng.randrange(size) for _ in range(args.proofs)):
            start, start_cpu = time.perf_counter(), time.process_time()
            proof = service.prove_inclusion(archive, seq)
            timings.append((time.perf_counter() - start) * 1000)
            cpu.append((time.process_time() - start_cpu) * 1000)
        assert proof["tree_size"] == size
        print(f"inclusion proof at {size:,} events (service call: read tiles, prove, self-check), "
              f"{args.proofs} proofs:\n  wall {summary(timings)}\n  cpu  {summary(cpu)}")
        with transaction(archive.engine) as session:
            sizes = list(session.execute(text("SELECT tree_size FROM checkpoints ORDER BY tree_size")).scalars())
        start = time.perf_counter()
        service.prove_consistency(archive, sizes[len(sizes) // 2], sizes[-1])
        print(f"consistency proof {sizes[len(sizes) // 2]:,} -> {sizes[-1]:,}: "
              f"{(time.perf_counter() - start) * 1000:.2f} ms")

        start, start_cpu = time.perf_counter(), time.process_time()
        report = service.verify_log(archive)
        elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        assert report.ok, report.to_json()
        print(f"full log verify of {report.total_events:,} events against {report.checkpoints} checkpoints: "
              f"{elapsed:.1f} s wall, {elapsed_cpu:.1f} s cpu ({report.total_events / elapsed:,.0f} events/s)")
        print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS {peak:.0f} MiB")
        archive.close()


if __name__ == "__main__":
    main()
