"""The custody log on a real catalog (SQLite and PostgreSQL): checkpoints, proofs, and tampering caught."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from test_custody_rfc import ref_mth, ref_open_checkpoint, ref_verify_consistency, ref_verify_inclusion

from api.cli.main import cli
from archive.age import Identity
from archive.catalog.settings import ARCHIVE_ID, POLICY, RECIPIENTS, put_setting
from archive.config import Policy, Settings
from archive.context import Archive, Runtime
from archive.custody import service
from archive.custody.log import ACCESS, FIXITY_CHECK, VALIDATION, append_event
from archive.db import transaction
from archive.keys.catalog import CATALOG_KEY_NAME, CatalogKeys

ITEM_A = "6f1c2a4e-0000-4000-8000-00000000000a"
ITEM_B = "6f1c2a4e-1111-4000-8000-00000000000b"
SIZES = (10, 25, 40)  # checkpoints issued after this many events


@pytest.fixture()
def archive(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Archive]:
    monkeypatch.delenv("EVIDENCE_DATABASE_URL", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    settings = Settings(home=home, database_url=catalog_url)
    settings.save()
    settings.keys_dir.mkdir(mode=0o700)
    (settings.keys_dir / CATALOG_KEY_NAME).write_text(CatalogKeys.generate().encode())  # unlocked, as embedded
    opened = Runtime(settings).archive("tester")
    with transaction(opened.engine) as session:  # an archive's catalog (log verify refuses one that holds none)
        put_setting(session, ARCHIVE_ID, "test-archive")
        put_setting(session, RECIPIENTS, [str(Identity.generate().recipient)])
        put_setting(session, POLICY, Policy(copies=1, minimum=1, backends=[]).as_dict())
    yield opened
    opened.close()


def append_many(archive: Archive, count: int) -> None:
    with transaction(archive.engine) as session:
        for _ in range(count):
            seq = session.execute(text("SELECT size FROM log_head")).scalar_one()
            item = ITEM_A if seq % 3 == 0 else ITEM_B
            kind = (VALIDATION, FIXITY_CHECK, ACCESS)[seq % 3]  # none says an item is in the catalog
            append_event(session, kind, actor="tester", item_id=item, objects=[f"site-a:o/{seq:04x}"],
                         details={"n": seq, "sha256": f"{seq:064x}"})


@pytest.fixture()
def populated(archive: Archive) -> Archive:
    done = 0
    for size in SIZES:
        append_many(archive, size - done)
        done = size
        assert service.checkpoint(archive)["tree_size"] == size
    append_many(archive, 3)  # three events after the latest checkpoint
    return archive


def run_cli(archive: Archive, *args: str) -> tuple[int, Any]:
    result = CliRunner().invoke(cli, ["--home", str(archive.home), "log", *args])
    try:
        return result.exit_code, json.loads(result.output)
    except json.JSONDecodeError:
        return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def leaf_hashes(archive: Archive) -> list[bytes]:
    with transaction(archive.engine) as session:
        return [bytes.fromhex(h) for h in session.execute(text("SELECT leaf_hash FROM events ORDER BY seq")).scalars()]


def test_clean_log_verifies_and_proofs_check_out_independently(populated: Archive) -> None:
    code, report = run_cli(populated, "verify", "--json")
    assert code == 0, report
    catalog = report.pop("catalog")
    assert catalog["ok"] and catalog["mismatches"] == []
    assert report.pop("fully_verified") is True
    assert report | {"problems": []} == {"ok": True, "checked_size": 40, "uncovered": 3, "first_bad_seq": None,
                                         "total_events": 43, "checkpoints": 3, "problems": [],
                                         "more_problems": 0}
    vkey = (populated.home / "keys" / "log.vkey").read_text().strip()
    leaves = leaf_hashes(populated)

    code, proof = run_cli(populated, "prove", "17", "--json")
    assert code == 0
    assert set(proof) >= {"event", "leaf_index", "leaf_hash", "tree_size", "root_hash", "inclusion_proof", "note"}
    assert (proof["leaf_index"], proof["tree_size"], proof["event"]["seq"]) == (17, 40, 17)
    origin, size, root = ref_open_checkpoint(proof["note"], vkey)
    assert origin == populated.settings.extra["log"]["origin"] and size == 40
    assert root == ref_mth(leaves[:40]) and root.hex() == proof["root_hash"]
    path = [bytes.fromhex(h) for h in proof["inclusion_proof"]]
    leaf = bytes.fromhex(proof["leaf_hash"])
    assert leaf == leaves[17] and ref_verify_inclusion(leaf, 17, 40, path, root)
    import hashlib

    assert hashlib.sha256(b"\x00" + proof["entry"].encode()).digest() == leaf

    code, older = run_cli(populated, "prove", "3", "--checkpoint", "10", "--json")
    assert code == 0 and older["tree_size"] == 10
    assert ref_verify_inclusion(leaves[3], 3, 10, [bytes.fromhex(h) for h in older["inclusion_proof"]],
                                ref_mth(leaves[:10]))

    code, cons = run_cli(populated, "consistency", "10", "25", "--json")
    assert code == 0
    assert set(cons) >= {"old_size", "new_size", "old_root_hash", "new_root_hash", "consistency_proof"}
    assert ref_verify_consistency(10, 25, bytes.fromhex(cons["old_root_hash"]), bytes.fromhex(cons["new_root_hash"]),
                                  [bytes.fromhex(h) for h in cons["consistency_proof"]])
    assert bytes.fromhex(cons["new_root_hash"]) == ref_mth(leaves[:25])

    code, message = run_cli(populated, "prove", "41")  # after the latest checkpoint
    assert code != 0 and "not covered" in message
    code, message = run_cli(populated, "consistency", "10", "11")
    assert code != 0 and "no checkpoint of size 11" in message


def test_checkpoint_command_and_timeline(populated: Archive) -> None:
    code, issued = run_cli(populated, "checkpoint", "--json")
    assert code == 0 and issued["tree_size"] == 43 and issued["new"] is True
    assert set(issued) >= {"tree_size", "root_hash", "note"}
    assert issued["note"].split("\n")[1] == "43"
    code, again = run_cli(populated, "checkpoint", "--json")
    assert again["tree_size"] == 43 and again["new"] is False and again["note"] == issued["note"]

    code, timeline = run_cli(populated, "show", ITEM_A[:13], "--json")
    assert code == 0 and timeline["item"] == ITEM_A
    assert [e["seq"] for e in timeline["events"]] == list(range(0, 43, 3))
    assert all(e["checkpointed"] for e in timeline["events"])
    code, message = run_cli(populated, "show", "6f1c2a4e")  # a prefix both items share
    assert code != 0 and "more than one" in message


def test_automatic_checkpoints_wait_for_the_delay(populated: Archive) -> None:
    assert service.maybe_checkpoint(populated, max_age_seconds=3600) is None  # the last one is fresh
    assert service.maybe_checkpoint(populated) is None  # nor older than the default delay
    populated.settings.extra["log"]["checkpoint_delay_seconds"] = 0
    issued = service.maybe_checkpoint(populated)
    assert issued is not None and issued["tree_size"] == 43
    assert service.maybe_checkpoint(populated, max_age_seconds=0) is None  # nothing new since


def sql(archive: Archive, *statements: str, **params: Any) -> None:
    with transaction(archive.engine) as session:
        for statement in statements:
            session.execute(text(statement), params)


def forge_event(archive: Archive, seq: int) -> dict[str, Any]:
    from archive.custody.entry import canonical, entry_fields, leaf_hash

    fields = dict(seq=seq, occurred_at="2026-01-01T00:00:00.000000Z", actor="mallory", event_type=ACCESS,
                  item_id=ITEM_A, objects=[], outcome="success", details={})
    return {**fields, "objects": "[]", "details": "{}",
            "leaf_hash": leaf_hash(canonical(entry_fields(**fields))).hex()}  # type: ignore[arg-type]


INSERT = ("INSERT INTO events (seq, occurred_at, actor, event_type, item_id, objects, outcome, details, leaf_hash) "
          "VALUES (:seq, :occurred_at, :actor, :event_type, :item_id, :objects, :outcome, :details, :leaf_hash)")


def edit_field(a: Archive) -> None:
    sql(a, "UPDATE events SET actor = 'mallory' WHERE seq = 12")


def edit_and_rehash(a: Archive) -> None:
    """A careful forger: changes an event and recomputes its leaf hash, so only the tree gives it away."""
    forged = forge_event(a, 12)
    sql(a, "UPDATE events SET actor = :actor, occurred_at = :occurred_at, objects = :objects, details = :details, "
           "event_type = :event_type, leaf_hash = :leaf_hash WHERE seq = 12", **forged)


def delete_one(a: Archive) -> None:
    sql(a, "DELETE FROM events WHERE seq = 12")


def swap_two(a: Archive) -> None:
    sql(a, "UPDATE events SET seq = -1 WHERE seq = 12", "UPDATE events SET seq = 12 WHERE seq = 30",
        "UPDATE events SET seq = 30 WHERE seq = -1")


def insert_forged(a: Archive) -> None:
    sql(a, "UPDATE events SET seq = seq + 100000 WHERE seq >= 12",
        "UPDATE events SET seq = seq - 99999 WHERE seq >= 12", INSERT,
        "UPDATE log_head SET size = size + 1", **forge_event(a, 12))


def truncate(a: Archive) -> None:
    sql(a, "DELETE FROM events WHERE seq >= 30", "UPDATE log_head SET size = 30")


def forged_checkpoint(a: Archive) -> None:
    from archive.custody.checkpoint import Signer, checkpoint_body

    impostor = Signer.generate(a.settings.extra["log"]["origin"])  # same name, wrong key
    with transaction(a.engine) as session:
        root = session.execute(text("SELECT root_hash FROM checkpoints WHERE tree_size = 25")).scalar_one()
    note = impostor.sign_note(checkpoint_body(impostor.name, 25, bytes.fromhex(root)))
    sql(a, "UPDATE checkpoints SET note = :note WHERE tree_size = 25", note=note)


def changed_root_column(a: Archive) -> None:
    sql(a, "UPDATE checkpoints SET root_hash = :root WHERE tree_size = 25", root="00" * 32)


def changed_root_in_note(a: Archive) -> None:
    with transaction(a.engine) as session:
        note = session.execute(text("SELECT note FROM checkpoints WHERE tree_size = 25")).scalar_one()
    lines = note.split("\n")
    lines[2] = "A" * 43 + "="
    sql(a, "UPDATE checkpoints SET note = :note, root_hash = :root WHERE tree_size = 25",
        note="\n".join(lines), root="00" * 32)


TAMPERING: list[tuple[Callable[[Archive], None], int, str]] = [
    (edit_field, 12, "entry-altered"),
    (edit_and_rehash, 12, "tile-mismatch"),
    (delete_one, 12, "entry-missing"),
    (swap_two, 12, "entry-altered"),
    (insert_forged, 12, "tile-mismatch"),
    (truncate, 30, "truncated"),
    (forged_checkpoint, 10, "checkpoint-invalid"),
    (changed_root_column, 10, "checkpoint-invalid"),
    (changed_root_in_note, 10, "checkpoint-invalid"),
]


@pytest.mark.parametrize(("tamper", "first_bad", "kind"), TAMPERING, ids=[t[0].__name__ for t in TAMPERING])
def test_tampering_is_caught_and_named(populated: Archive, tamper: Callable[[Archive], None], first_bad: int,
                                       kind: str) -> None:
    tamper(populated)
    code, report = run_cli(populated, "verify", "--json")
    assert code != 0, report
    assert report["ok"] is False and report["first_bad_seq"] == first_bad, report
    assert kind in {p["kind"] for p in report["problems"]}, report
    code, output = run_cli(populated, "verify")
    assert code != 0 and f"first bad sequence number: {first_bad}" in output


def test_no_checkpoint_is_signed_over_an_altered_event(populated: Archive) -> None:
    sql(populated, "UPDATE events SET outcome = 'failure' WHERE seq = 41")  # not yet checkpointed
    code, message = run_cli(populated, "checkpoint")
    assert code != 0 and "event 41" in message
    code, report = run_cli(populated, "verify", "--json")
    assert code != 0 and report["first_bad_seq"] == 41 and report["checked_size"] == 40


def test_a_proof_of_an_altered_event_is_refused(populated: Archive) -> None:
    edit_field(populated)
    code, message = run_cli(populated, "prove", "12")
    assert code != 0 and "does not verify" in message


def test_verify_with_an_outside_verifier_key(populated: Archive, tmp_path: Path) -> None:
    from archive.custody.checkpoint import Signer

    stranger = tmp_path / "stranger.vkey"
    stranger.write_text(Signer.generate("someone.else/log").verifier.encode() + "\n")
    code, report = run_cli(populated, "verify", "--json", "--vkey", str(stranger))
    assert code != 0 and report["first_bad_seq"] == 0
    published = tmp_path / "published.vkey"
    published.write_text((populated.home / "keys" / "log.vkey").read_text())
    code, report = run_cli(populated, "verify", "--json", "--vkey", str(published))
    assert code == 0 and report["ok"]


def test_appends_are_gapless_across_rollbacks_and_reused_sessions(archive: Archive) -> None:
    from sqlmodel import Session

    with Session(archive.engine) as session:
        with session.begin():
            first = append_event(session, ACCESS, actor="tester", item_id=ITEM_A)
            append_event(session, ACCESS, actor="tester", item_id=ITEM_A)
        with pytest.raises(RuntimeError), session.begin():
            append_event(session, ACCESS, actor="tester", item_id=ITEM_A)
            raise RuntimeError("the step failed: its event must vanish with it")
        with session.begin():
            third = append_event(session, FIXITY_CHECK, actor="tester", item_id=ITEM_B, details={"ok": True})
    assert (first.seq, third.seq) == (0, 2)
    with transaction(archive.engine) as session:
        stored = session.execute(text("SELECT seq, leaf_hash FROM events ORDER BY seq")).all()
        assert session.execute(text("SELECT size FROM log_head")).scalar_one() == 3
    assert [s for s, _ in stored] == [0, 1, 2] and stored[2][1] == third.leaf_hash
    assert service.verify_log(archive).ok


def test_a_shifted_log_reports_its_first_bad_event_among_many(populated: Archive) -> None:
    """Renumbering everything after one deleted event alters dozens of entries; the first is still named."""
    sql(populated, "DELETE FROM events WHERE seq = 2", "UPDATE events SET seq = seq - 1 WHERE seq > 2",
        "UPDATE log_head SET size = size - 1")
    report = service.verify_log(populated)
    assert not report.ok and report.first_bad_seq == 2
    assert {p.kind for p in report.problems} >= {"entry-altered", "root-mismatch", "tile-mismatch"}


def test_removed_checkpoints_are_noticed_and_no_new_history_is_signed(populated: Archive) -> None:
    sql(populated, "DELETE FROM checkpoints WHERE tree_size = 40")
    report = service.verify_log(populated)
    assert not report.ok and report.first_bad_seq == 25 and report.checked_size == 25
    sql(populated, "DELETE FROM checkpoints")
    code, message = run_cli(populated, "checkpoint")
    assert code != 0 and "no checkpoint covers them" in message


def test_saved_proofs_are_checked_offline_with_the_verifier_key(populated: Archive, tmp_path: Path) -> None:
    vkey = tmp_path / "archive.vkey"
    vkey.write_text((populated.home / "keys" / "log.vkey").read_text())
    _, inclusion = run_cli(populated, "prove", "17", "--json")
    _, consistency = run_cli(populated, "consistency", "10", "40", "--json")

    def check(document: dict[str, Any]) -> tuple[int, Any]:
        path = tmp_path / "proof.json"
        path.write_text(json.dumps(document))
        result = CliRunner().invoke(cli, ["log", "check", str(path), "--vkey", str(vkey), "--json"])
        return result.exit_code, json.loads(result.output)

    assert check(inclusion) == (0, {"ok": True, "origin": populated.settings.extra["log"]["origin"],
                                    "leaf_index": 17, "tree_size": 40})
    assert check(consistency)[0] == 0
    forged_entry = inclusion["entry"].replace('"actor":"tester"', '"actor":"mallory"')
    for bad in [{**inclusion, "entry": forged_entry, "leaf_hash": None}, {**inclusion, "leaf_index": 16},
                {**inclusion, "inclusion_proof": inclusion["inclusion_proof"][:-1]},
                {**consistency, "consistency_proof": consistency["consistency_proof"][1:]},
                {**consistency, "old_note": consistency["new_note"]}, {"note": "x"}]:
        bad = {k: v for k, v in bad.items() if v is not None}
        code, result = check(bad)
        assert code == 1 and result["ok"] is False, bad


def test_item_proofs_for_an_export_check_out_independently(populated: Archive) -> None:
    bundle = service.item_proofs(populated, ITEM_B)
    assert bundle["item"] == ITEM_B and bundle["checkpoint"]["tree_size"] == 40
    seqs = [p["leaf_index"] for p in bundle["proofs"]]
    assert seqs == [s for s in range(40) if s % 3] and bundle["uncovered"] == [40, 41]
    leaves = leaf_hashes(populated)
    for proof in bundle["proofs"]:
        origin, size, root = ref_open_checkpoint(proof["note"], bundle["vkey"])
        assert size == 40 and root == ref_mth(leaves[:40])
        path = [bytes.fromhex(h) for h in proof["inclusion_proof"]]
        assert ref_verify_inclusion(leaves[proof["leaf_index"]], proof["leaf_index"], 40, path, root)
