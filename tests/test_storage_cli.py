"""`evidence storage add|list|remove` through the CLI, with real S3 servers behind it."""

# ruff: noqa: F811 - pytest fixtures are imported by name and then requested as arguments
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, create_engine, select

from archive.catalog.events import Event
from storage.s3_common import env_prefix
from tests.conftest import Cli
from tests.s3_fixtures import site_a, weed_sites  # noqa: F401 - fixtures
from tests.servers import WeedServer


def set_credentials(monkeypatch: pytest.MonkeyPatch, name: str, server: WeedServer, secret: str | None = None) -> None:
    monkeypatch.setenv(env_prefix(name) + "ACCESS_KEY", server.access_key)
    monkeypatch.setenv(env_prefix(name) + "SECRET_KEY", secret or server.secret_key)


def events(home: Path, event_type: str) -> list[Event]:
    engine = create_engine(f"sqlite:///{home / 'catalog.db'}")
    try:
        with Session(engine) as session:
            return list(session.exec(select(Event).where(Event.event_type == event_type)).all())
    finally:
        engine.dispose()


def by_name(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in entries}


def test_add_list_remove_local_and_s3(cli: Cli, site_a: WeedServer, monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    cli("storage", "add", "site-c", "--kind", "local", "--path", str(tmp_path / "site-c"))
    bucket = site_a.shared_bucket()
    for kind in ("s3", "minio"):
        set_credentials(monkeypatch, f"{kind}-a", site_a)
        cli("storage", "add", f"{kind}-a", "--kind", kind, "--endpoint", site_a.endpoint, "--bucket", bucket,
            "--prefix", f"{tmp_path.name}-{kind}")
    entries = by_name(cli.json("storage", "list"))
    assert set(entries) >= {"site-a", "site-b", "site-c", "s3-a", "minio-a"}
    assert all(entry["answers"] for entry in entries.values()), entries
    assert entries["s3-a"]["options"] == {"endpoint": site_a.endpoint, "bucket": bucket,
                                          "prefix": f"{tmp_path.name}-s3"}
    _, text, _ = cli("storage", "list")
    assert "s3-a" in text and "answers" in text

    config = (cli.home / "config.toml").read_text()
    for secret in (site_a.secret_key, site_a.access_key):
        assert secret not in config and secret not in json.dumps(cli.json("storage", "list"))
        assert all(secret not in json.dumps(e.details) for e in events(cli.home, "storage added"))
    assert {e.details["storage"] for e in events(cli.home, "storage added")} == {"site-c", "s3-a", "minio-a"}

    # wrong credentials are reported per backend, not fatal, and never shown
    monkeypatch.setenv(env_prefix("s3-a") + "SECRET_KEY", "wrong")
    entries = by_name(cli.json("storage", "list"))
    assert entries["s3-a"]["answers"] is False and "credentials" in entries["s3-a"]["reason"]
    assert "wrong" not in entries["s3-a"]["reason"].replace("wrong credentials", "")

    for name in ("s3-a", "minio-a", "site-c"):
        cli("storage", "remove", name)
    assert set(by_name(cli.json("storage", "list", "--no-check"))) == {"site-a", "site-b"}
    assert {e.details["storage"] for e in events(cli.home, "storage removed")} == {"s3-a", "minio-a", "site-c"}


def test_add_refuses_what_does_not_answer(cli: Cli, site_a: WeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    before = (cli.home / "config.toml").read_text()
    code, _, err = cli("storage", "add", "nocreds", "--kind", "s3", "--endpoint", site_a.endpoint,
                       "--bucket", "whatever", expect=2)
    assert "EVIDENCE_STORAGE_NOCREDS_ACCESS_KEY" in err

    set_credentials(monkeypatch, "nobucket", site_a)
    _, _, err = cli("storage", "add", "nobucket", "--kind", "s3", "--endpoint", site_a.endpoint,
                    "--bucket", "no-such-bucket", expect=2)
    assert "bucket does not exist" in err and "no-such-bucket" in err

    bucket = site_a.shared_bucket(versioned=False)
    set_credentials(monkeypatch, "badkey", site_a, secret="definitely-wrong-secret")
    _, out, err = cli("storage", "add", "badkey", "--kind", "minio", "--endpoint", site_a.endpoint,
                      "--bucket", bucket, expect=2)
    assert "credentials" in err or "access denied" in err
    assert "definitely-wrong-secret" not in out + err

    set_credentials(monkeypatch, "nolock", site_a)
    _, _, err = cli("storage", "add", "nolock", "--kind", "s3", "--endpoint", site_a.endpoint, "--bucket", bucket,
                    "--object-lock", "COMPLIANCE", "--retention-days", "1", expect=2)
    assert "Object Lock" in err
    _, _, err = cli("storage", "add", "half", "--kind", "s3", "--endpoint", site_a.endpoint, "--bucket", bucket,
                    "--object-lock", "COMPLIANCE", expect=2)
    assert "go together" in err
    cli("storage", "add", "site-a", "--kind", "local", "--path", "/tmp/x", expect=2)  # duplicate name
    assert (cli.home / "config.toml").read_text() == before

    locked = site_a.shared_bucket(object_lock=True)
    set_credentials(monkeypatch, "locked", site_a)
    cli("storage", "add", "locked", "--kind", "s3", "--endpoint", site_a.endpoint, "--bucket", locked,
        "--object-lock", "compliance", "--retention-days", "1")
    entry = by_name(cli.json("storage", "list"))["locked"]
    assert entry["options"]["object_lock"] == "COMPLIANCE" and entry["options"]["retention_days"] == 1


def test_remove_refused_while_it_holds_the_only_copy(cli: Cli, site_a: WeedServer,
                                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bucket = site_a.shared_bucket()
    set_credentials(monkeypatch, "s3-only", site_a)
    cli("storage", "add", "s3-only", "--kind", "s3", "--endpoint", site_a.endpoint, "--bucket", bucket,
        "--prefix", tmp_path.name)
    cli("policy", "set", "--copies", "1", "--minimum", "1", "--backends", "s3-only")
    sample = tmp_path / "evidence.bin"
    sample.write_bytes(b"a file that only the bucket holds" * 1000)
    [row] = cli.json_lines("ingest", str(sample))
    assert row["status"] == "preserved"
    shown = cli.json("show", row["id"])
    assert [r["backend"] for r in shown["replicas"] if r.get("role", "original") == "original"][:1] == ["s3-only"]

    _, _, err = cli("storage", "remove", "s3-only", expect=2)
    assert "policy" in err
    cli("policy", "set", "--copies", "1", "--minimum", "1", "--backends", "site-a")
    _, _, err = cli("storage", "remove", "s3-only", expect=2)
    assert "only verified copy of 1 item" in err and row["id"] in err
    assert "s3-only" in by_name(cli.json("storage", "list", "--no-check"))

    cli("worker", "--once")  # back-fills the item onto site-a
    cli("storage", "remove", "s3-only")
    assert "s3-only" not in by_name(cli.json("storage", "list", "--no-check"))


def test_credentials_from_the_secrets_file_and_a_site_without_any(
    cli: Cli, site_a: WeedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Credentials come from keys/storage-secrets.toml (0600, re-read) or the environment; none: unavailable."""
    import os

    secrets_file = cli.home / "keys" / "storage-secrets.toml"
    secrets_file.write_text(f'[vault]\naccess_key = "{site_a.access_key}"\nsecret_key = "{site_a.secret_key}"\n')
    os.chmod(secrets_file, 0o600)
    for var in list(os.environ):
        if var.startswith(env_prefix("vault")):
            monkeypatch.delenv(var)
    cli("storage", "add", "vault", "--kind", "s3", "--endpoint", site_a.endpoint,
        "--bucket", site_a.shared_bucket(), "--prefix", f"{tmp_path.name}-vault")
    assert by_name(cli.json("storage", "list"))["vault"]["answers"]

    os.chmod(secrets_file, 0o644)  # readable by others: refused, and the site says why
    vault = by_name(cli.json("storage", "list"))["vault"]
    assert not vault["answers"] and "readable by others" in vault["reason"]
    os.chmod(secrets_file, 0o600)

    secrets_file.write_text("# no sites\n")  # re-read on change: the site now has no credentials at all
    vault = by_name(cli.json("storage", "list"))["vault"]
    assert not vault["answers"] and "no credentials" in vault["reason"]
    status = {b["name"]: b for b in cli.json("status")["backends"]}
    assert not status["vault"]["answers"] and "no credentials" in status["vault"]["error"]
    assert site_a.secret_key not in json.dumps(cli.json("storage", "list"))


def test_a_bucket_prefix_already_used_by_a_site_is_refused(
    cli: Cli, site_a: WeedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bucket = site_a.shared_bucket()
    for name in ("cloud", "cloud2", "cloud3"):
        set_credentials(monkeypatch, name, site_a)
    cli("storage", "add", "cloud", "--kind", "s3", "--endpoint", site_a.endpoint, "--bucket", bucket,
        "--prefix", f"{tmp_path.name}/p1")
    for prefix in (f"{tmp_path.name}/p1", f"{tmp_path.name}", f"{tmp_path.name}/p1/inner"):
        _, _, err = cli("storage", "add", "cloud2", "--kind", "minio", "--endpoint", site_a.endpoint + "/",
                        "--bucket", bucket, "--prefix", prefix, expect=2)
        assert "another place" in err
    alias = site_a.endpoint.replace("127.0.0.1", "localhost")  # the same server under another name
    _, _, err = cli("storage", "add", "cloud2", "--kind", "s3", "--endpoint", alias, "--bucket", bucket,
                    "--prefix", f"{tmp_path.name}/p1/deeper", expect=2)
    assert "another place" in err
    cli("storage", "add", "cloud3", "--kind", "s3", "--endpoint", site_a.endpoint, "--bucket", bucket,
        "--prefix", f"{tmp_path.name}/p2")
