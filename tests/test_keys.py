"""Keys where they belong: the access identity and the catalog key, protected, unlocked, locked, added.

Attacks the promises of issue 9 section 2 with real components: the `age`
tool as the oracle for every wrapped key and rewrapped copy, separate
processes for `evidence unlock`/`lock` against a long-lived Runtime, SQLite.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.age_tty import run_age
from tests.conftest import Cli, drop_recipient
from tests.s3_fixtures import site_a, weed_sites  # noqa: F401 - fixtures
from tests.servers import WeedServer

EVIDENCE = str(Path(sys.executable).parent / "evidence")
PASSPHRASE = "violet-otter-quartz-harbour"
WORK_FACTOR = 12  # small, so the suite stays quick; the format is the same as the tool's default 18


@dataclass
class Home:
    """A protected home whose custodian key is offline, and every output seen, for the secrets check."""

    cli: Cli
    tmp: Path
    passphrase_file: Path
    custodian: Path
    outputs: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.cli.home

    @property
    def archive_id(self) -> str:
        config = tomllib.loads((self.path / "config.toml").read_text())
        return str(config["log"]["origin"]).rsplit("/", 1)[-1]

    def run(self, *args: str, expect: int | None = 0) -> tuple[int, str, str]:
        """`evidence` in-process (click's runner)."""
        code, out, err = self.cli(*args, expect=expect)
        self.outputs += [out, err]
        return code, out, err

    def process(self, *args: str, expect: int = 0, env: dict[str, str] | None = None) -> tuple[str, str]:
        """`evidence` as another process of this machine."""
        done = subprocess.run([EVIDENCE, "--home", str(self.path), *args], capture_output=True, text=True,
                              env={**os.environ, **(env or {})}, timeout=120)
        self.outputs += [done.stdout, done.stderr]
        assert done.returncode == expect, f"exit {done.returncode}: {done.stdout}\n{done.stderr}"
        return done.stdout, done.stderr


def _lower_work_factor(home: Path) -> None:
    with open(home / "config.toml", "a", encoding="utf-8") as stream:
        stream.write(f"\n[keys]\npassphrase_work_factor = {WORK_FACTOR}\n")


def _new_home(tmp_path: Path) -> Home:
    cli = Cli(tmp_path / "home")
    _, out, err = cli("init", "--operator", "tester")
    _lower_work_factor(cli.home)
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")
    passphrase_file.chmod(0o600)
    home = Home(cli, tmp_path, passphrase_file, tmp_path / "offline" / "custodian.key", [out, err])
    return home


def _take_custodian_offline(home: Home) -> None:
    home.custodian.parent.mkdir()
    (home.path / "keys" / "custodian.key").rename(home.custodian)  # as in production


@pytest.fixture()
def home(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    """A fresh home (catalog on SQLite and on PostgreSQL) with its keys protected and the custodian key
    offline; locked."""
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)  # inherited by the other processes too
    made = _new_home(tmp_path)
    made.run("keys", "protect", "--passphrase-file", str(made.passphrase_file))
    _take_custodian_offline(made)
    yield made
    from archive.keys import ramdir

    ramdir.remove(made.archive_id)


def _ingest(home: Home, tmp: Path, name: str, size: int = 150_000) -> tuple[str, bytes]:
    data = os.urandom(size)
    (tmp / name).write_bytes(data)
    _, out, _ = home.run("ingest", str(tmp / name), "--json")
    report = json.loads(out)
    assert report["status"] == "preserved", report
    return str(report["id"]), data


def _sql(home: Home, query: str, **params: object) -> list[tuple[Any, ...]]:
    """A query on the home's catalog, SQLite or PostgreSQL (`:name` parameters)."""
    from sqlalchemy import create_engine, text

    from archive.config import load_settings

    url = load_settings(home.path).catalog_url().replace("postgresql://", "postgresql+psycopg2://")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(query), params)
            return [tuple(row) for row in result.fetchall()] if result.returns_rows else []
    finally:
        engine.dispose()


def _json(value: Any) -> Any:
    """A JSON column's value as read back (SQLite gives text, PostgreSQL the parsed value)."""
    return json.loads(value) if isinstance(value, str) else value


def _secrets_of(home: Home, identity_text: str, catalog_text: str) -> list[str]:
    """The strings that must never appear in any output, log or event."""
    from archive.age import Identity
    from archive.keys.catalog import CatalogKeys

    secret = [line for line in identity_text.splitlines() if line.startswith("AGE-SECRET-KEY-")]
    assert secret and Identity.parse(secret[0])
    keys = CatalogKeys.parse(catalog_text)
    hexes = [line.split()[2] for line in keys.encode().splitlines() if line.startswith("catalog-key ")]
    return [PASSPHRASE, *secret, *hexes]


def _assert_no_secret_anywhere(home: Home, secrets: list[str]) -> None:
    files = [*home.path.glob("catalog.db*"), *home.tmp.glob("catalog.db*")]
    stored = [p.read_bytes().decode("latin-1") for p in files]  # the whole catalog, when it is SQLite
    stored.append((home.path / "config.toml").read_text())
    for secret in secrets:
        for text in [*home.outputs, *stored]:
            assert secret not in text and secret.lower() not in text


# --- init and protect -----------------------------------------------------------------------------------

def test_init_makes_the_access_identity_and_catalog_key_unwrapped_and_says_so(tmp_path: Path) -> None:
    made = _new_home(tmp_path)
    keys = made.path / "keys"
    for name in ("access.key", "catalog.key"):
        assert (keys / name).stat().st_mode & 0o777 == 0o600
    access = (keys / "access.pub").read_text().strip()
    custodian = (keys / "custodian.pub").read_text().strip()
    _, out, _ = made.run("encrypt-to", "list")
    assert out.split() == [custodian, access]  # every original goes to the custodian and the access identity
    said = "".join(made.outputs)
    assert "unwrapped" in said and "evidence keys protect" in said
    status = json.loads(made.run("keys", "status", "--json")[1])
    assert status["unlocked"] and {k["at_rest"] for k in status["keys"]} == {"unwrapped"}
    assert status["access_recipient"] == access and status["access_in_recipients"]


def test_protect_wraps_both_keys_as_age_passphrase_files_the_age_tool_opens(tmp_path: Path) -> None:
    made = _new_home(tmp_path)
    keys = made.path / "keys"
    identity_text, catalog_text = (keys / "access.key").read_text(), (keys / "catalog.key").read_text()
    made.run("keys", "protect", "--passphrase-file", str(made.passphrase_file))
    assert not (keys / "access.key").exists() and not (keys / "catalog.key").exists()
    for name, original in (("access.key.age", identity_text), ("catalog.key.age", catalog_text)):
        assert (keys / name).stat().st_mode & 0o777 == 0o600
        code, out, _ = run_age(["-d", str(keys / name)], PASSPHRASE)  # the custodian needs nothing but `age`
        assert code == 0 and out.decode() == original
    # protecting again with another passphrase would leave two passphrases: refused
    other = tmp_path / "other"
    other.write_text("another-long-passphrase\n")
    other.chmod(0o600)
    code, _, err = made.run("keys", "protect", "--passphrase-file", str(other), expect=1)
    assert "wrong passphrase" in err
    _assert_no_secret_anywhere(made, _secrets_of(made, identity_text, catalog_text))


def test_a_short_passphrase_is_refused(tmp_path: Path) -> None:
    made = _new_home(tmp_path)
    short = tmp_path / "short"
    short.write_text("abc\n")
    made.run("keys", "protect", "--passphrase-file", str(short), expect=2)
    assert (made.path / "keys" / "access.key").is_file()


# --- locked: ingest goes on, reads are refused ------------------------------------------------------------

def test_a_protected_home_never_unlocked_ingests_and_refuses_get(home: Home) -> None:
    item, _ = _ingest(home, home.tmp, "a.bin")
    code, _, err = home.run("get", item, "-o", str(home.tmp / "out.bin"), expect=1)
    assert "locked" in err and "evidence unlock" in err
    assert not (home.tmp / "out.bin").exists()
    status = json.loads(home.run("keys", "status", "--json")[1])
    assert not status["unlocked"]
    assert [(k["at_rest"], k["in_ram"], k["usable_here"]) for k in status["keys"]] == [("wrapped", False, None)] * 3
    _, _, err = home.run("log", "verify", expect=1)  # locked: the commitments could not be checked
    assert "not fully verified" in err
    home.run("log", "verify", "--copies-only")


def test_a_wrong_passphrase_is_a_clear_error_and_unlocks_nothing(home: Home) -> None:
    bad = home.tmp / "bad"
    bad.write_text("not-the-passphrase-at-all\n")
    bad.chmod(0o600)
    _, err = home.process("unlock", "--passphrase-file", str(bad), expect=1)
    assert "wrong passphrase" in err and "not-the-passphrase" not in err
    from archive.keys import ramdir

    assert not ramdir.ram_dir(home.archive_id).exists()


def test_unlock_in_another_process_serves_a_long_lived_runtime_and_lock_refuses_again(home: Home) -> None:
    from archive.context import Runtime
    from archive.keys import ramdir
    from archive.services.errors import Locked
    from archive.services.items import get_item

    item, data = _ingest(home, home.tmp, "a.bin")
    runtime = Runtime.open(home.path)  # a server or worker: started locked, never restarted
    try:
        with pytest.raises(Locked, match="evidence unlock"):
            get_item(runtime.archive("tester"), item, home.tmp / "x.bin")

        out, _ = home.process("unlock", "--passphrase-file", str(home.passphrase_file))
        where = ramdir.ram_dir(home.archive_id)
        assert str(where) in out
        assert where.stat().st_mode & 0o777 == 0o700
        assert {p.name: p.stat().st_mode & 0o777 for p in where.iterdir()} == {"access.key": 0o600,
                                                                             "catalog.key": 0o600,
                                                                             "preview.key": 0o600}
        assert ramdir.filesystem_of(where) in ramdir.RAM_FILESYSTEMS
        got = get_item(runtime.archive("tester"), item, home.tmp / "x.bin")  # its next use case
        assert (home.tmp / "x.bin").read_bytes() == data and got.size == len(data)

        home.process("lock")
        assert not where.exists()
        with pytest.raises(Locked):
            get_item(runtime.archive("tester"), item, home.tmp / "y.bin")
        assert not (home.tmp / "y.bin").exists()
    finally:
        runtime.close()
    # and the CLI, a process of its own, the same
    home.run("get", item, "-o", str(home.tmp / "z.bin"), expect=1)


def test_a_passphrase_file_unlocks_just_that_process(home: Home) -> None:
    from archive.keys import ramdir

    item, data = _ingest(home, home.tmp, "a.bin")
    home.process("get", item, "-o", str(home.tmp / "x.bin"),
                 env={"EVIDENCE_PASSPHRASE_FILE": str(home.passphrase_file)})
    assert (home.tmp / "x.bin").read_bytes() == data
    assert not ramdir.ram_dir(home.archive_id).exists()  # nobody else was unlocked
    home.process("get", item, "-o", str(home.tmp / "y.bin"), expect=1)


def test_unlock_refuses_a_directory_that_is_not_ram(home: Home) -> None:
    from archive.keys import ramdir

    if ramdir.filesystem_of(home.tmp) in ramdir.RAM_FILESYSTEMS:
        pytest.skip("the test's temporary directory is itself on tmpfs")
    _, err = home.process("unlock", "--passphrase-file", str(home.passphrase_file), expect=2,
                          env={"EVIDENCE_UNLOCK_DIR": str(home.tmp)})
    assert "not tmpfs or ramfs" in err
    assert not any((home.tmp / f"evidence-{os.getuid()}").rglob("*.key"))


def test_a_locked_worker_lets_plaintext_jobs_wait_until_unlocked(home: Home, corpus: Path) -> None:
    from archive.context import Runtime
    from archive.services.worker import Worker

    _, out, _ = home.run("ingest", str(corpus / "media/jpg/gps/DSCN0010.jpg"), "--json")
    item = json.loads(out)["id"]
    runtime = Runtime.open(home.path)
    try:
        _, _, err = home.run("analyze", "--backfill", "--all", "--step", "metadata")
        assert "evidence unlock" in err  # it says the jobs will wait, and why
        Worker(runtime.archive("tester")).run(once=True)
        ((state, error),) = _sql(home, "SELECT state, last_error FROM jobs WHERE kind = 'analysis'")
        assert state == "queued" and "NeedsIdentity" in error and "unlock" in error  # waits, never fails for good
        for _ in range(4):  # waiting is not failing: the retry does not back off towards an hour
            _sql(home, "UPDATE jobs SET next_run_at = '2000-01-01T00:00:00.000000Z' WHERE kind = 'analysis'")
            Worker(runtime.archive("tester")).run(once=True)
        from datetime import UTC, datetime

        ((next_run,),) = _sql(home, "SELECT next_run_at FROM jobs WHERE kind = 'analysis'")
        wait = datetime.strptime(next_run, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) - datetime.now(UTC)
        assert wait.total_seconds() <= 31, wait

        home.process("unlock", "--passphrase-file", str(home.passphrase_file))
        _sql(home, "UPDATE jobs SET next_run_at = '2000-01-01T00:00:00.000000Z' WHERE kind = 'analysis'")
        Worker(runtime.archive("tester")).run(once=True)
        ((state, error),) = _sql(home, "SELECT state, last_error FROM jobs WHERE kind = 'analysis'")
        assert state == "done", error
    finally:
        runtime.close()
    assert item


# --- store_catalog (rotation writes its new version where the key lives) ----------------------------------

def test_store_catalog_rewraps_the_key_and_updates_the_ram_directory(home: Home) -> None:
    from archive.context import Runtime
    from archive.keys import ramdir
    from archive.keys.catalog import CatalogKeys
    from archive.services.errors import Locked
    from archive.services.keys import unlock

    home.process("unlock", "--passphrase-file", str(home.passphrase_file))
    other = Runtime.open(home.path)  # unlocked through the RAM directory only: it holds no passphrase
    runtime = Runtime.open(home.path)
    try:
        before = other.keys.catalog()
        with pytest.raises(Locked, match="passphrase"):
            other.keys.store_catalog(before.with_new_version())
        unlock(runtime.archive("tester"), PASSPHRASE, share=False)
        rotated = runtime.keys.catalog().with_new_version()
        stored = runtime.keys.store_catalog(rotated)
        assert len(stored) == 2  # the wrapped file and the RAM directory
        code, out, _ = run_age(["-d", str(home.path / "keys" / "catalog.key.age")], PASSPHRASE)
        assert code == 0 and CatalogKeys.parse(out.decode()).versions == [1, 2]
        assert other.keys.catalog().versions == [1, 2]  # the other process sees it at its next use
        assert ramdir.read(home.archive_id, "catalog.key") == rotated.encode().encode()
    finally:
        other.close()
        runtime.close()


# --- add-access: old items gain the access identity, payloads untouched ------------------------------------

def _originals(home: Home, item: str) -> list[tuple[str, str, str, list[str]]]:
    rows = _sql(home, "SELECT backend, object_name, ciphertext_sha256, recipients FROM replicas "
                      "WHERE item_id = :item AND role = 'original' AND state = 'verified' ORDER BY backend", item=item)
    return [(b, n, h, _json(r)) for b, n, h, r in rows]


def _object(home: Home, backend: str, name: str) -> Path:
    return home.path / "storage" / backend / name


def _payload(sealed: bytes) -> tuple[bytes, bytes]:
    from archive.age import read_header

    stream = io.BytesIO(sealed)
    header = read_header(stream)
    return header, stream.read()


def test_add_access_rewraps_old_copies_without_touching_their_payload(
    tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", catalog_url)
    made = _new_home(tmp_path)
    keys = made.path / "keys"
    access = (keys / "access.pub").read_text().strip()
    identity_text, catalog_text = (keys / "access.key").read_text(), (keys / "catalog.key").read_text()
    drop_recipient(made.path, access)  # as an archive made before the access identity existed
    old_item, old_data = _ingest(made, tmp_path, "old.bin", 300_000)
    made.run("encrypt-to", "add", access)
    new_item, _ = _ingest(made, tmp_path, "new.bin")
    made.run("keys", "protect", "--passphrase-file", str(made.passphrase_file))
    _take_custodian_offline(made)
    made.process("unlock", "--passphrase-file", str(made.passphrase_file))
    try:
        before = _originals(made, old_item)
        assert len(before) == 2 and all(access not in recipients for *_, recipients in before)
        old_bytes = {b: _object(made, b, n).read_bytes() for b, n, *_ in before}
        (tmp_path / "access.key").write_text(identity_text)
        first = before[0]
        refused = subprocess.run(["age", "-d", "-i", str(tmp_path / "access.key"), str(_object(made, *first[:2]))],
                                 capture_output=True)
        assert refused.returncode != 0  # the access identity cannot read it yet
        made.run("get", old_item, "-o", str(tmp_path / "no.bin"), expect=1)  # nor can the server

        _, out, _ = made.run("keys", "add-access", "--identity", str(made.custodian), "--json")
        result = json.loads(out)
        assert result["rewrapped"] == 2 and result["resealed"] >= 2 and result["skipped"] == 0, result
        after = _originals(made, old_item)
        assert len(after) == 2
        for (backend, name, digest, recipients), (_, old_name, old_digest, _) in zip(after, before, strict=True):
            assert access in recipients and name != old_name and digest != old_digest
            stored = _object(made, backend, name).read_bytes()
            opened = subprocess.run(["age", "-d", "-i", str(tmp_path / "access.key"),
                                     str(_object(made, backend, name))], capture_output=True, check=True)
            assert opened.stdout == old_data  # the standard tool, with the access identity alone
            assert _payload(stored)[1] == _payload(old_bytes[backend])[1]  # payload bytes unchanged
            assert not _object(made, backend, old_name).exists()  # the old object is gone
            manifest = _object(made, backend, name + ".manifest")
            document = json.loads(subprocess.run(["age", "-d", "-i", str(tmp_path / "access.key"), str(manifest)],
                                                 capture_output=True, check=True).stdout)
            assert document["object"] == name and document["ciphertext_sha256"] == digest
        # the log tells the story: a replication naming the old copy, and the old copy's deletion
        events = _sql(made, "SELECT event_type, objects, details FROM events WHERE item_id = :item ORDER BY seq",
                      item=old_item)
        events = [(t, _json(o), _json(d)) for t, o, d in events]
        rewraps = [d for t, _, d in events if t == "replication" and "rewrapped_from" in d]
        assert {r["rewrapped_from"] for r in rewraps} == {f"{b}:{n}" for b, n, *_ in before}
        assert {r["from_ciphertext_sha256"] for r in rewraps} == {h for _, _, h, _ in before}
        deleted = [o[0] for t, o, _ in events if t == "deletion"]
        assert {f"{b}:{n}" for b, n, *_ in before} <= set(deleted)
        for _, _, details in events:
            assert "size" not in details and "ciphertext_size" not in details

        got = tmp_path / "got.bin"
        made.run("get", old_item, "-o", str(got))  # the server serves it now, custodian key offline
        assert got.read_bytes() == old_data
        made.run("fixity", "--all")
        made.run("log", "verify")

        again = json.loads(made.run("keys", "add-access", "--identity", str(made.custodian), "--json")[1])
        assert again["rewrapped"] == 0 and again["already"] == 4, again  # idempotent: 2 items x 2 sites
        assert _originals(made, new_item) and _originals(made, old_item) == after
    finally:
        made.process("lock")
    _assert_no_secret_anywhere(made, _secrets_of(made, identity_text, catalog_text))


def test_add_access_on_an_older_home_creates_the_missing_keys_first(tmp_path: Path) -> None:
    made = _new_home(tmp_path)
    keys = made.path / "keys"
    access = (keys / "access.pub").read_text().strip()
    drop_recipient(made.path, access)
    item, data = _ingest(made, tmp_path, "old.bin")
    for name in ("access.key", "access.pub"):
        (keys / name).unlink()  # a home from before the access identity (its catalog key made by the upgrade)
    _, out, _ = made.run("keys", "add-access", "--identity", str(keys / "custodian.key"))
    assert "created access.key" in out and "catalog.key" not in out
    fresh = (keys / "access.pub").read_text().strip()
    assert fresh != access and fresh in made.run("encrypt-to", "list")[1].split()
    (keys / "custodian.key").rename(tmp_path / "custodian.key")
    made.run("get", item, "-o", str(tmp_path / "got.bin"))
    assert (tmp_path / "got.bin").read_bytes() == data


def test_add_access_does_not_rewrap_a_copy_the_log_never_recorded(tmp_path: Path) -> None:
    """An attacker swaps an old copy for other bytes and makes the catalog agree: add-access must not
    give the substitute a fresh, access-readable lease (the log's hash and commitment decide)."""
    import hashlib

    from archive.age import Recipient, encrypt_bytes
    from archive.keys.catalog import CatalogKeys

    made = _new_home(tmp_path)
    keys = made.path / "keys"
    access = (keys / "access.pub").read_text().strip()
    drop_recipient(made.path, access)
    item, data = _ingest(made, tmp_path, "old.bin")
    made.run("encrypt-to", "add", access)
    (backend, name, _, recipients), (other_backend, other_name, *_) = _originals(made, item)
    other = os.urandom(len(data))
    forged = encrypt_bytes(other, [Recipient.parse(r) for r in recipients])
    _object(made, backend, name).write_bytes(forged)
    _sql(made, "UPDATE replicas SET ciphertext_sha256 = :h WHERE backend = :b AND object_name = :n",
         h=hashlib.sha256(forged).hexdigest(), b=backend, n=name)
    catalog = CatalogKeys.parse((keys / "catalog.key").read_text())  # an insider holding the catalog key
    [(version, blob)] = _sql(made, "SELECT key_version, sealed FROM items WHERE id = :i", i=item)
    fields = catalog.open("items", item, version, bytes(blob))
    fields["sha256"] = hashlib.sha256(other).hexdigest()
    version, blob = catalog.seal("items", item, fields)
    _sql(made, "UPDATE items SET sealed = :b, key_version = :v WHERE id = :i", b=blob, v=version, i=item)
    _, out, _ = made.run("keys", "add-access", "--identity", str(keys / "custodian.key"), "--json")
    result = json.loads(out)
    assert result["rewrapped"] == 1 and result["skipped"] == 1, result
    assert any(name in problem and "log" in problem for problem in result["problems"]), result
    assert _object(made, backend, name).read_bytes() == forged  # left as it was, for fixity to report
    rows = {(b, n): r for b, n, _, r in _originals(made, item)}
    assert access not in rows[(backend, name)]  # the substitute gained nothing
    assert all(access in r for (b, _), r in rows.items() if b == other_backend) and other_name not in {
        n for b, n in rows if b == other_backend}  # the genuine copy was rewrapped
    _, fixity, _ = made.run("fixity", "--all", expect=1)
    assert "1 corrupt" in fixity, fixity


def test_missing_keys_are_created_unwrapped_and_existing_ones_kept(tmp_path: Path) -> None:
    from archive.services.keys import create_secret_keys

    keys = tmp_path / "keys"
    keys.mkdir()
    made = create_secret_keys(keys)
    assert sorted(made.created) == ["access.key", "catalog.key"]
    texts = {p.name: p.read_bytes() for p in keys.iterdir()}
    assert create_secret_keys(keys).created == [] and {p.name: p.read_bytes() for p in keys.iterdir()} == texts
    (keys / "catalog.key").rename(keys / "catalog.key.age")  # wrapped counts as present
    assert create_secret_keys(keys).created == []


def _objects_on_disk(home: Home) -> set[str]:
    root = home.path / "storage"
    return {str(p.relative_to(root)) for p in root.glob("*/o/**/*") if p.is_file()}


def test_add_access_cut_short_leaves_no_stray_copy_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import archive.services.add_access as add_access

    made = _new_home(tmp_path)
    access = (made.path / "keys" / "access.pub").read_text().strip()
    drop_recipient(made.path, access)
    item, data = _ingest(made, tmp_path, "old.bin")
    made.run("encrypt-to", "add", access)
    before, objects = _originals(made, item), _objects_on_disk(made)
    custodian = str(made.path / "keys" / "custodian.key")

    def cut(*_args: object) -> bool:
        raise RuntimeError("killed before the switch")

    monkeypatch.setattr(add_access, "_switch", cut)
    made.run("keys", "add-access", "--identity", custodian, expect=2)
    assert _objects_on_disk(made) == objects and _originals(made, item) == before  # nothing half-done
    assert not [d for (d,) in _sql(made, "SELECT details FROM events") if "rewrapped_from" in _json(d)]

    monkeypatch.undo()
    monkeypatch.setattr(add_access, "_delete_quietly", lambda *_args: 0)  # cut after the switch
    made.run("keys", "add-access", "--identity", custodian)
    after = _originals(made, item)
    assert all(access in recipients for *_, recipients in after)
    assert {f"{b}/{n}" for b, n, *_ in before} <= _objects_on_disk(made)  # old objects still there

    monkeypatch.undo()
    result = json.loads(made.run("keys", "add-access", "--identity", custodian, "--json")[1])
    assert result["rewrapped"] == 0 and result["deleted"] >= 2, result  # the old ones, as the log says
    left = _objects_on_disk(made)
    assert not {f"{b}/{n}" for b, n, *_ in before} & left
    assert {f"{b}/{n}" for b, n, *_ in after} <= left
    (made.path / "keys" / "custodian.key").rename(tmp_path / "custodian.key")
    made.run("get", item, "-o", str(tmp_path / "got.bin"))
    assert (tmp_path / "got.bin").read_bytes() == data
    made.run("fixity", "--all")
    made.run("log", "verify")


def test_add_access_killed_before_the_switch_leaves_nothing_a_rebuild_would_reject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill between writing the rewrapped copy and the switch runs no clean-up; the next run must
    sweep what it wrote, or a later rebuild-catalog finds manifests the log never recorded."""
    import archive.services.add_access as add_access

    made = _new_home(tmp_path)
    access = (made.path / "keys" / "access.pub").read_text().strip()
    drop_recipient(made.path, access)
    item, _ = _ingest(made, tmp_path, "old.bin")
    made.run("encrypt-to", "add", access)
    objects = _objects_on_disk(made)
    custodian = str(made.path / "keys" / "custodian.key")

    def killed(*_args: object) -> bool:
        raise RuntimeError("SIGKILL")

    monkeypatch.setattr(add_access, "_switch", killed)
    monkeypatch.setattr(add_access, "_delete_quietly", lambda *_args: 0)  # a killed process cleans nothing
    made.run("keys", "add-access", "--identity", custodian, expect=2)
    assert _objects_on_disk(made) - objects  # the new copies and manifests were left behind
    monkeypatch.undo()
    made.run("keys", "add-access", "--identity", custodian)
    after = {f"{b}/{n}" for b, n, *_ in _originals(made, item)}
    left = _objects_on_disk(made) - objects
    assert left and all(any(name.startswith(o) for o in after) for name in left), left  # only the new, switched-to
    rebuilt = tmp_path / "rebuilt"
    made.run("rebuild-catalog", "--from", "site-a", "--identity", custodian, "--into", str(rebuilt))


def test_a_passphrase_file_others_can_read_is_refused(tmp_path: Path) -> None:
    made = _new_home(tmp_path)
    made.run("keys", "protect", "--passphrase-file", str(made.passphrase_file))
    made.passphrase_file.chmod(0o644)
    _, _, err = made.run("unlock", "--passphrase-file", str(made.passphrase_file), expect=2)
    assert "chmod 600" in err and PASSPHRASE not in err
    made.passphrase_file.chmod(0o600)
    made.run("unlock", "--passphrase-file", str(made.passphrase_file))
    made.run("lock")


def test_keys_wrapped_by_the_age_tool_unlock_too(tmp_path: Path) -> None:
    """A custodian may wrap (or re-wrap) the keys with `age -p` alone: the archive opens what the tool wrote."""
    made = _new_home(tmp_path)
    keys = made.path / "keys"
    for name in ("access.key", "catalog.key"):
        code, _, _ = run_age(["-e", "-p", "-o", str(keys / f"{name}.age"), str(keys / name)], PASSPHRASE, answers=2)
        assert code == 0
        (keys / name).unlink()
    _take_custodian_offline(made)
    item, data = _ingest(made, tmp_path, "a.bin")
    made.run("get", item, "-o", str(tmp_path / "no.bin"), expect=1)
    try:
        made.process("unlock", "--passphrase-file", str(made.passphrase_file))
        made.run("get", item, "-o", str(tmp_path / "got.bin"))
        assert (tmp_path / "got.bin").read_bytes() == data
    finally:
        made.process("lock")


def test_worker_unlock_unlocks_that_worker_only(home: Home, corpus: Path) -> None:
    from archive.keys import ramdir

    home.run("ingest", str(corpus / "media/jpg/gps/DSCN0010.jpg"))
    home.run("analyze", "--backfill", "--all", "--step", "metadata")
    out, err = home.process("worker", "--once", "--unlock", "-v",
                            env={"EVIDENCE_PASSPHRASE_FILE": str(home.passphrase_file)})
    assert "1 done" in out and PASSPHRASE not in out + err
    assert _sql(home, "SELECT state FROM jobs WHERE kind = 'analysis'") == [("done",)]
    assert not ramdir.ram_dir(home.archive_id).exists()
    home.process("worker", "--once")  # and a worker that is not unlocked still runs (ingest-side jobs)


def test_add_access_on_an_s3_site_replaces_the_object_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site_a: WeedServer  # noqa: F811
) -> None:
    from archive.config import StorageSpec
    from archive.context import Archive
    from storage.s3_common import env_prefix
    from tests.conftest import replace_sites

    made = _new_home(tmp_path)
    monkeypatch.setenv(env_prefix("s3-a") + "ACCESS_KEY", site_a.access_key)
    monkeypatch.setenv(env_prefix("s3-a") + "SECRET_KEY", site_a.secret_key)
    spec = StorageSpec("s3-a", "s3", {"endpoint": site_a.endpoint, "bucket": site_a.make_bucket(versioned=True),
                                      "connect_timeout": 1, "read_timeout": 10, "max_attempts": 1})
    replace_sites(made.path, [spec], copies=1, minimum=1)
    access = (made.path / "keys" / "access.pub").read_text().strip()
    drop_recipient(made.path, access)
    item, data = _ingest(made, tmp_path, "old.bin", 200_000)
    made.run("encrypt-to", "add", access)
    ((_, old_name, _, _),) = _originals(made, item)
    ((old_version,),) = _sql(made, "SELECT version_id FROM replicas WHERE object_name = :n", n=old_name)

    result = json.loads(made.run("keys", "add-access", "--identity", str(made.path / "keys" / "custodian.key"),
                                 "--json")[1])
    assert result["rewrapped"] == 1 and result["skipped"] == 0, result
    (made.path / "keys" / "custodian.key").rename(tmp_path / "custodian.key")
    made.run("get", item, "-o", str(tmp_path / "got.bin"))
    assert (tmp_path / "got.bin").read_bytes() == data
    made.run("fixity", "--all")
    made.run("log", "verify")
    archive = Archive.open(made.path)
    try:
        backend = archive.backends["s3-a"]
        assert backend.stat(old_name, old_version) is None  # that very version is gone, not merely hidden
    finally:
        archive.close()
