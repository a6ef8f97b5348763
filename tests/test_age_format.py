"""Our age implementation against the reference `age` tool, both ways."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from archive.age import AgeError, Encryptor, Identity, decrypt_bytes, decrypt_stream, encrypt_bytes

AGE = shutil.which("age")
pytestmark = pytest.mark.skipif(AGE is None and not os.environ.get("CI"), reason="the `age` tool is not installed")

SIZES = [1, 100, 65535, 65536, 65537, 3 * 65536, 1_000_000]


@pytest.fixture()
def identity_file(tmp_path: Path) -> tuple[Identity, Path]:
    identity = Identity.generate()
    path = tmp_path / "key.txt"
    path.write_text(str(identity) + "\n")
    return identity, path


@pytest.mark.parametrize("size", SIZES)
def test_age_tool_opens_what_we_write(tmp_path: Path, identity_file: tuple[Identity, Path], size: int) -> None:
    identity, key = identity_file
    data = os.urandom(size)
    sealed = encrypt_bytes(data, [Identity.generate().recipient, identity.recipient])
    (tmp_path / "f.age").write_bytes(sealed)
    out = subprocess.run(["age", "-d", "-i", str(key), str(tmp_path / "f.age")], capture_output=True, check=True)
    assert out.stdout == data


@pytest.mark.parametrize("size", [0, 1, 65536, 200_000])
def test_we_open_what_the_age_tool_writes(tmp_path: Path, identity_file: tuple[Identity, Path], size: int) -> None:
    identity, _ = identity_file
    data = os.urandom(size)
    (tmp_path / "plain").write_bytes(data)
    subprocess.run(
        ["age", "-e", "-r", str(identity.recipient), "-o", str(tmp_path / "f.age"), str(tmp_path / "plain")],
        check=True,
    )
    assert decrypt_bytes((tmp_path / "f.age").read_bytes(), [identity]) == data


def test_keys_match_age_keygen(tmp_path: Path) -> None:
    out = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True).stdout
    secret = [line for line in out.splitlines() if line.startswith("AGE-SECRET-KEY-")][0]
    (tmp_path / "k").write_text(secret + "\n")
    public = subprocess.run(["age-keygen", "-y", str(tmp_path / "k")], capture_output=True, text=True, check=True)
    assert str(Identity.parse(secret).recipient) == public.stdout.strip()
    assert str(Identity.parse(secret)) == secret


def test_streaming_in_odd_pieces_equals_one_shot() -> None:
    identity = Identity.generate()
    data = os.urandom(300_000)
    enc = Encryptor([identity.recipient])
    pieces = [enc.header()]
    for start in range(0, len(data), 7777):
        pieces.append(enc.update(data[start : start + 7777]))
    pieces.append(enc.finalize())
    assert decrypt_bytes(b"".join(pieces), [identity]) == data


def test_tampering_is_detected() -> None:
    identity = Identity.generate()
    sealed = bytearray(encrypt_bytes(os.urandom(100_000), [identity.recipient]))
    sealed[-10] ^= 1
    with pytest.raises(AgeError, match="authentication"):
        decrypt_bytes(bytes(sealed), [identity])
    truncated = bytes(encrypt_bytes(os.urandom(200_000), [identity.recipient]))[:-70_000]
    with pytest.raises(AgeError):
        decrypt_bytes(truncated, [identity])


def test_wrong_identity_is_refused() -> None:
    sealed = encrypt_bytes(b"secret", [Identity.generate().recipient])
    with pytest.raises(AgeError, match="no identity matches"):
        list(decrypt_stream(__import__("io").BytesIO(sealed), [Identity.generate()]))


# --- passphrases (the scrypt stanza) and header rewrap --------------------------------------------------

def test_age_tool_opens_our_passphrase_file(tmp_path: Path) -> None:
    from archive.age import Passphrase
    from tests.age_tty import run_age

    data = os.urandom(70_000)
    (tmp_path / "f.age").write_bytes(encrypt_bytes(data, [Passphrase.of("correct horse battery", 12)]))
    code, out, _ = run_age(["-d", str(tmp_path / "f.age")], "correct horse battery")
    assert code == 0 and out == data
    code, out, terminal = run_age(["-d", str(tmp_path / "f.age")], "wrong horse battery")
    assert code != 0 and out == b"" and b"incorrect passphrase" in terminal


def test_we_open_the_age_tools_passphrase_file(tmp_path: Path) -> None:
    from archive.age import Passphrase
    from tests.age_tty import run_age

    data = os.urandom(100_000)
    (tmp_path / "plain").write_bytes(data)
    code, _, _ = run_age(["-e", "-p", "-o", str(tmp_path / "f.age"), str(tmp_path / "plain")], "tool passphrase 1",
                         answers=2)
    assert code == 0
    sealed = (tmp_path / "f.age").read_bytes()
    assert b"\n-> scrypt " in sealed[:200]
    assert decrypt_bytes(sealed, [Passphrase.of("tool passphrase 1")]) == data
    with pytest.raises(AgeError, match="wrong passphrase"):
        decrypt_bytes(sealed, [Passphrase.of("tool passphrase 2")])
    with pytest.raises(AgeError, match="passphrase"):
        decrypt_bytes(sealed, [Identity.generate()])  # an X25519 identity is no passphrase


def test_a_passphrase_is_a_files_only_recipient_and_its_work_factor_is_bounded() -> None:
    from archive.age import Passphrase

    with pytest.raises(AgeError, match="only recipient"):
        encrypt_bytes(b"x", [Passphrase.of("long enough phrase", 10), Identity.generate().recipient])
    sealed = encrypt_bytes(b"x", [Passphrase.of("long enough phrase", 10)])
    lines = sealed.split(b"\n")
    salt = lines[1].split(b" ")[2]
    for bad in (b"23", b"010"):  # above the age tool's ceiling (a memory trap), or not canonical
        forged = sealed.replace(b"-> scrypt " + salt + b" 10", b"-> scrypt " + salt + b" " + bad)
        with pytest.raises(AgeError, match="work factor"):
            decrypt_bytes(forged, [Passphrase.of("long enough phrase")])
    other = encrypt_bytes(b"x", [Identity.generate().recipient]).split(b"\n")
    mixed = b"\n".join([lines[0], other[1], other[2], *lines[1:]])
    with pytest.raises(AgeError, match="only stanza"):
        decrypt_bytes(mixed, [Passphrase.of("long enough phrase")])


def test_rewrap_gives_new_recipients_and_keeps_the_payload(tmp_path: Path) -> None:
    import io

    from archive.age import header_opens, read_header, rewrap_header

    old, new = Identity.generate(), Identity.generate()
    data = os.urandom(200_000)
    sealed = encrypt_bytes(data, [old.recipient])
    stream = io.BytesIO(sealed)
    header = read_header(stream)
    payload = stream.read()
    assert sealed == header + payload
    fresh = rewrap_header(header, [old], [old.recipient, new.recipient])
    assert header_opens(fresh, [new]) and not header_opens(header, [new])
    (tmp_path / "new.key").write_text(str(new) + "\n")
    (tmp_path / "f.age").write_bytes(fresh + payload)
    out = subprocess.run(["age", "-d", "-i", str(tmp_path / "new.key"), str(tmp_path / "f.age")],
                         capture_output=True, check=True)
    assert out.stdout == data  # the oracle opens header + untouched payload
    with pytest.raises(AgeError, match="no identity"):
        rewrap_header(header, [new], [new.recipient])  # only someone who can open it may rewrap it
    tampered = header.replace(b"X25519 ", b"X25519 A", 1)
    with pytest.raises(AgeError):
        rewrap_header(tampered, [old], [new.recipient])
    with pytest.raises(AgeError, match="header only"):
        rewrap_header(sealed, [old], [new.recipient])
