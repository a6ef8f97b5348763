"""A duplicate repairs: when every stored copy is lost or damaged, the same bytes arriving again restore them."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cli
from tests.test_worker import rows

PHOTO = "media/jpg/Canon_40D.jpg"


def _originals(cli: Cli, item_id: str) -> list[dict[str, str]]:
    return list(cli.json("show", item_id)["replicas"])


def _corrupt_every_copy(cli: Cli, item_id: str) -> None:
    for replica in _originals(cli, item_id):
        path = cli.home / "storage" / replica["backend"] / replica["object"]
        data = bytearray(path.read_bytes())
        data[-20] ^= 0xFF
        path.write_bytes(bytes(data))


def _assert_restored(cli: Cli, source: Path, first: dict[str, str], again: dict[str, str], tmp_path: Path) -> None:
    from archive.catalog.events import Event

    assert again["duplicate"] is True and again["id"] == first["id"]
    assert again["status"] == "preserved"
    out = tmp_path / "out.jpg"
    cli("get", first["id"], "-o", str(out))
    assert out.read_bytes() == source.read_bytes()
    report = cli.json("fixity", "--all", "--restart")
    assert report["found_problems"] is False and report["missing"] == report["corrupt"] == 0
    assert cli.json("log", "verify")["ok"] is True
    shown = cli.json("show", first["id"])
    assert shown["status"] == "preserved"
    live = [r for r in shown["replicas"] if r["state"] == "verified"]
    assert sorted(r["backend"] for r in live) == ["site-a", "site-b"]
    assert all(r["state"] in ("verified", "replaced") for r in shown["replicas"])
    assert [p["source"] for p in shown["provenance"]] == ["X", "Y"]
    restored = [e for e in rows(cli.home, Event) if e.event_type == "replication"
                and e.details.get("restored_from") == "duplicate arrival"]
    assert sorted(e.details["backend"] for e in restored) == ["site-a", "site-b"]
    assert all(e.outcome == "success" and e.details.get("arrival") for e in restored)


def test_a_duplicate_restores_copies_that_fixity_found_corrupt(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    source = corpus / PHOTO
    first = cli.json_lines("ingest", str(source), "--source", "X")[0]
    _corrupt_every_copy(cli, first["id"])
    assert cli.json("fixity", "--all", expect=1)["corrupt"] == 2
    assert cli.json("show", first["id"])["status"] == "degraded"
    again = cli.json_lines("ingest", str(source), "--source", "Y")[0]
    _assert_restored(cli, source, first, again, tmp_path)
    # The bad rows are history now, each replaced by a copy made from the new arrival's bytes.
    states = sorted(r["state"] for r in _originals(cli, first["id"]))
    assert states == ["replaced", "replaced", "verified", "verified"]


def test_a_duplicate_restores_copies_deleted_before_any_audit(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    source = corpus / PHOTO
    first = cli.json_lines("ingest", str(source), "--source", "X")[0]
    for path in (cli.home / "storage").rglob("o/*/*"):
        path.unlink()  # every original and manifest, gone; the catalog still says verified
    again = cli.json_lines("ingest", str(source), "--source", "Y")[0]
    _assert_restored(cli, source, first, again, tmp_path)


def test_a_duplicate_of_a_healthy_item_keeps_no_second_copy(cli: Cli, corpus: Path) -> None:
    source = corpus / PHOTO
    first = cli.json_lines("ingest", str(source), "--source", "X")[0]
    again = cli.json_lines("ingest", str(source), "--source", "Y")[0]
    assert again["duplicate"] is True and again["status"] == "preserved"
    assert len(_originals(cli, first["id"])) == 2
    stored = [p for p in (cli.home / "storage").rglob("o/*/*") if p.is_file()]
    assert len([p for p in stored if "." not in p.name]) == 2  # the two originals of the first arrival only


def test_a_site_without_its_marker_is_neither_restored_onto_nor_called_missing(cli: Cli, corpus: Path,
                                                                              tmp_path: Path) -> None:
    from archive.catalog.jobs import Job

    source = corpus / PHOTO
    first = cli.json_lines("ingest", str(source), "--source", "X")[0]
    for path in (cli.home / "storage" / "site-a").rglob("o/*/*"):
        path.unlink()
    site_b = cli.home / "storage" / "site-b"
    marker = site_b / ".evidence-root.json"
    saved = marker.read_bytes()
    marker.unlink()  # as if the disk were unmounted
    before = sorted(site_b.rglob("*"))
    again = cli.json_lines("ingest", str(source), "--source", "Y")[0]
    assert again["duplicate"] is True and again["status"] == "preserved"
    assert sorted(site_b.rglob("*")) == before  # nothing written there, not even an addendum
    states = {(r["backend"], r["state"]) for r in _originals(cli, first["id"])}
    assert states == {("site-a", "replaced"), ("site-a", "verified"), ("site-b", "verified")}
    assert any(j.kind == "repair" and j.item_id == first["id"] for j in rows(cli.home, Job))
    marker.write_bytes(saved)  # the disk is back: the repair adds the addendum it missed
    cli("worker", "--once")
    assert len(list(site_b.rglob("*.arrival"))) == 1
    assert cli.json("fixity", "--all", "--restart")["found_problems"] is False
    out = tmp_path / "out.jpg"
    cli("get", first["id"], "-o", str(out))
    assert out.read_bytes() == source.read_bytes()


def test_a_duplicate_restores_copies_corrupted_before_any_check_found_it(
    cli: Cli, corpus: Path, tmp_path: Path
) -> None:
    """No fixity pass has run: the arrival itself re-hashes the copies and finds them bad."""
    source = corpus / PHOTO
    first = cli.json_lines("ingest", str(source), "--source", "X")[0]
    _corrupt_every_copy(cli, first["id"])
    assert cli.json("show", first["id"])["status"] == "preserved"  # nobody knows yet
    again = cli.json_lines("ingest", str(source), "--source", "Y")[0]
    _assert_restored(cli, source, first, again, tmp_path)


def test_a_failed_read_marks_the_copy_bad_and_queues_its_repair(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    """`get` is a check too: a copy that does not decrypt to the recorded bytes is recorded as corrupt."""
    from archive.catalog.events import Event
    from archive.catalog.jobs import Job

    source = corpus / PHOTO
    first = cli.json_lines("ingest", str(source))[0]
    replica = _originals(cli, first["id"])[0]
    path = cli.home / "storage" / replica["backend"] / replica["object"]
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    out = tmp_path / "out.jpg"
    cli("get", first["id"], "-o", str(out))  # the other copy serves
    assert out.read_bytes() == source.read_bytes()
    states = {r["backend"]: r["state"] for r in _originals(cli, first["id"])}
    assert states[replica["backend"]] == "corrupt"
    assert cli.json("show", first["id"])["status"] == "degraded"
    failed = [e for e in rows(cli.home, Event) if e.event_type == "fixity check" and e.outcome == "failure"]
    assert failed and failed[-1].details["backend"] == replica["backend"]
    assert any(j.kind == "repair" and j.item_id == first["id"] for j in rows(cli.home, Job))
    cli("worker", "--once")
    assert cli.json("show", first["id"])["status"] == "preserved"


def test_a_duplicate_finds_damaged_manifests_and_queues_their_repair(cli: Cli, corpus: Path) -> None:
    source = corpus / PHOTO
    first = cli.json_lines("ingest", str(source), "--source", "X")[0]
    for manifest in cli.json("show", first["id"])["manifests"]:
        path = cli.home / "storage" / manifest["backend"] / manifest["object"]
        data = bytearray(path.read_bytes())
        data[-5] ^= 0xFF
        path.write_bytes(bytes(data))
    cli.json_lines("ingest", str(source), "--source", "Y")
    states = [m["state"] for m in cli.json("show", first["id"])["manifests"]]
    assert states.count("corrupt") == 2
    cli("worker", "--once")
    assert cli.json("fixity", "--all", "--restart")["found_problems"] is False
