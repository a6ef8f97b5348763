"""The journal of record changes on every site: records come back with `rebuild-catalog`, checked against the log.

Uses and attacks: incidents and victims written, the catalog lost, rebuilt from
one site with the same records, states and history; a site down while records
change catches up; a planted journal object (well formed, encrypted to the
public recipient) is rejected; an altered one does not open; a removed one is
reported as missing changes; journal object names say nothing, and the
victims' names are nowhere in the site's bytes; a vocabulary comes back only
if the site's log vouches for it (a planted one is refused, a database edit of
one is caught by `log verify`); the text report names rejected records.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli

NAME = "Hamza Ali al-Khatib"
NARRATIVE = "Shelling hit the bakery queue in the morning"


def _incident(cli: Cli, ref: str, *extra: str) -> Any:
    return cli.json("incident", "add", ref, "--type", "killing", "--started-at", "2023-12-09T14:30",
                    "--governorate", "idlib", "--attribution", "syrian_regime", "--narrative", NARRATIVE, *extra)


def victim_state(incident_id: str, ref: str, name: str = NAME, **extra: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"ref": ref, "incident_id": incident_id, "name_withheld": False, "sex": "male",
                             "civilian": True, "died_under_torture": False, "governorate_of_death": "idlib",
                             "date_of_death": "2023-12-09", "date_documented": "2023-12-10", "status": "active",
                             "merged_into": None, "name": name, "age": 13, "age_group": None,
                             "governorate_of_origin": "hama", "professions": []}
    state.update(extra)
    return state


def put_victims(home: Path, incident_id: str, states: list[dict[str, Any]], *, batch: bool = False) -> list[str]:
    """Victims written through the record store (one change each, or one import batch)."""
    from archive.context import Archive
    from archive.db import transaction
    from archive.records.changes import Change, new_id, record_batch
    from archive.records.store import KINDS, apply, put

    archive = Archive.open(home)
    try:
        keys = archive.runtime.keys.catalog()
        ids = [new_id("vic") for _ in states]
        with transaction(archive.engine) as session:
            if batch:
                for record_id, state in zip(ids, states, strict=True):
                    apply(session, keys, KINDS["victim"], record_id, state, at="", actor=archive.actor)
                record_batch(session, keys, archive.actor,
                             [Change(i, "victim", "import", s) for i, s in zip(ids, states, strict=True)],
                             what="victims")
                # The rows' stamps are the batch event's time, as an import writes them.
                from sqlmodel import select

                from archive.records.tables import RecordChange, Victim

                at = session.exec(select(RecordChange.at).where(RecordChange.record_id == ids[0])).one()
                for record_id in ids:
                    row = session.get(Victim, record_id)
                    assert row is not None
                    row.created_at = row.updated_at = at
                    session.add(row)
            else:
                for record_id, state in zip(ids, states, strict=True):
                    put(session, keys, archive.actor, "victim", record_id, state, change="create")
        return ids
    finally:
        archive.close()


def edit_victim(home: Path, record_id: str, **fields: Any) -> None:
    from archive.context import Archive
    from archive.db import transaction
    from archive.records.store import KINDS, put, state_of
    from archive.records.tables import Victim

    archive = Archive.open(home)
    try:
        keys = archive.runtime.keys.catalog()
        with transaction(archive.engine) as session:
            row = session.get(Victim, record_id)
            state = {**state_of(keys, KINDS["victim"], row), **fields}
            put(session, keys, archive.actor, "victim", record_id, state, change="edit", reason="corrected")
    finally:
        archive.close()


def snapshot(home: Path) -> dict[str, Any]:
    """Every record's whole state and every change (record, change, commitment, at, by, state), by id."""
    from sqlmodel import Session, col, select

    from archive.context import Archive
    from archive.records.changes import opened
    from archive.records.store import KINDS, state_of
    from archive.records.tables import RecordChange

    archive = Archive.open(home)
    try:
        keys = archive.runtime.keys.catalog()
        with Session(archive.engine) as session:
            rows: dict[str, list[Any]] = {kind.name: list(session.exec(select(kind.model))) for kind in KINDS.values()}
            states = {kind.name: {row.id: state_of(keys, kind, row) for row in rows[kind.name]}
                      for kind in KINDS.values()}
            changes = [(c.record_id, c.change, c.commitment, c.at, c.by, c.batch_index, opened(keys, c))
                       for c in session.exec(select(RecordChange).order_by(col(RecordChange.id)))]
            stamps = {kind.name: {row.id: {k: v for k, v in row.model_dump().items()
                                           if k in ("created_at", "updated_at", "at", "by", "created_by")}
                                  for row in rows[kind.name]} for kind in KINDS.values()}
        return {"states": states, "changes": changes, "stamps": stamps}
    finally:
        archive.close()


def rebuild(cli: Cli, tmp_path: Path, site: str = "site-a", name: str = "rebuilt", expect: int = 0) -> Any:
    key = tmp_path / f"custodian-{name}.key"
    if not key.exists():
        shutil.copy(cli.home / "keys" / "custodian.key", key)
    vkey = tmp_path / "log.vkey"
    if not vkey.exists():
        vkey.write_text((cli.home / "keys" / "log.vkey").read_text())
    return Cli(tmp_path / "nowhere").json("rebuild-catalog", "--from", site, "--kind", "local", "--path",
                                          str(cli.home / "storage" / site), "--identity", str(key),
                                          "--into", str(tmp_path / name), "--vkey", str(vkey), expect=expect)


def journal_objects(cli: Cli, site: str = "site-a") -> list[Path]:
    root = cli.home / "storage" / site
    return sorted(p for p in (root / "j").rglob("*") if p.is_file()) if (root / "j").exists() else []


def journal_changes(cli: Cli, site: str = "site-a") -> list[dict[str, Any]]:
    from archive.age import Identity
    from archive.records.journal import open_journal

    custodian = Identity.read(cli.home / "keys" / "custodian.key")
    return [c for p in journal_objects(cli, site) for c in open_journal(p.read_bytes(), custodian)["changes"]]


def _history(cli: Cli) -> tuple[str, list[str]]:
    incident = _incident(cli, "INC-1", "--neighbourhood", "al-Qusour")
    cli.json("incident", "attribute", "INC-1", "russian_forces", "--reason", "flight logs")
    ids = put_victims(cli.home, incident["id"], [victim_state(incident["id"], "V-1"),
                                                 victim_state(incident["id"], "V-2", name="Mariam Yusuf",
                                                              sex="female", age=30)])
    edit_victim(cli.home, ids[0], governorate_of_origin="homs")
    return incident["id"], ids


def test_records_rebuilt_from_a_site_with_their_history(cli: Cli, tmp_path: Path) -> None:
    _history(cli)
    incident_id = cli.json("incident", "show", "INC-1")["id"]
    batch = put_victims(cli.home, incident_id, [victim_state(incident_id, f"B-{i}", name=f"Person {i}")
                                                for i in range(30)], batch=True)
    # Each CLI command ends with a checkpoint, which publishes its changes; the rest go now, the batch whole.
    checkpoint = cli.json("log", "checkpoint")
    journal = checkpoint["mirror"]["site-a"]["journal"]
    assert journal["changes"] == 2 + 1 + 30 and journal["objects"] == 1
    assert checkpoint["mirror"]["site-b"]["journal"]["objects"] == 1
    published = journal_changes(cli)
    assert len(published) == 37 and sorted(c["id"] for c in published) == list(range(1, 38))
    objects = len(journal_objects(cli))
    before = snapshot(cli.home)
    cli("log", "verify")
    # Nothing new: a second checkpoint (or the worker's mirror) writes no journal object.
    cli.json("log", "checkpoint")
    assert len(journal_objects(cli)) == objects
    (cli.home / "catalog.db").unlink()

    report = rebuild(cli, tmp_path)
    assert report["records"] == 1 + 2 + 2 + 30 and report["record_changes"] == 37, report
    assert report["rejected"] == [] and report["journal_objects"] == objects
    after = snapshot(tmp_path / "rebuilt")
    assert (after["states"], after["changes"]) == (before["states"], before["changes"])
    # When and by whom: from the changes (`put` stamps a row a moment before its event's time).
    assert after["stamps"].keys() == before["stamps"].keys()
    for kind, rows in after["stamps"].items():
        for record_id, stamps in rows.items():
            assert all(v[:19] == before["stamps"][kind][record_id][k][:19] for k, v in stamps.items()
                       if k.endswith("_at") or k == "at"), (kind, record_id)
    rebuilt = Cli(tmp_path / "rebuilt")
    shown = rebuilt.json("incident", "show", "INC-1", "--history")
    assert shown["attribution"] == "russian_forces"
    rebuilt("log", "verify", "--vkey", str(tmp_path / "log.vkey"))
    # The rebuilt archive does not publish again what the site already holds, and goes on journaling.
    rebuilt.json("log", "checkpoint")
    assert len(journal_objects(cli)) == objects
    edit_victim(tmp_path / "rebuilt", batch[0], civilian=False)
    assert rebuilt.json("log", "checkpoint")["mirror"]["site-a"]["journal"]["changes"] == 1
    again = rebuild(cli, tmp_path, name="again")
    assert again["record_changes"] == 38 and again["rejected"] == []
    assert snapshot(tmp_path / "again")["states"] == snapshot(tmp_path / "rebuilt")["states"]


def _vocab_load(cli: Cli, tmp_path: Path, terms: dict[str, list[dict[str, Any]]]) -> None:
    """`vocab load` a file, after the default set is in the table (as the first use of records leaves it)."""
    from archive.context import Archive
    from archive.db import transaction
    from archive.records.vocab import ensure_default

    archive = Archive.open(cli.home)
    try:
        with transaction(archive.engine) as session:
            ensure_default(session)
    finally:
        archive.close()
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"format": "evidence-vocab/1", "vocabularies": terms}), encoding="utf-8")
    cli("vocab", "load", str(path))


def _terms(home: Path, key: str) -> list[Any]:
    from sqlmodel import Session, select

    from archive.context import Archive
    from archive.records.tables import VocabTerm

    archive = Archive.open(home)
    try:
        with Session(archive.engine) as session:
            return list(session.exec(select(VocabTerm).where(VocabTerm.key == key)).all())
    finally:
        archive.close()


WAGNER = {"parties": [{"key": "wagner", "label": "Wagner Group", "group": "main", "former_names": ["PMC Wagner"]}]}


def test_a_custom_vocabulary_survives(cli: Cli, tmp_path: Path) -> None:
    _vocab_load(cli, tmp_path, WAGNER)  # a custody event carrying the digest of the whole table
    cli.json("incident", "add", "INC-W", "--type", "killing", "--started-at", "2023-01-01", "--governorate", "idlib",
             "--attribution", "wagner")
    cli.json("log", "checkpoint")
    cli("log", "verify")
    (cli.home / "catalog.db").unlink()
    report = rebuild(cli, tmp_path)
    assert report["records"] == 2 and report["rejected"] == [] and report["vocab_checked"] is True
    [term] = _terms(tmp_path / "rebuilt", "wagner")
    assert (term.group, term.former_names) == ("main", ["PMC Wagner"])
    Cli(tmp_path / "rebuilt")("log", "verify", "--vkey", str(tmp_path / "log.vkey"))


def test_a_vocabulary_only_the_log_vouches_for(cli: Cli, tmp_path: Path) -> None:
    """Attacks: a party moved to another group in the database (statistics by party follow it); a storage
    site writer plants a later vocabulary that makes every killing a facility attack; the rebuild into a new
    log writes the load's event again, so the rebuilt archive verifies."""
    from archive.records.vocab import parse

    _vocab_load(cli, tmp_path, WAGNER)
    _incident(cli, "INC-1")
    cli.json("log", "checkpoint")
    from tests.test_records_verify import _sql, _verify

    _sql(cli.home, 'UPDATE vocab_terms SET "group" = :g WHERE vocabulary = :v AND key = :k', g="other",
         v="parties", k="syrian_regime")
    code, err, report = _verify(cli)
    assert code == 1 and "vocabulary vocab_terms: the vocabularies are not the ones the custody log's latest" in err
    _sql(cli.home, 'UPDATE vocab_terms SET "group" = :g WHERE vocabulary = :v AND key = :k', g="main",
         v="parties", k="syrian_regime")
    assert _verify(cli)[0] == 0

    forged = json.loads((Path(__file__).parents[1] / "archive" / "records" / "vocab_syria.json").read_text())
    for term in forged["vocabularies"]["incident_types"]:
        if term["key"] == "killing":
            term["group"] = "facility"
    forged["vocabularies"]["parties"] += WAGNER["parties"]
    parse(forged)
    _plant(cli, {"format": "evidence-journal/1", "published_at": "9999-01-01", "changes": [], "vocab": forged})
    before = snapshot(cli.home)
    site = cli.home / "storage" / "site-a"
    (site / "log" / "signing-key.age").unlink()  # into a new log: the load's event is written again
    report = Cli(tmp_path / "nowhere").json("rebuild-catalog", "--from", "site-a", "--kind", "local", "--path",
                                            str(site), "--identity", str(cli.home / "keys" / "custodian.key"),
                                            "--into", str(tmp_path / "new-log"), expect=1)
    assert any("forged" in p.get("problem", "") for p in report["problems"] if "vocab" in p), report["problems"]
    assert report["vocab_checked"] is True
    [killing] = _terms(tmp_path / "new-log", "killing")
    assert killing.group != "facility"  # the genuine vocabulary, not the planted one
    assert _terms(tmp_path / "new-log", "wagner")
    assert snapshot(tmp_path / "new-log")["states"] == before["states"]
    Cli(tmp_path / "new-log")("log", "verify")


def test_an_unvouched_vocabulary_is_not_loaded(cli: Cli, tmp_path: Path) -> None:
    """The log records no load: only the default set may come back; a planted other one is refused."""
    _incident(cli, "INC-1")
    cli.json("log", "checkpoint")
    forged = json.loads((Path(__file__).parents[1] / "archive" / "records" / "vocab_syria.json").read_text())
    forged["vocabularies"]["parties"][0]["former_names"] = ["a name planted"]
    _plant(cli, {"format": "evidence-journal/1", "published_at": "9999-01-01", "changes": [], "vocab": forged})
    (cli.home / "catalog.db").unlink()
    report = rebuild(cli, tmp_path, expect=1)
    assert any("forged" in p.get("problem", "") for p in report["problems"] if "vocab" in p), report["problems"]
    assert report["vocab_checked"] is True and report["records"] == 2
    key = forged["vocabularies"]["parties"][0]["key"]
    [term] = _terms(tmp_path / "rebuilt", key)
    assert "a name planted" not in term.former_names
    Cli(tmp_path / "rebuilt")("log", "verify", "--vkey", str(tmp_path / "log.vkey"))


def test_a_site_down_catches_up(cli: Cli, tmp_path: Path) -> None:
    site_b = cli.home / "storage" / "site-b"
    marker = site_b / ".evidence-root.json"
    held = tmp_path / "marker"
    shutil.move(marker, held)  # the disk is unplugged: writes refuse
    incident_id, _ = _history(cli)
    result = cli.json("log", "checkpoint")
    assert result["mirror"]["site-b"]["error"] and "journal" not in result["mirror"]["site-b"]
    assert result["mirror"]["site-a"]["journal"]["changes"] == 3  # the CLI commands' checkpoints sent 4
    assert len(journal_changes(cli)) == 7 and journal_objects(cli, "site-b") == []
    shutil.move(held, marker)
    result = cli.json("log", "checkpoint")
    assert result["mirror"]["site-b"]["journal"]["changes"] == 7
    assert "journal" not in result["mirror"]["site-a"]  # nothing new for it
    (cli.home / "catalog.db").unlink()
    report = rebuild(cli, tmp_path, site="site-b")
    assert report["records"] == 5 and report["record_changes"] == 7 and report["rejected"] == []


def _plant(cli: Cli, document: dict[str, Any], site: str = "site-a") -> Path:
    """A journal object as anyone holding the archive's public recipient can write one."""
    from archive.records.journal import journal_name, seal_journal

    recipient = (cli.home / "keys" / "custodian.pub").read_text().strip()
    path = cli.home / "storage" / site / journal_name()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(seal_journal(document, [recipient]))
    return path


def _entry(record_id: str, state: dict[str, Any], seq: int, kind: str = "victim", change: str = "create",
           at: str = "2024-01-01T00:00:00.000000Z", by: str = "u-x", salt: str = "00" * 32) -> dict[str, Any]:
    from archive.records.changes import record_commitment

    return {"id": 1, "record_id": record_id, "record_kind": kind, "change": change, "at": at, "by": by,
            "commitment": record_commitment(record_id, salt, state), "event_seq": seq, "batch_index": None,
            "state": state, "salt": salt, "reason": None}


def test_planted_altered_and_removed_journal_objects(cli: Cli, tmp_path: Path) -> None:
    incident_id, ids = _history(cli)
    cli.json("log", "checkpoint")
    from archive.age import Identity
    from archive.records.journal import open_journal

    custodian = Identity.read(cli.home / "keys" / "custodian.key")
    [genuine] = [p for p in journal_objects(cli)
                 if any(c["record_id"] == ids[0] for c in open_journal(p.read_bytes(), custodian)["changes"])]
    # 1. A planted object: a new victim, and a "correction" of a genuine one claiming a genuine event.
    from archive.context import Archive

    archive = Archive.open(cli.home)
    try:
        from sqlmodel import Session, select

        from archive.catalog.events import Event

        with Session(archive.engine) as session:
            edit = session.exec(select(Event).where(Event.event_type == "metadata modification")).all()[-1]
            seq, at, by = edit.seq, edit.occurred_at, edit.actor
    finally:
        archive.close()
    fake = victim_state(incident_id, "V-FAKE", name="Nobody", civilian=False)
    forged_edit = victim_state(incident_id, "V-1", civilian=False)
    _plant(cli, {"format": "evidence-journal/1", "published_at": "2030-01-01", "vocab": None, "changes": [
        _entry("vic-00000000000000aa", fake, 99999),
        _entry(ids[0], forged_edit, seq, change="edit", at=at, by=by),
    ]})
    # 2. A copy of the genuine object, with one byte changed.
    altered = bytearray(genuine.read_bytes())
    altered[-20] ^= 0x01
    altered_path = cli.home / "storage" / "site-a" / "j" / "ff" / ("f" * 32)
    altered_path.parent.mkdir(parents=True, exist_ok=True)
    altered_path.write_bytes(bytes(altered))
    before = snapshot(cli.home)
    (cli.home / "catalog.db").unlink()
    report = rebuild(cli, tmp_path, expect=1)  # rejections are reported, and make the exit status 1
    rejected = {(r["record"], r["problem"].split(":")[0]) for r in report["rejected"]}
    assert ("vic-00000000000000aa", "not recorded by the log") in rejected
    assert any(record == ids[0] and why.startswith("forged") for record, why in rejected), rejected
    assert any("unreadable journal object" in p.get("problem", "") for p in report["problems"])
    after = snapshot(tmp_path / "rebuilt")
    assert after["states"] == before["states"]  # nothing planted entered; the genuine object counts
    Cli(tmp_path / "rebuilt")("log", "verify", "--vkey", str(tmp_path / "log.vkey"))

    # 3. The genuine object removed: every change the log records is reported missing, and nothing is restored.
    genuine.unlink()
    report = rebuild(cli, tmp_path, name="without", expect=1)
    missing = [p for p in report["problems"] if "journal does not hold it" in p.get("problem", "")]
    assert len(missing) == 3 and any(ids[0] in p["problem"] for p in missing)
    assert report["records"] == 3  # the incident and its attributions, from the CLI commands' objects


def test_journal_names_and_bytes_reveal_nothing(cli: Cli, tmp_path: Path) -> None:
    incident_id, ids = _history(cli)
    cli.json("log", "checkpoint")
    edit_victim(cli.home, ids[1], age=31)
    cli.json("log", "checkpoint")
    objects = journal_objects(cli)
    assert len(objects) == 4  # one per checkpoint that had changes: two CLI commands and two checkpoints
    root = cli.home / "storage" / "site-a"
    for path in objects:
        name = str(path.relative_to(root))
        assert name.startswith("j/") and len(name) == len("j/ab/") + 32
        assert all(part not in name for part in [incident_id, *ids, "INC", "V-1"])
    everything = b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())
    for secret in (NAME, "Mariam Yusuf", NARRATIVE, "al-Qusour", "flight logs"):
        assert secret.encode() not in everything
    # The custodian identity opens them; nothing else does.
    from archive.age import AgeError, Identity
    from archive.records.journal import open_journal

    custodian = Identity.read(cli.home / "keys" / "custodian.key")
    opened = open_journal(objects[0].read_bytes(), custodian)
    assert opened["changes"]
    with pytest.raises(AgeError):
        open_journal(objects[0].read_bytes(), [Identity.generate()])
    json.dumps(opened)


def test_into_a_new_log_and_without_a_log(cli: Cli, tmp_path: Path) -> None:
    _history(cli)
    cli.json("log", "checkpoint")
    before = snapshot(cli.home)
    site = cli.home / "storage" / "site-a"
    # The site keeps no sealed signing key: records are checked against its log and written into a new one.
    (site / "log" / "signing-key.age").unlink()
    report = Cli(tmp_path / "nowhere").json("rebuild-catalog", "--from", "site-a", "--kind", "local", "--path",
                                            str(site), "--identity", str(cli.home / "keys" / "custodian.key"),
                                            "--into", str(tmp_path / "new-log"), expect=1)
    assert report["records"] == 5 and report["record_changes"] == 7 and report["rejected"] == []
    after = snapshot(tmp_path / "new-log")
    assert after["states"] == before["states"]
    assert [c[2] for c in after["changes"]] == [c[2] for c in before["changes"]]  # the same commitments
    Cli(tmp_path / "new-log")("log", "verify")  # each change bound again by an event of the new log
    # No log at all: nothing can vouch for a journal entry, so no record is entered on its word.
    shutil.rmtree(site / "log")
    report = Cli(tmp_path / "nowhere").json("rebuild-catalog", "--from", "site-a", "--kind", "local", "--path",
                                            str(site), "--identity", str(cli.home / "keys" / "custodian.key"),
                                            "--into", str(tmp_path / "no-log"), expect=1)
    assert report["records"] == 0
    assert any("records were NOT restored" in p.get("problem", "") for p in report["problems"])


def test_a_locked_archive_publishes_later(cli: Cli, tmp_path: Path) -> None:
    incident = _incident(cli, "INC-1")
    put_victims(cli.home, incident["id"], [victim_state(incident["id"], "V-1")])  # no checkpoint yet
    vault = tmp_path / "vault"
    vault.mkdir()
    for name in ("catalog.key", "access.key", "custodian.key"):
        shutil.move(cli.home / "keys" / name, vault / name)
    result = cli.json("log", "checkpoint")  # the log is signed and mirrored; the states wait for the key
    assert "catalog key" in result["mirror"]["site-a"]["journal"]["error"]
    assert len(journal_changes_with(vault, cli)) == 2
    for name in ("catalog.key", "access.key", "custodian.key"):
        shutil.move(vault / name, cli.home / "keys" / name)
    assert cli.json("log", "checkpoint")["mirror"]["site-a"]["journal"]["changes"] == 1
    assert len(journal_changes(cli)) == 3


def journal_changes_with(vault: Path, cli: Cli) -> list[dict[str, Any]]:
    from archive.age import Identity
    from archive.records.journal import open_journal

    custodian = Identity.read(vault / "custodian.key")
    return [c for p in journal_objects(cli) for c in open_journal(p.read_bytes(), custodian)["changes"]]


def test_the_text_report_names_rejected_records(cli: Cli, tmp_path: Path) -> None:
    """A rejected journal entry is named by its record and its object in the text report, with why."""
    incident_id, ids = _history(cli)
    cli.json("log", "checkpoint")
    planted = _plant(cli, {"format": "evidence-journal/1", "published_at": "2030-01-01", "vocab": None, "changes": [
        _entry("vic-00000000000000aa", victim_state(incident_id, "V-FAKE", name="Nobody"), 99999)]})
    (cli.home / "catalog.db").unlink()
    rebuild(cli, tmp_path, expect=1)  # the JSON report, then the text one
    shutil.copy(cli.home / "keys" / "custodian.key", tmp_path / "custodian-text.key")
    code, out, _ = Cli(tmp_path / "nowhere")("rebuild-catalog", "--from", "site-a", "--kind", "local", "--path",
                                             str(cli.home / "storage" / "site-a"), "--identity",
                                             str(tmp_path / "custodian-text.key"), "--into", str(tmp_path / "text"),
                                             "--vkey", str(tmp_path / "log.vkey"), expect=1)
    name = planted.relative_to(cli.home / "storage" / "site-a").as_posix()
    assert f"rejected: record vic-00000000000000aa (journal object {name}): not recorded by the log" in out, out
    assert "None" not in out
    assert "restored 5 records (7 changes) from" in out
