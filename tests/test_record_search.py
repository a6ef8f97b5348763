"""`evidence search`: items and incidents by every option, combined with AND, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageOps

from archive.roles import Role
from tests.conftest import Cli
from tests.test_links import add_incident, add_source, add_victim, ingest, open_archive


@pytest.fixture()
def world(tmp_path: Path, catalog_url: str, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Five real photos (two GPS-tagged Nikon COOLPIX shots, a Canon, a Nikon D70, a mirrored re-post),
    three incidents with victims and sources, and links between them."""
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    jpg = corpus / "media" / "jpg"
    repost = tmp_path / "repost.png"
    with Image.open(jpg / "gps/DSCN0010.jpg") as im:
        ImageOps.mirror(im.resize((320, 240))).save(repost)
    files = [jpg / "gps/DSCN0010.jpg", jpg / "gps/DSCN0012.jpg", jpg / "Canon_40D.jpg", jpg / "Nikon_D70.jpg", repost]
    ids = ingest(cli, *files)
    home = cli.home
    add_incident(home, "IDL-1", latitude="35.93", longitude="36.63")
    add_incident(home, "ALP-1", type="attack_medical_facility", governorate="aleppo", started_at="2023-06-01T10:15",
                 attribution="russian_forces+syrian_regime")
    add_incident(home, "HMS-1", governorate="homs", started_at="2022-01-01", attribution="isis")
    add_victim(home, "V-child", "IDL-1", age=10)
    add_victim(home, "V-doctor", "ALP-1", professions=["medical"], civilian=True)
    add_victim(home, "V-detainee", "HMS-1", died_under_torture=True)
    add_source(home, "S-film", "filmer")
    add_source(home, "S-med", "medical")
    cli("link", ids["DSCN0010.jpg"], "--incident", "IDL-1")
    cli("link", ids["Canon_40D.jpg"], "--incident", "ALP-1")
    cli("link", ids["DSCN0012.jpg"], "--incident", "ALP-1", "--certainty", "possible")
    cli("link", "S-film", "--item", ids["Canon_40D.jpg"])
    cli("link", "S-med", "--incident", "ALP-1")
    # An unlinked link counts for nothing: the D70 photo was linked once, then unlinked.
    cli("link", ids["Nikon_D70.jpg"], "--incident", "HMS-1")
    cli("unlink", ids["Nikon_D70.jpg"], "--incident", "HMS-1")
    return {"cli": cli, "ids": ids, "files": files}


def found(cli: Cli, *args: str) -> tuple[set[str], set[str]]:
    result = cli.json("search", *args)
    return {i["id"] for i in result["items"]}, {i["ref"] for i in result["incidents"]}


def test_search_each_option_and_combinations(world: dict[str, Any]) -> None:
    cli, ids = world["cli"], world["ids"]
    p10, p12, canon, d70, repost = (ids[n] for n in ("DSCN0010.jpg", "DSCN0012.jpg", "Canon_40D.jpg",
                                                      "Nikon_D70.jpg", "repost.png"))
    # Incident options select incidents, and the items linked to them.
    assert found(cli, "--governorate", "idlib") == ({p10}, {"IDL-1"})
    assert found(cli, "--from", "2023-01-01", "--to", "2023-12-31") == ({p10, p12, canon}, {"IDL-1", "ALP-1"})
    assert found(cli, "--to", "2022-12-31") == (set(), {"HMS-1"})
    assert found(cli, "--party", "syrian_regime") == ({p10, p12, canon}, {"IDL-1", "ALP-1"})  # joint counts
    assert found(cli, "--party", "russian_forces") == ({p12, canon}, {"ALP-1"})
    assert found(cli, "--type", "attack_medical_facility") == ({p12, canon}, {"ALP-1"})
    assert found(cli, "--victim", "child") == ({p10}, {"IDL-1"})
    assert found(cli, "--victim", "medical") == ({p12, canon}, {"ALP-1"})
    assert found(cli, "--victim", "torture") == (set(), {"HMS-1"})
    assert found(cli, "--victim", "woman") == (set(), set())
    # Item options select items, and the incidents they are linked to.
    assert found(cli, "--unlinked") == ({d70, repost}, set())
    assert found(cli, "--linked") == ({p10, p12, canon}, {"IDL-1", "ALP-1"})
    assert found(cli, "--captured-from", "2008-10-01") == ({p10, p12}, {"IDL-1", "ALP-1"})
    assert found(cli, "--captured-to", "2008-04-01") == ({d70}, set())
    assert found(cli, "--device", "coolpix") == ({p10, p12}, {"IDL-1", "ALP-1"})
    assert found(cli, "--device", "NIKON") == ({p10, p12, d70}, {"IDL-1", "ALP-1"})
    sha = hashlib.sha256(world["files"][2].read_bytes()).hexdigest()
    assert found(cli, "--sha256", sha.upper()) == ({canon}, {"ALP-1"})
    assert found(cli, "--sha256", "0" * 64) == (set(), set())
    assert found(cli, "--similar-to", p10[:10]) == ({repost}, set())
    # A box and a source kind filter both sides directly.
    assert found(cli, "--box", "43.4,11.8,43.5,11.9") == ({p10, p12}, set())
    assert found(cli, "--box", "35,36,36.5,37") == (set(), {"IDL-1"})
    assert found(cli, "--source-kind", "filmer") == ({canon}, set())
    assert found(cli, "--source-kind", "medical") == (set(), {"ALP-1"})
    # AND across every option given.
    assert found(cli, "--device", "canon", "--governorate", "aleppo") == ({canon}, {"ALP-1"})
    assert found(cli, "--device", "canon", "--governorate", "idlib") == (set(), set())
    assert found(cli, "--governorate", "idlib", "--type", "attack_medical_facility") == (set(), set())
    assert found(cli, "--similar-to", p10, "--unlinked") == ({repost}, set())
    assert found(cli, "--linked", "--captured-from", "2008-10-01", "--party", "russian_forces") == ({p12}, {"ALP-1"})
    # No option: everything.
    assert found(cli) == ({p10, p12, canon, d70, repost}, {"IDL-1", "ALP-1", "HMS-1"})

    # The shapes: items name their incidents by ref; incidents count their items.
    result = cli.json("search", "--governorate", "aleppo")
    canon_row = next(i for i in result["items"] if i["id"] == canon)
    assert canon_row["incidents"] == ["ALP-1"] and canon_row["captured_day"] == "2008-05-30"
    assert result["incidents"][0]["items"] == 2 and result["query"] == {"governorate": "aleppo"}
    _, out, _ = cli("search", "--governorate", "aleppo")
    assert f"item {canon}" in out and "incident ALP-1" in out
    _, out, _ = cli("search", "--victim", "woman")
    assert "nothing matches" in out


def test_search_refuses_bad_options(cli: Cli) -> None:
    for args, why in ((("--governorate", "narnia"), "unknown value"), (("--from", "2023-02-30"), "not a real date"),
                      (("--party", "nobody"), "unknown value"), (("--type", "picnic"), "unknown value"),
                      (("--sha256", "abc"), "64 hexadecimal"), (("--box", "1,2,3"), "LAT1,LON1,LAT2,LON2"),
                      (("--source-kind", "rumour"), "source-kind"), (("--captured-to", "yesterday"), "not a date"),
                      (("--similar-to", "ffffffffffff"), "no item")):
        code, _, err = cli("search", *args, expect=None)
        assert code == 2 and why in err and "internal error" not in err, (args, err)


def test_search_roles(world: dict[str, Any]) -> None:
    from archive.services.errors import Forbidden
    from archive.services.record_search import Query, search_records

    archive = open_archive(world["cli"].home)
    try:
        shown = search_records(archive, Query(device="canon"), role=Role.INVESTIGATOR)
        assert [i["id"] for i in shown["items"]] == [world["ids"]["Canon_40D.jpg"]]
        with pytest.raises(Forbidden):
            search_records(archive, Query(device="canon"), role=Role.CONTRIBUTOR)
    finally:
        archive.close()
