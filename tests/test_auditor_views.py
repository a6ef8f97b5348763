"""Auditors: the catalog's non-personal fields (ids, states, copies, event numbers), nothing else, locked or not.

The promise attacked: whatever an auditor's item views return holds no hash,
size, name, provenance, metadata, place or note, and an auditor reads nothing
of the documentation model, no media and no similar search.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pytest
from sqlmodel import Session, col, select

from archive.roles import Role
from archive.services.errors import Forbidden
from tests.conftest import Cli
from tests.test_links import add_incident, add_source, add_victim, open_archive

AUD: Final = Role.AUDITOR
SOURCE = "Abu Khalil in Saraqib"
NOTE = "handed over at the Bab al-Hawa checkpoint"
LIST_FIELDS = {"id", "status", "received_day"}
SHOW_FIELDS = {"id", "status", "received_day", "replicas", "events"}


def auditor(home: Path) -> Any:
    from archive.context import Archive
    from archive.services.accounts import add_user

    archive = open_archive(home)
    try:
        user_id = str(add_user(archive, "the-auditor", AUD)["id"])
    finally:
        archive.close()
    return Archive.open(home, user_id)


@pytest.fixture()
def held(cli: Cli, corpus: Path) -> dict[str, Any]:
    """A GPS-tagged Nikon photo with a source and a note, its custodian view, and what must never show."""
    from archive.services.items import show_item

    photo = corpus / "media" / "jpg" / "gps" / "DSCN0010.jpg"
    item_id = cli.json_lines("ingest", "--source", SOURCE, "--note", NOTE, str(photo))[0]["id"]
    archive = open_archive(cli.home)
    try:
        full = show_item(archive, item_id)
    finally:
        archive.close()
    assert full.sha256 and full.metadata and full.provenance[0].source == SOURCE
    secrets = [full.sha256, SOURCE, "Saraqib", NOTE, "checkpoint", "DSCN0010", "NIKON", "COOLPIX", "tester",
               "image/jpeg", str(full.size), *(c.object for c in full.replicas),
               *(c.ciphertext_sha256 for c in full.replicas if c.ciphertext_sha256)]
    lat = (full.metadata or {}).get("latitude")
    if lat is not None:
        secrets.append(str(lat)[:6])
    return {"id": item_id, "full": full, "secrets": secrets}


def test_list_and_show_hold_only_non_personal_fields(cli: Cli, held: dict[str, Any]) -> None:
    from archive.catalog.events import Event
    from archive.services.items import list_items, show_item

    archive = auditor(cli.home)
    try:
        listed = [entry.as_dict() for entry in list_items(archive, role=AUD)]
        shown = show_item(archive, held["id"][:10], role=AUD).as_dict()  # a prefix works as for anyone
        with Session(archive.engine) as session:
            seqs = list(session.exec(select(Event.seq).where(Event.item_id == held["id"])
                                     .order_by(col(Event.seq))).all())
    finally:
        archive.close()
    assert [set(entry) for entry in listed] == [LIST_FIELDS]
    assert listed[0]["id"] == held["id"] and listed[0]["status"] == held["full"].status
    assert listed[0]["received_day"] == held["full"].created_at[:10]
    assert set(shown) == SHOW_FIELDS and shown["events"] == seqs and len(seqs) >= 3
    full = held["full"]
    copies = sorted((c.backend, c.state) for c in full.replicas + full.manifests + full.arrivals)
    assert sorted((r["backend"], r["state"]) for r in shown["replicas"]) == copies
    assert all(set(r) == {"backend", "role", "state", "verified_day"} for r in shown["replicas"])
    text = json.dumps([listed, shown])
    for secret in held["secrets"]:
        assert secret not in text, secret


def test_auditor_views_work_locked(cli: Cli, held: dict[str, Any], tmp_path: Path) -> None:
    """No key needed, none read: the same answer on a server that holds no key at all."""
    from archive.services.items import list_items, show_item

    archive = auditor(cli.home)
    try:
        unlocked = ([e.as_dict() for e in list_items(archive, role=AUD)],
                    show_item(archive, held["id"], role=AUD).as_dict())
    finally:
        archive.close()
    vault = tmp_path / "vault"
    vault.mkdir()
    for name in ("catalog.key", "access.key", "custodian.key"):
        shutil.move(cli.home / "keys" / name, vault / name)
    archive = auditor_again(cli.home)
    try:
        locked = ([e.as_dict() for e in list_items(archive, role=AUD)],
                  show_item(archive, held["id"], role=AUD).as_dict())
    finally:
        archive.close()
    assert locked == unlocked


def auditor_again(home: Path) -> Any:
    """The auditor's Archive once more (its account exists already: found by id, no key needed)."""
    from sqlalchemy import text

    from archive.context import Archive

    archive = open_archive(home)
    try:
        with archive.engine.connect() as conn:
            user_id = conn.execute(text("SELECT user_id FROM accounts WHERE role = 'auditor'")).scalar_one()
    finally:
        archive.close()
    return Archive.open(home, str(user_id))


def test_auditor_reads_no_documentation_media_or_similar(cli: Cli, held: dict[str, Any], tmp_path: Path,
                                                          corpus: Path) -> None:
    from archive.services import incidents, links, sources, stats, victims
    from archive.services.items import get_item, open_original_for
    from archive.services.record_search import Query, search_records
    from archive.similarity import similar_to_item, similar_to_upload

    add_incident(cli.home, "IDL-1")
    add_victim(cli.home, "V-1", "IDL-1")
    add_source(cli.home, "S-1")
    cli("link", held["id"], "--incident", "IDL-1")
    item = held["id"]
    photo = (corpus / "media" / "jpg" / "gps" / "DSCN0010.jpg").read_bytes()
    archive = auditor(cli.home)
    calls: list[Callable[[], Any]] = [
        lambda: incidents.list_incidents(archive, role=AUD),
        lambda: incidents.show_incident(archive, "IDL-1", role=AUD),
        lambda: victims.list_victims(archive, role=AUD),
        lambda: victims.show_victim(archive, "V-1", role=AUD),
        lambda: victims.list_matches(archive, role=AUD),
        lambda: sources.list_sources(archive, role=AUD),
        lambda: sources.show_source(archive, "S-1", role=AUD),
        lambda: links.links_of(archive, "IDL-1", role=AUD),
        lambda: links.list_candidates(archive, role=AUD),
        lambda: search_records(archive, Query(), role=AUD),
        lambda: stats.statistics(archive, role=AUD),
        lambda: similar_to_item(archive, item, role=AUD),
        lambda: similar_to_upload(archive, photo, role=AUD),
        lambda: open_original_for(archive, item, role=AUD),
        lambda: get_item(archive, item, tmp_path / "out.jpg", role=AUD),
        lambda: incidents.edit_incident(archive, "IDL-1", {"weapon": None}, role=AUD),
        lambda: links.link(archive, item, "S-1", role=AUD),
    ]
    try:
        for call in calls:
            with pytest.raises(Forbidden):
                call()
    finally:
        archive.close()
    assert not (tmp_path / "out.jpg").exists()


def test_contributors_read_no_item(cli: Cli, held: dict[str, Any]) -> None:
    from archive.context import Archive
    from archive.services.accounts import add_user
    from archive.services.items import list_items, show_item

    archive = open_archive(cli.home)
    try:
        user_id = str(add_user(archive, "field", Role.CONTRIBUTOR)["id"])
    finally:
        archive.close()
    contributor = Archive.open(cli.home, user_id)
    try:
        with pytest.raises(Forbidden):
            list_items(contributor, role=Role.CONTRIBUTOR)
        with pytest.raises(Forbidden):
            show_item(contributor, held["id"], role=Role.CONTRIBUTOR)
    finally:
        contributor.close()


def test_auditors_see_every_item_but_never_its_case(cli: Cli, held: dict[str, Any]) -> None:
    """Compartments hide documentation from investigators; an auditor checks the whole log against the
    catalog, so every item's id and state is listed (the custody log names them all anyway), and nothing
    tells which case, incident or person an item belongs to."""
    from archive.services.cases import add_incident as case_incident
    from archive.services.cases import create_case
    from archive.services.items import list_items, show_item

    add_incident(cli.home, "SECRET-1")
    cli("link", held["id"], "--incident", "SECRET-1")
    archive = open_archive(cli.home)
    try:
        case = create_case(archive, "Closed case", role=Role.CUSTODIAN)["id"]
        case_incident(archive, case, "SECRET-1", role=Role.CUSTODIAN)
    finally:
        archive.close()
    archive = auditor(cli.home)
    try:
        assert [e.id for e in list_items(archive, role=AUD)] == [held["id"]]
        text = json.dumps(show_item(archive, held["id"], role=AUD).as_dict())
    finally:
        archive.close()
    assert "SECRET" not in text and "case" not in text and "inc-" not in text
