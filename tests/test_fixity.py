"""Fixity: missing and corrupt copies are found, recorded, and repaired from a good copy."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import Cli
from tests.test_worker import bring_back, rows, take_down

GPS = "media/jpg/gps"


def _damage(cli: Cli, item_id: str) -> tuple[str, str]:
    """Flip one byte of the site-a original; delete the site-b original. Returns both object names."""
    shown = cli.json("show", item_id)
    by_backend = {r["backend"]: r["object"] for r in shown["replicas"]}
    flipped = cli.home / "storage" / "site-a" / by_backend["site-a"]
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    (cli.home / "storage" / "site-b" / by_backend["site-b"]).unlink()
    return by_backend["site-a"], by_backend["site-b"]


def test_fixity_finds_a_flipped_byte_and_a_deleted_copy_and_repair_restores_them(cli: Cli, corpus: Path) -> None:
    from archive.catalog.events import Event

    reports = cli.json_lines("ingest", str(corpus / GPS))
    target, other = reports[0]["id"], reports[1]["id"]
    flipped, deleted = _damage(cli, target)
    # A second item loses only its site-b manifest.
    manifest = next(m for m in cli.json("show", other)["manifests"] if m["backend"] == "site-b")
    (cli.home / "storage" / "site-b" / manifest["object"]).unlink()

    report = cli.json("fixity", "--all", expect=1)
    assert report["found_problems"] and report["items"] == 4 and report["copies"] == 16
    found = {(p["item"], p["backend"], p["role"], p["result"]) for p in report["problems"]}
    assert found == {
        (target, "site-a", "original", "corrupt"),
        (target, "site-b", "original", "missing"),
        (other, "site-b", "manifest", "missing"),
    }
    shown = cli.json("show", target)
    assert shown["status"] == "degraded"
    assert {r["backend"]: r["state"] for r in shown["replicas"]} == {"site-a": "corrupt", "site-b": "missing"}
    assert cli.json("status")["items"] == {"preserved": 3, "degraded": 1}

    # No verified copy of `target` is left: nothing can restore it, and repair says so.
    repaired = cli.json("fixity", "--item", target, "--repair", expect=1)["repaired"]
    assert repaired[0]["status"] == "degraded" and repaired[0]["complete"] is False

    # Put the corrupt byte back (as a restore from tape would): now the item is repairable.
    path = cli.home / "storage" / "site-a" / flipped
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = cli.json("fixity", "--all", "--repair", expect=1)  # problems were found (the missing copies)
    by_item = {r["item"]: r for r in result["repaired"]}
    assert by_item[target]["written"] == ["site-b"] and by_item[target]["status"] == "preserved"
    assert by_item[other]["manifests"] == ["site-b"]
    shown = cli.json("show", target)
    assert shown["status"] == "preserved"
    live = [r for r in shown["replicas"] if r["state"] == "verified"]
    assert {r["backend"] for r in live} == {"site-a", "site-b"}
    assert deleted not in {r["object"] for r in live}  # a new name: names are never reused
    assert cli.json("fixity", "--all")["found_problems"] is False

    events = rows(cli.home, Event)
    checks = [e for e in events if e.event_type == "fixity check"]
    assert {e.outcome for e in checks} == {"success", "failure"}
    assert any(e.details.get("result") == "corrupt" for e in checks)
    assert any(e.event_type == "replication" and e.details.get("reason") == "fixity" for e in events)
    for event in events:  # no personal details in the log
        assert "gps" not in str(event.details).lower() and ".jpg" not in str(event.details).lower()


def test_repair_from_the_other_site_after_corruption(cli: Cli, corpus: Path) -> None:
    report = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    shown = cli.json("show", report["id"])
    obj = next(r["object"] for r in shown["replicas"] if r["backend"] == "site-a")
    path = cli.home / "storage" / "site-a" / obj
    path.write_bytes(path.read_bytes()[:-10])  # truncated
    result = cli.json("fixity", "--item", report["id"][:8], "--repair", expect=1)
    assert result["corrupt"] == 1 and result["repaired"][0]["written"] == ["site-a"]
    out = cli.home.parent / "out.jpg"
    cli("get", report["id"], "-o", str(out))
    assert out.read_bytes() == (corpus / "media" / "jpg" / "Canon_40D.jpg").read_bytes()


def test_an_unreachable_backend_is_not_called_missing(cli: Cli, corpus: Path) -> None:
    report = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    take_down(cli.home, "site-b")
    result = cli.json("fixity", "--all", expect=1)
    assert result["unavailable"] == 2 and result["missing"] == 0 and result["corrupt"] == 0
    bring_back(cli.home, "site-b")
    assert {r["state"] for r in cli.json("show", report["id"])["replicas"]} == {"verified"}
    assert cli.json("fixity", "--all")["ok"] == 4


def test_a_full_pass_is_resumable_after_an_interruption(cli: Cli, corpus: Path) -> None:
    from archive.context import Archive
    from archive.services.fixity import run_fixity

    cli("ingest", str(corpus / GPS))
    archive = Archive.open(cli.home)
    try:
        first = run_fixity(archive, all_items=True, max_items=3)  # "killed" after three items
        assert first.items == 3 and first.pass_complete is False
    finally:
        archive.close()
    # A new process (the CLI) continues from the cursor: only the last item is left.
    report = cli.json("fixity", "--all")
    assert report["items"] == 1 and report["pass_complete"] is True and report["resumed_from"]
    # The next pass starts again from the beginning.
    assert cli.json("fixity", "--all")["items"] == 4
    status = cli.json("status")
    assert status["fixity_pass"]["completed_at"]


def test_sample_checks_that_many_items(cli: Cli, corpus: Path) -> None:
    cli("ingest", str(corpus / GPS))
    assert cli.json("fixity", "--sample", "2")["items"] == 2
    code, _, err = cli("fixity", "--all", "--sample", "2", expect=2)
    assert "exactly one" in err


def test_reading_is_rate_limited(cli: Cli, corpus: Path) -> None:
    from archive.services.fixity import RateLimiter

    cli("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))
    replicas = cli.json("show", cli.json("list")[0]["id"])["replicas"]  # the catalog keeps no exact size: stat
    originals = sum((cli.home / "storage" / r["backend"] / r["object"]).stat().st_size for r in replicas)
    started = time.monotonic()
    report = cli.json("fixity", "--all", "--rate", str(originals // 2))
    # More than twice the rate's worth of bytes, less a one-second burst: at least a second.
    assert report["bytes_read"] > originals and time.monotonic() - started >= 0.9

    limiter = RateLimiter(1000)
    started = time.monotonic()
    for _ in range(3):
        limiter.consume(500)
    assert time.monotonic() - started >= 0.45


def test_fixity_of_a_repaired_item_checks_only_live_copies(cli: Cli, corpus: Path) -> None:
    report = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    shown = cli.json("show", report["id"])
    obj = next(r["object"] for r in shown["replicas"] if r["backend"] == "site-b")
    (cli.home / "storage" / "site-b" / obj).unlink()
    cli.json("fixity", "--all", "--repair", expect=1)
    # The replaced row is history now; the new copy is what later passes check.
    again = cli.json("fixity", "--all")
    assert again["copies"] == 4 and again["ok"] == 4
    states = sorted(r["state"] for r in cli.json("show", report["id"])["replicas"])
    assert states == ["replaced", "verified", "verified"]
