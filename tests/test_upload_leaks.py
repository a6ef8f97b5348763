"""What a contributor's upload must not reveal, nor be able to do: attacked through the uploads service.

A receipt's `event <seq>` is the contributor's to compare: between two of its
uploads, a file the archive already held must cost as many custody events as
a new one (the archive being otherwise quiet). The `incident` hint is resolved
with the uploader's visibility: it never reaches a restricted incident the
uploader cannot see (the same failure as a ref that names nothing), and never
moves an item the archive already held into any case.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from archive.roles import Role
from tests.test_uploads import Home, photo


def _upload(home: Home, who: str, data: bytes, **metadata: str) -> Any:
    from archive.services import uploads

    archive, caller = home.archive(who), home.caller(who)
    upload_id, secret, _ = uploads.create_upload(archive, caller, len(data), {"filename": "f.bin", **metadata})
    uploads.append(archive, caller, upload_id, secret, 0, iter([data]))
    return uploads.complete(archive, caller, upload_id, secret)


def _gap(home: Home, data: bytes) -> int:
    """The receipts' seq gap a contributor sees: a fresh random file, then `data`."""
    before = _upload(home, "alice", os.urandom(4096))
    return int(_upload(home, "alice", data).event_seq) - int(before.event_seq)


def _events(home: Home, sql: str = "", *args: Any) -> list[tuple[str, str, dict[str, Any]]]:
    with sqlite3.connect(home.path / "catalog.db") as db:
        rows = db.execute("SELECT event_type, outcome, details FROM events " + sql + " ORDER BY seq", args).fetchall()
    return [(kind, outcome, json.loads(details)) for kind, outcome, details in rows]


def _log_verifies(home: Home) -> None:
    from click.testing import CliRunner

    from api.cli.main import cli

    done = CliRunner().invoke(cli, ["--home", str(home.path), "log", "verify", "--json"], catch_exceptions=False)
    assert done.exit_code == 0 and json.loads(done.stdout)["ok"] is True, done.stdout


@pytest.mark.parametrize("site_b", ["up", "down"])
def test_a_held_file_costs_as_many_events_as_a_new_one(tmp_path: Path, corpus: Path, site_b: str) -> None:
    home = Home(tmp_path / "home")
    held_photo, held_bytes = photo(corpus), os.urandom(6000)
    for data in (held_photo, held_bytes):
        _upload(home, "bob", data)  # another contributor sent these first
    if site_b == "down":  # as if its disk were unmounted: new files are degraded, duplicates keep their copy there
        (home.path / "storage" / "site-b" / ".evidence-root.json").unlink()
    new_photo = (corpus / "media" / "jpg" / "Nikon_D70.jpg").read_bytes()
    gaps = {
        "new photo": _gap(home, new_photo), "held photo": _gap(home, held_photo),
        "new bytes": _gap(home, os.urandom(6000)), "held bytes": _gap(home, held_bytes),
    }
    assert gaps["new photo"] == gaps["held photo"] and gaps["new bytes"] == gaps["held bytes"], gaps
    # The duplicate's events are what really happened to its bytes: its analysis (named as a later arrival's,
    # with no candidate ids) and its staged copies dropped (a deletion naming no object a reader would look for).
    repeat = [(kind, details) for kind, _, details in _events(home) if isinstance(details.get("arrival"), int)]
    assert {kind for kind, _ in repeat} >= {"format identification", "metadata extraction", "fingerprint"}
    assert not [details for kind, _, details in _events(home) if kind == "fingerprint" and "candidates" in details]
    deletions = _events(home, "WHERE event_type = 'deletion'")
    assert deletions and all(d["staged"] is True and d["backend"] for _, _, d in deletions)
    with sqlite3.connect(home.path / "catalog.db") as db:
        assert {objects for (objects,) in db.execute("SELECT objects FROM events WHERE event_type = 'deletion'")} \
            == {"[]"}
    if site_b == "up":
        _log_verifies(home)


@pytest.fixture()
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


class Compartment:
    """INC-OPEN (in no case) and INC-SECRET (in a restricted case whose only member is investigator "inside")."""

    def __init__(self, home: Home) -> None:
        from archive.context import Archive
        from archive.services.accounts import add_user, create_token
        from archive.services.cases import add_incident as put_in_case
        from archive.services.cases import add_member, create_case
        from archive.services.incidents import add_incident

        custodian = Archive.open(home.path, "tester")
        self.ids = {}
        for ref in ("INC-OPEN", "INC-SECRET"):
            self.ids[ref] = add_incident(custodian, {"ref": ref, "type": "killing", "started_at": "2023-12-09",
                                                     "governorate": "idlib", "attribution": "syrian_regime"},
                                         role=Role.CUSTODIAN)["id"]
        for name in ("inside", "outside"):
            add_user(custodian, name, Role.INVESTIGATOR)
            home.tokens[name] = create_token(custodian, name)["token"]
        case = create_case(custodian, "zebra", role=Role.CUSTODIAN)["id"]
        put_in_case(custodian, case, "INC-SECRET", role=Role.CUSTODIAN)
        add_member(custodian, case, "inside", role=Role.CUSTODIAN)
        add_member(custodian, case, "alice", role=Role.CUSTODIAN)  # a contributor: still sees no restricted incident
        self.custodian, self.home = custodian, home

    def links(self, item_id: str) -> list[tuple[str, str]]:
        from archive.services.links import links_of

        found = links_of(self.custodian, item_id, role=Role.CUSTODIAN, type_="item")["links"]
        return [(link["b"]["name"], link["created_by"]) for link in found]

    def visible_to(self, who: str, item_id: str) -> bool:
        from archive.services.errors import NotFound
        from archive.services.items import show_item

        try:
            show_item(self.home.archive(who), item_id, role=Role.INVESTIGATOR)
        except NotFound:
            return False
        return True

    def hint_failures(self, item_id: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in details.items() if k != "nonce"} for _, outcome, details in  # nonces differ
                _events(self.home, "WHERE item_id = ? AND event_type = 'validation'", item_id)
                if outcome == "failure" and details.get("check") == "incident link"]


def test_the_incident_hint_cannot_reach_a_restricted_incident(home: Home) -> None:
    world = Compartment(home)
    secret = world.ids["INC-SECRET"]
    unknown = _upload(home, "alice", os.urandom(3000), incident="NO-SUCH-REF")
    answers = {
        (who, hint): _upload(home, who, os.urandom(3000), incident=hint)
        for who in ("alice", "outside") for hint in ("INC-SECRET", secret)
    }
    for (who, hint), done in answers.items():
        assert world.links(done.item_id) == [], (who, hint)
        assert world.visible_to(who if who != "alice" else "outside", done.item_id), (who, hint)
        # Recorded exactly like a ref that names nothing: the uploader's own item did not vanish from its view.
        assert world.hint_failures(done.item_id) == world.hint_failures(unknown.item_id) != [], (who, hint)
    # Controls: a member's hint reaches its case, anyone's an open incident; each credited to its uploader.
    inside = _upload(home, "inside", os.urandom(3000), incident="INC-SECRET")
    assert world.links(inside.item_id) == [("INC-SECRET", home.caller("inside").user_id)]
    assert not world.visible_to("outside", inside.item_id)
    opened = _upload(home, "alice", os.urandom(3000), incident="INC-OPEN")
    assert world.links(opened.item_id) == [("INC-OPEN", home.caller("alice").user_id)]


def test_a_hint_never_moves_a_held_item_into_a_case(home: Home, corpus: Path) -> None:
    world = Compartment(home)
    data = photo(corpus)
    first = _upload(home, "bob", data)  # held, linked to nothing: every investigator sees it
    assert world.visible_to("outside", first.item_id)
    for hint in ("INC-SECRET", world.ids["INC-SECRET"], "INC-OPEN"):
        again = _upload(home, "alice", data, incident=hint)
        assert again.item_id == first.item_id
    assert world.links(first.item_id) == []
    assert world.visible_to("outside", first.item_id) and world.visible_to("inside", first.item_id)
    # The open incident's hint is kept for review (its id on the arrival's event); the secret one is unknown.
    results = [(f["result"], f.get("incident")) for f in world.hint_failures(first.item_id)]
    assert results == [("unknown", None), ("unknown", None), ("held", world.ids["INC-OPEN"])]
    # A held item in a case is not moved into another either, nor out of view of the case's member.
    secret_bytes = os.urandom(2000)
    done = _upload(home, "inside", secret_bytes, incident="INC-SECRET")
    again = _upload(home, "alice", secret_bytes, incident="INC-OPEN")
    assert again.item_id == done.item_id and world.links(done.item_id) == [
        ("INC-SECRET", home.caller("inside").user_id)]
    assert not world.visible_to("outside", done.item_id)
    # And the hint costs a held file's receipts the same seq gap as a new file's (a failure event, or the link).
    gaps = []
    for sent in ((corpus / "media" / "jpg" / "Nikon_D70.jpg").read_bytes(), data):
        before = _upload(home, "alice", os.urandom(3000))
        gaps.append(int(_upload(home, "alice", sent, incident="INC-OPEN").event_seq) - int(before.event_seq))
    assert gaps[0] == gaps[1], gaps


def test_no_event_of_an_arrival_can_be_guessed(tmp_path: Path, corpus: Path) -> None:
    """A contributor's proof holds the hashes of its ingestion event's neighbours (R4): every event an arrival
    writes, new or held, carries its own random nonce, so none can be rebuilt from what the contributor knows."""
    home = Home(tmp_path / "home")
    data = photo(corpus)
    first = _upload(home, "bob", data)
    again = _upload(home, "alice", data)  # held now: its deletions of staged copies are otherwise all guessable
    assert first.item_id == again.item_id
    written = _events(home, "WHERE item_id = ?", first.item_id)
    assert {kind for kind, _, _ in written} >= {"deletion", "ingestion", "message digest calculation"}
    nonces = [details.get("nonce") for _, _, details in written]
    assert all(isinstance(n, str) and len(n) == 32 for n in nonces), written
    assert len(set(nonces)) == len(nonces)
    _log_verifies(home)
