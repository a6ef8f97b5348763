"""Sources and witnesses: the real identity of a witness is readable by a custodian alone.

Attacks the promise: a witness recorded under an alias with a distinctive
real name (Latin and Arabic) and phone number; then every CLI output, the raw
catalog (SQLite file and WAL, or `pg_dump`), the custody events and the
record history are searched for them. They appear only in `source show
--reveal-identity` run as a custodian with the custodian key. A stolen
catalog key with the database opens the source's sealed fields and finds only
an age file the custodian key opens; the access identity (which unlocked
servers hold) does not open it; investigators get `Forbidden`. Bad input is
refused with a clear error, and leaves nothing written.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, row_counts

NAME = "Khaled Mahmoud Haddad-Quraishi"
ARABIC = "خالد محمود حداد"
PHONE = "+963 944 771 235"
ALIAS = "Abu Omar"
SECRETS = (NAME, ARABIC, PHONE, "944 771 235")


class Recorder:
    """Runs CLI commands and keeps every output, to search them all afterwards."""

    def __init__(self, cli: Cli) -> None:
        self.cli = cli
        self.outputs: list[str] = []

    def __call__(self, *args: str, expect: int | None = 0) -> tuple[int, str, str]:
        code, out, err = self.cli(*args, expect=expect)
        self.outputs += [out, err]
        return code, out, err

    def json(self, *args: str, expect: int | None = 0) -> Any:
        _, out, _ = self(*args, "--json", expect=expect)
        return json.loads(out)


def _identity_file(tmp_path: Path) -> Path:
    path = tmp_path / "identity.json"
    path.write_text(json.dumps({"name": NAME, "name_ar": ARABIC, "phone": PHONE}, ensure_ascii=False),
                    encoding="utf-8")
    return path


def _raw(home: Path, catalog_url: str | None = None) -> bytes:
    if catalog_url and catalog_url.startswith("postgresql"):
        return subprocess.run(["pg_dump", "--dbname", catalog_url], check=True, capture_output=True).stdout
    db = home / "catalog.db"
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())


def _absent(data: bytes | str, where: str) -> None:
    text = data if isinstance(data, str) else None
    for secret in SECRETS:
        if text is not None:
            assert secret not in text, f"{secret!r} found in {where}"
        else:
            assert isinstance(data, bytes)
            assert secret.encode() not in data, f"{secret!r} found in {where}"


def _events(home: Path) -> list[dict[str, Any]]:
    from sqlalchemy import text

    from archive.context import Archive

    archive = Archive.open(home, "tester")
    try:
        with archive.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text("SELECT * FROM events")).all()]
    finally:
        archive.close()


def _counts(home: Path) -> tuple[int, ...]:
    return tuple(row_counts(home, ("sources", "interviews", "record_changes", "events")).values())


@pytest.fixture()
def db_cli(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    cli = Cli(tmp_path / "home")
    cli("init", "--operator", "tester")
    return cli


def test_the_identity_appears_only_when_a_custodian_reveals_it(db_cli: Cli, catalog_url: str,
                                                               tmp_path: Path) -> None:
    run = Recorder(db_cli)
    home = db_cli.home
    added = run.json("source", "add", "w-17", "--kind", "eyewitness", "--alias", ALIAS,
                     "--description", "saw the strike from the bakery", "--identity-file",
                     str(_identity_file(tmp_path)))
    assert added["reliability"] == 2 and added["alias"] == ALIAS
    assert added["identity"] == "sealed: custodians only"
    run("source", "interview", "w-17", "--held-on", "2023-12-10", "--informed-consent", "true",
        "--no-payment", "true", "--interviewer", "field team 2")
    run("source", "edit", "w-17", "--alias", "Abu Omar al-Halabi", "--reason", "the witness asked")
    run("source", "add", "tg-1", "--kind", "open_source", "--url", "https://t.me/example/4471",
        "--channel", "@example", "--posted-at", "2023-12-09T14:30")
    listed = run("source", "list")[1]
    assert "w-17" in listed and "Abu Omar al-Halabi" in listed and "identity sealed" in listed
    rows = [json.loads(line) for line in run("source", "list", "--json")[1].splitlines()]
    assert {r["ref"]: r["reliability"] for r in rows} == {"tg-1": 3, "w-17": 2}
    assert all("identity" not in r for r in rows)
    shown = run.json("source", "show", "w-17", "--history")
    assert shown["identity"] == "sealed: custodians only"
    assert [c["change"] for c in shown["history"]] == ["create", "edit"]
    assert all(c["after"]["identity"] == "sealed: custodians only" for c in shown["history"])
    run("source", "show", "w-17")
    run("log", "verify", expect=None)

    for output in run.outputs:
        _absent(output, "a CLI output")
    raw = _raw(home, catalog_url)
    _absent(raw, "the raw catalog")
    assert ALIAS.encode() not in raw and b"bakery" not in raw and b"t.me/example" not in raw  # sealed too
    for event in _events(home):
        _absent(json.dumps(event, ensure_ascii=False, default=str), "a custody event")
        if event.get("details") and "record" in str(event["details"]):
            assert "alias" not in str(event["details"])

    # A custodian who asks, with the custodian key: the identity, and in the history too.
    revealed = db_cli.json("source", "show", "w-17", "--reveal-identity", "--history")
    assert revealed["identity"] == {"name": NAME, "name_ar": ARABIC, "phone": PHONE}
    assert all(c["after"]["identity"]["phone"] == PHONE for c in revealed["history"])
    _, text_out, _ = db_cli("source", "show", "w-17", "--reveal-identity")
    assert NAME in text_out and PHONE in text_out


def test_the_catalog_key_and_the_access_identity_do_not_open_it(cli: Cli, tmp_path: Path) -> None:
    from archive.age import AgeError, Identity, decrypt_bytes
    from archive.catalog.sealing import open_row
    from archive.keys.catalog import CatalogKeys
    from archive.records.identity import open_identity

    cli("source", "add", "w-1", "--kind", "survivor", "--identity-file", str(_identity_file(tmp_path)))
    home = cli.home
    # The thief's view: the database and the catalog key (and even the access identity of an unlocked server).
    keys = CatalogKeys.parse((home / "keys" / "catalog.key").read_text(encoding="ascii"))
    import sqlite3

    conn = sqlite3.connect(home / "catalog.db")
    [(source_id, version, sealed)] = conn.execute("SELECT id, key_version, sealed FROM sources").fetchall()
    changes = conn.execute("SELECT commitment, key_version, sealed FROM record_changes "
                           "WHERE record_id = ?", (source_id,)).fetchall()
    conn.close()
    fields = open_row(keys, "sources", source_id, version, sealed)
    _absent(json.dumps(fields, ensure_ascii=False), "the sealed fields opened with the catalog key")
    for commitment, change_version, change_sealed in changes:
        _absent(json.dumps(open_row(keys, "record_changes", commitment, change_version, change_sealed),
                           ensure_ascii=False), "a history row opened with the catalog key")
    blob = base64.b64decode(fields["identity"])
    assert blob.startswith(b"age-encryption.org/v1\n")
    access = Identity.read(home / "keys" / "access.key")
    with pytest.raises(AgeError):
        decrypt_bytes(blob, access)
    with pytest.raises(Exception, match="does not open"):
        open_identity(fields["identity"], access)
    opened = open_identity(fields["identity"], Identity.read(home / "keys" / "custodian.key"))
    assert isinstance(opened, dict) and opened["name"] == NAME

    # The custodian key kept offline: an unlocked home cannot reveal it, even with the access key given.
    vault = tmp_path / "vault"
    vault.mkdir()
    shutil.move(home / "keys" / "custodian.key", vault / "custodian.key")
    code, out, err = cli("source", "show", "w-1", "--reveal-identity", expect=1)
    assert "custodian identity" in err
    code, out, err = cli("source", "show", "w-1", "--reveal-identity", "--identity",
                         str(home / "keys" / "access.key"), expect=2)
    assert "does not open" in err
    for text in (out, err):
        _absent(text, "an error")
    shown = cli.json("source", "show", "w-1", "--reveal-identity", "--identity", str(vault / "custodian.key"))
    assert shown["identity"]["phone"] == PHONE


def test_roles_investigators_record_identities_and_never_read_them(cli: Cli, tmp_path: Path) -> None:
    from archive.context import Archive
    from archive.roles import Role
    from archive.services.errors import Forbidden
    from archive.services.sources import add_interview, add_source, list_sources, show_source

    archive = Archive.open(cli.home, "investigator-1")
    try:
        shown = add_source(archive, {"ref": "w-9", "kind": "filmer", "alias": ALIAS}, role=Role.INVESTIGATOR,
                           identity={"name": NAME, "phone": PHONE})
        assert shown["identity"] == "sealed: custodians only"
        with pytest.raises(Forbidden) as refused:
            show_source(archive, "w-9", role=Role.INVESTIGATOR, reveal_identity=True)
        _absent(str(refused.value), "the Forbidden message")
        history = show_source(archive, "w-9", role=Role.INVESTIGATOR, history=True)["history"]
        _absent(json.dumps(history, ensure_ascii=False), "an investigator's history view")
        assert list_sources(archive, role=Role.INVESTIGATOR)[0]["alias"] == ALIAS
        for call in (lambda: list_sources(archive, role=Role.CONTRIBUTOR),
                     lambda: show_source(archive, "w-9", role=Role.CONTRIBUTOR),
                     lambda: add_source(archive, {"ref": "w-10", "kind": "survivor"}, role=Role.CONTRIBUTOR),
                     lambda: add_interview(archive, "w-9", "2023-01-02", True, True, role=Role.CONTRIBUTOR)):
            with pytest.raises(Forbidden):
                call()
        custodian = show_source(archive, "w-9", role=Role.CUSTODIAN, reveal_identity=True)
        assert custodian["identity"] == {"name": NAME, "phone": PHONE}
    finally:
        archive.close()


def test_identity_from_stdin_and_its_replacement_keeps_the_old_one_encrypted(cli: Cli) -> None:
    from click.testing import CliRunner

    from api.cli.main import cli as evidence

    result = CliRunner().invoke(evidence, ["--home", str(cli.home), "source", "add", "w-2", "--kind", "medical",
                                           "--identity-file", "-"], input=f"{NAME}, {PHONE}\n")
    assert result.exit_code == 0, result.stderr
    _absent(result.stdout + result.stderr, "add's output")
    assert cli.json("source", "show", "w-2", "--reveal-identity")["identity"] == f"{NAME}, {PHONE}"
    result = CliRunner().invoke(evidence, ["--home", str(cli.home), "source", "edit", "w-2", "--identity-file", "-",
                                           "--reason", "new phone"], input='{"name": "Dr. Rania", "phone": "1"}')
    assert result.exit_code == 0, result.stderr
    revealed = cli.json("source", "show", "w-2", "--reveal-identity", "--history")
    assert revealed["identity"] == {"name": "Dr. Rania", "phone": "1"}
    assert [c["after"]["identity"] for c in revealed["history"]] == [f"{NAME}, {PHONE}",
                                                                     {"name": "Dr. Rania", "phone": "1"}]
    cli("source", "edit", "w-2", "--forget-identity")
    assert cli.json("source", "show", "w-2", "--reveal-identity")["identity"] is None
    assert cli.json("source", "list")["has_identity"] is False


def test_interviews_record_consent_and_payment_and_flag_what_is_missing(cli: Cli) -> None:
    cli("source", "add", "w-3", "--kind", "survivor", "--alias", "Umm Ali")
    good = cli.json("source", "interview", "w-3", "--held-on", "2023-12-11", "--informed-consent", "true",
                    "--no-payment", "true", "--notes", "second visit")
    assert good["flags"] == [] and good["notes"] == "second visit"
    _, _, err = cli("source", "interview", "w-3", "--held-on", "2023-12-01", "--informed-consent", "false",
                    "--no-payment", "false")
    assert "no informed consent" in err and "payment" in err
    shown = cli.json("source", "show", "w-3")
    assert [i["held_on"] for i in shown["interviews"]] == ["2023-12-01", "2023-12-11"]
    assert len(shown["interviews"][0]["flags"]) == 2
    listed = cli.json("source", "list")
    assert (listed["interviews"], listed["flagged_interviews"]) == (2, 1)
    _, text_out, _ = cli("source", "show", "w-3")
    assert "no informed consent recorded" in text_out


BAD_SOURCES = [
    (["--kind", "journalist"], "kind: 'journalist' is not one of"),
    (["--kind", "open_source"], "url: an open-source publication needs its URL"),
    (["--kind", "open_source", "--url", "t.me/x"], "url: not an http(s) URL"),
    (["--kind", "open_source", "--url", "https://t.me/x", "--posted-at", "2023-13-01"], "posted_at:"),
    (["--kind", "open_source", "--url", "https://t.me/x", "--posted-at", "yesterday"], "posted_at:"),
    ([], "kind: required"),
]


@pytest.mark.parametrize(("args", "message"), BAD_SOURCES)
def test_bad_sources_are_refused_and_write_nothing(db_cli: Cli, args: list[str], message: str) -> None:
    db_cli("source", "add", "w-0", "--kind", "survivor")
    before = _counts(db_cli.home)
    _, _, err = db_cli("source", "add", "w-new", *args, expect=2)
    assert message in err
    assert _counts(db_cli.home) == before


def test_more_bad_input_is_refused_and_writes_nothing(db_cli: Cli, tmp_path: Path) -> None:
    db_cli("source", "add", "w-4", "--kind", "eyewitness")
    db_cli("source", "add", "tg-4", "--kind", "open_source", "--url", "https://example.org/post/1")
    before = _counts(db_cli.home)
    too_long = tmp_path / "long.json"
    too_long.write_text(json.dumps({"name": NAME, "phone": PHONE * 2000}), encoding="utf-8")
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "' + NAME, encoding="utf-8")
    cases = [
        (("source", "add", "w-4", "--kind", "survivor"), "exists already"),
        (("source", "add", "w-5", "--kind", "survivor", "--identity-file", str(too_long)), "longer than"),
        (("source", "add", "w-5", "--kind", "survivor", "--identity-file", str(broken)), "not a JSON object"),
        (("source", "add", "w-5", "--kind", "survivor", "--identity-file", str(tmp_path / "none")), "cannot read"),
        (("source", "edit", "w-4", "--kind", "open_source"), "needs its URL"),
        (("source", "edit", "w-4", "--ref", "tg-4"), "exists already"),
        (("source", "edit", "nobody", "--alias", "x"), "no source 'nobody'"),
        (("source", "interview", "w-4", "--held-on", "2023-02-30", "--informed-consent", "true",
          "--no-payment", "true"), "held_on: '2023-02-30' is not a real date"),
        (("source", "interview", "tg-4", "--held-on", "2023-02-03", "--informed-consent", "true",
          "--no-payment", "true"), "publication, not a person"),
        (("source", "list", "--kind", "rumour"), "kind: 'rumour'"),
    ]
    for args, message in cases:
        code, out, err = db_cli(*args, expect=None)
        assert code in (1, 2) and message in err, (args, code, err)
        _absent(out + err, f"the error of {args}")
    code, _, err = db_cli("source", "interview", "w-4", "--held-on", "2023-02-03", "--no-payment", "true",
                          expect=2)
    assert "--informed-consent" in err
    assert _counts(db_cli.home) == before


def test_no_custodian_recipient_means_no_identity_is_written(cli: Cli, tmp_path: Path) -> None:
    from archive.context import Archive
    from tests.conftest import drop_recipient

    archive = Archive.open(cli.home)
    custodian = (cli.home / "keys" / "custodian.pub").read_text().strip()
    archive.close()
    drop_recipient(cli.home, custodian)
    before = _counts(cli.home)
    _, _, err = cli("source", "add", "w-6", "--kind", "survivor", "--identity-file", str(_identity_file(tmp_path)),
                    expect=2)
    assert "no custodian recipient" in err
    assert _counts(cli.home) == before
