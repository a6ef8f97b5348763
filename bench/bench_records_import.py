"""What `evidence import` costs: 100,000 victims over 20,000 incidents, against loading the same CSV plainly.

    python bench/bench_records_import.py                       # SQLite, 20,000 incidents, 100,000 victims
    python bench/bench_records_import.py --postgresql URL      # the same on PostgreSQL (its database is wiped)
    python bench/bench_records_import.py --incidents 2000 --victims 10000 --profile

In one run, on one fresh catalog:
1. Plain load (the baseline): both CSV files read with Python's `csv`
   module and their rows INSERTed as they are (every column, as text) into
   two scratch tables of the same database, in one transaction.
2. `import_records` in-process on the same files (what `evidence import`
   runs): every row checked by the record rules, sealed under the catalog
   key, its state kept sealed in `record_changes` with a salted commitment,
   one custody event per file with the Merkle root; one transaction.
   Target: <= 10 x the plain load.
3. The same import again (nothing changes: every row opened and compared).
The import streams (a chunk of rows at a time), so the process's peak
resident memory after it (`peak_rss_mb_after_import`, which includes the
generated data this process holds) should not grow with the file.
Wall time is the figure; this process's CPU time is printed too (on a
shared machine the wall clock also counts other processes' turns).
The data is `bench/records_data.py`'s generator (realistic: joint
attributions, anonymous victims, withheld names, family consent …).
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import json
import os
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_catalog_crypto import _wipe, init_home  # noqa: E402

SCRATCH = {"incidents.csv": "bench_plain_incidents", "victims.csv": "bench_plain_victims"}


def plain_load(archive: Any, paths: list[Path]) -> tuple[float, float]:
    """Seconds (wall, and this process's CPU) to read the CSV files with `csv` and INSERT their rows as text
    into scratch tables."""
    from sqlalchemy import Column, MetaData, Table, Text, insert

    metadata = MetaData()
    tables = {}
    for path in paths:
        with path.open(encoding="utf-8", newline="") as f:
            header = next(csv.reader(f))
        tables[path.name] = Table(SCRATCH[path.name], metadata, *(Column(h, Text) for h in header))
    metadata.create_all(archive.engine)
    start, cpu = time.perf_counter(), time.process_time()
    with archive.engine.begin() as conn:
        for path in paths:
            with path.open(encoding="utf-8", newline="") as f:
                rows = list(csv.DictReader(f))
            for at in range(0, len(rows), 5000):
                conn.execute(insert(tables[path.name]), rows[at : at + 5000])
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    metadata.drop_all(archive.engine)
    return elapsed


def run(n_incidents: int, n_victims: int, url: str | None, profile: bool) -> dict[str, Any]:
    from archive.context import Archive
    from archive.roles import Role
    from archive.services.records_io import import_records
    from bench.records_data import generate

    data = generate(n_incidents, n_victims, seed=1)
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        incidents, victims = data.write(Path(tmp) / "data")
        home = Path(tmp) / "home"
        init_home(home, url)
        archive = Archive.open(home, "bench")
        try:
            t_plain, c_plain = plain_load(archive, [incidents, victims])
            profiler = cProfile.Profile() if profile else None
            start, cpu = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            report = import_records(archive, incidents=incidents, victims=victims, role=Role.CUSTODIAN)
            if profiler:
                profiler.disable()
            t_import, c_import = time.perf_counter() - start, time.process_time() - cpu
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # kB on Linux: this process so far
            assert report["imported"], report["incidents"]["errors"][:5] + report["victims"]["errors"][:5]
            assert report["victims"]["created"] == n_victims and report["incidents"]["created"] == n_incidents
            start = time.perf_counter()
            again = import_records(archive, incidents=incidents, victims=victims, role=Role.CUSTODIAN)
            t_again = time.perf_counter() - start
            assert again["victims"]["unchanged"] == n_victims and again["victims"]["event"] is None
        finally:
            archive.close()
    if profiler:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(35)
    return {"database": "postgresql" if url else "sqlite", "incidents": n_incidents, "victims": n_victims,
            "consents": report["victims"]["consents"], "plain_csv_load_s": round(t_plain, 2),
            "import_s": round(t_import, 2), "ratio": round(t_import / t_plain, 2),
            "plain_cpu_s": round(c_plain, 2), "import_cpu_s": round(c_import, 2),
            "reimport_unchanged_s": round(t_again, 2),
            "victims_per_s": round(n_victims / t_import), "peak_rss_mb_after_import": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=20_000)
    parser.add_argument("--victims", type=int, default=100_000)
    parser.add_argument("--postgresql", default=None, help="A PostgreSQL URL (its database is wiped first).")
    parser.add_argument("--profile", action="store_true", help="cProfile the import (to stderr).")
    args = parser.parse_args()
    if args.postgresql:
        _wipe(args.postgresql)
    else:
        os.environ.pop("EVIDENCE_DATABASE_URL", None)
    print(json.dumps(run(args.incidents, args.victims, args.postgresql, args.profile), indent=2))


if __name__ == "__main__":
    main()
