"""Registered recipients and the bundle key.

Recipients: custodians only add and remove, each change a custody event (id, name, kind, key fingerprint),
a bad age key or a taken name refused, a removed recipient no longer resolves (and its row stays).
The bundle key: a key of its own (`<origin>/bundles`, neither the log's nor the receipts'), 0600, kept,
sealed on every site so a rebuild can recover it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archive.age import Identity
from archive.context import Archive
from archive.roles import Role
from archive.services.errors import Forbidden, Invalid, NotFound
from tests.conftest import Cli


def events_of(home: Path, event_type: str) -> list[Any]:
    from sqlmodel import Session, col, select

    from archive.catalog.events import Event

    archive = Archive.open(home)
    try:
        with Session(archive.engine) as session:
            return list(session.exec(select(Event).where(Event.event_type == event_type).order_by(col(Event.seq))))
    finally:
        archive.close()


@pytest.fixture()
def archive(cli: Cli) -> Iterator[Archive]:
    opened = Archive.open(cli.home)
    try:
        yield opened
    finally:
        opened.close()


def test_cli_add_list_remove_each_a_custody_event(cli: Cli) -> None:
    from archive.exports.formats import fingerprint

    key = str(Identity.generate().recipient)
    added = cli.json("recipients", "add", "IIIM Syria", "--age", key, "--kind", "un")
    assert added["id"].startswith("rcp-") and added["kind"] == "un" and added["fingerprint"] == fingerprint(key)
    assert [r["name"] for r in cli.json_lines("recipients", "list")] == ["IIIM Syria"]
    _, text, _ = cli("recipients", "list")
    assert "IIIM Syria" in text and fingerprint(key)[:16] in text
    [event] = events_of(cli.home, "recipient added")
    assert event.objects == [added["id"]] and event.item_id is None
    assert event.details == {"recipient": added["id"], "name": "IIIM Syria", "kind": "un",
                             "fingerprint": fingerprint(key)}
    cli("recipients", "remove", "IIIM Syria")
    [removed] = events_of(cli.home, "recipient removed")
    assert removed.objects == [added["id"]] and removed.details["fingerprint"] == fingerprint(key)
    assert cli.json_lines("recipients", "list") == []
    [kept] = cli.json_lines("recipients", "list", "--removed")
    assert kept["active"] is False and kept["removed_at"]
    # The name again, with a new key: the same row, active, and another event.
    other = str(Identity.generate().recipient)
    again = cli.json("recipients", "add", "IIIM Syria", "--age", other, "--kind", "un")
    assert again["id"] == added["id"] and again["fingerprint"] == fingerprint(other)
    assert len(events_of(cli.home, "recipient added")) == 2


@pytest.mark.parametrize("key", ["age1notakey", "AGE-SECRET-KEY-1QQQQ", "", "ssh-ed25519 AAAA", "age1" + "q" * 58])
def test_a_bad_age_key_is_refused(cli: Cli, key: str) -> None:
    code, _, err = cli("recipients", "add", "Court", "--age", key, "--kind", "court", expect=2)
    assert "age" in err and "SECRET" not in err
    assert events_of(cli.home, "recipient added") == []


def test_a_taken_name_unknown_names_and_bad_kinds(cli: Cli) -> None:
    key = str(Identity.generate().recipient)
    cli("recipients", "add", "Court", "--age", key, "--kind", "court")
    _, _, err = cli("recipients", "add", "Court", "--age", key, "--kind", "court", expect=2)
    assert "registered already" in err
    _, _, err = cli("recipients", "remove", "Nobody", expect=2)
    assert "no registered recipient" in err
    cli("recipients", "add", "X", "--age", key, "--kind", "internal", expect=2)  # click's choice


def test_only_custodians_change_recipients_and_removed_ones_do_not_resolve(archive: Archive) -> None:
    from archive.exports.recipients import add_recipient, list_recipients, remove_recipient, resolve_recipient

    key = str(Identity.generate().recipient)
    for role in (Role.INVESTIGATOR, Role.CONTRIBUTOR, Role.AUDITOR):
        with pytest.raises(Forbidden):
            add_recipient(archive, "Partner", key, "partner", role=role)
    add_recipient(archive, "Partner", key, "partner", role=Role.CUSTODIAN)
    with pytest.raises(Forbidden):
        remove_recipient(archive, "Partner", role=Role.INVESTIGATOR)
    for role in (Role.CONTRIBUTOR, Role.AUDITOR):
        with pytest.raises(Forbidden):
            list_recipients(archive, role=role)
        with pytest.raises(Forbidden):
            resolve_recipient(archive, "Partner", role=role)
    found = resolve_recipient(archive, "Partner", role=Role.INVESTIGATOR)
    assert found.age_recipient == key and found.kind == "partner"
    with pytest.raises(Invalid):
        add_recipient(archive, "bad\nname", key, "partner", role=Role.CUSTODIAN)
    with pytest.raises(Invalid):
        add_recipient(archive, "Other", key, "internal", role=Role.CUSTODIAN)
    remove_recipient(archive, "Partner", role=Role.CUSTODIAN)
    with pytest.raises(NotFound):
        resolve_recipient(archive, "Partner", role=Role.INVESTIGATOR)
    with pytest.raises(NotFound):
        remove_recipient(archive, "Partner", role=Role.CUSTODIAN)


# --- the bundle key ----------------------------------------------------------------------------------------

def test_the_bundle_key_is_its_own_kept_and_sealed_on_every_site(archive: Archive, cli: Cli) -> None:
    from archive.context import _parse_identities
    from archive.custody.bundle_key import SEALED_KEY, SITE_VKEY, bundle_signer, bundle_vkey, unseal_bundle_key
    from archive.custody.receipts import receipt_vkey
    from archive.custody.service import log_signer
    from archive.custody.verify import Verifier, open_note

    vkey = bundle_vkey(archive)
    origin = log_signer(archive).name
    assert vkey.split("+")[0] == origin + "/bundles"
    log_vkey = log_signer(archive).verifier.encode()
    keys = {vkey.split("+")[2], receipt_vkey(archive).split("+")[2], log_vkey.split("+")[2]}
    assert len(keys) == 3  # three different keys
    path = cli.home / "keys" / "bundle-signing.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert (cli.home / "keys" / "bundle.vkey").read_text() == vkey + "\n"
    note = bundle_signer(archive).sign_note("evidence-bundle/1\n")
    assert open_note(note, Verifier.decode(vkey)) == "evidence-bundle/1\n"
    again = Archive.open(cli.home)  # another process: the same key
    try:
        assert bundle_vkey(again) == vkey
    finally:
        again.close()
    identities = _parse_identities((cli.home / "keys" / "custodian.key").read_bytes())
    assert archive.backends
    for backend in archive.backends.values():
        with backend.open_reader(SEALED_KEY) as stream:
            assert b"PRIVATE+KEY" not in bytes(stream.read())
        with backend.open_reader(SITE_VKEY) as stream:
            assert bytes(stream.read()).decode() == vkey + "\n"
        recovered = unseal_bundle_key(backend, identities)
        assert recovered is not None and recovered.verifier.encode() == vkey


def test_a_rebuilt_catalog_signs_bundles_under_the_same_key(cli: Cli, tmp_path: Path) -> None:
    import shutil

    from archive.custody.bundle_key import bundle_vkey
    from archive.custody.service import checkpoint

    archive = Archive.open(cli.home)
    try:
        vkey = bundle_vkey(archive)  # made, and sealed on every site
        checkpoint(archive)  # the log (and its sealed signing key) on every site
    finally:
        archive.close()
    offline = tmp_path / "custodian.key"
    shutil.copy(cli.home / "keys" / "custodian.key", offline)
    shutil.rmtree(cli.home / "keys")  # the server and its keys are lost
    (cli.home / "catalog.db").unlink()
    rebuilt = tmp_path / "rebuilt"
    Cli(tmp_path / "nowhere").json("rebuild-catalog", "--from", "site-a", "--kind", "local", "--path",
                                   str(cli.home / "storage" / "site-a"), "--identity", str(offline),
                                   "--into", str(rebuilt))
    assert (rebuilt / "keys" / "bundle.vkey").read_text().strip() == vkey
    again = Archive.open(rebuilt)
    try:
        assert bundle_vkey(again) == vkey
    finally:
        again.close()
