"""Arrival addenda: every later arrival of the same bytes is sealed beside each original,
checked by fixity, carried by repair and read back by rebuild-catalog."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.s3_fixtures import site_a, weed_sites  # noqa: F401 - fixtures
from tests.servers import WeedServer

PHOTO = "media/jpg/Canon_40D.jpg"
ARRIVAL_NAME = re.compile(r"^o/[0-9a-f]{2}/[0-9a-f]{32}\.[0-9a-f]{16}\.arrival$")


def _site(cli: Cli, name: str) -> Path:
    return cli.home / "storage" / name


def _arrivals(cli: Cli, site: str) -> list[Path]:
    return sorted(_site(cli, site).rglob("*.arrival"))


def _rebuild(cli: Cli, site: str, tmp_path: Path, expect: int = 0) -> tuple[dict[str, Any], Cli]:
    new_home = tmp_path / f"rebuilt-{site}"
    key = cli.home / "keys" / "custodian.key"
    report = cli.json("rebuild-catalog", "--from", site, "--identity", str(key), "--home", str(new_home),
                      expect=expect)
    return report, Cli(new_home)


def _sources(cli: Cli, item_id: str) -> list[tuple[str | None, str | None, str | None]]:
    return [(p["source"], p["note"], p["original_name"]) for p in cli.json("show", item_id)["provenance"]]


def test_rebuild_restores_the_provenance_of_every_arrival(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    source = corpus / PHOTO
    renamed = tmp_path / "from-telegram.jpg"
    renamed.write_bytes(source.read_bytes())
    first = cli.json_lines("ingest", str(source), "--source", "X", "--note", "via Signal")[0]
    cli.json_lines("ingest", str(renamed), "--source", "Y", "--note", "re-sent")
    before = _sources(cli, first["id"])
    assert before == [("X", "via Signal", "Canon_40D.jpg"), ("Y", "re-sent", "from-telegram.jpg")]

    report, rebuilt = _rebuild(cli, "site-a", tmp_path)
    assert report["items"] == 1 and report["manifests"] == 1 and report["arrivals"] == 1 and report["problems"] == []
    assert _sources(rebuilt, first["id"]) == before
    shown = rebuilt.json("show", first["id"])
    assert [p["received_at"] for p in shown["provenance"]] == [
        p["received_at"] for p in cli.json("show", first["id"])["provenance"]]
    assert rebuilt.json("fixity", "--all")["ok"] == 3  # the original, its manifest and the addendum


def test_addenda_are_sealed_with_age_and_named_at_random(cli: Cli, corpus: Path) -> None:
    source = corpus / PHOTO
    first = cli.json_lines("ingest", str(source), "--source", "X")[0]
    cli.json_lines("ingest", str(source), "--source", "witness 7", "--note", "Aleppo, east")
    key = cli.home / "keys" / "custodian.key"
    for site in ("site-a", "site-b"):
        [path] = _arrivals(cli, site)
        assert ARRIVAL_NAME.match(path.relative_to(_site(cli, site)).as_posix())
        data = path.read_bytes()
        assert data.startswith(b"age-encryption.org/v1\n") and b"witness" not in data and b"Aleppo" not in data
        plain = subprocess.run(["age", "-d", "-i", str(key), str(path)], capture_output=True, check=True).stdout
        document = json.loads(plain)
        assert document["item_id"] == first["id"] and document["sha256"] == first["sha256"]
        assert document["provenance"]["source"] == "witness 7" and document["provenance"]["note"] == "Aleppo, east"
        assert path.name.startswith(Path(document["object"]).name + ".")  # beside the original it names


def test_fixity_checks_an_addendum_and_repair_rewrites_it(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    source = corpus / PHOTO
    first = cli.json_lines("ingest", str(source), "--source", "X")[0]
    cli.json_lines("ingest", str(source), "--source", "Y")
    [path] = _arrivals(cli, "site-b")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    report = cli.json("fixity", "--all", "--repair", expect=1)
    assert [(p["role"], p["backend"], p["result"]) for p in report["problems"]] == [("arrival", "site-b", "corrupt")]
    assert report["repaired"][0]["arrivals"] == ["site-b"]
    assert cli.json("fixity", "--all", "--restart")["found_problems"] is False
    assert len(_arrivals(cli, "site-b")) == 2  # the damaged object is kept, never overwritten
    rebuilt_report, rebuilt = _rebuild(cli, "site-b", tmp_path, expect=1)  # the damaged one is named, not trusted
    assert [p["problem"].split(":")[0] for p in rebuilt_report["problems"]] == ["unreadable addendum"]
    assert [s for s, _, _ in _sources(rebuilt, first["id"])] == ["X", "Y"]


def test_repair_carries_the_addenda_with_the_original(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    source = corpus / PHOTO
    first = cli.json_lines("ingest", str(source), "--source", "X")[0]
    cli.json_lines("ingest", str(source), "--source", "Y")
    cli.json_lines("ingest", str(source), "--source", "Z")
    for path in _site(cli, "site-b").rglob("o/*/*"):
        path.unlink()  # the whole site's objects lost
    report = cli.json("fixity", "--all", "--repair", expect=1)
    assert report["repaired"][0]["written"] == ["site-b"] and report["repaired"][0]["arrivals"] == ["site-b"] * 2
    assert cli.json("fixity", "--all", "--restart")["found_problems"] is False
    _, rebuilt = _rebuild(cli, "site-b", tmp_path)
    assert [s for s, _, _ in _sources(rebuilt, first["id"])] == ["X", "Y", "Z"]


def test_a_restoring_duplicate_brings_every_earlier_arrival_with_it(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    source = corpus / PHOTO
    first = cli.json_lines("ingest", str(source), "--source", "X")[0]
    cli.json_lines("ingest", str(source), "--source", "Y")
    for path in (cli.home / "storage").rglob("o/*/*"):
        path.unlink()
    assert cli.json_lines("ingest", str(source), "--source", "Z")[0]["status"] == "preserved"
    report, rebuilt = _rebuild(cli, "site-a", tmp_path)
    assert report["problems"] == [] and report["arrivals"] == 2
    assert [s for s, _, _ in _sources(rebuilt, first["id"])] == ["X", "Y", "Z"]
    out = tmp_path / "out.jpg"
    rebuilt("get", first["id"], "-o", str(out), "--identity", str(cli.home / "keys" / "custodian.key"))
    assert out.read_bytes() == source.read_bytes()



def test_the_same_arrival_sealed_beside_two_originals_is_one_provenance_row(
    cli: Cli, corpus: Path, tmp_path: Path
) -> None:
    source = corpus / PHOTO
    first = cli.json_lines("ingest", str(source), "--source", "X")[0]
    cli.json_lines("ingest", str(source), "--source", "Y")
    for replica in cli.json("show", first["id"])["replicas"]:  # damaged in place: their addenda stay beside them
        path = cli.home / "storage" / replica["backend"] / replica["object"]
        data = path.read_bytes()
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    cli.json("fixity", "--all", expect=1)
    cli.json_lines("ingest", str(source), "--source", "Z")
    report, rebuilt = _rebuild(cli, "site-a", tmp_path, expect=1)
    assert report["arrivals"] == 3  # Y beside the damaged copy; Y and Z beside the restored one
    assert [p["problem"] for p in report["problems"]] == ["original corrupt"]
    assert [s for s, _, _ in _sources(rebuilt, first["id"])] == ["X", "Y", "Z"]
    assert rebuilt.json("show", first["id"])["status"] == "preserved"


@pytest.mark.slow
def test_on_an_s3_site_a_duplicate_restores_and_rebuild_reads_every_arrival(
    cli: Cli, site_a: WeedServer, monkeypatch: pytest.MonkeyPatch, corpus: Path, tmp_path: Path  # noqa: F811
) -> None:
    from storage.s3_common import env_prefix

    monkeypatch.setenv(env_prefix("vault") + "ACCESS_KEY", site_a.access_key)
    monkeypatch.setenv(env_prefix("vault") + "SECRET_KEY", site_a.secret_key)
    bucket = site_a.make_bucket()
    cli("storage", "add", "vault", "--kind", "s3", "--endpoint", site_a.endpoint, "--bucket", bucket)
    cli("policy", "set", "--copies", "3", "--minimum", "2")
    source = corpus / PHOTO
    first = cli.json_lines("ingest", str(source), "--source", "X")[0]
    assert first["status"] == "preserved"
    client: Any = site_a.client()
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [o["Key"] for o in listed if o["Key"].startswith("o/")]  # the original and its manifest are there
    for entry in listed:
        if entry["Key"].startswith("o/"):
            client.delete_object(Bucket=bucket, Key=entry["Key"])
    for path in (cli.home / "storage").rglob("o/*/*"):
        path.unlink()
    again = cli.json_lines("ingest", str(source), "--source", "Y")[0]
    assert again["duplicate"] is True and again["status"] == "preserved"
    assert cli.json("fixity", "--all")["found_problems"] is False

    report, rebuilt = _rebuild(cli, "vault", tmp_path)
    assert report["problems"] == [] and report["arrivals"] == 1
    assert [s for s, _, _ in _sources(rebuilt, first["id"])] == ["X", "Y"]
    out = tmp_path / "out.jpg"
    rebuilt("get", first["id"], "-o", str(out), "--identity", str(cli.home / "keys" / "custodian.key"))
    assert out.read_bytes() == source.read_bytes()
