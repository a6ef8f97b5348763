"""rebuild-catalog from a real S3 site (SeaweedFS): manifests listed, originals re-hashed by version."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.s3_fixtures import site_a, weed_sites  # noqa: F401 - fixtures
from tests.servers import WeedServer

pytestmark = pytest.mark.slow


def test_rebuild_catalog_from_an_s3_site(
    cli: Cli, site_a: WeedServer, monkeypatch: pytest.MonkeyPatch, corpus: Path, tmp_path: Path  # noqa: F811
) -> None:
    from storage.s3_common import env_prefix

    monkeypatch.setenv(env_prefix("vault") + "ACCESS_KEY", site_a.access_key)
    monkeypatch.setenv(env_prefix("vault") + "SECRET_KEY", site_a.secret_key)
    cli("storage", "add", "vault", "--kind", "s3", "--endpoint", site_a.endpoint,
        "--bucket", site_a.make_bucket(versioned=True))
    cli("policy", "set", "--copies", "3", "--minimum", "2")
    reports = cli.json_lines("ingest", str(corpus / "media" / "jpg" / "gps"))
    assert {r["status"] for r in reports} == {"preserved"}

    new_home = tmp_path / "rebuilt"
    key = str(cli.home / "keys" / "custodian.key")
    result = cli.json("rebuild-catalog", "--from", "vault", "--identity", key, "--home", str(new_home))
    assert result["items"] == 4 and result["problems"] == []
    rebuilt = Cli(new_home)
    assert {i["sha256"] for i in rebuilt.json("list")} == {r["sha256"] for r in reports}
    shown = rebuilt.json("show", reports[0]["id"])
    assert shown["replicas"][0]["backend"] == "vault" and shown["replicas"][0]["version_id"]
    out = tmp_path / "out.jpg"
    rebuilt("get", reports[0]["id"], "-o", str(out), "--identity", key)
    assert out.read_bytes() == Path(reports[0]["path"]).read_bytes()
    assert rebuilt.json("fixity", "--all")["ok"] == 8
