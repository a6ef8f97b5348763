"""`evidence stats --by party` and `--by month` over 100,000 victims in 20,000 incidents, in-process.

    python bench/bench_stats.py                        # SQLite
    python bench/bench_stats.py --postgresql URL       # PostgreSQL (the URL's database is wiped first)
    python bench/bench_stats.py --victims 20000 --incidents 4000

The records are bench/records_data.py's `generate` (joint attributions,
combatants, professions, deaths under torture, massacres …), imported through
the real `evidence import` service (`archive.services.records_io`), then
`archive.services.stats.statistics` is timed in this process: the whole use
case (the role check, its SQL aggregations, the rows, groups and total), over
all dates and over one year, by date documented and by date of death. Target:
under 0.5 s each for --by party and --by month. Best and median of 5 runs,
after one warm-up; `cpu_s` is this process's CPU time per run (on SQLite the
database works in this process, so it is the figure a busy machine cannot
inflate). On PostgreSQL the tables are ANALYZEd after the import (as
autovacuum does shortly after any bulk load): without statistics the planner
sorts the victims on disk instead of hashing them.
"""

from __future__ import annotations

import argparse
import json
import statistics as stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_S = 0.5
RUNS = 5


def _init(home: Path, url: str | None) -> None:
    import os

    from click.testing import CliRunner

    from api.cli.main import cli

    if url:
        os.environ["EVIDENCE_DATABASE_URL"] = url
    result = CliRunner().invoke(cli, ["--home", str(home), "init", "--operator", "bench"], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _wipe(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def _time(fn: Any) -> dict[str, float]:
    fn()  # warm: the pages in cache, the statements compiled
    walls, cpus = [], []
    for _ in range(RUNS):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"best_s": round(min(walls), 3), "median_s": round(stat.median(walls), 3),
            "cpu_s": round(stat.median(cpus), 3)}


def run(n_incidents: int, n_victims: int, url: str | None, seed: int) -> dict[str, Any]:
    from archive.context import Archive
    from archive.roles import Role
    from archive.services.records_io import import_records
    from archive.services.stats import statistics
    from bench.records_data import generate

    data = generate(n_incidents, n_victims, seed)
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        home = Path(tmp) / "home"
        _init(home, url)
        incidents, victims = data.write(Path(tmp) / "csv")
        archive = Archive.open(home, "bench")
        try:
            start = time.perf_counter()
            report = import_records(archive, incidents=incidents, victims=victims, role=Role.CUSTODIAN)
            imported = time.perf_counter() - start
            assert report["imported"], report
            if url:  # what autovacuum does within a minute of a bulk import; explicit, so the figures do not wait on it
                from sqlalchemy import text

                with archive.engine.connect() as conn:
                    conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
            cases: dict[str, dict[str, float]] = {}
            for by in ("party", "month", "governorate", "type"):
                for date in ("documented", "death"):
                    for period in ((None, None), ("2023-01-01", "2023-12-31")):
                        name = f"by {by}, date {date}" + (f", {period[0]}..{period[1]}" if period[0] else "")

                        def case(by: str = by, date: str = date, period: tuple[Any, Any] = period) -> None:
                            statistics(archive, role=Role.INVESTIGATOR, by=by, date=date, date_from=period[0],
                                       date_to=period[1])

                        cases[name] = _time(case)
            total = statistics(archive, role=Role.INVESTIGATOR)["total"]
        finally:
            archive.close()
    targets = {k: v for k, v in cases.items() if k.startswith(("by party", "by month"))}
    return {"database": "postgresql" if url else "sqlite", "incidents": n_incidents, "victims": n_victims,
            "import_s": round(imported, 1), "total": total, "stats": cases,
            "target_s": TARGET_S, "worst_target_best_s": max(v["best_s"] for v in targets.values()),
            "within_target": all(v["best_s"] < TARGET_S for v in targets.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=20_000)
    parser.add_argument("--victims", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgresql", default=None, help="A PostgreSQL URL (its database is wiped first).")
    args = parser.parse_args()
    if args.postgresql:
        _wipe(args.postgresql)
    print(json.dumps(run(args.incidents, args.victims, args.postgresql, args.seed), indent=2))


if __name__ == "__main__":
    main()
