"""What the encrypted catalog costs, in one run: its share of photo ingest, and listing 100,000 items.

    python bench/bench_catalog_crypto.py                 # 40 generated 12 MP photos, 100,000 items
    python bench/bench_catalog_crypto.py --photos 20 --items 20000 --postgresql URL

1. Photo ingest (target: sealing, opening and keyed hashing <= 10 % of it).
   The photos of bench/bench_photos.py (4000 x 3000, camera-like EXIF with
   device and GPS) go through the real pipeline in this process
   (`archive.services.ingest.ingest_file`, one after the other, so every
   catalog call happens here), with a timer around every `CatalogKeys.seal`,
   `open`, `lookup` and `lookups` (outermost calls only: `lookups` calls
   `lookup`). Included: the item, arrival, user, metadata and fingerprint
   rows sealed, the dedupe lookups, the near-duplicate index opened
   (incrementally, as in a running server) and the HKDF derivations.
2. Listing (target: <= 3 x a plain SELECT). 100,000 synthetic items (each
   with a sealed arrival) are inserted directly into a fresh catalog; then
   `archive.services.items.list_items` (in-process: the query, the opening
   of every item's sealed SHA-256 and size, the result objects) is timed
   against the very same SQL fetched with no decryption. Best of 3 each.
   Also: the near-duplicate index built cold over 100,000 sealed fingerprint
   rows (what the first search after unlock costs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CRYPTO = {"seal": 0.0, "open": 0.0, "lookup": 0.0}
CALLS = {"seal": 0, "open": 0, "lookup": 0}
_depth = 0


def instrument() -> None:
    """Wrap the catalog key's primitives with timers (outermost calls only)."""
    from archive.keys.catalog import CatalogKeys

    def timed(name: str, kind: str) -> None:
        original: Callable[..., Any] = getattr(CatalogKeys, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            global _depth
            _depth += 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                _depth -= 1
                if _depth == 0:
                    CRYPTO[kind] += time.perf_counter() - start
                    CALLS[kind] += 1

        setattr(CatalogKeys, name, wrapper)

    timed("seal", "seal")
    timed("open", "open")
    timed("lookup", "lookup")
    timed("lookups", "lookup")


def init_home(home: Path, url: str | None) -> None:
    from click.testing import CliRunner

    from api.cli.main import cli

    if url:
        os.environ["EVIDENCE_DATABASE_URL"] = url
    result = CliRunner().invoke(cli, ["--home", str(home), "init", "--operator", "bench"], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def ingest_share(photos: int, url: str | None) -> dict[str, Any]:
    from archive.context import Archive
    from archive.services.ingest import ingest_file
    from bench.bench_photos import make_photos

    paths = make_photos(photos, 2)
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        home = Path(tmp) / "home"
        init_home(home, url)
        archive = Archive.open(home)
        try:
            ingest_file(archive, paths[0])  # warm-up: imports, the sandbox children, the first index
            for kind in CRYPTO:
                CRYPTO[kind], CALLS[kind] = 0.0, 0
            start = time.perf_counter()
            for path in paths[1:]:
                report = ingest_file(archive, path)
                assert report.status == "preserved", report
            total = time.perf_counter() - start
        finally:
            archive.close()
    crypto = sum(CRYPTO.values())
    n = len(paths) - 1
    return {
        "photos": n, "ingest_s": round(total, 3), "per_photo_ms": round(total / n * 1000, 1),
        "crypto_ms_per_photo": round(crypto / n * 1000, 3), "crypto_share_pct": round(crypto / total * 100, 3),
        "by_kind_ms_per_photo": {k: round(v / n * 1000, 3) for k, v in CRYPTO.items()},
        "calls_per_photo": {k: round(v / n, 1) for k, v in CALLS.items()},
    }


def fill(archive: Any, items: int) -> None:
    """`items` sealed items, each with one sealed arrival and one sealed fingerprint row, inserted directly."""
    import hashlib

    from sqlalchemy import text

    from archive.catalog.fingerprints import SEALED_TABLE as FINGERPRINTS
    from archive.catalog.secrets import ITEMS, PROVENANCE, SHA256_LOOKUP, size_bucket

    keys = archive.runtime.keys.catalog()
    actor = "u-" + "0" * 16
    batch_items, batch_arrivals, batch_prints = [], [], []
    for n in range(items):
        item_id = str(uuid.UUID(int=n + 1))
        sha = hashlib.sha256(n.to_bytes(8, "big")).hexdigest()
        size = 1_000_000 + n
        version, sealed = keys.seal(ITEMS, item_id, {"sha256": sha, "size": size, "salt": os.urandom(32).hex()})
        batch_items.append({"id": item_id, "s": sealed, "v": version, "l": keys.lookup(SHA256_LOOKUP, sha),
                            "b": size_bucket(size), "c": f"2026-01-01T00:00:{n % 60:02d}.{n:06d}Z"})
        pv, ps = keys.seal(PROVENANCE, n + 1, {"source": "bench", "note": None, "original_name": f"IMG_{n}.JPG",
                                                "declared_type": "image/jpeg"})
        batch_arrivals.append({"id": n + 1, "i": item_id, "s": ps, "v": pv, "a": actor})
        hashes = [["phash", "full", 0, (n * 7919) % (1 << 64)], ["dhash", "full", 0, (n * 104729) % (1 << 64)]]
        fv, fs = keys.seal(FINGERPRINTS, item_id, {"hashes": hashes})
        batch_prints.append({"i": item_id, "s": fs, "v": fv})
    with archive.engine.begin() as conn:
        conn.execute(text("INSERT INTO items (id, media_type, status, created_at, sealed, key_version, lookup, "
                          "size_bucket) VALUES (:id, 'image/jpeg', 'preserved', :c, :s, :v, :l, :b)"), batch_items)
        conn.execute(text("INSERT INTO provenance (id, item_id, received_at, actor, sealed, key_version) "
                          "VALUES (:id, :i, '2026-01-01T00:00:00Z', :a, :s, :v)"), batch_arrivals)
        conn.execute(text("INSERT INTO item_fingerprints (item_id, key_version, sealed) VALUES (:i, :v, :s)"),
                     batch_prints)


def best_of(runs: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def listing(items: int, url: str | None) -> dict[str, Any]:
    from sqlalchemy import text

    import archive.similarity as similarity
    from archive.context import Archive
    from archive.db import read_only
    from archive.services.items import list_items

    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        home = Path(tmp) / "home"
        init_home(home, url)
        archive = Archive.open(home)
        try:
            fill(archive, items)
            query = text(
                "SELECT i.id, i.sealed, i.key_version, i.size_bucket, i.status, "
                "(SELECT count(*) FROM provenance p WHERE p.item_id = i.id) "
                "FROM items i WHERE i.status <> 'merged' ORDER BY i.created_at, i.id"
            )

            def plain() -> None:
                with read_only(archive.engine).connect() as conn:
                    rows = conn.execute(query).all()
                assert len(rows) == items

            def listed() -> None:
                assert len(list_items(archive)) == items

            plain()
            listed()  # warm: the file in the page cache, the key derived
            t_plain = best_of(3, plain)
            t_list = best_of(3, listed)

            def index() -> None:
                similarity._cache.clear()
                assert len(similarity.load_index(archive)) == items

            t_index = best_of(1, index)
        finally:
            archive.close()
    return {"items": items, "plain_select_s": round(t_plain, 3), "list_items_s": round(t_list, 3),
            "ratio": round(t_list / t_plain, 2), "cold_index_s": round(t_index, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--postgresql", default=None, help="A PostgreSQL URL (its database is used as is).")
    args = parser.parse_args()
    instrument()
    out = {"database": "postgresql" if args.postgresql else "sqlite",
           "ingest": ingest_share(args.photos, args.postgresql)}
    if args.postgresql:
        _wipe(args.postgresql)
    out["list"] = listing(args.items, args.postgresql)
    print(json.dumps(out, indent=2))


def _wipe(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


if __name__ == "__main__":
    main()
