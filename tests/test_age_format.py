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
