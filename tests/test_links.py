"""Links between items, incidents, victims and sources; near-duplicates confirmed or rejected as links."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageOps
from sqlalchemy import func
from sqlmodel import Session, col, select

from archive.roles import Role
from tests.conftest import Cli

NOTE = "Relevance: the minaret of Maarat al-Numan seen at 00:41"


def open_archive(home: Path) -> Any:
    from archive.context import Archive

    return Archive.open(home, "tester")


def add_incident(home: Path, ref: str, **fields: Any) -> str:
    from archive.services.incidents import add_incident as add

    archive = open_archive(home)
    try:
        shown = add(archive, {"ref": ref, "type": "killing", "started_at": "2023-12-09", "governorate": "idlib",
                              "attribution": "syrian_regime", **fields}, role=Role.CUSTODIAN)
    finally:
        archive.close()
    return str(shown["id"])


def put_record(home: Path, kind: str, state: dict[str, Any]) -> str:
    """A victim or source written by the foundation's one write path (their services are other helpers')."""
    from archive.db import transaction
    from archive.records.changes import new_id
    from archive.records.store import KINDS, put

    archive = open_archive(home)
    try:
        keys = archive.runtime.keys.catalog()
        record_id = new_id(KINDS[kind].prefix)
        with transaction(archive.engine) as session:
            put(session, keys, archive.actor, kind, record_id, state, change="create")
    finally:
        archive.close()
    return record_id


def add_victim(home: Path, ref: str, incident_ref: str, **fields: Any) -> str:
    from archive.db import transaction
    from archive.records.common import find
    from archive.records.rules import victim_state
    from archive.records.tables import Incident
    from archive.records.vocab import Vocab

    archive = open_archive(home)
    try:
        with transaction(archive.engine) as session:
            incident = find(session, Incident, incident_ref, "incident")
            state = victim_state(Vocab.read(session), {"ref": ref, "incident_ref": incident_ref, "sex": "male",
                                                       "civilian": True, "date_documented": "2023-12-10",
                                                       **fields}, incident.id)
    finally:
        archive.close()
    return put_record(home, "victim", state)


def add_source(home: Path, ref: str, kind: str = "eyewitness") -> str:
    state = {"ref": ref, "kind": kind, "alias": "Abu Omar", "url": None, "channel": None, "posted_at": None,
             "description": None, "identity": None}
    return put_record(home, "source", state)


def ingest(cli: Cli, *paths: Path) -> dict[str, str]:
    reports = cli.json_lines("ingest", *map(str, paths))
    return {Path(r["path"]).name: r["id"] for r in reports}


def counts(home: Path) -> tuple[int, int, int]:
    """(links, record changes, custody events)."""
    from archive.catalog.events import Event
    from archive.records.tables import Link, RecordChange

    archive = open_archive(home)
    try:
        with Session(archive.engine) as session:
            return tuple(int(session.exec(select(func.count()).select_from(m)).one())  # type: ignore[return-value]
                         for m in (Link, RecordChange, Event))
    finally:
        archive.close()


def item_events(home: Path, item_id: str) -> list[Any]:
    from archive.catalog.events import Event

    archive = open_archive(home)
    try:
        with Session(archive.engine) as session:
            return list(session.exec(select(Event).where(Event.item_id == item_id).order_by(col(Event.seq))).all())
    finally:
        archive.close()


def all_events(home: Path) -> list[Any]:
    from archive.catalog.events import Event

    archive = open_archive(home)
    try:
        with Session(archive.engine) as session:
            return list(session.exec(select(Event)).all())
    finally:
        archive.close()


@pytest.fixture()
def photos(corpus: Path) -> list[Path]:
    media = corpus / "media" / "jpg"
    return [media / "gps/DSCN0010.jpg", media / "gps/DSCN0012.jpg", media / "Canon_40D.jpg"]


def test_link_item_incident_victim_source_with_history(cli: Cli, photos: list[Path]) -> None:
    ids = ingest(cli, *photos)
    photo = ids["DSCN0010.jpg"]
    add_incident(cli.home, "IDL-2023-001")
    add_victim(cli.home, "V-1", "IDL-2023-001", name="Ahmad")
    add_source(cli.home, "S-1")

    # The spec's form: an item (by prefix) and an incident; the certainty defaults to probable.
    linked = cli.json("link", photo[:10], "--incident", "IDL-2023-001", "--note", NOTE)
    assert linked["kind"] == "item_incident" and linked["certainty"] == "probable" and linked["changed"]
    assert linked["a"]["id"] == photo and linked["b"]["name"] == "IDL-2023-001" and linked["note"] == NOTE
    # Victim to incident, source to item (a source ref first), item to victim, source to incident.
    assert cli.json("link", "V-1", "--incident", "IDL-2023-001")["kind"] == "victim_incident"
    assert cli.json("link", "S-1", "--item", photo, "--certainty", "confirmed")["kind"] == "source_item"
    assert cli.json("link", photo, "--victim", "V-1", "--certainty", "possible")["kind"] == "item_victim"
    assert cli.json("link", "S-1", "--incident", "IDL-2023-001")["kind"] == "source_incident"
    # Either way round: an incident first and an item after is the same item-incident link.
    again = cli.json("link", "IDL-2023-001", "--item", photo, "--certainty", "confirmed", "--reason", "seen")
    assert again["id"] == linked["id"] and again["certainty"] == "confirmed" and again["note"] == NOTE
    unchanged = cli.json("link", photo, "--incident", "IDL-2023-001", "--certainty", "confirmed")
    assert unchanged["id"] == linked["id"] and not unchanged["changed"]

    links = cli.json("links", photo)["links"]
    assert sorted(link["kind"] for link in links) == ["item_incident", "item_victim", "source_item"]
    assert len(cli.json("links", "IDL-2023-001")["links"]) == 3

    # Unlink: marked inactive, kept, with its history; a second unlink is refused.
    gone = cli.json("unlink", photo, "--incident", "IDL-2023-001")
    assert not gone["active"] and gone["removed_at"]
    assert "item_incident" not in [link["kind"] for link in cli.json("links", photo)["links"]]
    kept = cli.json("links", photo, "--all")["links"]
    assert [link["active"] for link in kept if link["kind"] == "item_incident"] == [False]
    code, _, err = cli("unlink", linked["id"], expect=None)
    assert code != 0 and "unlinked already" in err
    history = cli.json("links", photo, "--history")["links"]
    changes = next(link for link in history if link["id"] == linked["id"])["history"]
    assert [c["change"] for c in changes] == ["link", "edit", "unlink"]
    assert changes[1]["before"]["certainty"] == "probable" and changes[1]["after"]["certainty"] == "confirmed"
    assert changes[1]["reason"] == "seen"
    # Relinking after an unlink makes a new link (the old one stays, inactive).
    fresh = cli.json("link", photo, "--incident", "IDL-2023-001")
    assert fresh["id"] != linked["id"] and fresh["certainty"] == "probable"

    # The item's custody timeline shows the links that name it; no event holds the note.
    shown = [e for e in item_events(cli.home, photo) if e.details.get("record_kind") == "link"]
    assert [e.details["change"] for e in shown] == ["link", "link", "link", "edit", "unlink", "link"]
    assert all(set(e.details) == {"record", "record_kind", "change", "commitment", "commitment_format"}
               for e in shown)
    for event in all_events(cli.home):
        assert "minaret" not in json.dumps(event.details) and "Abu Omar" not in json.dumps(event.details)

    # The custody log still verifies, with the link events carrying item ids.
    cli("log", "verify")


def test_note_never_in_the_database_bytes(cli: Cli, photos: list[Path]) -> None:
    photo = ingest(cli, photos[0])["DSCN0010.jpg"]
    add_incident(cli.home, "IDL-2")
    cli("link", photo, "--incident", "IDL-2", "--note", NOTE, "--reason", "the reason is sealed too")
    cli("link", photo, "--incident", "IDL-2", "--note", NOTE + " (and again)")
    raw = b"".join(p.read_bytes() for p in cli.home.rglob("*") if p.is_file())
    assert b"minaret" not in raw and "minaret".encode("utf-16-le") not in raw
    assert b"reason is sealed" not in raw


def test_bad_links_write_nothing(cli: Cli, photos: list[Path]) -> None:
    photo = ingest(cli, photos[0])["DSCN0010.jpg"]
    add_incident(cli.home, "IDL-3")
    victim = add_victim(cli.home, "V-3", "IDL-3")
    before = counts(cli.home)
    attempts = [
        ("link", photo, "--incident", "NO-SUCH-INCIDENT"),
        ("link", "ffffffffffff", "--incident", "IDL-3"),  # no such item
        ("link", photo, "--victim", "V-404"),
        ("link", photo, "--source", "S-404"),
        ("link", photo, "--item", photo),  # itself
        ("link", "V-3", "--victim", "V-3"),
        ("link", "IDL-3", "--incident", "IDL-3"),
        ("link", "V-3", "--source", "IDL-3"),  # IDL-3 is no source
        ("link", photo, "--incident", "IDL-3", "--certainty", "certain"),  # unknown certainty (click refuses)
        ("link", photo),  # nothing to link with
        ("link", photo, "--incident", "IDL-3", "--victim", "V-3"),  # two at once
        ("unlink", photo, "--incident", "IDL-3"),  # not linked
        ("unlink", "lnk-0000000000000000"),
    ]
    for args in attempts:
        code, _, err = cli(*args, expect=None)
        assert code != 0, args
        assert "internal error" not in err, (args, err)
    assert counts(cli.home) == before

    # The service refuses an unknown certainty, a merged victim, a pair no link joins.
    from archive.services.errors import Invalid
    from archive.services.links import link

    archive = open_archive(cli.home)
    try:
        with pytest.raises(Invalid, match="certainty"):
            link(archive, photo, "IDL-3", certainty="sure", role=Role.CUSTODIAN)
        with pytest.raises(Invalid, match="no link joins"):
            link(archive, "V-3", "V-3", b_type="victim", a_type="victim", role=Role.CUSTODIAN)
    finally:
        archive.close()
    merged_state = {**_state(cli.home, "victim", victim), "status": "merged", "merged_into": "vic-0123456789abcdef"}
    _put_state(cli.home, "victim", victim, merged_state)
    before = counts(cli.home)
    code, _, err = cli("link", "V-3", "--incident", "IDL-3", expect=None)
    assert code == 2 and "merged into vic-0123456789abcdef" in err
    assert counts(cli.home) == before


def _state(home: Path, kind: str, record_id: str) -> dict[str, Any]:
    from archive.records.store import KINDS, state_of

    archive = open_archive(home)
    try:
        with Session(archive.engine) as session:
            row = session.get(KINDS[kind].model, record_id)
            return state_of(archive.runtime.keys.catalog(), KINDS[kind], row)
    finally:
        archive.close()


def _put_state(home: Path, kind: str, record_id: str, state: dict[str, Any]) -> None:
    from archive.db import transaction
    from archive.records.store import put

    archive = open_archive(home)
    try:
        with transaction(archive.engine) as session:
            put(session, archive.runtime.keys.catalog(), archive.actor, kind, record_id, state, change="merge")
    finally:
        archive.close()


def test_a_merged_item_is_refused(cli: Cli, photos: list[Path]) -> None:
    from archive.db import transaction

    ids = ingest(cli, photos[0], photos[1])
    add_incident(cli.home, "IDL-4")
    archive = open_archive(cli.home)
    try:  # set up: the first item marked merged (as settlement does), its sealed row naming the holder
        from archive.catalog.items import Item
        from archive.catalog.secrets import item_secret, seal_row

        with transaction(archive.engine) as session:
            item = session.get(Item, ids["DSCN0010.jpg"])
            assert item is not None
            keys = archive.runtime.keys.catalog()
            secret = item_secret(keys, item)
            item.key_version, item.sealed = seal_row(keys, "items", item.id, {
                "sha256": secret.sha256, "size": secret.size, "salt": secret.salt,
                "merged_into": ids["DSCN0012.jpg"]})
            item.status = "merged"
            session.add(item)
    finally:
        archive.close()
    before = counts(cli.home)
    code, _, err = cli("link", ids["DSCN0010.jpg"], "--incident", "IDL-4", expect=None)
    assert code == 2 and f"merged into item {ids['DSCN0012.jpg']}" in err
    assert counts(cli.home) == before


def test_roles(cli: Cli, photos: list[Path]) -> None:
    from archive.services.errors import Forbidden
    from archive.services.links import link, links_of, list_candidates, unlink
    from archive.services.record_search import Query, search_records

    photo = ingest(cli, photos[0])["DSCN0010.jpg"]
    add_incident(cli.home, "IDL-5")
    archive = open_archive(cli.home)
    try:
        shown = link(archive, photo, "IDL-5", note=NOTE, role=Role.INVESTIGATOR)
        assert shown["note"] == NOTE  # investigators document: they read the relevance notes
        assert links_of(archive, "IDL-5", role=Role.INVESTIGATOR)["links"][0]["id"] == shown["id"]
        assert search_records(archive, Query(governorate="idlib"), role=Role.INVESTIGATOR)["items"]
        for call in (lambda: link(archive, photo, "IDL-5", role=Role.CONTRIBUTOR),
                     lambda: unlink(archive, photo, "IDL-5", role=Role.CONTRIBUTOR),
                     lambda: links_of(archive, photo, role=Role.CONTRIBUTOR),
                     lambda: list_candidates(archive, role=Role.CONTRIBUTOR),
                     lambda: search_records(archive, Query(), role=Role.CONTRIBUTOR)):
            with pytest.raises(Forbidden):
                call()
        unlink(archive, photo, "IDL-5", role=Role.INVESTIGATOR)
    finally:
        archive.close()


def _near_duplicates(cli: Cli, corpus: Path, tmp_path: Path) -> dict[str, str]:
    """A photo, its mirrored re-post (a candidate at ingest), and an unrelated photo."""
    photo = corpus / "media/jpg/gps/DSCN0010.jpg"
    mirrored = tmp_path / "reposted.png"
    with Image.open(photo) as im:
        ImageOps.mirror(im.resize((320, 240))).save(mirrored)
    return ingest(cli, photo, corpus / "media/jpg/gps/DSCN0012.jpg", mirrored)


def test_candidates_confirm_and_reject(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    ids = _near_duplicates(cli, corpus, tmp_path)
    original, repost = ids["DSCN0010.jpg"], ids["reposted.png"]
    pairs = cli.json("candidates", "list")
    assert [{p["item_id"], p["other_id"]} for p in pairs] == [{original, repost}]
    assert pairs[0]["state"] == "candidate"
    assert cli.json("candidates", "list", "--state", "confirmed") == []

    # Not a candidate pair: refused, nothing written.
    before = counts(cli.home)
    code, _, err = cli("candidates", "confirm", original, ids["DSCN0012.jpg"], expect=None)
    assert code == 2 and "no near-duplicate candidate" in err
    assert counts(cli.home) == before

    confirmed = cli.json("candidates", "confirm", repost[:12], original, "--note", NOTE)
    assert confirmed["kind"] == "same_footage" and confirmed["certainty"] == "confirmed" and confirmed["active"]
    assert {confirmed["a"]["id"], confirmed["b"]["id"]} == {original, repost}
    assert cli.json("candidates", "list", "--state", "confirmed")[0]["state"] == "confirmed"
    # Never a merge: both items stay, each listed; both timelines show the link.
    assert {i["id"] for i in cli.json("list")} >= {original, repost}
    for item in (original, repost):
        assert [e.details["change"] for e in item_events(cli.home, item)
                if e.details.get("record") == confirmed["id"]] == ["link"]
        assert [link["kind"] for link in cli.json("links", item)["links"]] == ["same_footage"]
    # Confirming again changes nothing.
    before = counts(cli.home)
    cli("candidates", "confirm", original, repost)
    assert counts(cli.home) == before

    # Rejected after all: the same-footage link is unlinked, the decision kept as a link.
    rejected = cli.json("candidates", "reject", original, repost)
    assert rejected["kind"] == "not_same_footage"
    assert [link["kind"] for link in cli.json("links", original)["links"]] == ["not_same_footage"]
    assert cli.json("candidates", "list", "--state", "rejected")[0]["state"] == "rejected"
    assert cli.json("candidates", "list", "--state", "candidate") == []
    changes = [e.details["change"] for e in item_events(cli.home, repost) if e.details.get("record_kind") == "link"]
    assert changes == ["link", "unlink", "link"]  # same footage linked, unlinked; not the same footage linked
    # By hand: unlinking the decision makes the pair a candidate again; linking as the same footage confirms it.
    cli("unlink", rejected["id"])
    assert cli.json("candidates", "list")[0]["state"] == "candidate"
    assert cli.json("link", original, "--item", repost)["kind"] == "same_footage"
    assert cli.json("candidates", "list")[0]["state"] == "confirmed"
    cli("log", "verify")
    raw = b"".join(p.read_bytes() for p in cli.home.rglob("*") if p.is_file())
    assert b"minaret" not in raw


def test_links_on_each_database(tmp_path: Path, catalog_url: str, corpus: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Link, relink, refusal and candidates on SQLite and PostgreSQL: one transaction each, nothing half-written."""
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    ids = _near_duplicates(cli, corpus, tmp_path)
    photo = ids["DSCN0010.jpg"]
    add_incident(cli.home, "PG-1")
    first = cli.json("link", photo, "--incident", "PG-1", "--note", NOTE)
    second = cli.json("link", photo, "--incident", "PG-1", "--certainty", "confirmed")
    assert first["id"] == second["id"] and second["note"] == NOTE
    before = counts(cli.home)
    for args in (("link", photo, "--incident", "PG-404"), ("link", photo, "--victim", "PG-1"),
                 ("candidates", "confirm", photo, ids["DSCN0012.jpg"])):
        code, _, err = cli(*args, expect=None)
        assert code == 2 and "internal error" not in err
    assert counts(cli.home) == before
    assert cli.json("candidates", "confirm", photo, ids["reposted.png"])["kind"] == "same_footage"
    found = cli.json("search", "--governorate", "idlib")
    assert [i["id"] for i in found["items"]] == [photo] and [i["ref"] for i in found["incidents"]] == ["PG-1"]
    cli("log", "verify")


def test_a_name_that_is_two_things_is_ambiguous(cli: Cli, photos: list[Path]) -> None:
    photo = ingest(cli, photos[0])["DSCN0010.jpg"]
    add_incident(cli.home, photo[:8])  # an incident whose ref is also a prefix of the item's id
    add_incident(cli.home, "IDL-6")
    before = counts(cli.home)
    code, _, err = cli("link", photo[:8], "--incident", "IDL-6", expect=None)
    assert code == 2 and "names incident and item" in err
    assert counts(cli.home) == before
    # Told what it is, or given the whole id, it resolves.
    assert cli.json("link", "IDL-6", "--item", photo[:8])["a"]["id"] == photo
    assert cli.json("link", photo, "--incident", photo[:8])["b"]["name"] == photo[:8]


def test_notes_and_reasons_about_a_withheld_victim_are_for_custodians(cli: Cli) -> None:
    """R1 F6: a `not_same_person` decision, a victim-incident link and a consent about a victim whose name is
    withheld carry free text that may spell the name; an investigator reads neither the note nor a reason
    (in `links_of`, `show_link` with history, `show_victim`'s consents), as in the victim's own history. The
    same texts about a victim not withheld, and everything for a custodian, stay readable."""
    from archive.context import Archive
    from archive.services.links import link, links_of, show_link
    from archive.services.victims import record_consent, reject_match, show_victim

    secret = "وسيم القاسم ابن علي"
    cli("incident", "add", "INC-1", "--type", "killing", "--started-at", "2023-12-09", "--governorate", "idlib",
        "--attribution", "syrian_regime")
    cli("incident", "add", "INC-2", "--type", "killing", "--started-at", "2023-12-10", "--governorate", "idlib",
        "--attribution", "syrian_regime")
    for ref, extra in (("V-1", ["--name-withheld", "true"]), ("V-2", []), ("V-3", [])):
        cli("victim", "add", ref, "--incident", "INC-1", "--name", "وسيم القاسم", "--sex", "male",
            "--civilian", "true", "--date-documented", "2023-12-10", *extra)
    archive = Archive.open(cli.home, "tester")
    custodian, inv = Role.CUSTODIAN, Role.INVESTIGATOR
    try:
        reject_match(archive, "V-1", "V-2", role=custodian, reason=f"not him: V-1 is {secret}")
        made = link(archive, "V-1", "INC-2", role=custodian, b_type="incident", note=f"{secret} seen there",
                    reason=f"his cousin {secret}")
        link(archive, "V-1", "INC-2", role=custodian, b_type="incident", certainty="confirmed",
             note=f"{secret} confirmed", reason="second look")
        record_consent(archive, "V-1", "courts", "yes", "2023-12-12", f"his mother, {secret}",
                       f"letter signed by {secret}", f"asked by {secret}", role=custodian)
        plain = link(archive, "V-3", "INC-2", role=custodian, b_type="incident", note="seen there",
                     reason="the witness")
        seen = [links_of(archive, "V-1", role=inv), links_of(archive, "V-2", role=inv),
                links_of(archive, "INC-2", role=inv, type_="incident"),
                show_link(archive, made["id"], role=inv, history=True),
                show_victim(archive, "V-1", role=inv, history=True)]
        assert "القاسم" not in json.dumps(seen, ensure_ascii=False)
        notes = {entry["kind"]: entry["note"] for entry in seen[0]["links"]}
        assert notes == {"not_same_person": "[withheld]", "victim_incident": "[withheld]"}
        assert {c["reason"] for c in seen[3]["history"]} == {"[withheld]"}
        assert {c["after"]["note"] for c in seen[3]["history"]} == {"[withheld]"}
        assert seen[4]["consents"][0]["note"] == seen[4]["consents"][0]["document"] == "[withheld]"
        assert seen[4]["consents"][0]["status"] == "yes"  # what investigators need stays: the answer, its date
        assert seen[4]["consent"]["courts"] == "yes"

        shown = show_link(archive, plain["id"], role=inv, history=True)  # about a victim not withheld: readable
        assert shown["note"] == "seen there" and shown["history"][0]["reason"] == "the witness"
        full = [links_of(archive, "V-1", role=custodian), show_link(archive, made["id"], role=custodian,
                                                                    history=True),
                show_victim(archive, "V-1", role=custodian)]
        assert {e["note"] for e in full[0]["links"]} == {f"not him: V-1 is {secret}", f"{secret} confirmed"}
        assert full[1]["history"][0]["reason"] == f"his cousin {secret}"
        assert full[2]["consents"][0]["note"] == f"asked by {secret}"
    finally:
        archive.close()
