"""The item pages against the same data as JSON, over a real `evidence serve` on loopback, side by side in one run.

    python bench/bench_web.py                      # 100,000 items (made once, cached under bench/.cache/)
    python bench/bench_web.py --items 20000 --reps 10
    python bench/bench_web.py --rebuild            # make the cached archive again

The archive (`make_archive`): a few hundred real small files ingested with
`evidence ingest` (the corpus's photos under 500 KB, and copies of its JPEGs
with a few random bytes after the end of the image, so each is distinct), then
rows replicated from those items until there are `--items`: for each new item
a fresh random id, SHA-256, salt and received time, and the template's rows
written the way ingest writes them: `new_item` (sealed under the catalog key,
its keyed lookup), `new_provenance` (sealed after insert under its own id),
the template's replicas and fingerprint, its metadata through `new_metadata`
(the capture time moved to a random day between 2012 and 2026, so the
capture-day filter selects a share), and the template's custody events
appended with `append_event` (fresh nonces). The replicated items' stored
objects do not exist (their names are new): nothing here reads an original or
checks fixity, and the server runs with `--no-worker` so no duty touches them.

What is timed: each URL fetched with an httpx client streaming the response
(time to first byte: until the status line and headers; full load: until
the last byte of the body), `--reps` times after one warm-up, the cases
interleaved round by round so load drifts hit every case alike. Pages (`GET
/items`, `GET /items?from=…`, `GET /items/{id}`) with a session cookie
made by `start_session`; JSON (`GET /v1/items?limit=50`, `GET /v1/search`
with the same filter, `GET /v1/items/{id}`) with an investigator's token.
Ratios page / JSON of the medians. Targets: ≤ 2 × and under 300 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(__file__).parent / ".cache"
CORPUS = REPO.parent / "shared" / "corpus" / "media"
sys.path.insert(0, str(REPO))

REAL_MAX_BYTES = 500_000
JPEG_COPIES = 6  # copies of each corpus JPEG with random bytes after its end: a few hundred real files
BATCH = 2_000
PAGE = 50
TARGET_RATIO, TARGET_S = 2.0, 0.300
FILTER = {"captured_from": "2019-01-01", "captured_to": "2019-12-31"}


def evidence(home: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "api.cli", "--home", str(home), *args], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        raise SystemExit(f"evidence {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def real_files(folder: Path, seed: int) -> list[Path]:
    """The corpus's small photos and videos, and distinct copies of its JPEGs (bytes after the end marker)."""
    rng = random.Random(seed)
    small = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.stat().st_size <= REAL_MAX_BYTES
                   and "exiftool" not in p.parts)
    folder.mkdir(parents=True, exist_ok=True)
    made = list(small)
    for path in small:
        if path.suffix.lower() not in (".jpg", ".jpeg"):
            continue
        data = path.read_bytes()
        for n in range(JPEG_COPIES):
            copy = folder / f"{path.stem}-{n}{path.suffix}"
            copy.write_bytes(data + rng.randbytes(16))
            made.append(copy)
    return made


def _templates(session: Any, keys: Any) -> list[dict[str, Any]]:
    """Every ingested item's rows, opened: what each replicated item copies."""
    from sqlalchemy import text
    from sqlmodel import col, select

    from archive.catalog.events import Event
    from archive.catalog.fingerprints import SEALED_TABLE as FINGERPRINTS
    from archive.catalog.items import Item, Provenance, Replica
    from archive.catalog.metadata import ItemMetadata, metadata_fields
    from archive.catalog.secrets import item_secret, provenance_fields

    out = []
    for item in session.exec(select(Item).order_by(col(Item.created_at))).all():
        meta = session.get(ItemMetadata, item.id)
        fingerprint = session.execute(
            text("SELECT key_version, sealed FROM item_fingerprints WHERE item_id = :i"),
            {"i": item.id}).first()
        out.append({
            "item": item, "secret": item_secret(keys, item),
            "replicas": session.exec(select(Replica).where(Replica.item_id == item.id)).all(),
            "provenance": [(p, provenance_fields(keys, p)) for p in
                           session.exec(select(Provenance).where(Provenance.item_id == item.id)).all()],
            "metadata": (metadata_fields(keys, meta), meta.detected_type) if meta is not None else None,
            "fingerprint": keys.open(FINGERPRINTS, item.id, fingerprint[0], fingerprint[1]) if fingerprint else None,
            "events": session.exec(select(Event).where(Event.item_id == item.id).order_by(col(Event.seq))).all(),
        })
    return out


def _swaps(rng: random.Random, replicas: list[Any]) -> dict[str, str]:
    """New object names (`o/ab/ab…`, a manifest beside its original) and ciphertext hashes for a copied item."""
    swap: dict[str, str] = {}
    for r in sorted(replicas, key=lambda r: r.role != "original"):
        base, _, suffix = r.object_name.partition(".")
        if base not in swap:
            name = rng.randbytes(16).hex()
            swap[base] = f"o/{name[:2]}/{name}"
        swap[r.object_name] = swap[base] + (f".{suffix}" if suffix else "")
        swap.setdefault(r.ciphertext_sha256, rng.randbytes(32).hex())
    return swap


def replicate(home: Path, total: int, seed: int) -> int:
    """Add items copied from the ingested ones until the catalog holds `total`; how many were added.

    Each row is made by the code ingest's own writers call (`new_item`, `seal_row` under the provenance
    row's id as `new_provenance` does after its insert, `new_metadata`, `CatalogKeys.seal` for the
    fingerprint, `entry_fields`/`leaf_hash` for each event as `append_event` does), then written a batch
    at a time with one multi-row INSERT per table: the ORM's flush per row would take an hour.
    """
    import secrets

    from sqlalchemy import func, insert, select, text, update
    from sqlmodel import Session

    from archive.catalog.events import Event, LogHead
    from archive.catalog.fingerprints import SEALED_TABLE as FINGERPRINTS
    from archive.catalog.items import Item, Provenance, Replica
    from archive.catalog.metadata import ItemMetadata, new_metadata
    from archive.catalog.sealing import Sealer
    from archive.catalog.secrets import PROVENANCE, new_item, seal_row
    from archive.context import Archive
    from archive.custody.commit import commitment_details
    from archive.custody.entry import canonical, entry_fields, leaf_hash
    from archive.db import transaction

    tables = {name: model.__table__ for name, model in  # type: ignore[union-attr]
              (("items", Item), ("replicas", Replica), ("provenance", Provenance), ("metadata", ItemMetadata),
               ("events", Event), ("head", LogHead))}
    rng = random.Random(seed)
    archive = Archive.open(home, "bench")
    try:
        keys = archive.runtime.keys.catalog()
        sealer = Sealer(keys)
        with Session(archive.engine) as session:
            templates = _templates(session, keys)
            session.expunge_all()
        have = len(templates)
        first = datetime(2024, 1, 1, tzinfo=UTC)
        step = (datetime(2026, 11, 30, tzinfo=UTC) - first) / max(1, total - have)
        item_columns = ("id", "sealed", "key_version", "lookup", "size_bucket", "media_type", "status", "created_at")
        meta_columns = ("item_id", "media_type", "detected_type", "captured_day", "location_cell", "complete",
                        "key_version", "sealed")
        for start in range(0, total - have, BATCH):
            rows: dict[str, list[dict[str, Any]]] = {name: [] for name in
                                                     ("items", "replicas", "provenance", "metadata", "events",
                                                      "fingerprints")}
            with transaction(archive.engine) as session:
                next_arrival = int(session.execute(select(func.coalesce(func.max(tables["provenance"].c.id), 0)))
                                   .scalar_one()) + 1
                seq = int(session.execute(select(tables["head"].c.size).where(tables["head"].c.id == 1)
                                          .with_for_update()).scalar_one())
                for n in range(start, min(start + BATCH, total - have)):
                    t = templates[n % have]
                    new_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                    when = (first + step * n).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                    sha256, salt = rng.randbytes(32).hex(), rng.randbytes(32).hex()
                    item = new_item(keys, id=new_id, sha256=sha256, size=t["secret"].size, salt=salt,
                                    media_type=t["item"].media_type, status=t["item"].status, created_at=when)
                    rows["items"].append({c: getattr(item, c) for c in item_columns})
                    swap = _swaps(rng, t["replicas"])  # the template's object names and hashes: this item's
                    for r in t["replicas"]:
                        rows["replicas"].append({
                            "item_id": new_id, "role": r.role, "backend": r.backend, "object_name": swap[r.object_name],
                            "version_id": r.version_id, "ciphertext_sha256": swap[r.ciphertext_sha256],
                            "recipients": list(r.recipients), "checksum_detail": r.checksum_detail, "state": r.state,
                            "verified_at": when})
                    for p, fields in t["provenance"]:
                        version, blob = seal_row(keys, PROVENANCE, next_arrival, {
                            k: fields[k] for k in ("source", "note", "original_name", "declared_type")})
                        rows["provenance"].append({"id": next_arrival, "item_id": new_id, "received_at": when,
                                                   "actor": p.actor, "sealed": blob, "key_version": version,
                                                   "channel": p.channel, "source_id": p.source_id})
                        next_arrival += 1
                    if t["metadata"] is not None:
                        fields, detected = dict(t["metadata"][0]), t["metadata"][1]
                        if fields.get("captured_at"):
                            day = datetime(2012, 1, 1) + timedelta(days=rng.randrange(15 * 365))
                            fields["captured_at"] = day.strftime("%Y-%m-%dT") + str(fields["captured_at"])[11:]
                        meta = new_metadata(sealer, new_id, fields, detected_type=detected)
                        rows["metadata"].append({c: getattr(meta, c) for c in meta_columns})
                    if t["fingerprint"] is not None:
                        version, blob = keys.seal(FINGERPRINTS, new_id, t["fingerprint"])
                        rows["fingerprints"].append({"i": new_id, "v": version, "s": blob})
                    for e in t["events"]:
                        text_ = json.dumps([list(e.objects), dict(e.details)])
                        for before, after in swap.items():
                            text_ = text_.replace(before, after)
                        objects, details = json.loads(text_)
                        if "commitment" in details:  # the log commits to this item's (made-up) bytes
                            details.update(commitment_details(new_id, salt, sha256))
                        if "nonce" in details:
                            details["nonce"] = secrets.token_hex(16)
                        values = {"occurred_at": when, "actor": e.actor, "event_type": e.event_type,
                                  "item_id": new_id, "objects": objects, "outcome": e.outcome, "details": details}
                        entry = entry_fields(**values, seq=seq)
                        rows["events"].append({**values, "seq": seq, "leaf_hash": leaf_hash(canonical(entry)).hex()})
                        seq += 1
                for name in ("items", "replicas", "provenance", "metadata", "events"):
                    if rows[name]:
                        session.execute(insert(tables[name]), rows[name])
                if rows["fingerprints"]:
                    session.execute(text("INSERT INTO item_fingerprints (item_id, key_version, sealed) "
                                         "VALUES (:i, :v, :s)"), rows["fingerprints"])
                session.execute(update(tables["head"]).where(tables["head"].c.id == 1).values(size=seq))
            print(f"  {have + min(start + BATCH, total - have)} items", file=sys.stderr, flush=True)
        return total - have
    finally:
        archive.close()


def add_previews(home: Path, real_ids: list[str]) -> dict[str, int]:
    """Previews as ingest makes them: for an ingested item that has none (an archive made before previews
    existed), from its verified plaintext (`plaintext`, `make_preview`, `store_preview`: what the back-fill
    does); then each replicated item gets its template's preview row (the same encrypted thumbnail)."""
    from sqlalchemy import text
    from sqlmodel import Session, col, select

    from archive.catalog.items import Item
    from archive.catalog.metadata import ItemMetadata
    from archive.catalog.web import Preview
    from archive.context import Archive
    from archive.db import transaction
    from archive.services.analysis import plaintext
    from archive.services.previews import store_preview
    from ingest.steps.preview import NoPreview, make_preview, medium_for

    archive = Archive.open(home, "bench")
    made = 0
    try:
        recipient = archive.runtime.keys.preview_recipient()
        assert recipient is not None, "no preview identity in the bench archive"
        real = set(real_ids)
        with Session(archive.engine) as session:
            have = set(session.exec(select(Preview.item_id)).all())
            detected = dict(session.exec(select(ItemMetadata.item_id, ItemMetadata.media_type)).all())
            rows = session.exec(select(Item.id, Item.media_type).order_by(col(Item.created_at), col(Item.id))).all()
        for item_id, media_type in rows:
            medium = medium_for(media_type or detected.get(item_id))
            if item_id not in real or item_id in have or medium is None:
                continue
            with plaintext(archive, item_id, purpose="preview back-fill") as source:
                try:
                    result = make_preview(source, medium, recipient)
                except NoPreview:
                    result = None
            with transaction(archive.engine) as session:
                store_preview(session, item_id, result)
            made += 1
        # Replicated item n copies template n % len(templates), the ingested items in the order received.
        templates = [i for i, _ in rows if i in real]
        copies = [i for i, _ in rows if i not in real]
        with transaction(archive.engine) as session:
            for n, item_id in enumerate(copies):
                session.execute(text(
                    "INSERT INTO previews (item_id, kind, media_type, sealed, width, height, created_at) "
                    "SELECT :new, kind, media_type, sealed, width, height, created_at FROM previews "
                    "WHERE item_id = :old"), {"new": item_id, "old": templates[n % len(templates)]})
    finally:
        archive.close()
    return {"previews_made": made, "previews_copied": len(copies)}


def make_archive(total: int, seed: int, rebuild: bool = False) -> tuple[Path, dict[str, Any]]:
    """The cached bench archive of `total` items (made when missing): its home and what was made."""
    root = CACHE / f"web-{total}-s{seed}"
    ready = root / "ready.json"
    if ready.exists() and not rebuild:
        cached: dict[str, Any] = json.loads(ready.read_text())
        if "previews_copied" not in cached:  # an archive made before previews existed
            cached.update(add_previews(root / "home", cached["real_ids"]))
            ready.write_text(json.dumps(cached))
        return root / "home", cached
    shutil.rmtree(root, ignore_errors=True)
    home = root / "home"
    started = time.perf_counter()
    evidence(home, "init", "--operator", "bench")
    files = real_files(root / "files", seed)
    reports = [json.loads(line) for line in evidence(home, "ingest", "--json", *map(str, files)).splitlines()]
    real = [r["id"] for r in reports if r.get("id") and not r.get("duplicate")]
    ingested = time.perf_counter() - started
    added = replicate(home, total, seed)
    made: dict[str, Any] = {"items": total, "ingested": len(real), "replicated": added,
                            "ingest_s": round(ingested, 1), "real_ids": real}
    made.update(add_previews(home, real), build_s=round(time.perf_counter() - started, 1))
    shutil.rmtree(root / "files", ignore_errors=True)
    ready.write_text(json.dumps(made))
    return home, made


def credentials(home: Path) -> tuple[str, str]:
    """A fresh investigator: (its session cookie, its API token). Each run adds one (names are unique)."""
    from archive.context import Archive
    from archive.services.accounts import add_user, create_token
    from archive.services.web_sessions import start_session

    archive = Archive.open(home, "bench")
    try:
        name = f"bench-investigator-{os.urandom(3).hex()}"
        user = add_user(archive, name, "investigator")
        cookie, _caller = start_session(archive, user["id"])
        return cookie, str(create_token(archive, name)["token"])
    finally:
        archive.close()


class Served:
    """`evidence serve --no-worker` on a free loopback port."""

    def __init__(self, home: Path, code: Path = REPO) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.log = (home.parent / "serve.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "--home", str(home), "serve", "--port", str(self.port), "--no-worker"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=code, env={**os.environ, "PYTHONPATH": str(code)})
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit(f"evidence serve did not start; see {self.log.name}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def fetch(client: httpx.Client, url: str, headers: dict[str, str]) -> tuple[float, float, int, int]:
    """(seconds to the first byte, seconds to the last, status, body bytes) of one GET, streamed."""
    start = time.perf_counter()
    with client.stream("GET", url, headers=headers) as response:
        first = time.perf_counter() - start  # status line and headers read: the first bytes of the answer
        size = sum(len(chunk) for chunk in response.iter_raw())
        return first, time.perf_counter() - start, response.status_code, size


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median_ms": round(statistics.median(ordered) * 1000, 1), "p95_ms": round(p95 * 1000, 1)}


def fetch_all(client: httpx.Client, paths: str, headers: dict[str, str]) -> tuple[float, float, int, int]:
    """`fetch` of one path, or of several joined by " + " one after another (all the JSON a page's data needs):
    first byte of the first, full load of the last, counted from the start; the worst status, all the bytes."""
    first = full = 0.0
    worst, size = 200, 0
    for n, path in enumerate(paths.split(" + ")):
        one_first, one_full, status, one_size = fetch(client, path, headers)
        first = first if n else one_first
        full += one_full
        worst, size = max(worst, status), size + one_size
    return first, full, worst, size


def measure(url: str, cases: dict[str, tuple[str, dict[str, str]]], reps: int) -> dict[str, dict[str, Any]]:
    """Each case `reps` times after a warm-up, round-robin; its TTFB and full-load medians and p95."""
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in cases}
    info: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=url, timeout=120) as client:
        for name, (path, headers) in cases.items():
            _, _, status, size = fetch_all(client, path, headers)
            info[name] = {"path": path, "status": status, "bytes": size}
        for _ in range(reps):
            for name, (path, headers) in cases.items():
                first, full, status, _ = fetch_all(client, path, headers)
                if status != 200:
                    info[name]["status"] = status
                times[name][0].append(first)
                times[name][1].append(full)
    return {name: {**info[name], "ttfb": _stats(times[name][0]), "full": _stats(times[name][1])} for name in cases}


def _query(params: dict[str, Any]) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rebuild", action="store_true", help="Make the cached archive again.")
    parser.add_argument("--json-only", action="store_true", help="Only the API side (before the pages exist).")
    parser.add_argument("--serve-from", type=Path, default=REPO,
                        help="Serve from another copy of the code (to measure a change before it is made here).")
    args = parser.parse_args()
    home, made = make_archive(args.items, args.seed, args.rebuild)
    item = made["real_ids"][len(made["real_ids"]) // 2]  # a real ingested item: its rows all made by ingest
    cookie, token = credentials(home)
    page_headers = {"Cookie": f"evidence_session={cookie}", "Accept": "text/html"}
    api_headers = {"Authorization": f"Bearer {token}"}
    pairs = {  # page case: the JSON case it is compared with (the same service, the same page of items)
        "search page": ("/items", f"/v1/search?limit={PAGE}"),
        "search page, filtered": (f"/items?{_query(FILTER)}", f"/v1/search?{_query(FILTER)}&limit={PAGE}"),
        "item page": (f"/items/{item}", f"/v1/items/{item}"),
        # the same page against the JSON of more of what it shows: the item and its links (the API has no
        # JSON of an item's custody timeline for investigators; /similar is left out: in this archive every
        # replicated item is a near-duplicate of its template, thousands of matches the page does not list)
        "item page, item and links": (f"/items/{item}", f"/v1/items/{item} + /v1/links?of={item}"),
    }
    cases: dict[str, tuple[str, dict[str, str]]] = {}
    for name, (page_path, json_path) in pairs.items():
        if not args.json_only:
            cases[name] = (page_path, page_headers)
        cases[f"{name} (JSON)"] = (json_path, api_headers)
    cases["item list (JSON)"] = (f"/v1/items?limit={PAGE}", api_headers)  # `evidence list`'s page, for reference
    load_before = os.getloadavg()
    server = Served(home, args.serve_from)
    try:
        results = measure(server.url, cases, args.reps)
    finally:
        server.stop()
    ratios = {}
    for name in pairs:
        if name in results:
            page, api = results[name], results[f"{name} (JSON)"]
            ratios[name] = {what: round(page[what]["median_ms"] / api[what]["median_ms"], 2)
                            for what in ("ttfb", "full")}
    worst = max((r["full"]["median_ms"] for n, r in results.items() if "(JSON)" not in n), default=None)
    print(json.dumps({
        "items": made["items"], "ingested": made["ingested"], "replicated": made["replicated"], "reps": args.reps,
        "served_from": str(args.serve_from),
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
        "results": results, "ratios_page_over_json": ratios,
        "targets": {"ratio": TARGET_RATIO, "full_ms": TARGET_S * 1000},
        "within_target": bool(ratios) and all(r["full"] <= TARGET_RATIO for r in ratios.values())
        and worst is not None and worst < TARGET_S * 1000,
    }, indent=2))


if __name__ == "__main__":
    main()
