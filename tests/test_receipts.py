"""Receipts: a key of their own, exact text, offline verification that fails for every forgery we can think of,
and the HTTP routes that give a receipt and its proof back to its uploader only.

Attacks: one changed line, a receipt signed with the log key, a checkpoint
offered as a receipt and a receipt as a checkpoint, another archive's
receipt, a stranger (another contributor, an investigator) asking for
someone's receipt (the same 404 as an unknown id).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archive.context import Archive
from archive.custody.receipts import (
    HEADER,
    SEALED_KEY,
    ReceiptError,
    receipt_key_name,
    receipt_text,
    receipt_vkey,
    sign_receipt,
    unseal_receipt_key,
    verify_receipt,
)
from archive.custody.service import checkpoint, log_signer
from archive.custody.verify import NoteError, open_note, parse_checkpoint
from tests.api_support import client, make_home

SHA = hashlib.sha256(b"evidence").hexdigest()
ARGS = ("up-0123456789abcdef", "item-42", SHA, 1234, "2026-12-01T18:10:22.123456Z", 7)
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path / "home")


@pytest.fixture()
def archive(home: Path) -> Iterator[Archive]:
    opened = Archive.open(home)
    try:
        yield opened
    finally:
        opened.close()


# --- the text and the key --------------------------------------------------------------------------------

def test_the_text_is_exactly_the_specs_lines() -> None:
    text = receipt_text("example.org/log", *ARGS)
    assert text == (f"{HEADER}\norigin example.org/log\nupload up-0123456789abcdef\nitem item-42\nsha256 {SHA}\n"
                    "size 1234\nreceived 2026-12-01T18:10:22.123456Z\nevent 7\n")


@pytest.mark.parametrize("index, bad", [
    (0, "has space"), (1, "has\nnewline"), (2, "A" * 64), (2, "abc"), (3, -1), (4, "2026-12-01 18:10:22"),
    (4, "2026-12-01T18:10:22+02:00"), (4, "2026-13-01T18:10:22Z"), (5, -3), (3, True),
])
def test_the_text_refuses_what_a_receipt_may_not_hold(index: int, bad: Any) -> None:
    args: list[Any] = list(ARGS)
    args[index] = bad
    with pytest.raises(ValueError):
        receipt_text("example.org/log", *args)


def test_a_key_of_its_own_created_once_and_kept(archive: Archive, home: Path) -> None:
    note = sign_receipt(archive, *ARGS)
    vkey = receipt_vkey(archive)
    log_key = log_signer(archive).verifier
    origin = log_key.name
    assert vkey.split("+")[0] == receipt_key_name(origin) == origin + "/receipts"
    assert vkey != log_key.encode() and vkey.split("+")[2] != log_key.encode().split("+")[2]  # another key
    path = home / "keys" / "receipt-signing.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert (home / "keys" / "receipt.vkey").read_text().strip() == vkey
    assert "PRIVATE" not in (home / "keys" / "receipt.vkey").read_text()
    fields = verify_receipt(note, vkey)
    assert {k: fields[k] for k in ("upload", "item", "sha256", "size", "received", "event")} == dict(
        zip(("upload", "item", "sha256", "size", "received", "event"), ARGS, strict=True))
    assert fields["origin"] == origin
    again = Archive.open(home)  # another process: the same key
    try:
        assert receipt_vkey(again) == vkey
        assert verify_receipt(sign_receipt(again, *ARGS), vkey)["event"] == 7
    finally:
        again.close()


def test_each_site_keeps_the_key_sealed_for_a_rebuild(archive: Archive, home: Path) -> None:
    from archive.context import _parse_identities

    sign_receipt(archive, *ARGS)
    identities = _parse_identities((home / "keys" / "custodian.key").read_bytes())
    assert archive.backends
    for backend in archive.backends.values():
        with backend.open_reader(SEALED_KEY) as stream:
            sealed = bytes(stream.read())
        assert b"PRIVATE+KEY" not in sealed  # age-encrypted, not the key in clear
        recovered = unseal_receipt_key(backend, identities)
        assert recovered is not None and recovered.verifier.encode() == receipt_vkey(archive)


# --- forgeries -------------------------------------------------------------------------------------------

def test_any_changed_line_fails(archive: Archive) -> None:
    note = sign_receipt(archive, *ARGS)
    vkey = receipt_vkey(archive)
    lines = note.split("\n")
    body_lines = lines[: lines.index("")]
    assert len(body_lines) == 8
    for i, line in enumerate(body_lines):
        changed = line[:-1] + ("0" if line[-1] != "0" else "1")
        forged = "\n".join([*lines[:i], changed, *lines[i + 1 :]])
        with pytest.raises(ReceiptError, match="bad signature"):
            verify_receipt(forged, vkey)
    dropped = "\n".join([*lines[:6], *lines[7:]])  # a line removed
    with pytest.raises(ReceiptError, match="bad signature"):
        verify_receipt(dropped, vkey)
    signature = lines[-2]
    blob = bytearray(base64.b64decode(signature.rsplit(" ", 1)[1]))
    blob[10] ^= 1
    resigned = "\n".join([*lines[:-2], signature.rsplit(" ", 1)[0] + " " + base64.b64encode(blob).decode(), ""])
    with pytest.raises(ReceiptError, match="bad signature"):
        verify_receipt(resigned, vkey)


def test_a_receipt_signed_with_the_log_key_fails(archive: Archive) -> None:
    from archive.custody.checkpoint import Signer

    origin = log_signer(archive).name
    by_log = log_signer(archive).sign_note(receipt_text(origin, *ARGS))
    with pytest.raises(ReceiptError, match="wrong key"):
        verify_receipt(by_log, receipt_vkey(archive))
    # Nor a key that merely takes the receipt key's name.
    impostor = Signer.generate(receipt_key_name(origin))
    with pytest.raises(ReceiptError, match="wrong key"):
        verify_receipt(impostor.sign_note(receipt_text(origin, *ARGS)), receipt_vkey(archive))


def test_a_checkpoint_is_no_receipt_and_a_receipt_no_checkpoint(archive: Archive) -> None:
    note = checkpoint(archive)["note"]
    with pytest.raises(ReceiptError, match="wrong key"):
        verify_receipt(note, receipt_vkey(archive))  # no signature by the receipt key
    with pytest.raises(ReceiptError, match="not a receipt key"):
        verify_receipt(note, log_signer(archive).verifier.encode())  # the log key is never a receipt key
    receipt = sign_receipt(archive, *ARGS)
    with pytest.raises(NoteError, match="no signature by"):
        open_note(receipt, log_signer(archive).verifier)  # as a checkpoint, under the log's key
    from archive.custody.verify import Verifier

    text = open_note(receipt, Verifier.decode(receipt_vkey(archive)))
    with pytest.raises(NoteError):
        parse_checkpoint(text)  # even opened with the receipt key, its body is no checkpoint


def test_malformed_or_foreign_receipts_say_what_is_wrong(archive: Archive) -> None:
    from archive.custody.receipts import receipt_signer

    signer = receipt_signer(archive)
    vkey = receipt_vkey(archive)
    good = receipt_text(log_signer(archive).name, *ARGS)
    cases = {
        "wrong header": good.replace(HEADER, "evidence-receipt/2"),
        "malformed line 3": good.replace("upload ", "upload: "),
        "malformed receipt: 9 lines": good + "note hello\n",
        "malformed size": good.replace("size 1234", "size 01234"),
        "malformed received": good.replace(".123456Z", ".123456+00:00"),
        "wrong key: the receipt is for": good.replace(log_signer(archive).name, "evidence-archive/another"),
    }
    for why, text in cases.items():
        with pytest.raises(ReceiptError, match=why):
            verify_receipt(signer.sign_note(text), vkey)
    with pytest.raises(ReceiptError, match="malformed receipt"):
        verify_receipt("evidence-receipt/1\n", vkey)
    with pytest.raises(ReceiptError, match="bad receipt verifier key"):
        verify_receipt(sign_receipt(archive, *ARGS), "not a key")


# --- the CLI ---------------------------------------------------------------------------------------------

def test_cli_key_and_offline_verify(archive: Archive, home: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from api.cli.main import cli

    runner = CliRunner()
    shown = runner.invoke(cli, ["--home", str(home), "receipt", "key"], catch_exceptions=False)
    assert shown.exit_code == 0 and shown.stdout.strip() == receipt_vkey(archive)
    vkey, log_vkey, note, forged = (tmp_path / n for n in ("r.vkey", "log.vkey", "r.txt", "forged.txt"))
    vkey.write_text(shown.stdout)
    log_vkey.write_text(log_signer(archive).verifier.encode() + "\n")
    note.write_text(sign_receipt(archive, *ARGS))
    forged.write_text(note.read_text().replace("size 1234", "size 1235"))
    ok = runner.invoke(cli, ["receipt", "verify", str(note), "--vkey", str(vkey), "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True and json.loads(ok.stdout)["size"] == 1234
    assert runner.invoke(cli, ["receipt", "verify", str(note), "--vkey", str(vkey)]).stdout.startswith("ok: ")
    bad = runner.invoke(cli, ["receipt", "verify", str(forged), "--vkey", str(vkey), "--json"])
    assert bad.exit_code == 1 and "bad signature" in json.loads(bad.stdout)["error"]
    assert runner.invoke(cli, ["receipt", "verify", str(note), "--vkey", str(log_vkey)]).exit_code == 1
    missing = runner.invoke(cli, ["receipt", "verify", str(tmp_path / "none"), "--vkey", str(vkey)])
    assert missing.exit_code == 2


# --- over HTTP -------------------------------------------------------------------------------------------

def _tokens(home: Path) -> dict[str, str]:
    from archive.services.accounts import add_user, create_token

    archive = Archive.open(home)
    try:
        tokens = {}
        for name, role in (("alice", "contributor"), ("bob", "contributor"), ("ivy", "investigator"),
                           ("carol", "custodian"), ("audra", "auditor")):
            add_user(archive, name, role)
            tokens[name] = create_token(archive, name)["token"]
        return tokens
    finally:
        archive.close()


def _upload(app: Any, token: str, data: bytes) -> tuple[str, str]:
    """(upload id, receipt) of a tus upload in one request (creation-with-upload)."""
    meta = "filename " + base64.b64encode(b"note.txt").decode()
    answer = app.post("/v1/uploads", content=data, headers={
        "Authorization": f"Bearer {token}", **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta,
        "Content-Type": "application/offset+octet-stream"})
    assert answer.status_code == 201, answer.text
    upload_id = answer.headers["Location"].rstrip("/").split("/")[-2]
    return upload_id, base64.b64decode(answer.headers["Upload-Receipt"]).decode()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_http_receipt_and_proof_for_the_uploader_only(home: Path) -> None:
    from archive.custody.proof_format import parse_tlog_proof, verify_tlog_proof

    tokens = _tokens(home)
    with client(home) as app:
        key = app.get("/v1/receipts/key", headers=_bearer(tokens["alice"]))
        assert key.status_code == 200 and key.headers["content-type"].startswith("text/plain")
        vkey = key.text
        assert app.get("/v1/receipts/key", headers=_bearer(tokens["audra"])).text == vkey
        assert app.get("/v1/receipts/key").status_code == 401
        upload_id, sent = _upload(app, tokens["alice"], b"a field report\n" * 40)
        got = app.get(f"/v1/receipts/{upload_id}", headers=_bearer(tokens["alice"]))
        assert got.status_code == 200 and got.headers["content-type"].startswith("text/plain")
        assert got.text == sent
        fields = verify_receipt(got.text, vkey)
        assert fields["upload"] == upload_id and fields["size"] == 600
        assert fields["sha256"] == hashlib.sha256(b"a field report\n" * 40).hexdigest()
        assert app.get(f"/v1/receipts/{upload_id}", headers=_bearer(tokens["carol"])).text == sent  # custodian

        unknown = app.get("/v1/receipts/up-does-not-exist", headers=_bearer(tokens["bob"]))
        assert unknown.status_code == 404
        for stranger in ("bob", "ivy"):  # another contributor, an investigator: exactly the unknown id's answer
            for path in (f"/v1/receipts/{upload_id}", f"/v1/receipts/{upload_id}/proof"):
                denied = app.get(path, headers=_bearer(tokens[stranger]))
                assert (denied.status_code, denied.json()) == (404, unknown.json()), path
        assert app.get(f"/v1/receipts/{upload_id}", headers=_bearer(tokens["audra"])).status_code == 403

        # The proof: the process signs a checkpoint covering the event, then proves it.
        proof = app.get(f"/v1/receipts/{upload_id}/proof", headers=_bearer(tokens["alice"]))
        assert proof.status_code == 200, proof.text
        log_vkey = (home / "keys" / "log.vkey").read_text()
        checked = verify_tlog_proof(proof.text, None, log_vkey)
        assert checked.index == fields["event"] and checked.entry is None  # a contributor gets the leaf hash only
        assert parse_tlog_proof(proof.text).extra == checked.leaf_hash
        with pytest.raises(ReceiptError):
            verify_receipt(parse_tlog_proof(proof.text).checkpoint, vkey)
        full = app.get(f"/v1/receipts/{upload_id}/proof", headers=_bearer(tokens["carol"]))
        entry = verify_tlog_proof(full.text, None, log_vkey).entry
        assert entry is not None and json.loads(entry)["item"] == fields["item"]
        assert json.loads(entry)["type"] == "ingestion" and json.loads(entry)["seq"] == fields["event"]
        assert verify_tlog_proof(proof.text, entry, log_vkey).leaf_hash == checked.leaf_hash



def test_cli_verifies_a_contributors_receipt_and_proof_offline(home: Path, tmp_path: Path) -> None:
    """What a contributor holds (receipt, proof, both public keys from the API) checks out with the CLI alone."""
    from click.testing import CliRunner

    from api.cli.main import cli

    tokens = _tokens(home)
    files = {n: tmp_path / n for n in ("r.vkey", "log.vkey", "r.txt", "r.b64", "p.tlog-proof", "other.tlog-proof",
                                       "bad.vkey", "cut.tlog-proof")}
    with client(home) as app:
        alice = _bearer(tokens["alice"])
        files["r.vkey"].write_text(app.get("/v1/receipts/key", headers=alice).text)
        log_vkey = app.get("/v1/log/vkey", headers=alice)
        assert log_vkey.status_code == 200, log_vkey.text  # a public key: a contributor may have it
        files["log.vkey"].write_text(log_vkey.text)
        upload_id, note = _upload(app, tokens["alice"], b"one report\n" * 30)
        other_id, _ = _upload(app, tokens["alice"], b"another report\n" * 30)
        files["r.txt"].write_text(note)
        files["r.b64"].write_text(base64.b64encode(note.encode()).decode())  # the Upload-Receipt header's value
        files["p.tlog-proof"].write_text(app.get(f"/v1/receipts/{upload_id}/proof", headers=alice).text)
        files["other.tlog-proof"].write_text(app.get(f"/v1/receipts/{other_id}/proof", headers=alice).text)
    files["bad.vkey"].write_text("nonsense+vkey\n")
    files["cut.tlog-proof"].write_text(files["p.tlog-proof"].read_text().replace("index ", "index 1", 1))
    runner = CliRunner()

    def run(receipt: str = "r.txt", vkey: str = "r.vkey", proof: str | None = "p.tlog-proof",
            log: str | None = "log.vkey") -> tuple[int, dict[str, Any]]:
        args = ["receipt", "verify", str(files[receipt]), "--vkey", str(files[vkey]), "--json"]
        args += ["--proof", str(files[proof])] if proof else []
        args += ["--log-vkey", str(files[log])] if log else []
        result = runner.invoke(cli, args)
        return result.exit_code, json.loads(result.stdout)

    code, shown = run()
    assert code == 0 and shown["proof"]["index"] == shown["event"] and not shown["proof"]["entry_checked"]
    assert run(receipt="r.b64")[0] == 0
    plain = runner.invoke(cli, ["receipt", "verify", str(files["r.txt"]), "--vkey", str(files["r.vkey"]),
                                "--proof", str(files["p.tlog-proof"]), "--log-vkey", str(files["log.vkey"])])
    assert plain.exit_code == 0 and "is in the custody log" in plain.stdout
    code, shown = run(proof="other.tlog-proof")  # a valid proof, of another upload's event
    assert code == 1 and "the receipt names event" in shown["error"]
    assert run(proof="cut.tlog-proof")[0] == 1
    code, shown = run(log="r.vkey")  # the receipt key does not sign checkpoints
    assert code == 1 and shown["error"].startswith("proof:")
    code, shown = run(vkey="bad.vkey", proof=None, log=None)  # an unparseable key is an error in use, not "invalid"
    assert code == 2 and "--vkey" in shown["error"]
    code, shown = run(log="bad.vkey")
    assert code == 2 and "--log-vkey" in shown["error"]
    code, shown = run(log=None)
    assert code == 2 and "go together" in shown["error"]


def test_http_proof_before_a_checkpoint_can_be_signed(home: Path) -> None:
    """With checkpoints rate-limited (a long delay and one just signed), the proof is a clear 409 with Retry-After."""
    from archive.config import load_settings

    settings = load_settings(home)
    settings.section("log")["checkpoint_delay_seconds"] = 3600
    settings.save()
    tokens = _tokens(home)
    with client(home) as app:
        upload_id, _ = _upload(app, tokens["alice"], b"first\n" * 10)
        first = app.get(f"/v1/receipts/{upload_id}/proof", headers=_bearer(tokens["alice"]))
        assert first.status_code == 200, first.text  # no checkpoint was recent: one is signed
        second_id, _ = _upload(app, tokens["alice"], b"second\n" * 10)
        waiting = app.get(f"/v1/receipts/{second_id}/proof", headers=_bearer(tokens["alice"]))
        assert waiting.status_code == 409, waiting.text  # as /v1/log/proof/{seq} answers it
        assert waiting.json()["error"] == "not_covered" and "not covered by a checkpoint" in waiting.json()["detail"]
        assert int(waiting.headers["Retry-After"]) >= 1
        archive = Archive.open(home)
        try:
            checkpoint(archive)  # the worker's next checkpoint
        finally:
            archive.close()
        assert app.get(f"/v1/receipts/{second_id}/proof", headers=_bearer(tokens["alice"])).status_code == 200


def test_a_rebuilt_catalog_signs_receipts_under_the_same_key(archive: Archive, home: Path, tmp_path: Path) -> None:
    import shutil

    from tests.conftest import Cli

    vkey = receipt_vkey(archive)
    old = sign_receipt(archive, *ARGS)
    checkpoint(archive)  # the log (and its sealed signing key) on every site
    archive.close()
    offline = tmp_path / "custodian.key"
    shutil.copy(home / "keys" / "custodian.key", offline)
    shutil.rmtree(home / "keys")  # the server and its keys are lost
    (home / "catalog.db").unlink()
    rebuilt = tmp_path / "rebuilt"
    Cli(tmp_path / "nowhere").json("rebuild-catalog", "--from", "site-a", "--kind", "local", "--path",
                                   str(home / "storage" / "site-a"), "--identity", str(offline), "--into", str(rebuilt))
    assert (rebuilt / "keys" / "receipt.vkey").read_text().strip() == vkey
    again = Archive.open(rebuilt)
    try:
        assert receipt_vkey(again) == vkey
        assert verify_receipt(sign_receipt(again, *ARGS), vkey)["origin"] == verify_receipt(old, vkey)["origin"]
    finally:
        again.close()


def test_no_receipt_before_completion_nor_after_termination(home: Path) -> None:
    tokens = _tokens(home)
    with client(home) as app:
        started = app.post("/v1/uploads", headers={**_bearer(tokens["alice"]), **TUS, "Upload-Length": "100"})
        assert started.status_code == 201, started.text
        location = started.headers["Location"]
        upload_id = location.rstrip("/").split("/")[-2]
        unknown = app.get("/v1/receipts/up-unknown", headers=_bearer(tokens["alice"])).json()
        waiting = app.get(f"/v1/receipts/{upload_id}", headers=_bearer(tokens["alice"]))
        assert waiting.status_code == 404 and "not complete" in waiting.json()["detail"]
        assert app.get(f"/v1/receipts/{upload_id}", headers=_bearer(tokens["bob"])).json() == unknown
        assert app.delete(location, headers={**_bearer(tokens["alice"]), **TUS}).status_code == 204
        ended = app.get(f"/v1/receipts/{upload_id}/proof", headers=_bearer(tokens["alice"]))
        assert ended.status_code == 404 and "terminated" in ended.json()["detail"]
