"""The replication policy: validated, a custody event, and a new backend is back-filled."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.conftest import Cli
from tests.test_worker import configure, rows


def add_local_backend(home: Path, name: str) -> None:
    """A site entered in the catalog (with its marker) but, unlike `storage add`, without a back-fill."""
    from archive.catalog.settings import add_site
    from archive.config import StorageSpec
    from archive.context import Archive
    from archive.db import transaction
    from archive.services.storage_admin import mark_site

    (home / "storage" / name).mkdir(parents=True)
    spec = StorageSpec(name, "local", {"path": f"storage/{name}"})
    archive = Archive.open(home)
    try:
        mark_site(archive, archive.runtime.pool.get(spec, archive.config.archive_id))
        with transaction(archive.engine) as session:
            add_site(session, spec)
    finally:
        archive.close()


def test_policy_show_and_set(cli: Cli) -> None:
    shown = cli.json("policy", "show")
    assert shown["copies"] == 2 and shown["minimum"] == 1 and shown["effective_backends"] == ["site-a", "site-b"]
    cli("policy", "set", "--copies", "2", "--minimum", "2", "--backends", "site-a,site-b")
    shown = cli.json("policy", "show")
    assert (shown["copies"], shown["minimum"], shown["backends"]) == (2, 2, ["site-a", "site-b"])
    assert "policy" not in tomllib.loads((cli.home / "config.toml").read_text())  # it lives in the catalog
    _, out, _ = cli("policy", "show")
    assert "minimum:  2" in out


def test_policy_is_validated(cli: Cli) -> None:
    for args, message in [
        (["--copies", "3", "--minimum", "1"], "number of storage sites (2)"),
        (["--copies", "1", "--minimum", "2"], "minimum (2) ≤ copies (1)"),
        (["--copies", "1", "--minimum", "0"], "1 ≤ minimum"),
        (["--copies", "1", "--minimum", "1", "--backends", "site-a,nowhere"], "unknown storage site(s): nowhere"),
        (["--copies", "2", "--minimum", "1", "--backends", "site-a"], "number of storage sites (1)"),
    ]:
        _, _, err = cli("policy", "set", *args, expect=2)
        assert message in err, err
    assert cli.json("policy", "show")["copies"] == 2


def test_changing_the_policy_is_a_custody_event(cli: Cli) -> None:
    from archive.catalog.events import Event

    cli("policy", "set", "--copies", "1", "--minimum", "1", "--backends", "site-b")
    event = rows(cli.home, Event, Event.event_type == "policy assignment")[0]
    assert event.details["copies"] == 1 and event.details["backends"] == ["site-b"]
    assert event.details["previous"] == {"copies": 2, "minimum": 1, "backends": []}


def test_adding_a_backend_back_fills_every_item(cli: Cli, corpus: Path) -> None:
    from archive.catalog.jobs import Job

    configure(cli.home, fixity={"interval_seconds": 0})
    reports = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "gps"))
    add_local_backend(cli.home, "site-c")
    result = cli.json("policy", "set", "--copies", "3", "--minimum", "1", "--backends", "site-a,site-b,site-c")
    # Before, the policy named no backends (all of them), so site-c came in with the configuration;
    # what matters is that every item lacking a copy there is back-filled.
    assert result["backfill_backends"] == ["site-c"] and result["backfill_jobs"] == 4
    assert result["status_changes"] == 4
    jobs = rows(cli.home, Job)
    assert {(j.kind, j.item_id) for j in jobs} == {("backfill", r["id"]) for r in reports}
    assert all(j.payload == {"backends": ["site-c"]} for j in jobs)
    assert cli.json("status")["items"] == {"preserved": 0, "degraded": 4}

    _, out, _ = cli("worker", "--once")
    assert "4 done" in out
    status = cli.json("status")
    assert status["items"] == {"preserved": 4, "degraded": 0}
    site_c = next(b for b in status["backends"] if b["name"] == "site-c")
    assert site_c["objects"] == 8 and site_c["answers"] and site_c["in_policy"]  # originals and manifests
    assert cli.json("fixity", "--all")["ok"] == 4 * 6
    # Running it again finds nothing to do (idempotent back-fill).
    from archive.context import Archive
    from archive.services.repair import repair_item

    archive = Archive.open(cli.home)
    try:
        again = repair_item(archive, reports[0]["id"], targets=["site-c"])
    finally:
        archive.close()
    assert again.written == [] and again.manifests == [] and again.complete


def test_lowering_the_target_makes_degraded_items_preserved(cli: Cli, corpus: Path) -> None:
    from tests.test_worker import bring_back, take_down

    take_down(cli.home, "site-b")
    report = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    assert report["status"] == "degraded"
    bring_back(cli.home, "site-b")
    result = cli.json("policy", "set", "--copies", "1", "--minimum", "1")
    assert result["status_changes"] == 1
    assert cli.json("show", report["id"])["status"] == "preserved"


def test_the_fixity_pass_back_fills_a_backend_added_while_the_policy_names_none(cli: Cli, corpus: Path) -> None:
    configure(cli.home, fixity={"interval_seconds": 0})
    report = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    add_local_backend(cli.home, "site-c")  # the policy names no backends: it now covers site-c too
    cli.json("fixity", "--all")
    cli("worker", "--once")
    shown = cli.json("show", report["id"])
    assert {r["backend"] for r in shown["replicas"]} == {"site-a", "site-b", "site-c"}
    assert {m["backend"] for m in shown["manifests"]} == {"site-a", "site-b", "site-c"}
