"""Configuration that changes at run time lives in the catalog: atomic with its event, seen by running workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.test_worker import configure, rows

JPG = "media/jpg/gps"


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_a_running_worker_picks_up_storage_add_and_policy_set(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    """Finding 1: a worker started before the change must copy onto the new site, not mark the jobs done."""
    configure(cli.home, worker={"poll_seconds": 0.2}, fixity={"interval_seconds": 0})
    reports = cli.json_lines("ingest", str(corpus / JPG))
    env = {**os.environ, "EVIDENCE_HOME": str(cli.home)}
    worker = subprocess.Popen([sys.executable, "-m", "api.cli", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)  # the worker is up and polling, under the old configuration
        cli("storage", "add", "site-c", "--kind", "local", "--path", str(tmp_path / "site-c"))
        cli("policy", "set", "--copies", "3", "--minimum", "1")

        def on_site_c() -> bool:
            shown = [cli.json("show", r["id"]) for r in reports]
            return all({r["backend"] for r in s["replicas"] if r["state"] == "verified"} >= {"site-c"}
                       for s in shown)

        _wait(on_site_c, 30, "the running worker to back-fill site-c")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(10)
    assert all(cli.json("show", r["id"])["status"] == "preserved" for r in reports)
    objects = [p for p in (tmp_path / "site-c").glob("o/**/*") if p.is_file()]
    assert len(objects) == 2 * len(reports)  # an original and its manifest each
    assert cli.json("fixity", "--all")["found_problems"] is False


def test_a_failed_policy_change_leaves_neither_the_change_nor_its_event(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 2: the change and its custody event commit together or not at all."""
    from archive.catalog.events import Event
    from archive.context import Archive
    from archive.services import policy

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the catalog failed mid-transaction")

    before = cli.json("policy", "show")
    monkeypatch.setattr(policy, "reevaluate", broken)
    archive = Archive.open(cli.home)
    try:
        with pytest.raises(RuntimeError):
            policy.set_policy(archive, 1, 1)
    finally:
        archive.close()
    assert cli.json("policy", "show") == before
    assert rows(cli.home, Event, Event.event_type == "policy assignment") == []


def test_a_failed_storage_add_leaves_no_site_and_no_event(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from archive.catalog import settings as catalog_settings
    from archive.catalog.events import Event
    from archive.context import Archive
    from archive.services.storage_admin import add_storage

    real = catalog_settings.add_site

    def add_then_fail(session: object, spec: object) -> None:
        real(session, spec)  # type: ignore[arg-type]
        raise OSError("disk full while committing")

    monkeypatch.setattr(catalog_settings, "add_site", add_then_fail)
    archive = Archive.open(cli.home)
    try:
        with pytest.raises(OSError):
            add_storage(archive, "site-c", "local", {"path": str(tmp_path / "c")})
    finally:
        archive.close()
    monkeypatch.undo()
    assert [s["name"] for s in cli.json("storage", "list")] == ["site-a", "site-b"]
    assert rows(cli.home, Event, Event.event_type == "storage added") == []


def test_recipients_change_with_an_event_and_new_originals_follow(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    from archive.age import Identity
    from archive.catalog.events import Event

    escrow = Identity.generate()
    key = tmp_path / "escrow.key"
    key.write_text(str(escrow) + "\n")
    listed = cli.json("encrypt-to", "add", str(escrow.recipient))
    assert listed["recipients"][-1] == str(escrow.recipient) and listed["added"] == str(escrow.recipient)
    event = rows(cli.home, Event, Event.event_type == "policy assignment")[-1]
    assert event.details["added"] == str(escrow.recipient)
    report = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    replica = cli.json("show", report["id"])["replicas"][0]
    obj = cli.home / "storage" / replica["backend"] / replica["object"]
    opened = subprocess.run(["age", "-d", "-i", str(key), str(obj)], capture_output=True, check=True).stdout
    assert opened == (corpus / "media" / "jpg" / "Canon_40D.jpg").read_bytes()  # the escrow key opens it
    _, _, err = cli("encrypt-to", "add", "age1notakey", expect=2)
    assert "not an age recipient" in err
    custodian = (cli.home / "keys" / "custodian.pub").read_text().strip()
    access = (cli.home / "keys" / "access.pub").read_text().strip()
    cli("encrypt-to", "remove", str(escrow.recipient))
    _, _, err = cli("encrypt-to", "remove", access, expect=1)  # reads and settlement need it
    assert "access recipient" in err and "cannot be removed" in err
    assert access in cli.json("encrypt-to", "list")["recipients"]
    cli("encrypt-to", "remove", custodian)
    _, _, err = cli("encrypt-to", "remove", access, expect=1)
    assert "last recipient" in err


def _make_legacy(home: Path) -> None:
    """Turn a home into what an older version left: sites, policy and recipients only in config.toml."""
    from sqlalchemy import text

    from archive.context import Archive

    archive = Archive.open(home)
    config = archive.config
    for spec in config.storage:  # older versions wrote no markers either
        (home / spec.options["path"] / ".evidence-root.json").unlink()
    with archive.engine.begin() as conn:
        conn.execute(text("DELETE FROM storage_sites"))
        conn.execute(text("DELETE FROM archive_settings"))
    archive.close()
    import tomli_w

    data = tomllib.loads((home / "config.toml").read_text())
    data["recipients"] = config.recipients
    data["policy"] = {"copies": 2, "minimum": 1, "backends": []}
    data["storage"] = [{"name": s.name, "kind": s.kind, **s.options} for s in config.storage]
    (home / "config.toml").write_text(tomli_w.dumps(data))


def test_an_older_home_moves_its_configuration_into_the_catalog_with_an_event(cli: Cli, corpus: Path) -> None:
    from archive.catalog.events import Event

    report = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    origin = tomllib.loads((cli.home / "config.toml").read_text())["log"]["origin"]
    _make_legacy(cli.home)
    assert [s["name"] for s in cli.json("storage", "list")] == ["site-a", "site-b"]
    data = tomllib.loads((cli.home / "config.toml").read_text())
    assert not {"recipients", "policy", "storage"} & set(data)
    moved = rows(cli.home, Event, Event.event_type == "configuration moved")
    assert len(moved) == 1
    # The same archive id as before (from the log's origin), so the sites' markers still match.
    assert all(s["answers"] for s in cli.json("storage", "list"))
    assert origin.endswith(cli.json("status")["archive_id"])
    assert cli.json("fixity", "--all")["found_problems"] is False
    assert cli.json("show", report["id"])["status"] == "preserved"


def test_moving_an_older_home_never_claims_a_site_whose_copies_are_not_there(cli: Cli, corpus: Path) -> None:
    """An unmounted disk during the move shows an empty folder: it must stay unavailable, not get a marker."""
    import shutil

    from archive.catalog.events import Event

    report = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    _make_legacy(cli.home)
    site_b = cli.home / "storage" / "site-b"
    shutil.move(site_b, cli.home / "disk-b")  # unmounted: the mount point is empty
    site_b.mkdir()
    sites = {s["name"]: s for s in cli.json("storage", "list")}
    assert sites["site-a"]["answers"] and not sites["site-b"]["answers"]
    assert "marker" in sites["site-b"]["reason"] and not (site_b / ".evidence-root.json").exists()
    fixity = cli.json("fixity", "--all", expect=None)
    assert fixity["missing"] == 0  # unavailable, never called missing
    _, _, err = cli("storage", "claim", "site-b", expect=1)  # the empty mount point is not claimed: a check failed
    assert "does not hold the copies" in err
    site_b.rmdir()
    shutil.move(cli.home / "disk-b", site_b)  # mounted again: the operator claims it
    cli("storage", "list")
    assert not (site_b / ".evidence-root.json").exists()
    assert cli.json("storage", "claim", "site-b")["answers"]
    assert rows(cli.home, Event, Event.event_type == "storage claimed")[0].details == {"storage": "site-b"}
    assert cli.json("fixity", "--all")["found_problems"] is False
    assert cli.json("show", report["id"])["status"] == "preserved"


def test_a_lost_catalog_is_a_clear_error_not_a_new_archive(cli: Cli) -> None:
    (cli.home / "catalog.db").unlink()
    code, _, err = cli("storage", "list", expect=2)
    assert "holds no archive" in err and "rebuild-catalog" in err


def test_a_worker_reuses_its_storage_clients_across_jobs_and_rebuilds_them_on_change(
    cli: Cli, tmp_path: Path
) -> None:
    """Finding 6: no client per file; a changed description gets a new one."""
    from archive.context import Archive

    archive = Archive.open(cli.home)
    try:
        first = archive.for_actor("a").backends
        second = archive.for_actor("b").backends
        assert all(first[name] is second[name] for name in first)
        from archive.services.storage_admin import add_storage

        add_storage(archive, "site-c", "local", {"path": str(tmp_path / "c")})
        third = archive.for_actor("c").backends
        assert set(third) == {"site-a", "site-b", "site-c"}
        assert third["site-a"] is first["site-a"]
    finally:
        archive.close()


def test_a_site_cannot_be_added_where_another_site_already_is(cli: Cli, tmp_path: Path) -> None:
    """One disk must never count as two copies: the same folder, one inside it, one around it, the home."""
    home = cli.home
    for path in (home / "storage" / "site-a", home / "storage" / "site-a" / ".." / "site-a",
                 home / "storage" / "site-a" / "o", home / "storage", home):
        _, _, err = cli("storage", "add", "dup", "--kind", "local", "--path", str(path), expect=2)
        assert "another place" in err or "archive's home" in err, (path, err)
    cli("storage", "add", "site-c", "--kind", "local", "--path", str(home / "storage" / "site-c"))  # a new folder
    linked = tmp_path / "alias"
    linked.symlink_to(home / "storage" / "site-a")
    _, _, err = cli("storage", "add", "alias", "--kind", "local", "--path", str(linked), expect=2)
    assert "another place" in err
    for inner in (home / "keys", home / "elsewhere"):  # the keys and the catalog are no place for copies
        _, _, err = cli("storage", "add", "inner", "--kind", "local", "--path", str(inner), expect=2)
        assert "only its storage/ folder" in err


def test_a_bind_mount_of_part_of_a_site_is_no_new_site(cli: Cli, tmp_path: Path) -> None:
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("bind mounts need root")
    objects = cli.home / "storage" / "site-a" / "o"
    objects.mkdir(exist_ok=True)
    mount_point = tmp_path / "bound"
    mount_point.mkdir()
    if subprocess.run(["mount", "--bind", str(objects), str(mount_point)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        _, _, err = cli("storage", "add", "bound", "--kind", "local", "--path", str(mount_point / "x"), expect=2)
        assert "another place" in err
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_settings_put_back_into_config_toml_are_ignored_with_a_warning(cli: Cli) -> None:
    """Nobody changes the policy by editing a file: no event, no effect, and the operator is told."""
    from archive.catalog.events import Event

    path = cli.home / "config.toml"
    path.write_text(path.read_text() + '\nrecipients = ["age1qqqq"]\n\n[policy]\ncopies = 1\nminimum = 1\n')
    _, _, err = cli("policy", "show")
    assert "ignored" in err and "policy" in err
    assert cli.json("policy", "show")["copies"] == 2
    assert rows(cli.home, Event, Event.event_type == "policy assignment") == []


def test_get_never_overwrites_and_names_a_missing_folder(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    report = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    out = tmp_path / "out.jpg"
    out.write_bytes(b"mine")
    _, _, err = cli("get", report["id"], "-o", str(out), expect=2)
    assert "already exists" in err and out.read_bytes() == b"mine"
    cli("get", report["id"], "-o", str(out), "--force")
    assert out.read_bytes() == (corpus / "media" / "jpg" / "Canon_40D.jpg").read_bytes()
    _, _, err = cli("get", report["id"], "-o", str(tmp_path / "nowhere" / "x.jpg"), expect=2)
    assert "no folder" in err and "internal error" not in err


def test_a_site_swapped_for_another_site_after_it_was_added_is_unavailable(cli: Cli, corpus: Path,
                                                                          tmp_path: Path) -> None:
    """The wrong disk mounted (here: linked) at a site's place must not count as a second copy."""
    usb = tmp_path / "usb"
    cli("storage", "add", "usb", "--kind", "local", "--path", str(usb))
    cli("policy", "set", "--copies", "2", "--minimum", "1", "--backends", "site-a,usb")
    usb.rename(tmp_path / "usb.away")
    usb.symlink_to(cli.home / "storage" / "site-a")
    report = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "Canon_40D.jpg"))[0]
    assert report["status"] == "degraded"
    shown = cli.json("show", report["id"])
    assert [r["backend"] for r in shown["replicas"]] == ["site-a"]
    sites = {s["name"]: s for s in cli.json("storage", "list")}
    assert not sites["usb"]["answers"] and "'site-a'" in sites["usb"]["reason"]
