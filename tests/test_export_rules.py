"""What an export carries and withholds: the family's consent per purpose, overrides, withheld names,
witness identities, free-text provenance and restricted cases.

The secrets are planted in the catalog (a withheld name, a witness's identity
and description, an intake note) and then looked for in every byte the
records produce, and in a real bundle's every file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from archive.roles import Role
from archive.services.errors import Forbidden, Invalid, NotFound
from tests.conftest import Cli
from tests.test_links import add_incident, add_victim, open_archive

WITHHELD_NAME = "Khaled Secretname"
WITNESS_NAME = "Witness Realname"
WITNESS_PHONE = "+963 944 111 222"
WITNESS_DESCRIPTION = "lives behind the Zahraa bakery"
PROVENANCE_SOURCE = "Dr. Provenance Person"
PROVENANCE_NOTE = "handed over by Umm Intake"
CONSENTING_NAME = "Samir Consenting"
SECRETS = (WITHHELD_NAME, "Secretname", WITNESS_NAME, WITNESS_PHONE, WITNESS_DESCRIPTION, "Zahraa",
           PROVENANCE_SOURCE, PROVENANCE_NOTE, "Umm Intake")


def as_custodian(home: Path, fn: Any, *args: Any, **kwargs: Any) -> Any:
    archive = open_archive(home)
    try:
        return fn(archive, *args, role=Role.CUSTODIAN, **kwargs)
    finally:
        archive.close()


@pytest.fixture()
def world(cli: Cli, corpus: Path) -> dict[str, Any]:
    """Three photos of one incident: YES linked to a consenting victim, NO to one without consent, NAMED to a
    consenting victim whose name is withheld; a witness with an identity; an intake note on every arrival."""
    from archive.services.links import link
    from archive.services.sources import add_source, set_provenance
    from archive.services.victims import record_consent

    jpg = corpus / "media" / "jpg"
    reports = cli.json_lines("ingest", "--source", PROVENANCE_SOURCE, "--note", PROVENANCE_NOTE,
                             str(jpg / "Canon_40D.jpg"), str(jpg / "Nikon_D70.jpg"), str(jpg / "gps/DSCN0010.jpg"))
    names = {Path(r["path"]).name: r["id"] for r in reports}
    items = {"YES": names["Canon_40D.jpg"], "NO": names["Nikon_D70.jpg"], "NAMED": names["DSCN0010.jpg"]}
    incident = add_incident(cli.home, "IDL-7", narrative="a strike on the market")
    victims = {"YES": add_victim(cli.home, "V-yes", "IDL-7", name=CONSENTING_NAME),
               "NO": add_victim(cli.home, "V-no", "IDL-7", name="Omar Noconsent"),
               "NAMED": add_victim(cli.home, "V-named", "IDL-7", name=WITHHELD_NAME, name_withheld=True)}
    for ref in ("V-yes", "V-named"):
        for scope in ("un_bodies", "courts"):
            as_custodian(cli.home, record_consent, ref, scope, "yes", "2023-12-20", "the field team")
    as_custodian(cli.home, record_consent, "V-no", "un_bodies", "no", "2023-12-20", "the field team")
    for key, item in items.items():
        as_custodian(cli.home, link, item, "IDL-7")
        as_custodian(cli.home, link, item, victims[key], b_type="victim",
                     note=f"shows {WITHHELD_NAME}" if key == "NAMED" else "shows the victim")
    source = as_custodian(cli.home, add_source, {"ref": "w-17", "kind": "eyewitness", "alias": "Abu Omar",
                                                 "description": WITNESS_DESCRIPTION},
                          identity={"name": WITNESS_NAME, "phone": WITNESS_PHONE})["id"]
    as_custodian(cli.home, link, "w-17", items["YES"], a_type="source")
    as_custodian(cli.home, set_provenance, items["NO"], source="w-17", channel="messaging")
    return {"items": items, "victims": victims, "incident": incident, "source": source}


def select(home: Path, role: Role = Role.INVESTIGATOR, **request: Any) -> Any:
    from archive.exports.selection import ExportRequest, select_export

    archive = open_archive(home)
    try:
        return select_export(archive, ExportRequest(**request), role=role)
    finally:
        archive.close()


def records(home: Path, selection: Any) -> Any:
    from archive.exports import formats
    from archive.exports.records import build_records

    archive = open_archive(home)
    try:
        return build_records(archive, selection, placement={
            i: (formats.original_path(i, "image/jpeg"), 1) for i in selection.items})
    finally:
        archive.close()


def withheld(selection_or_records: Any) -> dict[tuple[str, str], int]:
    return {(w.what, w.reason): w.count for w in selection_or_records.withheld}


def assert_no_secret(data: bytes, where: str) -> None:
    for secret in SECRETS:
        for form in (secret.encode(), json.dumps(secret)[1:-1].encode(), secret.lower().encode()):
            assert form not in data, f"{secret!r} in {where}"


# --- consent ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("purpose", ["un", "court"])
def test_un_and_court_withhold_victims_without_consent_and_their_items(cli: Cli, world: dict[str, Any],
                                                                      purpose: str) -> None:
    items, victims = world["items"], world["victims"]
    chosen = select(cli.home, purpose=purpose, incidents=("IDL-7",))
    assert chosen.items == sorted([items["YES"], items["NAMED"]])
    assert chosen.victims == sorted([victims["YES"], victims["NAMED"]])
    assert chosen.incidents == [world["incident"]]
    assert chosen.sources == [world["source"]]  # linked to YES (its provenance names it for NO, withheld)
    scope = {"un": "un_bodies", "court": "courts"}[purpose]
    counts = withheld(chosen)
    assert counts[("victim", f"no_consent_{scope}")] == 1
    assert counts[("item", "linked_to_withheld_victim")] == 1
    assert counts[("link", "touches_withheld")] == 2  # NO's item-victim and item-incident links
    # No link of the selection touches the withheld victim or item.
    assert victims["NO"] not in json.dumps(chosen.links)
    assert items["NO"] not in chosen.record_ids()
    # The withheld victim, item and their links are in no record file, not even by id.
    made = records(cli.home, chosen)
    for name, data in made.files.items():
        assert victims["NO"].encode() not in data and items["NO"].encode() not in data, name
        assert b"Omar Noconsent" not in data, name
    # --item of the withheld item alone: nothing of it goes.
    alone = select(cli.home, purpose=purpose, items=(items["NO"],))
    assert (alone.items, alone.victims, alone.incidents, alone.sources, alone.links) == ([], [], [], [], [])
    assert withheld(alone)[("item", "linked_to_withheld_victim")] == 1


def test_partner_and_internal_withhold_nothing_for_consent(cli: Cli, world: dict[str, Any]) -> None:
    for purpose in ("partner", "internal"):
        chosen = select(cli.home, purpose=purpose, incidents=("IDL-7",))
        assert chosen.items == sorted(world["items"].values())
        assert chosen.victims == sorted(world["victims"].values())
        assert not chosen.withheld


def test_a_withdrawn_consent_withholds_again(cli: Cli, world: dict[str, Any]) -> None:
    from archive.services.victims import withdraw_consent

    as_custodian(cli.home, withdraw_consent, "V-yes", "un_bodies", "2024-01-05", "the field team")
    chosen = select(cli.home, purpose="un", incidents=("IDL-7",))
    assert chosen.items == [world["items"]["NAMED"]]
    assert chosen.victims == [world["victims"]["NAMED"]]
    # courts still consented.
    assert world["items"]["YES"] in select(cli.home, purpose="court", incidents=("IDL-7",)).items


def test_item_brings_its_incident_victims_and_sources(cli: Cli, world: dict[str, Any]) -> None:
    items = world["items"]
    chosen = select(cli.home, purpose="internal", items=(items["NO"],))
    assert chosen.items == [items["NO"]]
    assert chosen.incidents == [world["incident"]]
    assert chosen.victims == [world["victims"]["NO"]]
    assert chosen.sources == [world["source"]]  # through the arrival's source record
    assert len(chosen.links) == 2  # item-incident, item-victim
    assert set(chosen.record_ids()) == {world["incident"], world["victims"]["NO"], world["source"],
                                        *chosen.links, *chosen.attributions}


def test_search_selects_the_items_it_finds(cli: Cli, world: dict[str, Any]) -> None:
    from archive.services.record_search import Query

    chosen = select(cli.home, purpose="un", query=Query(governorate="idlib"))
    assert chosen.items == sorted([world["items"]["YES"], world["items"]["NAMED"]])


# --- overrides ---------------------------------------------------------------------------------------------------

def test_a_custodian_overrides_a_withheld_item_with_a_reason(cli: Cli, world: dict[str, Any]) -> None:
    items, victims = world["items"], world["victims"]
    base = {"purpose": "un", "incidents": ("IDL-7",)}
    with pytest.raises(Forbidden):
        select(cli.home, Role.INVESTIGATOR, **base, overrides=(items["NO"],), override_reason="the mechanism asked")
    with pytest.raises(Invalid, match="override_reason"):
        select(cli.home, Role.CUSTODIAN, **base, overrides=(items["NO"],))
    with pytest.raises(Invalid, match="not withheld"):
        select(cli.home, Role.CUSTODIAN, **base, overrides=(items["YES"],), override_reason="why not")
    with pytest.raises(Invalid, match="withholds nothing"):
        select(cli.home, Role.CUSTODIAN, purpose="internal", incidents=("IDL-7",), overrides=(items["NO"],),
               override_reason="why not")
    chosen = select(cli.home, Role.CUSTODIAN, **base, overrides=(items["NO"],),
                    override_reason="the mechanism asked for this footage")
    assert chosen.items == sorted(items.values())
    assert chosen.overridden == [items["NO"]]
    assert victims["NO"] not in chosen.victims  # the item goes, its victim still does not
    made = records(cli.home, chosen)
    record = next(r for r in json.loads(made.files["items.json"])["records"] if r["id"] == items["NO"])
    assert record["victims"] == [] and victims["NO"] not in json.dumps(record)
    assert ("item", "linked_to_withheld_victim") not in withheld(chosen)


def test_the_override_is_logged_in_the_export_started_event(cli: Cli, world: dict[str, Any], tmp_path: Path
                                                            ) -> None:
    from sqlmodel import Session

    from archive.catalog.events import Event
    from archive.exports.selection import ExportRequest
    from archive.exports.service import export_bundle

    items = world["items"]
    archive = open_archive(cli.home)
    try:
        result = export_bundle(archive, ExportRequest("un", incidents=("IDL-7",), overrides=(items["NO"],),
                                                      override_reason="the mechanism asked"),
                               role=Role.CUSTODIAN, out=tmp_path / "b.zip", plaintext=True)
        with Session(archive.engine) as session:
            started = session.get(Event, result.started_seq)
    finally:
        archive.close()
    assert started is not None and started.event_type == "dissemination"
    assert started.details["overrides"] == [items["NO"]]
    assert items["NO"] in started.details["items"]
    assert world["victims"]["NO"] not in started.details["records"]


# --- names, identities, provenance ------------------------------------------------------------------------------

def test_no_withheld_name_identity_or_provenance_text_in_any_record_file(cli: Cli, world: dict[str, Any]) -> None:
    from archive.custody.commit import commitment
    from archive.records.changes import record_commitment

    chosen = select(cli.home, purpose="internal", incidents=("IDL-7",))
    made = records(cli.home, chosen)
    assert set(made.files) == {f"{k}.json" for k in ("items", "incidents", "victims", "sources", "links",
                                                     "changes")} | {f"{k}.csv" for k in (
        "items", "incidents", "victims", "sources", "links")} | {"schema.json"}
    for name, data in made.files.items():
        assert_no_secret(data, name)
    assert_no_secret(json.dumps(made.salts).encode(), "salts")
    assert_no_secret(json.dumps(made.items).encode(), "items")
    # The consenting victim's name does go (the rules withhold only what they say).
    assert CONSENTING_NAME.encode() in made.files["victims.json"]
    victims = {r["ref"]: r for r in json.loads(made.files["victims.json"])["records"]}
    assert victims["V-named"]["name"] is None and victims["V-named"]["name_withheld"] is True
    assert victims["V-yes"]["consent"]["un_bodies"] == "yes"
    assert victims["V-yes"]["consent_given_on"]["un_bodies"] == "2023-12-20"
    rows = list(csv.DictReader(io.StringIO(made.files["victims.csv"].decode("utf-8"))))
    assert {r["ref"]: (r["family_consent"], r["consent_date"], r["name"]) for r in rows}["V-named"] == (
        "yes", "2023-12-20", "")
    sources = json.loads(made.files["sources.json"])["records"]
    assert sources == [{**sources[0], "alias": "Abu Omar", "description": None}]
    assert "identity" not in sources[0]
    # Every change: opened ones give their commitment from state and salt; withheld ones hold neither.
    changes = json.loads(made.files["changes.json"])["records"]
    reasons = {c["withheld"] for c in changes}
    assert {"name_withheld", "witness_identity", None} <= reasons
    for change in changes:
        salt = made.salts["records"].get(change["commitment"])
        if change["withheld"]:
            assert change["state"] is None and salt is None
        else:
            assert record_commitment(change["record_id"], salt, change["state"]) == change["commitment"]
        assert change["event_seq"] in made.change_events
    assert set(made.salts["records"]) == {c["commitment"] for c in changes if not c["withheld"]}
    # Items: exactly their salts, each opening the commitment of the bytes.
    assert set(made.salts["items"]) == set(chosen.items)
    for item in made.items:
        assert commitment(item["id"], made.salts["items"][item["id"]], item["sha256"]) == item["commitment"]
        assert isinstance(item["commitment_event"], int)
        for arrival in item["provenance"]:
            assert "source" in arrival and "note" not in arrival
    names = {r["id"]: [a["original_name"] for a in r["provenance"]] for r in made.items}
    assert names[world["items"]["NAMED"]] == [None] and names[world["items"]["YES"]] == ["Canon_40D.jpg"]
    counts = withheld(made)
    assert counts[("original file name", "original_name_of_withheld_person")] == 1
    assert counts[("victim name", "name_withheld")] == 1
    assert counts[("witness identity", "witness_identity")] == 1
    assert counts[("provenance text", "provenance_free_text")] == 3


def test_batch_changes_carry_their_inclusion_path(cli: Cli, world: dict[str, Any], tmp_path: Path) -> None:
    from sqlmodel import Session

    from archive.catalog.events import Event
    from archive.custody.entry import leaf_hash
    from archive.custody.verify import verify_inclusion
    from archive.records.changes import batch_root

    path = tmp_path / "victims.csv"
    path.write_text("ref,incident_ref,sex,civilian,date_documented\nB-1,IDL-7,male,true,2023-12-11\n"
                    "B-2,IDL-7,female,true,2023-12-11\nB-3,IDL-7,male,true,2023-12-11\n", encoding="utf-8")
    cli("import", "--victims", str(path))
    chosen = select(cli.home, purpose="internal", incidents=("IDL-7",))
    made = records(cli.home, chosen)
    batched = [c for c in json.loads(made.files["changes.json"])["records"] if c["batch_index"] is not None]
    assert len(batched) == 3
    commitments = [c["commitment"] for c in sorted(batched, key=lambda c: c["batch_index"])]
    root = bytes.fromhex(batch_root(commitments))
    seqs = {c["event_seq"] for c in batched}
    assert len(seqs) == 1 and seqs <= made.change_events
    for change in batched:  # RFC 9162 inclusion of the commitment's leaf in the root the batch event holds
        verify_inclusion(leaf_hash(bytes.fromhex(change["commitment"])), change["batch_index"], change["batch_size"],
                         [bytes.fromhex(h) for h in change["batch_path"]], root)
    archive = open_archive(cli.home)
    try:
        with Session(archive.engine) as session:
            event = session.get(Event, seqs.pop())
    finally:
        archive.close()
    assert event is not None and event.details["merkle_root"] == root.hex()


def test_no_secret_in_any_file_of_a_real_bundle(cli: Cli, world: dict[str, Any], tmp_path: Path) -> None:
    from archive.exports.selection import ExportRequest
    from archive.exports.service import export_bundle

    archive = open_archive(cli.home)
    try:
        export_bundle(archive, ExportRequest("court", incidents=("IDL-7",)), role=Role.INVESTIGATOR,
                      out=tmp_path / "b.zip", plaintext=True)
    finally:
        archive.close()
    with zipfile.ZipFile(tmp_path / "b.zip") as bundle:
        for name in bundle.namelist():
            data = bundle.read(name)
            if "/data/originals/" in name:
                continue  # the originals are bit for bit (EXIF is the photographer's)
            assert_no_secret(data, name)
            assert world["items"]["NO"].encode() not in data and world["victims"]["NO"].encode() not in data, name
        withheld_txt = next(bundle.read(n) for n in bundle.namelist() if n.endswith("/withheld.txt"))
        bundle.extractall(tmp_path / "open")
    assert b"2" in withheld_txt or b"1" in withheld_txt  # counts, and nothing named (checked above)
    # The bundled checker accepts these records: commitments, salts, batch paths, events named by changes.
    (bag,) = (tmp_path / "open").iterdir()
    checked = subprocess.run([sys.executable, str(bag / "verify.py"), str(bag), "--json"], capture_output=True,
                             text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- compartments ------------------------------------------------------------------------------------------------

def test_a_restricted_case_is_invisible_to_an_outsider(cli: Cli, world: dict[str, Any]) -> None:
    from archive.context import Archive
    from archive.exports.selection import ExportRequest, select_export
    from archive.services.cases import add_incident as case_incident
    from archive.services.cases import add_member, create_case
    from tests.test_compartments import add_user

    secret = add_incident(cli.home, "SECRET-1", governorate="idlib")
    from archive.services.links import link

    as_custodian(cli.home, link, world["items"]["YES"], "SECRET-1")
    outsider, member = add_user(cli.home, "outsider"), add_user(cli.home, "member")
    case = as_custodian(cli.home, create_case, "Operation Quiet Lantern")["id"]
    as_custodian(cli.home, case_incident, case, "SECRET-1")
    as_custodian(cli.home, add_member, case, member)

    def chosen(user: str, **request: Any) -> Any:
        archive = Archive.open(cli.home, user)
        try:
            return select_export(archive, ExportRequest("internal", **request), role=Role.INVESTIGATOR)
        finally:
            archive.close()

    with pytest.raises(NotFound) as hidden:
        chosen(outsider, incidents=("SECRET-1",))
    with pytest.raises(NotFound) as unknown:
        chosen(outsider, incidents=("NOPE-1",))
    assert str(hidden.value).replace("SECRET-1", "X") == str(unknown.value).replace("NOPE-1", "X")
    with pytest.raises(NotFound):
        chosen(outsider, items=(world["items"]["YES"],))  # linked to the hidden incident: hidden too
    seen = chosen(outsider, incidents=("IDL-7",))
    assert world["items"]["YES"] not in seen.items and secret not in seen.incidents
    assert not any(secret in r or world["items"]["YES"] in r for r in seen.record_ids())
    assert not seen.withheld  # nothing counts what the caller may not see
    inside = chosen(member, incidents=("SECRET-1",))
    assert inside.items == [world["items"]["YES"]] and secret in inside.incidents


# --- requests ----------------------------------------------------------------------------------------------------

def test_bad_requests(cli: Cli, world: dict[str, Any]) -> None:
    with pytest.raises(Invalid, match="purpose"):
        select(cli.home, purpose="press", incidents=("IDL-7",))
    with pytest.raises(Invalid, match="nothing selected"):
        select(cli.home, purpose="un")
    with pytest.raises(Forbidden):
        select(cli.home, Role.CONTRIBUTOR, purpose="un", incidents=("IDL-7",))
    with pytest.raises(Forbidden):
        select(cli.home, Role.AUDITOR, purpose="un", incidents=("IDL-7",))
    with pytest.raises(NotFound):
        select(cli.home, purpose="un", incidents=("NOPE-1",))
    with pytest.raises(NotFound):
        select(cli.home, purpose="un", items=("0" * 32,))


def test_item_facts(cli: Cli, world: dict[str, Any], corpus: Path) -> None:
    from archive.exports.records import item_facts

    archive = open_archive(cli.home)
    try:
        facts = item_facts(archive, [world["items"]["YES"]])
    finally:
        archive.close()
    data = (corpus / "media" / "jpg" / "Canon_40D.jpg").read_bytes()
    assert facts == {world["items"]["YES"]: {"size": len(data), "media_type": "image/jpeg",
                                             "original_name": "Canon_40D.jpg",
                                             "sha256": hashlib.sha256(data).hexdigest()}}
